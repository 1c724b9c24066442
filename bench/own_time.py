"""The manager's own time per running job in a steady status cycle (goal: at most 20 µs).

N running rows on SQLite (or the URL given) and an instant connector that says every job is
still running, so the cycle's time is the manager's own: reading the running rows, the
capacity counts, the per-job bookkeeping. Prints the median of the cycles after a warm-up
cycle (which, like a fresh process's first, may read each job's directory once), per job,
and with ``--profile`` the functions that take the time.

    .venv/bin/python bench/own_time.py [--running 5000] [--cycles 5] [--profile] [--json F]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from instant import InstantConnector

from efi_job_manager.catalogue import Catalogue
from efi_job_manager.manager import Destination, JobManager
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.schema import create_tables

T0 = datetime(2026, 1, 1)


def running_rows(count: int) -> list[dict[str, Any]]:
    return [{"id": i, "uuid": f"u{i}", "status": "running", "job_type": "est_generate_fasta",
             "isPublic": False, "user_id": i % 50, "timeCreated": T0 + timedelta(seconds=i),
             "schedulerJobId": i, "timeStarted": T0, "jobFilename": "seqs.fasta"}
            for i in range(1, count + 1)]


def measure(url: str, tmp: Path, running: int, cycles: int, profile: bool) -> dict[str, Any]:
    engine = make_engine(url)
    create_tables(engine)
    repo = JobRepository(engine)
    repo.insert(running_rows(running))
    manager = JobManager(repo, {"default": Destination("default", InstantConnector())},
                         Catalogue.default(), results_dir=tmp / "results",
                         input_dir=tmp / "uploads", max_running_jobs=running)
    (tmp / "results").mkdir()
    (tmp / "uploads").mkdir()
    try:
        begin = time.perf_counter()
        manager.run_once()
        first = time.perf_counter() - begin
        times = []
        profiler = cProfile.Profile() if profile else None
        for _ in range(cycles):
            begin = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            report = manager.run_once()
            if profiler is not None:
                profiler.disable()
            times.append(time.perf_counter() - begin)
            if report.running != running or report.errors:
                raise SystemExit(f"the cycle did not run as measured: {report}")
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    finally:
        manager.close()
    median = statistics.median(times)
    return {"running": running, "backend": engine.dialect.name, "cycles": cycles,
            "first_cycle_s": first, "median_cycle_s": median,
            "per_job_us": median / running * 1e6,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--running", type=int, default=5000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--url", help="a database URL with no Job table (default: SQLite)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.url or f"sqlite:///{tmp}/bench.sqlite", Path(tmp), args.running,
                         args.cycles, args.profile)
    first, median = result["first_cycle_s"] * 1e3, result["median_cycle_s"] * 1e3
    print(f"{result['backend']}: {result['running']} running jobs: first cycle {first:.0f} ms, "
          f"then median {median:.1f} ms = {result['per_job_us']:.1f} µs per job (goal <= 20); "
          "peak RSS "
          f"{result['peak_rss_mib']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
