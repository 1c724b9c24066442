"""Fixtures of the local connector's tests: a connector on a temporary state directory.

The `jobs` fixture bundles what every test needs (specs with a real job directory,
submission, bounded polling, the wrapper's pid) and cancels whatever is still running
when the test ends, so no test leaves processes behind.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from efi_connector_local import LocalConnector
from efi_job_manager.connector import JobSpec, SchedulerStatus

T = TypeVar("T")

PYTHON = sys.executable
#: A command that waits until a file named ``go`` appears in its working directory.
WAIT_FOR_GO = (PYTHON, "-c", "import os, time\nwhile not os.path.exists('go'): time.sleep(0.02)")


def make_spec(root: Path, job_id: int, command: Sequence[str]) -> JobSpec:
    """Return a spec whose job directory exists under ``root`` and holds ``params.json``."""
    job_dir = root / "jobs" / str(job_id)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "params.json").write_text(json.dumps({"job_id": job_id}))
    return JobSpec(job_id=job_id, job_type="test", job_dir=job_dir, command=tuple(command))


def submit(connector: LocalConnector, spec: JobSpec) -> str:
    """Prepare and submit ``spec`` as the manager does; return the scheduler id."""
    return connector.submit_job(spec, connector.prepare_job_environment(spec))


def wait_until(check: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.05)


def wait_terminal(connector: LocalConnector, sid: str, timeout: float = 20.0) -> SchedulerStatus:
    """Poll the status of ``sid`` until it is terminal and return it."""

    def check() -> SchedulerStatus | None:
        status = connector.get_job_status(sid)
        return status if status.state.is_terminal else None

    return wait_until(check, timeout, f"job {sid} to end")


def wrapper_pid(state_dir: Path, sid: str) -> int:
    """Return the wrapper's pid (= the job's process group) from the connector's record."""
    pid = json.loads((state_dir / "jobs" / f"{sid}.json").read_text())["pid"]
    assert isinstance(pid, int)
    return pid


def live_group_members(pgid: int) -> list[int]:
    """Return the pids of the non-zombie processes whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


class Jobs:
    """A connector on ``tmp_path`` and helpers to run jobs through it."""

    #: A command that waits until a file named ``go`` appears in its job directory.
    WAIT_FOR_GO = WAIT_FOR_GO
    wait_until = staticmethod(wait_until)
    live_group_members = staticmethod(live_group_members)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.connector = self.new_connector()
        self.submitted: list[str] = []

    def new_connector(self, **config: object) -> LocalConnector:
        """Return a new connector instance on the same state directory (a "restart")."""
        return LocalConnector({"state_dir": str(self.state_dir), "kill_grace": 2, **config})

    def spec(self, job_id: int, command: Sequence[str]) -> JobSpec:
        """Return a spec with its job directory and ``params.json`` in place."""
        return make_spec(self.root, job_id, command)

    def submit(self, spec: JobSpec, connector: LocalConnector | None = None) -> str:
        """Submit ``spec`` (through ``connector`` or the default one) and remember the id."""
        sid = submit(connector or self.connector, spec)
        self.submitted.append(sid)
        return sid

    def wait_terminal(self, sid: str, connector: LocalConnector | None = None) -> SchedulerStatus:
        """Poll until ``sid`` is terminal and return its status."""
        return wait_terminal(connector or self.connector, sid)

    def wait_running(self, sid: str) -> SchedulerStatus:
        """Poll until ``sid`` is RUNNING and return its status."""

        def check() -> SchedulerStatus | None:
            status = self.connector.get_job_status(sid)
            return status if status.state.value == "running" else None

        return wait_until(check, what=f"job {sid} to run")

    def pid(self, sid: str) -> int:
        """Return the wrapper's pid of ``sid``."""
        return wrapper_pid(self.state_dir, sid)


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[Jobs]:
    """A connector on a temporary state directory; running jobs are cancelled afterwards."""
    helper = Jobs(tmp_path)
    yield helper
    helper.new_connector(kill_grace=0.2).cancel_jobs(helper.submitted)
