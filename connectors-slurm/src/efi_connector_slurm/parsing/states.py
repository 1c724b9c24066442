"""Slurm's job states, exit codes and times, and the one map onto `SchedulerState`.

`map_slurm_state` is the one place where a Slurm state becomes a `SchedulerState` (the table
of DESIGN.md §5); every parser of the package reads its states through it.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from efi_job_manager.toolkit import SchedulerState, SchedulerStatus

__all__ = [
    "CANCELLED_STATES",
    "FAILED_STATES",
    "QUEUED_STATES",
    "RUNNING_STATES",
    "map_slurm_state",
    "parse_exit_code",
    "parse_slurm_time",
]

log = logging.getLogger("efi_connector_slurm.parsing")

#: Waiting to run (the pending reason is kept).
QUEUED_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
)
#: Holding an allocation; none of these is final (COMPLETING is not an ending).
RUNNING_STATES = frozenset(
    {"RUNNING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "STOPPED"}
)
#: Ended without success; the reason names how.
FAILED_STATES = frozenset(
    {
        "FAILED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "PREEMPTED",
        "DEADLINE",
        "SPECIAL_EXIT",
        "REVOKED",
    }
)
#: Cancelled, by a user or an administrator.
CANCELLED_STATES = frozenset({"CANCELLED"})
# Slurm's ways of printing that a field has no value.
_NO_VALUE = frozenset({"", "None", "none", "(null)", "N/A", "n/a", "Unknown", "unknown"})

# squeue's and sacct's compact state codes (``%t``, ``--format=State%2``…), in case a site's
# tools print them.
_COMPACT_STATES = {
    "PD": "PENDING",
    "CF": "CONFIGURING",
    "RQ": "REQUEUED",
    "RH": "REQUEUE_HOLD",
    "RF": "REQUEUE_FED",
    "RD": "RESV_DEL_HOLD",
    "R": "RUNNING",
    "CG": "COMPLETING",
    "RS": "RESIZING",
    "SI": "SIGNALING",
    "SO": "STAGE_OUT",
    "S": "SUSPENDED",
    "ST": "STOPPED",
    "CD": "COMPLETED",
    "F": "FAILED",
    "TO": "TIMEOUT",
    "OOM": "OUT_OF_MEMORY",
    "NF": "NODE_FAIL",
    "BF": "BOOT_FAIL",
    "PR": "PREEMPTED",
    "DL": "DEADLINE",
    "SE": "SPECIAL_EXIT",
    "RV": "REVOKED",
    "CA": "CANCELLED",
}

_EXIT_CODE = re.compile(r"(\d+):(\d+)")
_STATE = re.compile(r"([A-Za-z_]+)\+?(?:\s+by\s+(\d+))?")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M")


def parse_exit_code(text: str) -> tuple[int | None, int | None]:
    """Split Slurm's ``exit:signal`` (``3:0``, ``0:9``) into ``(exit_code, signal)``.

    Returns ``(None, None)`` for an empty or unreadable value.
    """
    match = _EXIT_CODE.fullmatch(text.strip())
    if match is None:
        return None, None
    return int(match.group(1)), int(match.group(2))


def parse_slurm_time(text: str) -> datetime | None:
    """Read a time as Slurm prints it (``2026-11-25T02:11:35``, the cluster's local time).

    Returns a naive datetime, or None for ``Unknown``, ``None``, ``N/A``, an empty field or a
    format this function does not know (a site's ``SLURM_TIME_FORMAT``): times are
    informative, a job's state never depends on them.
    """
    text = text.strip()
    if text in _NO_VALUE:
        return None
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    log.debug("unreadable Slurm time %r", text)
    return None


def _reason(text: str | None) -> str | None:
    """Return a pending/ending reason, or None for Slurm's ways of saying there is none."""
    if text is None:
        return None
    text = text.strip()
    return None if text in _NO_VALUE else text


def map_slurm_state(
    state: str,
    exit_code: int | None = None,
    signal: int | None = None,
    reason: str | None = None,
) -> SchedulerStatus:
    """Map one Slurm job state onto a `SchedulerStatus` (DESIGN.md §5).

    ====================================================================  ====================
    Slurm state                                                           result
    ====================================================================  ====================
    PENDING CONFIGURING REQUEUED REQUEUE_HOLD REQUEUE_FED RESV_DEL_HOLD    QUEUED, reason kept
    RUNNING COMPLETING RESIZING SIGNALING STAGE_OUT SUSPENDED STOPPED     RUNNING
    COMPLETED (exit 0)                                                    COMPLETED
    COMPLETED with a non-zero exit code or signal                         FAILED
    FAILED TIMEOUT OUT_OF_MEMORY NODE_FAIL BOOT_FAIL PREEMPTED DEADLINE   FAILED
    SPECIAL_EXIT REVOKED
    CANCELLED, ``CANCELLED by <uid>``                                     CANCELLED
    anything else                                                         UNKNOWN (logged)
    ====================================================================  ====================

    A trailing ``+`` (sacct's mark that more states follow, ``CANCELLED+``) is ignored, and
    squeue's compact codes (``PD``, ``R``, ``CD``…) are understood.

    The reason of a FAILED status says how it ended: ``TIMEOUT`` (Slurm may report 0:0 for
    it), ``OUT_OF_MEMORY``, ``EXIT_CODE <n>`` for a FAILED job that exited n > 0,
    ``SIGNAL <s>`` for one killed by a signal (``0:9`` is also how a memory kill by
    ``OverMemoryKill`` ends without cgroups; the connector may refine it), Slurm's own reason
    for a FAILED job without an exit code (squeue: ``NonZeroExitCode``), or the state's name
    (``FAILED``, ``NODE_FAIL``, ``PREEMPTED``…). A CANCELLED status has the reason
    ``CANCELLED by <uid>`` when Slurm said who, else ``CANCELLED``.

    Args:
        state: The state as Slurm printed it.
        exit_code: The exit code from ``ExitCode`` (``n`` of ``n:s``), if known.
        signal: The signal from ``ExitCode`` (``s`` of ``n:s``), if known.
        reason: Slurm's reason column (pending reason), if any.

    Returns:
        The status; ``raw`` is ``state`` as given.
    """
    raw = state
    match = _STATE.fullmatch(state.strip())
    if match is None:
        log.warning("unknown Slurm job state %r", raw)
        return SchedulerStatus.unknown(raw=raw)
    name = match.group(1).upper()
    name = _COMPACT_STATES.get(name, name)
    by_uid = match.group(2)

    new_state: SchedulerState
    new_reason: str | None
    if name in QUEUED_STATES:
        new_state, new_reason = SchedulerState.QUEUED, _reason(reason)
    elif name in RUNNING_STATES:
        new_state, new_reason = SchedulerState.RUNNING, _reason(reason)
    elif name == "COMPLETED":
        new_reason = _exit_reason(exit_code, signal)
        new_state = SchedulerState.COMPLETED if new_reason is None else SchedulerState.FAILED
    elif name == "FAILED":
        new_reason = _exit_reason(exit_code, signal) or _reason(reason) or name
        new_state = SchedulerState.FAILED
    elif name in FAILED_STATES:
        new_state, new_reason = SchedulerState.FAILED, name
    elif name in CANCELLED_STATES:
        new_state = SchedulerState.CANCELLED
        new_reason = f"CANCELLED by {by_uid}" if by_uid else "CANCELLED"
    else:
        log.warning("unknown Slurm job state %r", raw)
        new_state, new_reason = SchedulerState.UNKNOWN, None
    return _status(new_state, new_reason, raw, exit_code, signal)


def _status(
    state: SchedulerState, reason: str | None, raw: str, exit_code: int | None, signal: int | None
) -> SchedulerStatus:
    """Build a status that carries Slurm's raw state, exit code and signal."""
    return SchedulerStatus(state, reason=reason, raw=raw, exit_code=exit_code, signal=signal)


def _exit_reason(exit_code: int | None, signal: int | None) -> str | None:
    """``EXIT_CODE n`` / ``SIGNAL s`` for a non-zero exit code or signal, else None."""
    if exit_code:
        return f"EXIT_CODE {exit_code}"
    if signal:
        return f"SIGNAL {signal}"
    return None
