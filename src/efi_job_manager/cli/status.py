"""``efi-job-manager status``: the site at a glance, for people or (``--json``) for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from efi_job_manager.manager import JobManager
from efi_job_manager.manager.overview import HeldBack, Overview
from efi_job_manager.manager.presence import ManagerPresence
from efi_job_manager.units import format_duration

__all__ = ["status_command"]

#: Job ids shown per limit that holds jobs back.
_IDS_SHOWN = 5


def status_command(manager: JobManager, *, as_json: bool) -> int:
    """Print the overview; return 0, or 1 when no manager has run a cycle recently."""
    overview = manager.overview()
    if as_json:
        print(json.dumps(overview.to_json(), indent=2))
    else:
        print("\n".join(render(overview)))
    return 0 if any(m.state(overview.time) == "running" for m in overview.managers) else 1


def render(overview: Overview) -> list[str]:
    """The overview as lines of text."""
    lines = [f"efi-job-manager status at {_time(overview.time)}", "", "jobs:"]
    if overview.jobs:
        lines += _table(("status", "pipeline", "destination", "jobs"),
                        [(c.status, c.pipeline, c.destination, str(c.count))
                         for c in overview.jobs], right=(3,))
    else:
        lines.append("  (the Job table is empty)")
    if overview.oldest_waiting is None:
        lines.append("oldest waiting job: none")
    else:
        job_id, age = overview.oldest_waiting
        waited = "no timeCreated" if age is None else f"waiting {format_duration(int(age))}"
        lines.append(f"oldest waiting job: {job_id} ({waited})")
    lines += ["", *_held_back(overview.held_back), "", *_managers(overview)]
    return lines


def _held_back(held: Sequence[HeldBack]) -> list[str]:
    if not held:
        return ["held back by a limit: none"]
    lines = [f"held back by a limit: {_jobs(len(held))}"]
    groups: dict[str, list[HeldBack]] = {}
    for job in held:
        groups.setdefault(job.hold.limit, []).append(job)
    for limit, jobs in sorted(groups.items(), key=lambda item: -len(item[1])):
        ids = ", ".join(str(j.job_id) for j in jobs[:_IDS_SHOWN])
        more = f" and {len(jobs) - _IDS_SHOWN} more" if len(jobs) > _IDS_SHOWN else ""
        lines.append(f"  {limit}: {_jobs(len(jobs))} ({ids}{more}); first: {jobs[0].hold.detail}")
    return lines


def _managers(overview: Overview) -> list[str]:
    if not overview.managers:
        return ["managers: none has run a cycle on this results directory in the last 7 days"]
    rows = [_manager_row(m, overview.time) for m in overview.managers]
    lines = ["managers:", *_table(("host", "pid", "state", "last cycle", "took", "errors",
                                   "version"), rows, right=(1, 4, 5))]
    for presence in overview.managers:
        if presence.state(overview.time) != "running":
            continue
        for error in presence.errors:
            lines.append(f"  ! {presence.host}:{presence.pid}: {error}")
        for where, fault in sorted(presence.paused.items()):
            lines.append(f"  ! {presence.host}:{presence.pid}: {where} paused: {fault}")
    return lines


def _manager_row(presence: ManagerPresence, now: datetime) -> tuple[str, ...]:
    state = presence.state(now)
    if state != "running":
        state += f" since {_time(presence.seen())}"
    last = "none yet" if presence.last_cycle is None else (
        f"{_time(presence.last_cycle)} "
        f"({format_duration(max(0, int((now - presence.last_cycle).total_seconds())))} ago)")
    took = "" if presence.last_cycle_seconds is None else f"{presence.last_cycle_seconds:.2f} s"
    return (presence.host, str(presence.pid), state, last, took, str(len(presence.errors)),
            presence.version)


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _time(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat(sep=" ") + "Z"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
           right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows,
                                                                        strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  " + "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                                for i, (cell, w) in enumerate(zip(cells, widths,
                                                                  strict=True))).rstrip()

    return [line(header), *(line(row) for row in rows)]
