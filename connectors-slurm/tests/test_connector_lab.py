"""`SlurmConnector` alone against the real Slurm lab, locally and over SSH.

Local mode runs the Slurm commands here as root (``SLURM_CONF`` from the lab's env.sh) and
leaves the results in place; ssh mode logs in as ``efijm`` (the lab's ssh config) and runs
jobs in a ``remote_dir`` under the lab's scratch directory, copying results back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from efi_job_manager import retry
from efi_job_manager.connector import PermanentError, TransientError
from efi_job_manager.status import SchedulerState as S
from efi_job_manager.transport import CommandResult, CommandTimeout, HostKeyError, Transport

if TYPE_CHECKING:
    from conftest import Lab, Recording, Slurm

    from efi_connector_slurm import SlurmConnector

MODES = ["local", "ssh", "rest", "shared"]
SH = "/bin/sh"
ALLOCATE_300MB = ("/usr/bin/python3", "-c",
                  "import time; b = b'x' * (300 << 20); print('allocated', flush=True); "
                  "time.sleep(30)")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["local", "rest"])
def way_in(request: pytest.FixtureRequest) -> str:
    """Slurm's commands here, or Slurm's REST daemon (files over SSH)."""
    return str(request.param)


def test_a_job_runs_and_its_results_come_back(slurm: Slurm, mode: str) -> None:
    """COMPLETED 0:0; env_setup reached the job; results in spec.job_dir; quoting intact."""
    connector = slurm.connector(mode, env_setup="export EFI_MARK=from-env-setup",
                                env={"EFI_SPACED": "two words $HOME"},
                                partition="efi", cpus=1, memory="200M", time="10")
    tricky = "a'b $(id) `id` ;|&"
    spec = slurm.spec((SH, "-c", 'printf "%s\\n" "$EFI_MARK" "$EFI_SPACED" "$1" > out.txt; '
                       'cp params.json seen-params.json; echo \'{"num_ids": 2}\' > stats.json',
                       SH, tricky))
    scheduler_id = slurm.submit(connector, spec)
    assert scheduler_id.isdigit()
    status = slurm.wait(connector, scheduler_id)
    # exit code None: squeue answered (efijm's sacct misses a job for a moment after it ends,
    # while slurmdbd still holds it as an "allocation" record).
    assert (status.state, status.exit_code, status.reason) in (
        (S.COMPLETED, 0, None), (S.COMPLETED, None, None))
    assert connector.retrieve_job_results(spec) == spec.job_dir
    assert (spec.job_dir / "out.txt").read_text() == (
        f"from-env-setup\ntwo words $HOME\n{tricky}\n")
    assert json.loads((spec.job_dir / "stats.json").read_text()) == {"num_ids": 2}
    assert (spec.job_dir / f"slurm-{scheduler_id}.out").exists()
    seen = json.loads((spec.job_dir / "seen-params.json").read_text())
    expected_dir = (str(spec.job_dir) if mode == "local"
                    else f"{connector.settings.remote_dir}/{spec.job_id}")
    assert seen["final_output_dir"] == expected_dir
    assert json.loads((spec.job_dir / "params.json").read_text())["final_output_dir"] == str(
        spec.job_dir)
    shown = slurm.lab.run(["scontrol", "show", "job", "-o", scheduler_id]).stdout
    assert " Partition=efi " in shown


def test_exit_3_is_failed_with_exit_code_3(slurm: Slurm, mode: str) -> None:
    connector = slurm.connector(mode)
    spec = slurm.spec((SH, "-c", "echo failing; exit 3"))
    status = slurm.wait(connector, slurm.submit(connector, spec))
    assert (status.state, status.exit_code, status.reason) == (S.FAILED, 3, "EXIT_CODE 3")


def test_over_its_time_limit_is_failed_timeout(slurm: Slurm, way_in: str) -> None:
    """--time=1, cut to 0 with scontrol (capture 03): TIMEOUT 0:0 → FAILED, reason TIMEOUT."""
    connector = slurm.connector(way_in, time=1)
    spec = slurm.spec((SH, "-c", "sleep 300"))
    scheduler_id = slurm.submit(connector, spec)
    slurm.running(connector, scheduler_id)
    slurm.lab.run(["scontrol", "update", f"JobId={scheduler_id}", "TimeLimit=0"])
    status = slurm.wait(connector, scheduler_id)
    assert (status.state, status.reason, status.exit_code) == (S.FAILED, "TIMEOUT", 0)


def test_over_its_memory_is_failed_out_of_memory(slurm: Slurm, mode: str) -> None:
    """OverMemoryKill ends it FAILED 0:9; slurmstepd's message in its output makes it OOM."""
    connector = slurm.connector(mode, memory="50M")
    spec = slurm.spec(ALLOCATE_300MB)
    scheduler_id = slurm.submit(connector, spec)
    status = slurm.wait(connector, scheduler_id)
    assert (status.state, status.signal, status.reason) == (S.FAILED, 9, "OUT_OF_MEMORY")


