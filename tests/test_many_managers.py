"""Several managers on one database share every limit and submit each job once.

Three managers on PostgreSQL and on MariaDB, two on SQLite, each in its own thread
with its own engine, run real jobs (the local connector, the stand-in pipeline) while
a sampler reads the running count from the database; the limits must hold at every
sample, not only on average.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from engine_site import Site, fasta_job, make_site
from reliability import RecordProperty, record

from efi_job_manager.events import EventKind
from efi_job_manager.manager import Destination
from efi_job_manager.repository import make_engine

JOBS = 300
USERS = 6
LIMIT = 20
PER_USER = 5
PER_PIPELINE = 16
#: A pipeline that runs a while and writes what the stand-in would: cheaper than the
#: stand-in (a shell, not a Python), so that 300 jobs stay quick on two cores.
PIPELINE = ("sh", "-c", "sleep 0.5 && echo '{{\"num_ids\": 2}}' > stats.json")


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """A fresh table, uploads and results on the current backend."""
    yield from make_site(tmp_path, database_url)


def test_limits_hold_across_managers_and_each_job_is_submitted_once(
        site: Site, database_backend: str, record_property: RecordProperty) -> None:
    """Global, per-user and per-pipeline limits hold at every sample; no job runs twice."""
    managers = 2 if database_backend == "sqlite" else 3
    site.insert(*(fasta_job(i, user_id=1 + i % USERS) for i in range(1, JOBS + 1)))
    stop = threading.Event()
    samples: list[tuple[int, int]] = []
    failures: list[BaseException] = []
    engine = make_engine(site.url)
    table = sa.table("Job", sa.column("status"), sa.column("user_id"))

    def sample() -> None:
        while not stop.is_set():
            with engine.connect() as conn:
                rows = conn.execute(sa.select(table.c.user_id, sa.func.count())
                                    .where(table.c.status == "running")
                                    .group_by(table.c.user_id)).all()
            samples.append((sum(n for _, n in rows), max((n for _, n in rows), default=0)))
            time.sleep(0.02)

    def run(index: int) -> None:
        manager = site.managers[index]
        try:
            while not stop.is_set():
                manager.run_once()
                time.sleep(0.05)
        except BaseException as exc:  # reported below
            failures.append(exc)

    for _ in range(managers):
        site.manager(destinations={"default": Destination("default", site.connector())},
                     command=PIPELINE,
                     max_running_jobs=LIMIT, max_running_jobs_per_user=PER_USER,
                     max_running_jobs_per_pipeline={"est": PER_PIPELINE}, submit_grace=3600)
    threads = [threading.Thread(target=sample)] + [
        threading.Thread(target=run, args=(i,)) for i in range(managers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = conn.execute(sa.select(sa.func.count()).select_from(table)
                                    .where(table.c.status == "finished")).scalar_one()
            if done == JOBS or failures:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        engine.dispose()
    started = Counter(e.job_id for e in site.events if e.kind is EventKind.STARTED)
    failed = sum(e.kind is EventKind.FAILED for e in site.events)
    record(record_property, backend=database_backend, connector="local", jobs=JOBS,
           submissions=sum(started.values()), twice=sum(n > 1 for n in started.values()),
           lost=JOBS - done - failed, falsely_failed=failed,
           max_running=max((total for total, _ in samples), default=0),
           limit=min(LIMIT, PER_PIPELINE))
    assert not failures
    assert done == JOBS
    assert set(started) == set(range(1, JOBS + 1))
    assert max(started.values()) == 1
    assert samples
    assert max(total for total, _ in samples) <= min(LIMIT, PER_PIPELINE)
    assert max(per_user for _, per_user in samples) <= PER_USER
    assert max(total for total, _ in samples) == min(LIMIT, PER_PIPELINE)  # the limit is used
