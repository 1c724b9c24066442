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
import random
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from slurm_lab import Lab, current_lab

from efi_connector_slurm import SlurmConnector
from efi_job_manager.connector import JobSpec, SchedulerStatus
from efi_job_manager.status import SchedulerState

POLL_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def lab() -> Lab:
    """The lab, after checking that every daemon is up."""
    return current_lab()


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
