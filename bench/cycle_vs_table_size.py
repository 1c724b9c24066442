"""How a cycle's cost grows with the number of finished rows (it should not).

Measures, in one run on SQLite (or the URL given), the median time of
``JobManager.run_once`` with 100 running jobs and an instant connector on a table holding
only those jobs, then after adding N finished rows, then again after deleting them (the
table-only figure is the median of both, so that the machine's drift during the run does not
count as growth), and prints the ratio next to the ratio of one raw ``SELECT`` of the running
jobs.

    .venv/bin/python bench/cycle_vs_table_size.py [--rows 1000000] [--url URL]

With ``--url`` the database must have no ``Job`` table; the benchmark drops the
one it made.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from instant import InstantConnector

from efi_job_manager.catalogue import Catalogue
from efi_job_manager.manager import Destination, JobManager
from efi_job_manager.models import Job
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.schema import create_tables

RUNNING = 100
T0 = datetime(2026, 1, 1)


def rows(start: int, count: int, status: str) -> list[dict[str, object]]:
    return [{"id": i, "uuid": f"u{i}", "status": status, "job_type": "est_generate_fasta",
             "isPublic": False, "user_id": i % 50, "timeCreated": T0 + timedelta(seconds=i),
             "schedulerJobId": i if status == "running" else None, "timeStarted": T0}
            for i in range(start, start + count)]


def times_of(fn: object, repeat: int = 25) -> list[float]:
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - begin)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{tmp}/bench.sqlite"
        engine = make_engine(url)
        create_tables(engine)
        repo = JobRepository(engine)
        repo.insert(rows(1, RUNNING, "running"))
        catalogue = Catalogue.default()
        Path(tmp, "results").mkdir()
        manager = JobManager(repo, {"default": Destination("default", InstantConnector())},
                             catalogue, results_dir=Path(tmp, "results"),
                             input_dir=Path(tmp, "uploads"))
        table = Job.__table__
        raw = sa.select(table.c.id).where(table.c.status == "running")

        def select() -> None:
            with engine.connect() as conn:
                conn.execute(raw).all()

        empty_cycles, empty_selects = times_of(manager.run_once), times_of(select)
        batch = 50_000
        for start in range(0, args.rows, batch):
            with engine.begin() as conn:
                conn.execute(table.insert(), rows(10_000 + start, min(batch, args.rows - start),
                                                  "finished"))
        full_cycle = statistics.median(times_of(manager.run_once))
        full_select = statistics.median(times_of(select))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with engine.begin() as conn:
            conn.execute(table.delete().where(table.c.status == "finished"))
        empty_cycles += times_of(manager.run_once)
        empty_selects += times_of(select)
        empty_cycle = statistics.median(empty_cycles)
        empty_select = statistics.median(empty_selects)
        print(f"backend {engine.dialect.name}, {RUNNING} running jobs, "
              f"{args.rows:,} finished rows added")
        print(f"cycle:  {empty_cycle * 1e3:7.2f} ms -> {full_cycle * 1e3:7.2f} ms  "
              f"ratio {full_cycle / empty_cycle:.2f}")
        print(f"select: {empty_select * 1e3:7.2f} ms -> {full_select * 1e3:7.2f} ms  "
              f"ratio {full_select / empty_select:.2f}")
        print(f"cycle / raw select (full table): {full_cycle / full_select:.1f}")
        print(f"peak memory: {peak:.0f} MiB")
        manager.close()
        if args.url:
            Job.__table__.drop(make_engine(url))


if __name__ == "__main__":
    main()
