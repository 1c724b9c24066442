"""Fixtures for the tests that use the real Slurm lab of ``tests/slurm/cluster.sh``.

The lab must be up (``tests/slurm/cluster.sh up``); a test that needs it fails, never skips,
when it is not. It is found through ``$EFI_SLURM_LAB/env.sh`` (default ``/tmp/efi-slurm-lab``).

- ``lab``: the lab's environment, root's Slurm commands, and stopping/starting one daemon
  (always started again, even when the test fails);
- ``slurm``: a factory of connectors (``local`` or ``ssh`` mode) and job specs with fresh
  job ids, which cancels every job the test submitted and closes the connectors;
- `Recording`: a transport that notes every call before passing it on (to count them).
"""

from __future__ import annotations

import json
import random
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from slurm_lab import Lab, current_lab, write_token

from efi_connector_slurm import SlurmConnector
from efi_connector_slurm.archive import UNPACK_SCRIPT
from efi_connector_slurm.sbatch_batch import SBATCH_BATCH_SCRIPT
from efi_job_manager.connector import JobSpec, SchedulerStatus
from efi_job_manager.status import SchedulerState
from efi_job_manager.transport import CommandResult, Transport

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
        """``local``: Slurm's commands here; ``ssh``: commands and files over SSH; ``rest``:
        files over SSH, Slurm through slurmrestd-jwt (JWT, as the lab's user); ``shared``:
        Slurm through slurmrestd-jwt as root, the files copied through ``remote_dir_mount``
        (the cluster's ``remote_dir`` is a link to it: the lab shares this host's disk)."""
        if mode == "local":
            base: dict[str, Any] = {"slurm_conf": self.lab.env["SLURM_CONF"]}
        elif mode == "shared":  # the cluster's path is a link to "this host's mount" of it
            mount = self.lab.scratch / f"mount-{uuid.uuid4().hex[:8]}"
            mount.mkdir()
            cluster = self.lab.scratch / f"shared-{mount.name[6:]}"
            cluster.symlink_to(mount)
            return {"remote_dir": str(cluster), "remote_dir_mount": str(mount), "api": "rest",
                    "rest_url": self.lab.env["EFI_SLURM_REST_URL"], "rest_user": "root",
                    "rest_token_file": str(self.token_file("root")), **settings}
        else:
            remote = self.lab.scratch / f"jobs-{uuid.uuid4().hex[:8]}"
            base = {"transport": "ssh", "host": self.lab.env["EFI_SLURM_SSH_HOST"],
                    "ssh_config": self.lab.env["EFI_SLURM_SSH_CONFIG"],
                    "remote_dir": str(remote)}
        if mode == "rest":
            base |= {"api": "rest", "rest_url": self.lab.env["EFI_SLURM_REST_URL"],
                     "rest_user": self.lab.env["EFI_SLURM_SSH_USER"],
                     "rest_token_file": str(self.token_file())}
        return {**base, **settings}

    def token_file(self, user: str = "efijm") -> Path:
        """A token for ``user`` (``cluster.sh token``), in a file of this test's."""
        file = self.root.parent / f"slurm-jwt-{user}"
        return file if file.exists() else write_token(self.lab.env, file, user=user)

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
            for remote in (connector.settings.remote_dir, connector.settings.remote_dir_mount):
                if remote is None or not Path(remote).is_relative_to(self.lab.scratch):
                    continue
                if Path(remote).is_symlink():
                    Path(remote).unlink()
                else:
                    shutil.rmtree(remote, ignore_errors=True)


@pytest.fixture
def slurm(lab: Lab, tmp_path: Path) -> Iterator[Slurm]:
    helper = Slurm(lab, tmp_path / "results")
    yield helper
    helper.cleanup()


class Recording(Transport):
    """Passes every call to ``inner`` after noting it: ``("run", *argv)``, ``("put", local,
    remote)``, ``("get", remote, local)``, ``("write_text", remote)``."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.calls: list[tuple[str, ...]] = []

    @property
    def description(self) -> str:
        return self.inner.description

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.calls.append(("run", *argv))
        return self.inner.run(argv, **kwargs)

    def put(self, local: Path, remote: str, **kwargs: Any) -> None:
        self.calls.append(("put", str(local), remote))
        self.inner.put(local, remote, **kwargs)

    def get(self, remote: str, local: Path, **kwargs: Any) -> None:
        self.calls.append(("get", remote, str(local)))
        self.inner.get(remote, local, **kwargs)

    def write_text(self, remote: str, text: str, **kwargs: Any) -> None:
        self.calls.append(("write_text", remote))
        self.inner.write_text(remote, text, **kwargs)

    def close(self) -> None:
        self.inner.close()

    def count(self, kind: str) -> int:
        """How many calls of ``kind`` (``put``…; a program's name for ``run``; ``sbatch-batch``
        for the batch submission script, ``unpack`` for the staging archive's)."""
        return sum(1 for call in self.calls if _kind(call) == kind)


def _kind(call: tuple[str, ...]) -> str:
    if call[0] != "run":
        return call[0]
    if call[1:4] == ("sh", "-c", SBATCH_BATCH_SCRIPT):
        return "sbatch-batch"
    if call[1:4] == ("sh", "-c", UNPACK_SCRIPT):
        return "unpack"
    return call[1]


@pytest.fixture
def recorded() -> Callable[[SlurmConnector], Recording]:
    """Put a `Recording` around a connector's transport; return the recording."""
    def wrap(connector: SlurmConnector) -> Recording:
        recording = Recording(connector.transport)
        connector.transport = recording
        return recording
    return wrap
