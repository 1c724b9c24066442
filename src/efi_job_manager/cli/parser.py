"""The command line's grammar: every command, its options, and the options every command takes."""

from __future__ import annotations

import argparse
from pathlib import Path

from efi_job_manager.discovery import package_version

__all__ = ["build_parser", "package_version"]


def _common() -> argparse.ArgumentParser:
    # SUPPRESS: given before or after the command, an option keeps the value given
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the TOML configuration (default: $EFI_JOB_MANAGER_CONFIG)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    common.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS,
                        help="log lines as text (default) or one JSON object each; times UTC")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``efi-job-manager`` parser; ``--config`` and ``--debug`` go before or after a command."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="efi-job-manager", parents=[common],
        description="Runs EFI-Web's jobs on HPC clusters through pluggable connectors.")
    parser.add_argument("--version", action="version",
                        version=f"efi-job-manager {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[common],
                              help="run the manager (the daemon loop, or one cycle)")
    run.add_argument("--once", action="store_true", help="run one cycle and exit")
    run.add_argument("--dry-run", action="store_true",
                     help="print what a cycle would do; write and submit nothing")

    status = commands.add_parser(
        "status", parents=[common],
        help="jobs by status, what waits and why, and the managers' last cycles "
             "(exit 1 if no manager is running)")
    status.add_argument("--json", action="store_true", help="as one JSON object")
    clean = commands.add_parser(
        "clean", parents=[common],
        help="remove what ended jobs left where they ran (the cluster's remote_dir/<id>), "
             "after each destination's keep_job_files (exit 1 if a destination failed)")
    clean.add_argument("--dry-run", action="store_true", help="only list what would go")
    commands.add_parser("check", parents=[common],
                        help="check the configuration, database, table and connectors")
    commands.add_parser("connectors", parents=[common],
                        help="list installed connectors, broken ones included")
    commands.add_parser("init-db", parents=[common],
                        help="create the Job table (development only; never alters)")
    config = commands.add_parser("config", parents=[common], help="the configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True,
                                            metavar="ACTION")
    show = config_commands.add_parser(
        "show", parents=[common],
        help="print the effective configuration (file, environment, defaults), secrets masked")
    show.add_argument("--json", action="store_true", help="as JSON")
    migrate = config_commands.add_parser(
        "migrate", parents=[common],
        help="turn a config/settings.py of EFI's first job manager into a settings file "
             "(read, never run; no secret written)")
    migrate.add_argument("old", type=Path, metavar="SETTINGS_PY")
    migrate.add_argument("--output", "-o", type=Path, metavar="FILE",
                         help="write the new file here (never over an existing one); "
                              "default: standard output")

    _jobs(commands.add_parser("jobs", parents=[common], help="look at and act on jobs"), common)

    demo = commands.add_parser(
        "demo", parents=[common],
        help="run a demo on SQLite with the local connector and the stand-in pipeline")
    demo.add_argument("--dir", default="efi-demo", help="working directory (default: efi-demo)")
    demo.add_argument("--delay", type=float, default=1.0,
                      help="seconds each stand-in pipeline runs (default: 1)")
    demo.add_argument("--timeout", type=float, default=120.0)
    return parser


def _jobs(jobs: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common],
                                 help="list jobs, newest first, whatever their job type")
    listing.add_argument("--status", action="append", default=None,
                         help="only this status (repeatable)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per job, as a list")
    for name, text in (("show", "show one job, its directory and failure reason"),
                       ("cancel", "cancel a new or running job (the cluster job next cycle)"),
                       ("params", "print the params.json, command and EST command of a job")):
        sub = actions.add_parser(name, parents=[common], help=text)
        sub.add_argument("job_id", type=int, metavar="ID")
        if name == "params":
            sub.add_argument("--diff", metavar="FILE", type=Path,
                             help="compare with a params file written by EST's own script "
                                  "(exit 1 when they differ)")
    retry = actions.add_parser(
        "retry", parents=[common],
        help="put failed or cancelled jobs back to new: by id, or every job matching filters")
    retry.add_argument("job_ids", type=int, nargs="*", metavar="ID")
    retry.add_argument("--status", choices=("failed", "cancelled"), action="append",
                       help="jobs with this status (repeatable; default: failed)")
    retry.add_argument("--destination", help="jobs that ran on this destination")
    retry.add_argument("--since", metavar="TIME",
                       help="ended at or after TIME (UTC, ISO 8601 such as 2026-12-01T08:00, "
                            "or a duration ago such as 2h)")
    retry.add_argument("--until", metavar="TIME", help="ended before TIME (same forms)")
    retry.add_argument("--reason", metavar="TEXT",
                       help="whose failure reason contains TEXT (case-insensitive)")
    retry.add_argument("--dry-run", action="store_true",
                       help="print how many jobs and which would be retried; change nothing")
