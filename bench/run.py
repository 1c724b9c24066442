"""Every performance figure of the Slurm path in one run against the lab: JSON and a plot.

For each way in (``local``: Slurm's commands here; ``ssh``: over the lab's sshd; ``rest``:
Slurm's REST daemon, the files over ssh) and each N (100, 1,000, 5,000, 10,000 by default),
N held jobs are in the queue and N running rows in the ``Job`` table (SQLite); it measures,
medians of ``--cycles`` cycles after a warm-up:

- the manager's status cycle (`JobManager.run_once` with the real Slurm connector), the
  scheduler calls it made by program, and the manager's own time (the cycle less the time
  its commands took), per running job;
- the floor: one ``squeue --me`` listing all of the user's jobs (over REST: one ``GET
  /slurm/v0.0.38/jobs``), and one SELECT of the running rows' ids;
- at 100 jobs, EFI's first job manager's design: one ``sacct -j ID`` per job, each through
  ``sh -c`` (locally) or its own ssh connection (no connection sharing), as it ran them;

then the submission rate of 200 new jobs through the manager (held at submission) against a
plain shell loop of ``sbatch --parsable --hold`` on the same transport (over REST: the ssh
loop). Peak RSS is read
after the 5,000-job cycles. Writes ``bench/results/run-<UTC time>.json`` and ``.png``.

    tests/slurm/cluster.sh up && .venv/bin/python bench/run.py [--counts 100,1000] [--modes local]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sysconfig
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from lab import Timed, TimedRest, lab_environment, lab_settings, submit_held

from efi_connector_slurm import SlurmConnector
from efi_connector_slurm.commands import squeue_listing_command
from efi_job_manager.catalogue import Catalogue, EfiDatabases
from efi_job_manager.catalogue.site import STANDIN_COMMAND
from efi_job_manager.manager import Destination, JobManager
from efi_job_manager.models import Job
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.schema import create_tables

HERE = Path(__file__).resolve().parent
T0 = datetime(2026, 1, 1)
SUBMIT_JOBS = 200


def median_of(repeats: int, fn: Any) -> float:
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def status_cycle(connector: SlurmConnector, timed: Timed, ids: list[str], tmp: Path,
                 cycles: int, *, catalogue: Catalogue) -> dict[str, Any]:
    """The manager's status cycle over ``ids`` (held jobs), and its floor."""
    db = tmp / f"status-{len(ids)}.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    create_tables(engine)
    repo = JobRepository(engine)
    repo.insert([{"id": i, "uuid": f"u{i}", "status": "running", "isPublic": False,
                  "job_type": "est_generate_fasta", "user_id": i % 50, "schedulerJobId": int(sid),
                  "timeCreated": T0 + timedelta(seconds=i), "timeStarted": T0}
                 for i, sid in enumerate(ids, start=1)])
    (tmp / "results").mkdir(exist_ok=True)
    manager = JobManager(repo, {"default": Destination("default", connector)},
                         catalogue, results_dir=tmp / "results", input_dir=tmp,
                         max_running_jobs=len(ids) + 1)
    try:
        manager.run_once()
        times, own, calls = [], [], Counter[str]()
        for _ in range(cycles):
            timed.reset()
            begin = time.perf_counter()
            report = manager.run_once()
            elapsed = time.perf_counter() - begin
            if report.errors or report.running != len(ids):
                raise SystemExit(f"the cycle did not run as measured: {report}")
            times.append(elapsed)
            own.append(elapsed - timed.seconds)
            calls = Counter(timed.calls)
        if connector.rest is None:
            squeue = median_of(cycles, lambda: connector.transport.run(
                squeue_listing_command(), check=True))
        else:  # the listing of every job slurmctld holds, as slurmrestd gives it
            client = connector.rest.client
            squeue = median_of(cycles, lambda: client.get("/slurm/v0.0.38/jobs"))
        running = sa.select(Job.__table__.c.id).where(Job.__table__.c.status == "running")

        def select() -> None:
            with engine.connect() as conn:
                conn.execute(running).all()

        select_s = median_of(cycles, select)
    finally:
        repo.close()
    cycle = statistics.median(times)
    return {"jobs": len(ids), "cycle_s": cycle, "own_s": statistics.median(own),
            "own_us_per_job": statistics.median(own) / len(ids) * 1e6,
            "floor_squeue_s": squeue, "floor_select_s": select_s,
            "ratio_to_floor": cycle / (squeue + select_s), "calls_per_cycle": dict(calls)}