def test_killed_by_signal_9_without_a_memory_message_stays_signal_9(slurm: Slurm,
                                                                    way_in: str) -> None:
    connector = slurm.connector(way_in)
    spec = slurm.spec((SH, "-c", "kill -9 $PPID"))  # the batch shell itself
    status = slurm.wait(connector, slurm.submit(connector, spec))
    assert (status.state, status.signal, status.reason) == (S.FAILED, 9, "SIGNAL 9")


def test_cancelled_at_the_cluster_by_someone_else_is_cancelled(slurm: Slurm,
                                                               way_in: str) -> None:
    """sacct names who cancelled by uid; slurmrestd's accounting by user name."""
    connector = slurm.connector(way_in)
    scheduler_id = slurm.submit(connector, slurm.spec((SH, "-c", "sleep 300")))
    slurm.running(connector, scheduler_id)
    slurm.lab.run(["scancel", scheduler_id])
    status = slurm.wait(connector, scheduler_id)
    by = "root" if way_in == "rest" else "0"
    assert (status.state, status.reason) == (S.CANCELLED, f"CANCELLED by {by}")


def test_held_job_is_queued_found_by_name_and_cancelled(slurm: Slurm, mode: str) -> None:
    connector = slurm.connector(mode, extra_sbatch=["--hold"])
    spec = slurm.spec((SH, "-c", "true"))
    scheduler_id = slurm.submit(connector, spec)
    status = connector.get_job_status(scheduler_id)
    assert (status.state, status.reason) == (S.QUEUED, "JobHeldUser")
    assert list(connector.find_job(spec)) == [scheduler_id]
    connector.cancel_jobs([scheduler_id, "99999999"])
    status = slurm.wait(connector, scheduler_id)
    assert status.state is S.CANCELLED
    connector.cancel_jobs([scheduler_id])  # already ended: still a success


