"""The status of one submission, told from its record, its wrapper's files and ``/proc``.

Nothing here is kept in memory: a record in the state directory, the wrapper's
``wrapper.json`` and ``exit.json`` in the run folder and the process table are all a
new connector instance (a restarted manager) needs to tell how a job is doing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from efi_connector_local.files import EXIT_FILE, WRAPPER_FILE, parse_time, read_json, utc_now
from efi_connector_local.processes import ProcessId, is_alive
from efi_connector_local.records import JobRecord, StateStore
from efi_job_manager.toolkit import SchedulerState, SchedulerStatus

__all__ = ["START_GRACE", "process_of", "record_status"]

#: How long a submission may take to show a live wrapper before it counts as never started.
START_GRACE = 60.0


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def process_of(record: JobRecord) -> tuple[ProcessId | None, datetime | None]:
    """Return the wrapper's process and the time it started, as far as they are known."""
    if record.process is not None:
        return record.process, record.started
    data = read_json(record.run_dir / WRAPPER_FILE) or {}
    pid, ticks = _int_or_none(data.get("pid")), _int_or_none(data.get("start_ticks"))
    if pid is None or ticks is None:
        return None, None
    return ProcessId(pid, ticks), parse_time(data.get("started"))


def record_status(record: JobRecord, store: StateStore) -> SchedulerStatus:
    """Return the status of the submission ``record`` describes (see `LocalConnector`)."""
    sid = record.scheduler_id
    if record.launch_error is not None:
        return SchedulerStatus(
            SchedulerState.FAILED,
            reason=f"LAUNCH: {record.launch_error}",
            raw=f"local job {sid}: the wrapper could not be started",
            submitted=record.submitted,
        )
    cancelled = store.is_cancelled(sid)
    process, started = process_of(record)
    # Liveness first, exit.json second: a wrapper seen dead has already written
    # exit.json if it ever will, so a missing file then means it never will.
    alive = process is not None and is_alive(process)
    outcome = read_json(record.run_dir / EXIT_FILE)
    if outcome is not None:
        return _ended(record, outcome, cancelled)
    if alive and process is not None:
        return SchedulerStatus(
            SchedulerState.RUNNING,
            reason="CANCELLING" if cancelled else None,
            raw=f"local job {sid}: wrapper pid {process.pid} is running",
            submitted=record.submitted,
            started=started,
        )
    if process is None:
        if cancelled:
            return SchedulerStatus(
                SchedulerState.CANCELLED,
                reason="CANCELLED before it started",
                raw=f"local job {sid}: cancelled before the wrapper started",
                submitted=record.submitted,
            )
        if (utc_now() - record.submitted).total_seconds() < START_GRACE:
            return SchedulerStatus(
                SchedulerState.QUEUED,
                reason="STARTING",
                raw=f"local job {sid}: the wrapper is starting",
                submitted=record.submitted,
            )
        return SchedulerStatus(
            SchedulerState.FAILED,
            reason="LOST: the process was never started",
            raw=f"local job {sid}: no wrapper started within {START_GRACE:g} s",
            submitted=record.submitted,
        )
    raw = (
        f"local job {sid}: wrapper pid {process.pid} is gone and wrote no "
        f"{record.run_dir / EXIT_FILE}"
    )
    if cancelled:
        return SchedulerStatus(
            SchedulerState.CANCELLED,
            reason="CANCELLED",
            raw=raw,
            submitted=record.submitted,
            started=started,
        )
    return SchedulerStatus(
        SchedulerState.FAILED,
        reason="LOST: the process ended without recording an exit code",
        raw=raw,
        submitted=record.submitted,
        started=started,
    )


def _ended(record: JobRecord, outcome: dict[str, Any], cancelled: bool) -> SchedulerStatus:
    """Return the status of a run whose wrapper wrote ``outcome`` (``exit.json``)."""
    exit_code = _int_or_none(outcome.get("exit_code"))
    sig = _int_or_none(outcome.get("signal"))
    received = _int_or_none(outcome.get("received_signal"))
    error = outcome.get("error") if isinstance(outcome.get("error"), str) else None
    succeeded = exit_code == 0 and sig is None
    if cancelled and (received is not None or not succeeded):
        state, reason = SchedulerState.CANCELLED, "CANCELLED"
    elif succeeded:
        state, reason = SchedulerState.COMPLETED, None
    else:
        state = SchedulerState.FAILED
        if sig is not None:
            reason = f"SIGNAL {sig}"
        elif exit_code is not None:
            reason = f"EXIT_CODE {exit_code}"
        elif received is not None:
            reason = f"SIGNAL {received}"
        else:
            reason = "LOST: the wrapper recorded no exit code"
        if error:
            reason = f"{reason}: {error}"
    return SchedulerStatus(
        state,
        reason=reason,
        raw=json.dumps(outcome, sort_keys=True),
        exit_code=exit_code,
        signal=sig,
        submitted=record.submitted,
        started=parse_time(outcome.get("started")) or record.started,
        ended=parse_time(outcome.get("ended")),
    )