def first_manager(connector: SlurmConnector, mode: str, ids: list[str],
                  settings: dict[str, Any]) -> float:
    """EFI's first job manager's status pass: one ``sacct -j ID`` per job, as it ran them."""
    def one_pass() -> None:
        for sid in ids:
            line = f"sacct -j {sid} --format=JobID,State --noheader --parsable2"
            if mode == "local":
                connector.transport.run(["sh", "-c", line], check=True)
            else:  # a new ssh connection for each, no master connection shared
                subprocess.run(["ssh", "-F", settings["ssh_config"], "-o", "ControlPath=none",
                                settings["host"], line], check=True, capture_output=True)

    return median_of(3, one_pass)


def catalogue_for(mode: str) -> Catalogue:
    """The stand-in pipeline as the jobs' user runs it: over ssh, the lab's user runs it with
    the system Python and this checkout's sources."""
    command = STANDIN_COMMAND if mode == "local" else (
        "/usr/bin/env", f"PYTHONPATH={HERE.parent / 'src'}:{sysconfig.get_paths()['purelib']}",
        "/usr/bin/python3", "-m", "efi_job_manager.dev.standin", "{pipeline_name}",
        "{params_file}")
    return Catalogue.from_settings(
        pipeline_dir=None, config_dir=None, command=command,
        params={"efi_config": "/opt/efi.config", "fasta_db": "/db/uniprot"}, overrides={},
        efi_db=EfiDatabases(default="efi_202406"))


