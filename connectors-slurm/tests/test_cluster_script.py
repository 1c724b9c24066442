"""The parsers and command builders against the real Slurm lab of ``tests/slurm/cluster.sh``.

The lab must be up (``tests/slurm/cluster.sh up``); these tests fail, never skip, when it is
not. The lab is found through ``$EFI_SLURM_LAB/env.sh`` (default ``/tmp/efi-slurm-lab``).
"""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from slurm_lab import LAB_DIR, lab_environment

from efi_connector_slurm.commands import (
    find_job_command,
    find_job_sacct_command,
    sacct_command,
    scancel_command,
    squeue_command,
)
from efi_connector_slurm.parsing import (
    parse_find_job,
    parse_sacct,
    parse_sbatch_output,
    parse_squeue,
)
from efi_job_manager.connector import SchedulerStatus
from efi_job_manager.status import SchedulerState as S

POLL_SECONDS = 60.0


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    """The environment for Slurm commands on the lab, after checking that it is up."""
    return lab_environment()


def run(
    argv: list[str], env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=check)


def submit(env: dict[str, str], name: str, script: str, *extra: str) -> str:
    scratch = env.get("EFI_SLURM_SCRATCH", str(LAB_DIR / "scratch"))
    done = run(
        ["sbatch", "--parsable", f"--job-name={name}", f"--chdir={scratch}",
         f"--output={scratch}/%j.out", *extra, f"--wrap={script}"],
        env,
    )  # fmt: skip
    return parse_sbatch_output(done.stdout)


def poll_sacct(
    env: dict[str, str], job_id: str, until: Callable[[SchedulerStatus], bool]
) -> SchedulerStatus:
    """Ask sacct (built and read by the connector's functions) until ``until`` holds."""
    argv = sacct_command([job_id], datetime.now() - timedelta(days=1))
    deadline = time.monotonic() + POLL_SECONDS
    seen: SchedulerStatus | None = None
    while time.monotonic() < deadline:
        seen = parse_sacct(run(argv, env).stdout).get(job_id)
        if seen is not None and until(seen):
            return seen
        time.sleep(0.3)
    pytest.fail(f"job {job_id}: sacct still says {seen!r} after {POLL_SECONDS:.0f} s")


def unique_name() -> str:
    return f"efi-test-{uuid.uuid4().hex[:10]}"


def test_lab_is_up(lab_env: dict[str, str]) -> None:
    """``cluster.sh status`` exits 0 and the lab's env.sh names the config and the ssh host."""
    assert Path(lab_env["SLURM_CONF"]).is_file()
    assert Path(lab_env["EFI_SLURM_SSH_CONFIG"]).is_file()
    assert lab_env["EFI_SLURM_SSH_HOST"] == "slurm-lab"


def test_job_that_succeeds_is_completed(lab_env: dict[str, str]) -> None:
    """sbatch → sacct_command/parse_sacct report COMPLETED, exit 0, with times."""
    job_id = submit(lab_env, unique_name(), "echo hello")
    status = poll_sacct(lab_env, job_id, lambda s: s.state.is_terminal)
    assert (status.state, status.exit_code, status.reason) == (S.COMPLETED, 0, None)
    assert status.submitted is not None
    assert status.ended is not None


def test_job_that_exits_3_is_failed_with_exit_code_3(lab_env: dict[str, str]) -> None:
    job_id = submit(lab_env, unique_name(), "echo failing; exit 3")
    status = poll_sacct(lab_env, job_id, lambda s: s.state.is_terminal)
    assert (status.state, status.exit_code, status.reason) == (S.FAILED, 3, "EXIT_CODE 3")


def test_held_job_then_cancelled(lab_env: dict[str, str]) -> None:
    """A held job is QUEUED/JobHeldUser in squeue; scancel_command makes it CANCELLED by 0."""
    name = unique_name()
    job_id = submit(lab_env, name, "true", "--hold")
    queued = parse_squeue(run(squeue_command([job_id]), lab_env).stdout)[job_id]
    assert (queued.state, queued.reason) == (S.QUEUED, "JobHeldUser")
    run(scancel_command([job_id]), lab_env)
    status = poll_sacct(lab_env, job_id, lambda s: s.state.is_terminal)
    assert (status.state, status.reason) == (S.CANCELLED, "CANCELLED by 0")


def test_find_job_by_name_oldest_first(lab_env: dict[str, str]) -> None:
    """Two jobs under one name: squeue and sacct listings give both ids, oldest first."""
    name = unique_name()
    first = submit(lab_env, name, "true")
    second = submit(lab_env, name, "true", "--hold")
    try:
        squeue_ids = parse_find_job(run(find_job_command(name), lab_env).stdout)
        assert squeue_ids == [first, second]
        # A job that starts and ends within a second is first recorded by slurmdbd under the
        # name "allocation" and renamed about two seconds later: until then sacct --name
        # misses it (squeue --states=all does not).
        argv = find_job_sacct_command(name, datetime.now() - timedelta(days=1))
        deadline = time.monotonic() + POLL_SECONDS
        while first not in (sacct_ids := parse_find_job(run(argv, lab_env).stdout)):
            if time.monotonic() > deadline:
                pytest.fail(f"sacct --name {name} never listed job {first}: {sacct_ids}")
            time.sleep(0.3)
        assert sacct_ids[0] == first
    finally:
        run(scancel_command([second]), lab_env)


def test_unknown_id_squeue_exits_0_and_says_nothing(lab_env: dict[str, str]) -> None:
    """squeue_command passes a lone id twice, so an unknown id is no error, just no line."""
    done = run(squeue_command(["99999999"]), lab_env, check=False)
    assert (done.returncode, done.stdout) == (0, "")
    assert parse_squeue(done.stdout) == {}


def test_job_submitted_over_ssh_as_efijm(lab_env: dict[str, str]) -> None:
    """The login-node path: efijm submits over ssh; root's sacct sees it COMPLETED."""
    scratch = lab_env.get("EFI_SLURM_SCRATCH", str(LAB_DIR / "scratch"))
    remote = shlex.join(
        ["sbatch", "--parsable", f"--job-name={unique_name()}", f"--chdir={scratch}",
         "--output=/dev/null", "--wrap=id -un"]
    )  # fmt: skip
    done = run(
        ["ssh", "-F", lab_env["EFI_SLURM_SSH_CONFIG"], lab_env["EFI_SLURM_SSH_HOST"], remote],
        lab_env,
    )
    job_id = parse_sbatch_output(done.stdout)
    status = poll_sacct(lab_env, job_id, lambda s: s.state.is_terminal)
    assert status.state is S.COMPLETED
