"""The database server stopped mid-run: no job fails, none runs twice, the daemon resumes.

The real PostgreSQL and MariaDB of ``scripts/services.sh`` are stopped while a manager
runs jobs (some running, some still queued) and started again a while later; the manager
goes on by itself. The stopped time is sized to span many cycles, not to soak.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_site import Site, fasta_job, make_site
from reliability import RecordProperty, record

from efi_job_manager.events import EventKind
from efi_job_manager.manager import CycleReport, Destination

SERVICES = Path(__file__).resolve().parents[1] / "scripts" / "services.sh"
JOBS = 8
DOWN_FOR = 8.0


def services(action: str, backend: str) -> None:
    done = subprocess.run([str(SERVICES), action, backend], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, f"services.sh {action} {backend}:\n{done.stdout}{done.stderr}"


@pytest.fixture
def site(tmp_path: Path, server_database_url: str) -> Iterator[Site]:
    yield from make_site(tmp_path, server_database_url)


def test_the_database_stopped_mid_run_fails_no_job_and_the_manager_resumes(
        site: Site, server_database_backend: str, record_property: RecordProperty) -> None:
    """8 s without the server while 4 jobs run and 4 wait: all finish, each started once."""
    site.insert(*(fasta_job(i, user_id=1 + i % 2) for i in range(1, JOBS + 1)))
    manager = site.manager(
        destinations={"default": Destination("default", site.connector(
            EFI_STANDIN_DELAY="3"))},
        interval=0.5, max_running_jobs=4)
    reports: list[CycleReport] = []
    thread = threading.Thread(target=manager.run_forever, kwargs={"on_cycle": reports.append})
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while sum(site.status(i) == "running" for i in range(1, JOBS + 1)) < 4:
            assert time.monotonic() < deadline, "no jobs running before the outage"
            time.sleep(0.2)
        cycles_before = len(reports)
        services("down", server_database_backend)
        try:
            time.sleep(DOWN_FOR)
            assert thread.is_alive(), "the manager exited during the outage"
        finally:
            services("up", server_database_backend)
        deadline = time.monotonic() + 180
        while not all(site.status(i) == "finished" for i in range(1, JOBS + 1)):
            assert thread.is_alive(), "the manager exited after the outage"
            assert time.monotonic() < deadline, [site.status(i) for i in range(1, JOBS + 1)]
            time.sleep(0.5)
    finally:
        manager.stop()
        thread.join(timeout=60)
    started = Counter(e.job_id for e in site.events if e.kind is EventKind.STARTED)
    failed = [e.job_id for e in site.events if e.kind is EventKind.FAILED]
    statuses = [site.status(i) for i in range(1, JOBS + 1)]
    record(record_property, backend=server_database_backend, connector="local", jobs=JOBS,
           submissions=sum(started.values()), twice=sum(n > 1 for n in started.values()),
           lost=sum(s not in ("finished", "failed") for s in statuses),
           falsely_failed=len(failed))
    outage = [r for r in reports[cycles_before:] if r.errors]
    assert outage, "no cycle saw the database down"
    assert all("database unavailable" in r.errors[0] for r in outage)
    assert statuses == ["finished"] * JOBS
    assert not failed
    assert set(started) == set(range(1, JOBS + 1))
    assert max(started.values()) == 1