def submission(mode: str, settings: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """200 new jobs submitted by the manager (held) against a plain sbatch loop."""
    connector = SlurmConnector({**settings, "extra_sbatch": ["--hold"]})
    timed = Timed(connector.transport)
    connector.transport = timed
    if connector.rest is not None:
        TimedRest(connector, timed)
    timed.run(["true"])  # the ssh master connection, outside the timings
    db = tmp / f"submit-{mode}.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    create_tables(engine)
    repo = JobRepository(engine)
    uploads = tmp / "uploads"
    uploads.mkdir(exist_ok=True)
    (uploads / "seqs.fasta").write_text(">a\nMKV\n>b\nMKL\n")
    repo.insert([{"id": i, "uuid": f"s{i}", "status": "new", "isPublic": False,
                  "job_type": "est_generate_fasta", "user_id": i, "jobFilename": "seqs.fasta",
                  "allByAllBlastEValue": 5, "sequence_version": "uniprot",
                  "timeCreated": T0 + timedelta(seconds=i)} for i in range(1, SUBMIT_JOBS + 1)])
    catalogue = catalogue_for(mode)
    results = tmp / f"submit-results-{mode}"
    results.mkdir()
    manager = JobManager(repo, {"default": Destination("default", connector)}, catalogue,
                         results_dir=results, input_dir=uploads, max_running_jobs=1000,
                         claim_batch=1000)
    ids: list[str] = []
    try:
        timed.reset()
        machine, own = machine_cpu_s(), os.times()
        begin = time.perf_counter()
        started = cycles = 0
        while started < SUBMIT_JOBS:
            report = manager.run_once()
            cycles += 1
            started += len(report.started)
            if report.errors and not report.started:
                raise SystemExit(f"{mode}: the manager cannot submit: {report.errors[0]}")
        manager_s = time.perf_counter() - begin
        manager_cpu, own_after = machine_cpu_s() - machine, os.times()
        own_cpu = own_after.user + own_after.system - own.user - own.system
        calls = dict(timed.calls)
        ids = [str(j.schedulerJobId) for j in repo.running_jobs()]
        machine = machine_cpu_s()
        begin = time.perf_counter()
        ids += submit_held(timed, SUBMIT_JOBS)
        loop_s = time.perf_counter() - begin
        loop_cpu = machine_cpu_s() - machine
    finally:
        if ids:
            connector.cancel_jobs(ids)
        manager.close()
    return {"jobs": SUBMIT_JOBS, "cycles": cycles, "transport_calls": calls,
            "manager_jobs_per_s": SUBMIT_JOBS / manager_s,
            "sbatch_loop_jobs_per_s": SUBMIT_JOBS / loop_s,
            "ratio": (SUBMIT_JOBS / manager_s) / (SUBMIT_JOBS / loop_s),
            "cores": os.cpu_count(),
            "manager_cpu_ms_per_job": manager_cpu / SUBMIT_JOBS * 1e3,
            "manager_own_cpu_ms_per_job": own_cpu / SUBMIT_JOBS * 1e3,
            "loop_cpu_ms_per_job": loop_cpu / SUBMIT_JOBS * 1e3,
            # the best ratio the machine's cores allow at the manager's CPU cost per job
            "cpu_bound_ratio": loop_s / (manager_cpu / (os.cpu_count() or 1))}


def machine_cpu_s() -> float:
    """CPU seconds every process of this machine has used so far (Linux ``/proc/stat``)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def settle(limit: int = 100, patience: float = 300.0) -> float:
    """Wait until slurmctld holds fewer than ``limit`` jobs of anyone (the previous mode's
    cancelled jobs purged, ``MinJobAge``): every listing lists them too. Seconds waited."""
    begin = time.perf_counter()
    while time.perf_counter() - begin < patience:
        listed = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i"],
                                capture_output=True, text=True, check=True,
                                env=lab_environment())
        if len(listed.stdout.split()) < limit:
            break
        time.sleep(5)
    return time.perf_counter() - begin


def run_mode(mode: str, counts: list[int], cycles: int, tmp: Path) -> dict[str, Any]:
    waited = settle()
    print(f"{mode}: slurmctld settled after {waited:.0f} s", flush=True)
    settings = lab_settings(mode)
    connector = SlurmConnector(settings)
    timed = Timed(connector.transport)
    connector.transport = timed
    if connector.rest is not None:
        TimedRest(connector, timed)
    timed.run(["true"])
    held: list[str] = []
    out: dict[str, Any] = {"transport": timed.description, "status": []}
    try:
        for count in counts:
            held += submit_held(timed, count - len(held)) if count > len(held) else []
            result = status_cycle(connector, timed, held[:count], tmp, cycles,
                                  catalogue=catalogue_for(mode))
            if count == 5000:
                result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if count == 100 and mode != "rest":
                result["first_manager_s"] = first_manager(connector, mode, held[:100], settings)
                print(f"{mode}    100 jobs: EFI's first job manager's status pass "
                      f"{result['first_manager_s']:.2f} s", flush=True)
            print(f"{mode} {count:>6} jobs: cycle {result['cycle_s']:.3f} s, floor "
                  f"{result['floor_squeue_s'] + result['floor_select_s']:.3f} s (ratio "
                  f"{result['ratio_to_floor']:.2f}), own {result['own_us_per_job']:.1f} µs/job, "
                  f"calls {result['calls_per_cycle']}", flush=True)
            out["status"].append(result)
    finally:
        if held:
            connector.cancel_jobs(held)
        connector.close()
    out["submission"] = submission(mode, settings, tmp)
    sub = out["submission"]
    print(f"{mode} submission: manager {sub['manager_jobs_per_s']:.1f} jobs/s, sbatch loop "
          f"{sub['sbatch_loop_jobs_per_s']:.1f} jobs/s (ratio {sub['ratio']:.2f}); "
          f"{sub['cycles']} cycles, transport calls {sub['transport_calls']}; CPU per job: "
          f"manager {sub['manager_cpu_ms_per_job']:.1f} ms (its own process "
          f"{sub['manager_own_cpu_ms_per_job']:.1f}), loop {sub['loop_cpu_ms_per_job']:.1f} ms; "
          f"best ratio {sub['cores']} cores allow {sub['cpu_bound_ratio']:.2f}", flush=True)
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (cycles, rates) = plt.subplots(1, 2, figsize=(12, 4.5))
    for mode, data in result["modes"].items():
        n = [s["jobs"] for s in data["status"]]
        cycles.plot(n, [s["cycle_s"] for s in data["status"]], "o-", label=f"cycle ({mode})")
        cycles.plot(n, [s["floor_squeue_s"] + s["floor_select_s"] for s in data["status"]],
                    "x--", label=f"floor: job listing + SELECT ({mode})")
        first = [s for s in data["status"] if "first_manager_s" in s]
        if first:
            cycles.plot([100], [first[0]["first_manager_s"]], "s",
                        label=f"first job manager, 100 jobs ({mode})")
    cycles.set(xscale="log", yscale="log", xlabel="running jobs", ylabel="seconds",
               title="status cycle")
    cycles.legend(fontsize=7)
    modes = list(result["modes"])
    rates.bar([m + "\nmanager" for m in modes],
              [result["modes"][m]["submission"]["manager_jobs_per_s"] for m in modes])
    rates.bar([m + "\nsbatch loop" for m in modes],
              [result["modes"][m]["submission"]["sbatch_loop_jobs_per_s"] for m in modes])
    rates.set(ylabel="jobs per second", title=f"submitting {SUBMIT_JOBS} jobs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="100,1000,5000,10000")
    parser.add_argument("--modes", default="local,ssh,rest")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result: dict[str, Any] = {"time": stamp, "counts": counts, "cycles": args.cycles,
                              "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            Path(tmp, mode).mkdir()
            result["modes"][mode] = run_mode(mode, counts, args.cycles, Path(tmp, mode))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"run-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / f"run-{stamp}.png")
    print(f"wrote {args.out / f'run-{stamp}.json'} and .png")


if __name__ == "__main__":
    main()
