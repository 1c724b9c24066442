"""``efi-job-manager jobs …``: list, show, cancel, retry (one or many) and a job's parameters."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from efi_job_manager.catalogue import JobInputError
from efi_job_manager.catalogue.paramsdiff import compare
from efi_job_manager.clock import utcnow
from efi_job_manager.jobdir import UnsafeJobDirectory
from efi_job_manager.manager import JobManager
from efi_job_manager.repository import JobRow, is_stand_in
from efi_job_manager.status import InvalidTransition, Status, parse_status
from efi_job_manager.units import format_duration, parse_duration

__all__ = ["CommandError", "jobs_command"]

#: How much of a scheduler's output file ``jobs show`` prints: its last lines.
_TAIL_LINES = 15
_TAIL_BYTES = 8192


class CommandError(Exception):
    """A command that cannot do what was asked (exit code 1, one line)."""


def jobs_command(manager: JobManager, args: argparse.Namespace) -> int:
    """Run ``jobs <action>``; return the exit code."""
    if args.jobs_command == "list":
        return _list(manager, args)
    if args.jobs_command == "retry":
        return _retry(manager, args)
    raw = manager.repository.get_raw(args.job_id)
    if raw is None:
        raise CommandError(f"there is no job {args.job_id}")
    if args.jobs_command == "show":
        return _show(manager, raw)
    if args.jobs_command == "cancel":
        return _cancel(manager, raw)
    return _params(manager, args.job_id, args.diff)


# -- list ---------------------------------------------------------------------------------

def _noted(manager: JobManager, job_id: int) -> tuple[str | None, str | None]:
    """The destination and scheduler id noted in a job's directory (None where not)."""
    try:
        return manager.job_dir(job_id).destination_note()
    except (OSError, UnsafeJobDirectory):
        return None, None


def _described(manager: JobManager, row: JobRow, now: datetime) -> dict[str, Any]:
    destination, noted_id = _noted(manager, row.id)
    scheduler_id: str | None = None
    if row.scheduler_id is not None:
        scheduler_id = noted_id if is_stand_in(row.scheduler_id) else str(row.scheduler_id)
    known = row.job_type in manager.repository.job_classes
    age = (now - row.time_created).total_seconds() if row.time_created else None
    return {"id": row.id, "job_type": row.job_type, "known_type": known,
            "status": row.status, "user_id": row.user_id, "destination": destination,
            "scheduler_id": scheduler_id, "created": _iso(row.time_created),
            "started": _iso(row.time_started), "completed": _iso(row.time_completed),
            "age_seconds": age}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def _list(manager: JobManager, args: argparse.Namespace) -> int:
    statuses = [parse_status(s).value for s in args.status] if args.status else None
    now = utcnow()
    jobs = [_described(manager, row, now)
            for row in manager.repository.job_rows(statuses, limit=args.limit)]
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    header = ("ID", "JOB TYPE", "STATUS", "USER", "DESTINATION", "SCHEDULER ID", "AGE")
    table = [header] + [(
        str(j["id"]), j["job_type"] + ("" if j["known_type"] else " (unknown type)"),
        j["status"], "" if j["user_id"] is None else str(j["user_id"]),
        j["destination"] or "", j["scheduler_id"] or "",
        "" if j["age_seconds"] is None else format_duration(max(0, j["age_seconds"]))
    ) for j in jobs]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())
    if not jobs:
        print("(no jobs)")
    return 0


# -- show, cancel -------------------------------------------------------------------------

def _show(manager: JobManager, raw: Mapping[str, Any]) -> int:
    for key in ("id", "job_type", "status", "user_id", "jobName", "schedulerJobId",
                "timeCreated", "timeStarted", "timeCompleted"):
        print(f"{key:15} {raw.get(key)}")
    jd = manager.job_dir(int(raw["id"]))
    print(f"{'directory':15} {jd.path}{'' if jd.exists() else ' (not made yet)'}")
    destination, scheduler_id = _noted(manager, int(raw["id"]))
    if destination:
        print(f"{'destination':15} {destination}")
    if scheduler_id and raw.get("schedulerJobId") is not None \
            and is_stand_in(int(raw["schedulerJobId"])):
        print(f"{'scheduler id':15} {scheduler_id}")
    failure = jd.failure()
    if failure:
        print(f"{'failure':15} {failure.get('reason')}")
        for key in ("state", "scheduler_reason", "exit_code", "signal", "raw"):
            if failure.get(key) not in (None, ""):
                print(f"{'  ' + key:15} {failure[key]}")
        outputs = failure.get("output_files")
        for name in outputs if isinstance(outputs, list) else ():
            if isinstance(name, str):
                _print_tail(jd.path, name)
    return 0


