"""What the first cycle after a flood of new rows costs, against a backlog of a hundred.

Measures, in one run on SQLite (or the URL given), the median time and the peak Python
memory (tracemalloc) of the first ``JobManager.run_once`` after N new rows arrive at once,
for a backlog of 100 and for each N, and prints the ratios: with the rows of 50 users in
turn, and with one user's backlog (at their limit after 3) followed by 50 other users'
jobs. Limits: 12 running, 3 per user; an instant connector, so the cost is the manager's.

    .venv/bin/python bench/flood.py [--rows 10000,100000] [--repeat 5] [--url URL]

With ``--url`` the database must have no ``Job`` table; the benchmark drops the one it made.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from instant import InstantConnector

from efi_job_manager.catalogue import STANDIN_COMMAND, Catalogue, EfiDatabases
from efi_job_manager.manager import Destination, JobManager
from efi_job_manager.models import Job
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.schema import create_tables

T0 = datetime(2026, 1, 1)
USERS = 50


def rows(count: int, one_user: bool) -> list[dict[str, object]]:
    """``count`` new rows of 50 users in turn, or (``one_user``) all of user 1 but the last 50."""
    def user(i: int) -> int:
        return (1 + i % USERS) if not one_user or i > count - USERS else 1

    return [{"id": i, "uuid": f"u{i}", "status": "new", "job_type": "est_generate_fasta",
             "isPublic": False, "user_id": user(i), "jobFilename": "seqs.fasta",
             "allByAllBlastEValue": 5, "timeCreated": T0 + timedelta(seconds=i)}
            for i in range(1, count + 1)]


def first_cycle(url: str, root: Path, count: int, repeat: int,
                one_user: bool) -> tuple[float, float]:
    """Median seconds and peak MiB of the first cycle over ``count`` new rows."""
    engine = make_engine(url)
    table = Job.__table__
    with engine.begin() as conn:
        conn.execute(sa.delete(table))
        data = rows(count, one_user)
        for start in range(0, count, 5000):
            conn.execute(table.insert(), data[start:start + 5000])
    catalogue = Catalogue.from_settings(
        pipeline_dir=None, config_dir=None, command=STANDIN_COMMAND,
        params={"efi_config": "/opt/efi.config", "fasta_db": "/db/uniprot"}, overrides={},
        efi_db=EfiDatabases(default="efi_202406"))
    times, peaks = [], []
    for _ in range(repeat):
        results = root / "results"
        shutil.rmtree(results, ignore_errors=True)
        results.mkdir()
        with engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.status == "running")
                         .values(status="new", timeStarted=None, schedulerJobId=None))
        manager = JobManager(JobRepository(engine),
                             {"default": Destination("default", InstantConnector())},
                             catalogue, results_dir=results, input_dir=root / "uploads",
                             max_running_jobs=12, max_running_jobs_per_user=3)
        tracemalloc.start()
        begin = time.perf_counter()
        started = manager.run_once().started
        times.append(time.perf_counter() - begin)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
        assert len(started) == 12, started
    engine.dispose()
    return statistics.median(times), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "uploads").mkdir()
        (root / "uploads" / "seqs.fasta").write_text(">sp|P0A9Q7|ADHE_ECOLI\nMAVTNV\n")
        url = args.url or f"sqlite:///{tmp}/bench.sqlite"
        engine = make_engine(url)
        create_tables(engine)
        print(f"backend {engine.dialect.name}, first cycle after N new rows "
              f"(median of {args.repeat})")
        for one_user in (False, True):
            print("one user queued all but the last 50 rows (at their limit after 3)"
                  if one_user else "50 users in turn")
            base_time, base_peak = first_cycle(url, root, 100, args.repeat, one_user)
            print(f"  N={100:>7,}: {base_time * 1e3:8.1f} ms  peak {base_peak:6.2f} MiB")
            for count in (int(n) for n in args.rows.split(",")):
                cycle, peak = first_cycle(url, root, count, args.repeat, one_user)
                print(f"  N={count:>7,}: {cycle * 1e3:8.1f} ms  peak {peak:6.2f} MiB  ratio to "
                      f"N=100: time {cycle / base_time:.2f}, memory {peak / base_peak:.2f}")
        if args.url:
            Job.__table__.drop(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
