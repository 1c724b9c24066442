"""Ten thousand new rows at once: a cycle's work does not grow with the backlog.

EFI-Web can queue thousands of jobs in a minute (a script, a class exercise). The first
cycle after the flood must claim within the limits, oldest first per user, and run the
same statements and load the same rows as it would with a backlog of a hundred; how
long it takes is measured by ``bench/flood.py``, not here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from engine_site import Site, fasta_job, make_site
from reliability import RecordProperty, record

from efi_job_manager.models import Job
from efi_job_manager.repository import make_engine

LIMIT = 12
PER_USER = 3
USERS = 50


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    yield from make_site(tmp_path, database_url)


def _flood(site: Site, first_id: int, count: int) -> None:
    rows = [fasta_job(i, user_id=1 + i % USERS,
                      timeCreated=datetime(2026, 11, 1) + timedelta(seconds=i - first_id))
            for i in range(first_id, first_id + count)]
    engine = make_engine(site.url)
    with engine.begin() as conn:
        for start in range(0, count, 2000):
            conn.execute(Job.__table__.insert(), rows[start:start + 2000])
    engine.dispose()


def _first_cycle(site: Site) -> tuple[tuple[int, ...], list[str], int]:
    """A new manager's first cycle: the jobs it started, its statements, the Job rows it loaded."""
    manager = site.manager(max_running_jobs=LIMIT, max_running_jobs_per_user=PER_USER)
    statements: list[str] = []
    loaded: list[Any] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def on_load(target: Any, context: Any) -> None:
        loaded.append(target)

    sa.event.listen(manager.repository.engine, "before_cursor_execute", on_execute)
    sa.event.listen(Job, "load", on_load, propagate=True)
    try:
        started = manager.run_once().started
    finally:
        sa.event.remove(Job, "load", on_load)
    manager.close()
    return started, statements, len(loaded)


def test_ten_thousand_new_rows_cost_a_cycle_what_a_hundred_do(
        site: Site, database_backend: str, record_property: RecordProperty) -> None:
    """Same claims, same statements, same rows loaded for a backlog of 100 and of 10,000."""
    _flood(site, 1, 100)
    small = _first_cycle(site)
    engine = make_engine(site.url)
    with engine.begin() as conn:
        conn.execute(sa.delete(Job.__table__))
    _flood(site, 100_001, 10_000)
    large = _first_cycle(site)
    with engine.connect() as conn:
        table = Job.__table__
        counts = dict(conn.execute(sa.select(table.c.status, sa.func.count())
                                   .group_by(table.c.status)).all())
    engine.dispose()
    started, statements, loaded = large
    record(record_property, backend=database_backend, connector="local", jobs=10_000,
           submissions=len(started), twice=0, lost=10_000 - sum(counts.values()),
           falsely_failed=counts.get("failed", 0), max_running=counts.get("running", 0),
           limit=LIMIT)
    assert len(started) == LIMIT
    assert [i - 100_000 for i in started] == list(small[0])  # the same (oldest) jobs
    assert counts == {"running": LIMIT, "new": 10_000 - LIMIT}
    assert statements == small[1]
    assert loaded == small[2] == LIMIT
