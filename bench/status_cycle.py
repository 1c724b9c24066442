"""What one status cycle of the Slurm connector costs: scheduler calls and time per batch.

Submits N held jobs (``sbatch --hold``, in one shell loop through the connector's transport),
asks `SlurmConnector.get_job_statuses` for all of them a few times, and reports the number of
commands it ran (by program) and the median time, next to one raw ``sacct`` call for the same
ids; then cancels the jobs (one batched ``scancel``, also timed). Needs the lab of
``tests/slurm/cluster.sh`` (or any cluster: pass the connector settings as JSON).

    .venv/bin/python bench/status_cycle.py --mode local --counts 1,100,1000
    .venv/bin/python bench/status_cycle.py --mode ssh --counts 1,100,1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from lab import Timed, lab_settings, submit_held

from efi_connector_slurm import SlurmConnector
from efi_connector_slurm.commands import sacct_command


def measure(connector: SlurmConnector, counting: Timed, count: int,
            repeats: int) -> dict[str, Any]:
    ids = submit_held(connector.transport, count)
    try:
        times, calls = [], Counter[str]()
        statuses: dict[str, Any] = {}
        for _ in range(repeats):
            counting.calls.clear()
            start = time.perf_counter()
            statuses = dict(connector.get_job_statuses(ids))
            times.append(time.perf_counter() - start)
            calls = Counter(counting.calls)
        states = Counter(s.state.value for s in statuses.values())
        since = datetime.now() - timedelta(days=30)
        raw = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(ids), connector.settings.chunk_size):
                connector.transport.run(sacct_command(ids[i:i + 500], since), check=True)
            raw.append(time.perf_counter() - start)
    finally:
        start = time.perf_counter()
        connector.cancel_jobs(ids)
        cancel = time.perf_counter() - start
    return {"jobs": count, "calls": dict(calls), "median_s": statistics.median(times),
            "raw_sacct_s": statistics.median(raw), "cancel_s": cancel, "states": dict(states)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["local", "ssh"], default="local")
    parser.add_argument("--counts", default="1,100,1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", help="connector settings as JSON (default: the lab)")
    args = parser.parse_args()
    settings = json.loads(args.settings) if args.settings else lab_settings(args.mode)
    connector = SlurmConnector(settings)
    counting = Timed(connector.transport)
    connector.transport = counting
    connector.transport.run(["true"])  # open the ssh master connection outside the timings
    print(f"mode={args.mode} transport={counting.description}")
    print(f"{'jobs':>6} {'status s':>9} {'raw sacct s':>12} {'cancel s':>9}  calls / states")
    try:
        for count in (int(c) for c in args.counts.split(",")):
            r = measure(connector, counting, count, args.repeats)
            print(f"{r['jobs']:>6} {r['median_s']:>9.3f} {r['raw_sacct_s']:>12.3f} "
                  f"{r['cancel_s']:>9.3f}  {r['calls']} {r['states']}")
    finally:
        connector.close()


if __name__ == "__main__":
    main()