def test_live_jobs_cost_one_squeue_and_ended_ones_one_sacct(
        slurm: Slurm, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queued jobs are answered by one squeue listing, however many; only a job that has
    ended is asked of sacct (its exit code), in one call. Over REST: one jobs listing, and
    one accounting request for the ended job."""
    held = slurm.connector(mode, extra_sbatch=["--hold"])
    ids = [slurm.submit(held, slurm.spec((SH, "-c", "true"))) for _ in range(3)]
    done = slurm.submit(held, slurm.spec((SH, "-c", "exit 0")))
    slurm.lab.run(["scontrol", "release", done])
    slurm.wait(held, done)
    calls: list[str] = []
    if held.rest is None:
        run = held.transport.run

        def counting(argv: Sequence[str], **kwargs: Any) -> CommandResult:
            calls.append(argv[0])
            return run(argv, **kwargs)

        monkeypatch.setattr(held.transport, "run", counting)
        listing, accounting = "squeue", "sacct"
    else:
        request = held.rest.client.request

        def asking(method: str, path: str, **kwargs: Any) -> Any:
            calls.append(path.split("/")[1])
            return request(method, path, **kwargs)

        monkeypatch.setattr(held.rest.client, "request", asking)
        listing, accounting = "slurm", "slurmdb"
    statuses = held.get_job_statuses(ids)
    assert {s.state for s in statuses.values()} == {S.QUEUED}
    assert calls == [listing]
    calls.clear()
    statuses = held.get_job_statuses([*ids, done])
    assert statuses[done].state is S.COMPLETED
    assert sorted(calls) == sorted([accounting, listing])


def test_find_job_lists_this_attempts_submissions_oldest_first(slurm: Slurm) -> None:
    """Two submissions of one attempt are both found; after a new prepare (an operator's
    retry) the earlier attempt's jobs are no longer this job's."""
    connector = slurm.connector("local", extra_sbatch=["--hold"])
    spec = slurm.spec((SH, "-c", "true"))
    first = slurm.submit(connector, spec)
    second = connector.submit_job(spec, str(spec.job_dir / "params.json"))
    slurm.submitted.append(second)
    assert list(connector.find_job(spec)) == [first, second]
    connector.prepare_job_environment(spec)
    assert list(connector.find_job(spec)) == []
    third = slurm.submit(connector, spec)
    assert list(connector.find_job(spec)) == [third]


class LosingTransport(Transport):
    """Runs sbatch for real, then reports a timeout once: the reply was lost."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.lost = 0

    @property
    def description(self) -> str:
        return self.inner.description

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        result = self.inner.run(argv, **kwargs)
        if argv[0] == "sbatch" and not self.lost:
            self.lost += 1
            raise CommandTimeout(argv, 60, self.description)
        return result

    def put(self, local: Path, remote: str, **kwargs: Any) -> None:
        self.inner.put(local, remote, **kwargs)

    def get(self, remote: str, local: Path, **kwargs: Any) -> None:
        self.inner.get(remote, local, **kwargs)

    def write_text(self, remote: str, text: str, **kwargs: Any) -> None:
        self.inner.write_text(remote, text, **kwargs)


def test_a_lost_sbatch_reply_is_found_by_name_not_submitted_twice(slurm: Slurm) -> None:
    connector = slurm.connector("local", extra_sbatch=["--hold"])
    lossy = LosingTransport(connector.transport)
    connector.transport = lossy
    spec = slurm.spec((SH, "-c", "true"))
    with retry.testing():
        scheduler_id = slurm.submit(connector, spec)
    assert lossy.lost == 1
    assert slurm.lab.names(spec.name) == [scheduler_id]


def test_an_invalid_partition_is_permanent_with_slurms_message(slurm: Slurm, mode: str) -> None:
    connector = slurm.connector(mode, partition="nosuch")
    spec = slurm.spec((SH, "-c", "true"))
    with pytest.raises(PermanentError, match="Invalid partition name specified"):
        slurm.submit(connector, spec)
    with pytest.raises(PermanentError, match="nosuch"):
        connector.health_check()


def test_check_runs_the_pipelines_program_where_sbatch_runs_with_the_jobs_env(
        slurm: Slurm, mode: str) -> None:
    """``check``'s probe: it runs after env_setup with ``env``, and a program that is there
    but cannot run says its exit status and why."""
    connector = slurm.connector(mode, env={"EFI_X": "a b"}, env_setup="export EFI_Y=set")
    assert connector.check_command(["/usr/bin/python3", "--version"]) is None
    assert connector.check_command([SH, "-c", 'test "$EFI_X" = "a b" && test "$EFI_Y" = set'
                                    ]) is None
    failed = connector.check_command([SH, "-c", "echo 'Cannot find Java' >&2; exit 1"])
    assert failed is not None
    assert "exited 1" in failed
    assert failed.endswith("Cannot find Java")


def test_health_check_passes(slurm: Slurm, mode: str) -> None:
    connector = slurm.connector(mode, partition="efi", profiles={"est": {"partition": "debug"}})
    connector.health_check()


def test_slurmctld_down_answers_from_sacct_and_never_ends_a_job_on_absence(
        slurm: Slurm, lab: Lab, way_in: str) -> None:
    """slurmctld stopped: sacct still answers; squeue fails, so what only squeue could tell
    stays UNKNOWN; nothing becomes FAILED or COMPLETED without evidence. Over REST the same
    with accounting and the jobs listing."""
    connector = slurm.connector(way_in)
    done = slurm.submit(connector, slurm.spec((SH, "-c", "true")))
    slurm.wait(connector, done)
    running = slurm.submit(connector, slurm.spec((SH, "-c", "sleep 120")))
    slurm.running(connector, running)
    held_connector = slurm.connector(way_in, extra_sbatch=["--hold"])
    held = slurm.submit(held_connector, slurm.spec((SH, "-c", "true")))
    ids = [done, running, held, "99999999"]
    with lab.stopped("slurmctld"):
        try:
            statuses = connector.get_job_statuses(ids)
        except TransientError:
            statuses = None
        if statuses is not None:
            assert statuses[done].state is S.COMPLETED
            # accounting may not have the start yet when slurmctld stops right after it
            assert statuses[running].state in (S.RUNNING, S.QUEUED)
            assert statuses[held].state in (S.QUEUED, S.UNKNOWN)
            assert statuses["99999999"].state is S.UNKNOWN
            listing = "the jobs listing failed" if way_in == "rest" else "squeue failed"
            assert listing in (statuses["99999999"].reason or "")
        with pytest.raises(TransientError):
            held_connector.find_job(slurm.spec((SH,)))
    # Right after slurmctld is back, accounting may still say PENDING for the running job
    # and "None" for the held job's reason for a while (both seen in full runs under load):
    # neither job is ever ended on that; wait for the settled answer.
    deadline = time.monotonic() + 60
    while True:
        statuses = connector.get_job_statuses(ids)
        assert statuses[running].state in (S.RUNNING, S.QUEUED)
        assert statuses[held].state is S.QUEUED
        settled = (statuses[running].state is S.RUNNING
                   and statuses[held].reason == "JobHeldUser")
        if settled or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert statuses[running].state is S.RUNNING
    assert statuses[held].reason == "JobHeldUser"


def test_a_scheduler_that_does_not_answer_is_asked_once_then_held(
        slurm: Slurm, lab: Lab, way_in: str,
        recorded: Callable[[SlurmConnector], Recording]) -> None:
    """slurmctld stopped: one submission is tried once, not retried within the cycle (each try
    would wait as long again); the next job is not tried at all (the outage hold)."""
    connector = slurm.connector(way_in)
    specs = [slurm.spec((SH, "-c", "true")) for _ in range(2)]
    params = [connector.prepare_job_environment(spec) for spec in specs]
    recording = recorded(connector)
    tries: list[str] = []
    if connector.rest is not None:
        submit = connector.rest.submit

        def counting(*args: Any) -> str:
            tries.append("submit")
            return submit(*args)

        connector.rest.submit = counting  # type: ignore[method-assign]
    with lab.stopped("slurmctld"):
        with pytest.raises(TransientError) as first:
            connector.submit_job(specs[0], params[0])
        with pytest.raises(TransientError, match="not submitting"):
            connector.submit_job(specs[1], params[1])
    assert (recording.count("sbatch") + len(tries)) == 1, (recording.calls, tries)
    assert "not submitting" not in str(first.value)  # the first was tried, and failed


def test_accounting_down_falls_back_to_squeue_and_scontrol(slurm: Slurm, lab: Lab) -> None:
    """slurmdbd stopped: sacct fails; squeue and scontrol report what slurmctld still holds."""
    connector = slurm.connector("local")
    ok = slurm.submit(connector, slurm.spec((SH, "-c", "true")))
    failed = slurm.submit(connector, slurm.spec((SH, "-c", "exit 3")))
    slurm.wait(connector, ok)
    slurm.wait(connector, failed)
    held_connector = slurm.connector("local", extra_sbatch=["--hold"])
    held = slurm.submit(held_connector, slurm.spec((SH, "-c", "true")))
    with lab.stopped("slurmdbd"):
        statuses = connector.get_job_statuses([ok, failed, held, "99999999"])
        assert statuses[ok].state is S.COMPLETED
        assert (statuses[failed].state, statuses[failed].exit_code,
                statuses[failed].reason) == (S.FAILED, 3, "EXIT_CODE 3")
        assert (statuses[held].state, statuses[held].reason) == (S.QUEUED, "JobHeldUser")
        assert statuses["99999999"].state is S.UNKNOWN
        assert "sacct failed" in (statuses["99999999"].reason or "")
        with pytest.raises(TransientError, match="sacct"):
            connector.find_job(slurm.spec((SH,)))


def test_sshd_down_is_transient(slurm: Slurm, lab: Lab) -> None:
    connector = slurm.connector("ssh", extra_sbatch=["--hold"])
    spec = slurm.spec((SH, "-c", "true"))
    scheduler_id = slurm.submit(connector, spec)
    with lab.stopped("sshd"):
        connector.close()  # the open master connection would outlive the listener
        started = time.monotonic()
        with pytest.raises(TransientError):
            connector.get_job_statuses([scheduler_id])
        with pytest.raises(TransientError):
            connector.prepare_job_environment(slurm.spec((SH, "-c", "true")))
        with pytest.raises(TransientError):
            connector.cancel_jobs([scheduler_id])
        with pytest.raises(TransientError):
            connector.retrieve_job_results(spec)
        assert time.monotonic() - started < 30
    assert connector.get_job_status(scheduler_id).state is S.QUEUED


def test_a_changed_host_key_fails_no_job(slurm: Slurm, tmp_path: Path) -> None:
    """An unknown host key is the operator's problem: job-level calls raise TransientError
    (the manager would fail the job on a PermanentError), status calls HostKeyError."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    connector = slurm.connector("ssh", known_hosts=str(empty), ssh_config="/dev/null",
                                host="127.0.0.1", port=int(slurm.lab.env["EFI_SLURM_SSH_PORT"]),
                                user=slurm.lab.env["EFI_SLURM_SSH_USER"],
                                identity_file=str(Path(slurm.lab.env["EFI_SLURM_SSH_CONFIG"])
                                                  .with_name("id_ed25519")))
    spec = slurm.spec((SH, "-c", "true"))
    with pytest.raises(TransientError, match="host key"):
        connector.prepare_job_environment(spec)
    with pytest.raises(TransientError, match="host key"):
        connector.submit_job(spec, "params.json")
    with pytest.raises(HostKeyError):
        connector.get_job_statuses(["1"])
