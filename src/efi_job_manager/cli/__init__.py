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
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from efi_job_manager.catalogue import CatalogueError
from efi_job_manager.cli.jobs import CommandError, jobs_command
from efi_job_manager.cli.migrate import config_migrate
from efi_job_manager.cli.parser import build_parser
from efi_job_manager.cli.status import status_command
from efi_job_manager.config import ConfigError, Settings
from efi_job_manager.config.reference import toml_document
from efi_job_manager.discovery import (
    ConnectorLoadError,
    ConnectorNotFound,
    available_connectors,
)
from efi_job_manager.logs import LogFormat, add_log_file, configure_logging
from efi_job_manager.manager import CycleReport, JobManager, PlannedAction
from efi_job_manager.models import ModelError
from efi_job_manager.schema import TableExists, create_tables
from efi_job_manager.sitecheck import check_site
from efi_job_manager.status import UnknownStatus

__all__ = ["main"]

log = logging.getLogger("efi_job_manager")

_USAGE_ERRORS = (ConfigError, CatalogueError, ModelError, ConnectorNotFound,
                 ConnectorLoadError, UnknownStatus)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config", None)
    args.debug = getattr(args, "debug", False)
    args.log_format = getattr(args, "log_format", None)
    configure_logging(logging.DEBUG if args.debug else logging.INFO, args.log_format or "text")
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
    """The settings, and the log as they say: its level, format and (for ``run``) file.

    Only ``run`` writes the log file: an operator's ``status`` or ``jobs`` must not write
    (or rotate) the daemon's file.
    """
    settings = Settings.load(args.config)
    log_format: LogFormat = args.log_format or ("json" if settings.log.format == "json"
                                                else "text")
    level = logging.DEBUG if args.debug else settings.log_level
    configure_logging(level, log_format)
    if settings.log.file is not None and args.command == "run":
        try:
            add_log_file(settings.log.file, log_format, max_bytes=settings.log.max_size << 20,
                         backups=settings.log.backups)
        except OSError as exc:
            raise ConfigError(f"log.file: cannot write {settings.log.file}: "
                              f"{exc.strerror or exc}") from None
    return settings


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from efi_job_manager.dev.demo import run_demo  # noqa: PLC0415

        return run_demo(Path(args.dir), delay=args.delay, timeout=args.timeout)
    if args.command == "connectors":
        return _connectors()
    if args.command == "config" and args.config_command == "migrate":
        return config_migrate(args.old, args.output)
    settings = _settings(args)
    if args.command == "init-db":
        return _init_db(settings)
    if args.command == "check":
        return 1 if check_site(settings) else 0
    if args.command == "config":
        return _config_show(settings, as_json=args.json)
    with _manager(settings, dry_run=getattr(args, "dry_run", None) or None) as manager:
        if args.command == "run":
            once = args.once or args.dry_run
            if not once and settings.metrics.port is not None:
                manager.metrics.serve(settings.metrics.address, settings.metrics.port)
            manager.one_shot = once
            return _run(manager, once=once)
        if args.command == "status":
            return status_command(manager, as_json=args.json)
        if args.command == "clean":
            return _clean(manager, dry_run=args.dry_run)
        return jobs_command(manager, args)


@contextlib.contextmanager
def _manager(settings: Settings, *, dry_run: bool | None) -> Iterator[JobManager]:
    manager = JobManager.from_settings(settings, dry_run=dry_run)
    try:
        yield manager
    finally:
        manager.close()


def _clean(manager: JobManager, *, dry_run: bool) -> int:
    failed = 0
    verb = "would remove" if dry_run else "removed"
    for report in manager.clean(dry_run=dry_run):
        shown = ", ".join(str(i) for i in report.removed[:20])
        more = f" and {len(report.removed) - 20} more" if len(report.removed) > 20 else ""
        print(f"destination {report.destination}: {verb} the files of {len(report.removed)} "
              f"ended job(s){': ' + shown + more if shown else ''}; kept {len(report.kept)} "
              "(running, or within keep_job_files)")
        if report.error is not None:
            print(f"destination {report.destination}: ! {report.error}")
            failed += 1
    return 1 if failed else 0


def _connectors() -> int:
    installed = available_connectors()
    if not installed:
        print("no connector is installed")
        return 1
    for info in installed.values():
        state = "ok" if info.error is None else f"BROKEN: {info.error}"
        print(f"{info.name:12} {info.target:45} {info.distribution or '?':32} {state}")
    return 0 if all(i.error is None for i in installed.values()) else 1


def _config_show(settings: Settings, *, as_json: bool) -> int:
    """Print the effective configuration (file, environment and defaults), secrets masked."""
    shown = settings.redacted()
    shown.pop("config_file", None)  # where it came from, not a key of the file
    if as_json:
        print(json.dumps(shown, indent=2, sort_keys=True, default=str))
        return 0
    print(f"# {settings.config_file or 'no file: built-in defaults'} (and EFI_JOB_MANAGER_* "
          "variables); secrets masked")
    print("\n".join(toml_document(shown)))
    return 0


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
    """One cycle (``--once``, ``--dry-run``), or the loop until a signal.

    ``manager.dry_run`` in the configuration keeps the loop going (a service stays up) and
    logs each cycle's plan; ``run --dry-run`` is one planning cycle.
    """
    if once:
        report = manager.run_once()
        if manager.dry_run:
            _print_plan(report)
        else:
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
        manager.run_forever(stop, on_cycle=_log_plan if manager.dry_run else None)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _log_plan(report: CycleReport) -> None:
    for action in report.planned:
        log.info("dry run: job %s: %s", action.job_id, _planned(action))


def _planned(action: PlannedAction) -> str:
    """What a dry run would do with one job, in words."""
    if action.action == "hold":
        return f"held back ({action.detail})"
    where = f" on {action.destination}" if action.destination else ""
    return f"would {action.action}{where}"


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
        print(f"job {action.job_id}: {_planned(action)}")
        if action.command:
            print("  command: " + " ".join(action.command))
        if action.detail and action.action != "hold":
            for line in action.detail.rstrip().splitlines():
                print(f"  {line}")
    for error in report.errors:
        print(f"  ! {error}")
