"""The ``efi-job-manager`` command.

Every command reads the same configuration (``--config FILE``, else
``EFI_JOB_MANAGER_CONFIG``, else built-in defaults). An error is one clear
line on standard error (a configuration error: one line per problem) and a
non-zero exit code (2 for a configuration or usage error, 1 for anything else);
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from efi_job_manager.catalogue import CatalogueError, JobInputError
from efi_job_manager.catalogue.paramsdiff import compare
from efi_job_manager.config import ConfigError, Settings
from efi_job_manager.discovery import (
    ConnectorLoadError,
    ConnectorNotFound,
    available_connectors,
)
from efi_job_manager.manager import CycleReport, JobManager
from efi_job_manager.models import ModelError
from efi_job_manager.schema import TableExists, create_tables
from efi_job_manager.sitecheck import check_site
from efi_job_manager.status import InvalidTransition, Status, UnknownStatus, parse_status

__all__ = ["main"]

log = logging.getLogger("efi_job_manager")

_USAGE_ERRORS = (ConfigError, CatalogueError, ModelError, ConnectorNotFound,
                 ConnectorLoadError, UnknownStatus)


class CommandError(Exception):
    """A command that cannot do what was asked (exit code 1, one line)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="efi-job-manager",
        description="Runs EFI-Web's jobs on HPC clusters through pluggable connectors.")
    parser.add_argument("--config", metavar="FILE",
                        help="the TOML configuration (default: $EFI_JOB_MANAGER_CONFIG)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the manager (the daemon loop, or one cycle)")
    run.add_argument("--once", action="store_true", help="run one cycle and exit")
    run.add_argument("--dry-run", action="store_true",
                     help="print what a cycle would do; write and submit nothing")

    commands.add_parser("check", help="check the configuration, database, table and connectors")
    commands.add_parser("connectors", help="list installed connectors, broken ones included")
    commands.add_parser("init-db", help="create the Job table (development only; never alters)")

    jobs = commands.add_parser("jobs", help="look at and act on jobs")
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    listing = job_commands.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--status", action="append", default=None,
                         help="only this status (repeatable)")
    listing.add_argument("--limit", type=int, default=50)
    for name, text in (("show", "show one job, its directory and failure reason"),
                       ("cancel", "cancel a new or running job (the cluster job next cycle)"),
                       ("retry", "put a failed or cancelled job back to new"),
                       ("params", "print the params.json, command and EST command of a job")):
        sub = job_commands.add_parser(name, help=text)
        sub.add_argument("job_id", type=int, metavar="ID")
        if name == "params":
            sub.add_argument("--diff", metavar="FILE", type=Path,
                             help="compare with a params file written by EST's own script "
                                  "(exit 1 when they differ)")

    demo = commands.add_parser(
        "demo", help="run a demo on SQLite with the local connector and the stand-in pipeline")
    demo.add_argument("--dir", default="efi-demo", help="working directory (default: efi-demo)")
    demo.add_argument("--delay", type=float, default=1.0,
                      help="seconds each stand-in pipeline runs (default: 1)")
    demo.add_argument("--timeout", type=float, default=120.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return _dispatch(args)
    except _USAGE_ERRORS as exc:
        if args.debug:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:  # a ConfigError: all
            print(f"efi-job-manager: {line}", file=sys.stderr)
        return 2
    except (CommandError, OSError, TableExists, ValueError) as exc:
        if args.debug:
            raise
        print(f"efi-job-manager: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.debug:
            raise
        print(f"efi-job-manager: {type(exc).__name__}: {str(exc).splitlines()[0]} "
              "(--debug shows the traceback)", file=sys.stderr)
        return 1


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.load(args.config)
    if not args.debug:
        logging.getLogger().setLevel(settings.log_level)
    return settings


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from efi_job_manager.dev.demo import run_demo  # noqa: PLC0415

        return run_demo(Path(args.dir), delay=args.delay, timeout=args.timeout)
    if args.command == "connectors":
        return _connectors()
    settings = _settings(args)
    if args.command == "init-db":
        return _init_db(settings)
    if args.command == "check":
        return 1 if check_site(settings) else 0
    with _manager(settings, dry_run=getattr(args, "dry_run", None) or None) as manager:
        if args.command == "run":
            return _run(manager, once=args.once)
        return _jobs(manager, args)


@contextlib.contextmanager
def _manager(settings: Settings, *, dry_run: bool | None) -> Iterator[JobManager]:
    manager = JobManager.from_settings(settings, dry_run=dry_run)
    try:
        yield manager
    finally:
        manager.close()


def _connectors() -> int:
    installed = available_connectors()
    if not installed:
        print("no connector is installed")
        return 1
    for info in installed.values():
        state = "ok" if info.error is None else f"BROKEN: {info.error}"
        print(f"{info.name:12} {info.target:45} {info.distribution or '?':32} {state}")
    return 0 if all(i.error is None for i in installed.values()) else 1


def _init_db(settings: Settings) -> int:
    from efi_job_manager.models import load_job_model  # noqa: PLC0415
    from efi_job_manager.repository import make_engine  # noqa: PLC0415

    engine = make_engine(settings.database.sqlalchemy_url)
    try:
        create_tables(engine, load_job_model(settings.database.model))
    finally:
        engine.dispose()
    print(f"created the Job table at {settings.database.masked_url}")
    return 0


def _run(manager: JobManager, *, once: bool) -> int:
    if manager.dry_run:
        report = manager.run_once()
        _print_plan(report)
        return 1 if report.errors else 0
    if once:
        report = manager.run_once()
        _print_report(report)
        return 1 if report.errors else 0
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the current step", signal.Signals(signum).name)
        stop.set()
        manager.stop()

    # SIGHUP stops cleanly too (a service manager restarts the daemon to reload settings)
    previous = {s: signal.signal(s, handle)
                for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        log.info("manager running every %g s (destinations: %s)", manager.interval,
                 ", ".join(manager.destinations))
        manager.run_forever(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _print_report(report: CycleReport) -> None:
    print(f"started {list(report.started)} finished {list(report.finished)} "
          f"failed {[i for i, _ in report.failed]} cancelled {list(report.cancelled)} "
          f"recovered {list(report.recovered)} running {report.running}")
    for job_id, reason in report.failed:
        print(f"  job {job_id} failed: {reason}")
    for error in report.errors:
        print(f"  ! {error}")


def _print_plan(report: CycleReport) -> None:
    if not report.planned:
        print("dry run: nothing to do")
    for action in report.planned:
        where = f" on {action.destination}" if action.destination else ""
        print(f"job {action.job_id}: would {action.action}{where}")
        if action.command:
            print("  command: " + " ".join(action.command))
        if action.detail:
            for line in action.detail.rstrip().splitlines():
                print(f"  {line}")
    for error in report.errors:
        print(f"  ! {error}")


def _jobs(manager: JobManager, args: argparse.Namespace) -> int:
    repo = manager.repository
    if args.jobs_command == "list":
        statuses = [parse_status(s) for s in args.status] if args.status else None
        for job in repo.jobs(statuses, limit=args.limit):
            print(f"{job.id:8} {job.job_type:30} {job.status:10} "
                  f"{job.schedulerJobId or '':>10} {job.timeCreated or ''}")
        return 0
    raw = repo.get_raw(args.job_id)
    if raw is None:
        raise CommandError(f"there is no job {args.job_id}")
    if args.jobs_command == "show":
        return _show(manager, raw)
    if args.jobs_command == "cancel":
        status = parse_status(raw["status"])
        if status not in (Status.NEW, Status.RUNNING):
            raise CommandError(f"job {args.job_id} is {status.value}; only new or running jobs "
                               "can be cancelled")
        if not repo.transition(args.job_id, status, Status.CANCELLED):
            raise CommandError(f"job {args.job_id} changed while cancelling it; look again")
        print(f"job {args.job_id} cancelled" + (
            "; its cluster job is cancelled in the next cycle" if raw["schedulerJobId"] else ""))
        return 0
    if args.jobs_command == "retry":
        try:
            changed = manager.retry(args.job_id)
        except (InvalidTransition, RuntimeError) as exc:
            raise CommandError(f"job {args.job_id} cannot be retried: {exc}") from exc
        print(f"job {args.job_id} is new again")
        for name, (old, new) in sorted(changed.items()):
            print(f"  {name}: {old or 'not set'} -> {new}")
        return 0
    return _params(manager, args.job_id, args.diff)


def _show(manager: JobManager, raw: Mapping[str, Any]) -> int:
    for key in ("id", "job_type", "status", "user_id", "jobName", "schedulerJobId",
                "timeCreated", "timeStarted", "timeCompleted"):
        print(f"{key:15} {raw.get(key)}")
    jd = manager.job_dir(int(raw["id"]))
    print(f"{'directory':15} {jd.path}{'' if jd.exists() else ' (not made yet)'}")
    destination = jd.destination()
    if destination:
        print(f"{'destination':15} {destination}")
    failure = jd.failure()
    if failure:
        print(f"{'failure':15} {failure.get('reason')}")
        for key in ("state", "scheduler_reason", "exit_code", "signal", "raw"):
            if failure.get(key) not in (None, ""):
                print(f"{'  ' + key:15} {failure[key]}")
    return 0


def _params(manager: JobManager, job_id: int, diff: Path | None) -> int:
    job = manager.repository.get(job_id)
    if job is None:
        raise CommandError(f"job {job_id} has a job_type this manager does not know")
    try:
        prepared = manager.catalogue.prepare(job, job_dir=manager.job_dir(job_id).path,
                                             input_dir=manager.input_dir,
                                             results_dir=manager.results_dir)
    except JobInputError as exc:
        raise CommandError(f"job {job_id} would fail: {exc}") from exc
    print(json.dumps(prepared.params, indent=2, sort_keys=True, default=str))
    print("command: " + shlex.join(prepared.command))
    call = prepared.est_call
    if call is not None:
        print(f"est: bin/{call.script.name} {shlex.join(call.argv())}")
        for name, value in call.extras.items():
            print(f"est: (EST's script has no option for {name}; its render_params takes "
                  f"{name}={value})")
    if diff is None:
        return 0
    try:
        file_params = json.loads(diff.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CommandError(f"{diff}: not a JSON params file ({exc})") from exc
    if not isinstance(file_params, dict):
        raise CommandError(f"{diff}: a params file holds one JSON object")
    result = compare(prepared, file_params)
    print(f"{diff}: " + ("what EST's script writes for this job" if result.equal
                         else "differs from what EST's script writes for this job"))
    for line in result.lines():
        print(line)
    return 0 if result.equal else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