def _print_tail(job_dir: Path, name: str) -> None:
    """The last lines of a scheduler's output file in the job directory (no link followed)."""
    if "/" in name or name in ("", ".", ".."):
        return
    try:
        fd = os.open(job_dir / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    with os.fdopen(fd, "rb") as file:
        size = os.fstat(fd).st_size
        file.seek(max(0, size - _TAIL_BYTES))
        lines = file.read(_TAIL_BYTES).decode("utf-8", "replace").splitlines()[-_TAIL_LINES:]
    print(f"--- last {len(lines)} lines of {name}")
    for line in lines:
        print(f"  {line}")


def _cancel(manager: JobManager, raw: Mapping[str, Any]) -> int:
    job_id = int(raw["id"])
    status = parse_status(raw["status"])
    if status not in (Status.NEW, Status.RUNNING):
        raise CommandError(f"job {job_id} is {status.value}; only new or running jobs can be "
                           "cancelled")
    if not manager.repository.transition(job_id, status, Status.CANCELLED):
        raise CommandError(f"job {job_id} changed while cancelling it; look again")
    print(f"job {job_id} cancelled" + (
        "; its cluster job is cancelled in the next cycle" if raw["schedulerJobId"] else ""))
    return 0


# -- retry --------------------------------------------------------------------------------

def _time(text: str, now: datetime, option: str) -> datetime:
    """``2026-12-01T08:00`` (UTC) or a duration ago (``2h``)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - timedelta(seconds=parse_duration(text))
        except (TypeError, ValueError):
            raise CommandError(f"{option} {text!r}: expected a UTC time such as "
                               "2026-12-01T08:00 or a duration ago such as 2h") from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _matching(manager: JobManager, args: argparse.Namespace) -> list[int]:
    if args.job_ids:
        if args.status or args.destination or args.since or args.until or args.reason:
            raise CommandError("give job ids or filters (--status, --destination, --since, "
                               "--until, --reason), not both")
        return list(args.job_ids)
    now = utcnow()
    rows = manager.repository.job_rows(
        args.status or ["failed"], limit=None,
        completed_since=_time(args.since, now, "--since") if args.since else None,
        completed_until=_time(args.until, now, "--until") if args.until else None)
    ids = []
    for row in sorted(rows, key=lambda r: r.id):
        if args.destination is not None and _noted(manager, row.id)[0] != args.destination:
            continue
        if args.reason is not None:
            reason = str((manager.job_dir(row.id).failure() or {}).get("reason") or "")
            if args.reason.casefold() not in reason.casefold():
                continue
        ids.append(row.id)
    return ids


def _retry(manager: JobManager, args: argparse.Namespace) -> int:
    ids = _matching(manager, args)
    if not args.job_ids:
        verb = "would retry" if args.dry_run else "retrying"
        shown = ", ".join(map(str, ids[:50])) + (f" and {len(ids) - 50} more"
                                                  if len(ids) > 50 else "")
        print(f"{verb} {len(ids)} job{'' if len(ids) == 1 else 's'}" +
              (f": {shown}" if ids else ""))
    if args.dry_run:
        return 0
    refused = 0
    for job_id in ids:
        try:
            changed = manager.retry(job_id)
        except (InvalidTransition, RuntimeError) as exc:
            print(f"job {job_id} cannot be retried: {exc}")
            refused += 1
            continue
        except LookupError:
            raw = manager.repository.get_raw(job_id)
            why = "there is no such job" if raw is None else (
                f"its job_type {raw['job_type']!r} is not one this manager knows")
            print(f"job {job_id} cannot be retried: {why}")
            refused += 1
            continue
        print(f"job {job_id} is new again")
        for name, (old, new) in sorted(changed.items()):
            print(f"  {name}: {old or 'not set'} -> {new}")
    return 1 if refused else 0


# -- params -------------------------------------------------------------------------------

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
