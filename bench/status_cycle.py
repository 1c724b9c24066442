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
import os
import shlex
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from efi_connector_slurm import SlurmConnector
from efi_connector_slurm.commands import sacct_command
from efi_job_manager.transport import CommandResult, Transport

LAB = Path(os.environ.get("EFI_SLURM_LAB", "/tmp/efi-slurm-lab"))  # noqa: S108 - the lab


class Counting(Transport):
    """A transport that counts the commands it runs, by program."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    @property
    def description(self) -> str:
        return self.inner.description

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.calls[argv[0]] += 1
        return self.inner.run(argv, **kwargs)

    def put(self, local: Path, remote: str, **kwargs: Any) -> None:
        self.inner.put(local, remote, **kwargs)

    def get(self, remote: str, local: Path, **kwargs: Any) -> None:
        self.inner.get(remote, local, **kwargs)

    def write_text(self, remote: str, text: str, **kwargs: Any) -> None:
        self.inner.write_text(remote, text, **kwargs)

    def close(self) -> None:
        self.inner.close()


def lab_settings(mode: str) -> dict[str, Any]:
    env = {}
    for line in (LAB / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
    if mode == "local":
        return {"slurm_conf": env["SLURM_CONF"]}
    return {"transport": "ssh", "host": env["EFI_SLURM_SSH_HOST"],
            "ssh_config": env["EFI_SLURM_SSH_CONFIG"],
            "remote_dir": f"{env['EFI_SLURM_SCRATCH']}/bench"}


def submit_held(connector: SlurmConnector, count: int) -> list[str]:
    loop = (f'i=0; while [ "$i" -lt {count} ]; do sbatch --parsable --hold '
            "--job-name=efi-bench --output=/dev/null --wrap=true || exit 1; i=$((i+1)); done")
    done = connector.transport.run(["sh", "-c", loop], timeout=600, check=True)
    return [line.split(";")[0] for line in done.stdout.split()]


def measure(connector: SlurmConnector, counting: Counting, count: int,
            repeats: int) -> dict[str, Any]:
    ids = submit_held(connector, count)
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
    counting = Counting(connector.transport)
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
