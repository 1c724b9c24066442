"""Fixtures for the tests that use the real Slurm lab of ``tests/slurm/cluster.sh``.

The lab must be up (``tests/slurm/cluster.sh up``); a test that needs it fails, never skips,
when it is not. It is found through ``$EFI_SLURM_LAB/env.sh`` (default ``/tmp/efi-slurm-lab``).

- ``lab``: the lab's environment, root's Slurm commands, and stopping/starting one daemon
  (always started again, even when the test fails);
- ``slurm``: a factory of connectors (``local`` or ``ssh`` mode) and job specs with fresh
  job ids, which cancels every job the test submitted and closes the connectors.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest

from efi_connector_slurm import SlurmConnector
from efi_job_manager.connector import JobSpec, SchedulerStatus
from efi_job_manager.status import SchedulerState

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "tests" / "slurm" / "cluster.sh"
LAB_DIR = Path(os.environ.get("EFI_SLURM_LAB", "/tmp/efi-slurm-lab"))
UP_HINT = "the Slurm lab is not up: run `tests/slurm/cluster.sh up` (as root) first"
POLL_TIMEOUT = 60.0


def read_env_sh(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of the lab's env.sh."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = shlex.split(value)[0] if value else ""
    return values


@attrs.define
class Lab:
    """The running lab: its environment and its daemons."""

    env: dict[str, str]

    @property
    def scratch(self) -> Path:
        return Path(self.env.get("EFI_SLURM_SCRATCH", str(LAB_DIR / "scratch")))

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command here as root (the lab's administrator)."""
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60,
                              check=check)

    def cluster(self, *args: str) -> None:
        done = subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True,
                              env=self.env, timeout=120, check=False)
        assert done.returncode == 0, f"cluster.sh {' '.join(args)}: {done.stdout}{done.stderr}"

    @contextmanager
    def stopped(self, daemon: str) -> Iterator[None]:
        """Stop one daemon for the block; it is started again whatever happens."""
        self.cluster("stop", daemon)
        try:
            yield
        finally:
            self.cluster("start", daemon)

    def names(self, name: str) -> list[str]:
        """Every job id Slurm knows under ``name`` (squeue and sacct, as root)."""
        ids = set()
        queue = self.run(["squeue", "--noheader", "--states=all", "--format=%i",
                          f"--name={name}"]).stdout
        accounting = self.run(["sacct", "-X", "--noheader", "--parsable2", "--format=JobID",
                               "--starttime", "now-1days", "--name", name]).stdout
        for line in (queue + accounting).splitlines():
            if line.strip():
                ids.add(line.strip())
        return sorted(ids, key=int)


@pytest.fixture(scope="session")
def lab() -> Lab:
    """The lab, after checking that every daemon is up."""
    status = subprocess.run([str(CLUSTER_SH), "status"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "EFI_SLURM_LAB": str(LAB_DIR)},
                            check=False)
    if status.returncode != 0:
        pytest.fail(f"{UP_HINT}\n{status.stdout}{status.stderr}", pytrace=False)
    env_sh = LAB_DIR / "env.sh"
    if not env_sh.is_file():
        pytest.fail(f"{UP_HINT} ({env_sh} is missing)", pytrace=False)
    return Lab({**os.environ, **read_env_sh(env_sh)})


@attrs.define
class Slurm:
    """Connectors on the lab, job specs with unused ids, and cleanup."""

    lab: Lab
    root: Path
    connectors: list[SlurmConnector] = attrs.Factory(list)
    submitted: list[str] = attrs.Factory(list)

    def settings(self, mode: str, **settings: Any) -> dict[str, Any]:
        if mode == "local":
            base: dict[str, Any] = {"slurm_conf": self.lab.env["SLURM_CONF"]}
        else:
            remote = self.lab.scratch / f"jobs-{uuid.uuid4().hex[:8]}"
            base = {"transport": "ssh", "host": self.lab.env["EFI_SLURM_SSH_HOST"],
                    "ssh_config": self.lab.env["EFI_SLURM_SSH_CONFIG"],
                    "remote_dir": str(remote)}
        return {**base, **settings}

    def connector(self, mode: str, **settings: Any) -> SlurmConnector:
        connector = SlurmConnector(self.settings(mode, **settings))
        self.connectors.append(connector)
        return connector

    def spec(self, command: tuple[str, ...], **kwargs: Any) -> JobSpec:
        """A job with a fresh id (so its name ``efi-<id>`` is new to the lab) and params.json."""
        job_id = random.randint(10**8, 10**9)  # noqa: S311 - not a secret
        job_dir = self.root / str(job_id)
        job_dir.mkdir(parents=True)
        params = {"final_output_dir": str(job_dir), "job_id": str(job_id)}
        (job_dir / "params.json").write_text(json.dumps(params))
        return JobSpec(job_id, "est_generate_fasta", job_dir, command, params, "est", **kwargs)

    def submit(self, connector: SlurmConnector, spec: JobSpec) -> str:
        scheduler_id = connector.submit_job(spec, connector.prepare_job_environment(spec))
        self.submitted.append(scheduler_id)
        return scheduler_id

    def wait(self, connector: SlurmConnector, scheduler_id: str,
             until: Callable[[SchedulerStatus], bool] = lambda s: s.state.is_terminal,
             timeout: float = POLL_TIMEOUT) -> SchedulerStatus:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = connector.get_job_status(scheduler_id)
            if until(seen):
                return seen
            time.sleep(0.3)
        pytest.fail(f"job {scheduler_id}: still {seen!r} after {timeout:.0f} s")

    def running(self, connector: SlurmConnector, scheduler_id: str) -> SchedulerStatus:
        return self.wait(connector, scheduler_id,
                         lambda s: s.state in (SchedulerState.RUNNING,) or s.state.is_terminal)

    def cleanup(self) -> None:
        if self.submitted:
            self.lab.run(["scancel", *self.submitted], check=False)
        for connector in self.connectors:
            connector.close()
            remote = connector.settings.remote_dir
            if remote is not None and Path(remote).is_relative_to(self.lab.scratch):
                shutil.rmtree(remote, ignore_errors=True)


@pytest.fixture
def slurm(lab: Lab, tmp_path: Path) -> Iterator[Slurm]:
    helper = Slurm(lab, tmp_path / "results")
    yield helper
    helper.cleanup()
