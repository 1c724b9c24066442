"""Reading what Slurm's client commands print (pure: nothing here runs a program).

Every parser works line by line: a line it cannot read is logged and skipped, and never
costs the other jobs their status. `map_slurm_state` is the one place where a Slurm state
becomes a `SchedulerState` (the table of DESIGN.md §5).

The outputs these functions read are the ones asked for by `efi_connector_slurm.commands`;
``tests/data`` holds what a real Slurm 22.05 printed for each scenario.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime

import attrs

from efi_connector_slurm.commands import SACCT_FIELDS, SQUEUE_FIELDS
from efi_job_manager.toolkit import PermanentError, SchedulerState, SchedulerStatus, TransientError

__all__ = [
    "CANCELLED_STATES",
    "FAILED_STATES",
    "QUEUED_STATES",
    "RUNNING_STATES",
    "accounting_unavailable",
    "classify_sbatch_error",
    "map_slurm_state",
    "parse_exit_code",
    "parse_find_job",
    "parse_partitions",
    "parse_sacct",
    "parse_sbatch_output",
    "parse_scontrol_show_job",
    "parse_slurm_time",
    "parse_squeue",
    "parse_workdirs",
    "scontrol_fields",
]

log = logging.getLogger(__name__)

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
CANCELLED_STATES = frozenset({"CANCELLED"})

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

# A job (not a step): 123, an array task 123_4 or a pending array 123_[1-9%2], a
# heterogeneous job component 123+1.
_JOB_ID = re.compile(r"\d+(?:_\d+|_\[[0-9,\-%:]+\]|\+\d+)?")
_STEP_ID = re.compile(r"\d+(?:_\d+|_\[[0-9,\-%:]+\]|\+\d+)?\.\S+")
_SBATCH_ID = re.compile(r"(\d+)(?:;\S+)?")
_EXIT_CODE = re.compile(r"(\d+):(\d+)")
_STATE = re.compile(r"([A-Za-z_]+)\+?(?:\s+by\s+(\d+))?")
_NO_VALUE = frozenset({"", "None", "none", "(null)", "N/A", "n/a", "Unknown", "unknown"})
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M")

# Errors after which trying again later can succeed. Note that a reply lost on its way back
# (socket timeout) may hide a job that *was* created: find it by name before resubmitting.
_TRANSIENT_ERRORS = tuple(
    s.lower()
    for s in (
        "temporarily unavailable",  # "Resource temporarily unavailable" and the like
        "temporarily unable",  # "Slurm temporarily unable to accept job, sleeping and retrying"
        "Socket timed out",
        "Unable to contact slurm controller",
        "connect failure",
        "Connection refused",
        "Connection timed out",
        "Connection reset",
        "Zero Bytes were transmitted or received",
        "Transport endpoint is not connected",
        "backup controller in standby mode",
        "Communication connection failure",
        "Slurm controller not responding",
        # QOSMaxSubmitJobPerUserLimit, AssocMaxSubmitJobLimit: frees up as jobs end. (Not the
        # generic "Job violates accounting/QOS policy (job submit limit, …)" line that follows
        # it: Slurm prints that one for size and time limits too.)
        "MaxSubmitJob",
    )
)


def parse_sbatch_output(stdout: str) -> str:
    """Return the job id printed by ``sbatch --parsable``.

    sbatch prints ``ID``, or ``ID;cluster`` on a federation or with ``--clusters``. The last
    non-empty line is read, so a login banner or a site profile's chatter before it does not
    matter.

    Raises:
        PermanentError: there is no id in the output (the text is in the message).
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    match = _SBATCH_ID.fullmatch(lines[-1]) if lines else None
    if match is None:
        raise PermanentError(f"sbatch printed no job id: {stdout.strip()!r}")
    return match.group(1)


def classify_sbatch_error(
    returncode: int, stderr: str
) -> type[TransientError] | type[PermanentError]:
    """Tell whether a failed ``sbatch`` is worth trying again.

    Transient (retry later, nothing about the job changes): the controller is unreachable,
    busy or timed out (``Unable to contact slurm controller``, ``Socket timed out…``,
    ``Slurm temporarily unable to accept job``, ``Resource temporarily unavailable``,
    ``connect failure``…), a submit-count limit that frees up as jobs end
    (``QOSMaxSubmitJobPerUserLimit``), sbatch killed by a signal (negative return code), ssh
    failing to connect (255), or sbatch not found (126/127: the cluster's environment is
    broken, not the job). A lost reply may hide a job that was created: look it up by name
    before submitting again.

    Permanent (the job as written will never be accepted): ``Invalid partition``,
    ``Invalid account``, ``Invalid qos``, and any other ``Batch job submission failed: …``
    or unrecognised error.

    Args:
        returncode: sbatch's exit status (as `subprocess` reports it).
        stderr: What sbatch (or ssh) wrote to stderr.

    Returns:
        `TransientError` or `PermanentError` (the class, for the caller to raise).
    """
    text = stderr.lower()
    if any(marker in text for marker in _TRANSIENT_ERRORS):
        return TransientError
    if returncode < 0 or returncode in (126, 127, 255):
        return TransientError
    return PermanentError


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


def _split_fields(line: str, count: int, name_index: int | None) -> list[str] | None:
    """Split a ``|``-separated line of ``count`` fields; field ``name_index`` is free text.

    A job name may itself hold ``|``: the fields before it are read from the start and the
    fields after it from the end. Without a free-text field the count must be exact.
    Returns None when the line does not have the fields it should.
    """
    parts = line.split("|")
    if name_index is None:
        return parts if len(parts) == count else None
    if len(parts) < count:
        return None
    tail = count - name_index - 1
    name = "|".join(parts[name_index : len(parts) - tail])
    return [*parts[:name_index], name, *parts[len(parts) - tail :]]


def _job_key(job_id: str, line: str, source: str) -> str | None:
    """Return ``job_id`` if it names a job, None for a step (``N.batch``) or a bad id."""
    if _JOB_ID.fullmatch(job_id):
        return job_id
    if not _STEP_ID.fullmatch(job_id):
        log.warning("skipping a %s line with an unreadable job id: %r", source, line)
    return None


def parse_sacct(stdout: str, fields: Sequence[str] = SACCT_FIELDS) -> dict[str, SchedulerStatus]:
    """Read ``sacct --parsable2 --noheader --format <fields>`` output (normally with ``-X``).

    One job per line; steps (``N.batch``, ``N.extern``, ``N.0``), should they appear, are
    skipped. Array tasks keep their id as text (``123_4``). A malformed line is logged and
    skipped without touching the others. If a job appears twice (``--duplicates``), the last
    line, the most recent record, wins.

    Args:
        stdout: What sacct printed.
        fields: The ``--format`` field names in order (case does not matter). ``JobID`` and
            ``State`` are required; ``ExitCode``, ``Reason``, ``Submit``, ``Start`` and
            ``End`` are used when present, other fields are ignored. Defaults to
            `commands.SACCT_FIELDS`, what `commands.sacct_command` asks for.

    Returns:
        Job id → status, with ``raw`` the whole sacct line. Jobs sacct did not print are not
        keys: absence proves nothing (a held job can be missing from sacct for a while).

    Raises:
        ValueError: ``fields`` lacks ``JobID`` or ``State``.
    """
    index = {name.lower(): i for i, name in enumerate(fields)}
    if "jobid" not in index or "state" not in index:
        raise ValueError(f"sacct fields must include JobID and State, got {list(fields)}")

    def get(parts: list[str], name: str) -> str:
        i = index.get(name)
        return "" if i is None else parts[i]

    result: dict[str, SchedulerStatus] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        parts = _split_fields(line, len(fields), index.get("jobname"))
        if parts is None:
            log.warning("skipping a malformed sacct line: %r", line)
            continue
        key = _job_key(get(parts, "jobid").strip(), line, "sacct")
        if key is None:
            continue
        exit_code, signal = parse_exit_code(get(parts, "exitcode"))
        status = map_slurm_state(get(parts, "state"), exit_code, signal, get(parts, "reason"))
        result[key] = attrs.evolve(
            status,
            raw=line,
            submitted=parse_slurm_time(get(parts, "submit")),
            started=parse_slurm_time(get(parts, "start")),
            ended=parse_slurm_time(get(parts, "end")),
        )
    return result


def parse_squeue(stdout: str) -> dict[str, SchedulerStatus]:
    """Read ``squeue --noheader --format=%i|%j|%T|%r`` output (see `commands.squeue_command`).

    squeue reports no exit code: a FAILED job seen only here has the reason ``FAILED``. A
    malformed line is logged and skipped.

    Returns:
        Job id → status, with ``raw`` the whole line. A job slurmctld does not hold is absent.
    """
    result: dict[str, SchedulerStatus] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        parts = _split_fields(line, len(SQUEUE_FIELDS), SQUEUE_FIELDS.index("%j"))
        if parts is None:
            log.warning("skipping a malformed squeue line: %r", line)
            continue
        job_id, _name, state, reason = parts
        key = _job_key(job_id.strip(), line, "squeue")
        if key is None:
            continue
        result[key] = attrs.evolve(map_slurm_state(state, None, None, reason), raw=line)
    return result


def scontrol_fields(line: str) -> dict[str, str]:
    """Split one ``scontrol show job -o`` line into its ``Key=Value`` pairs.

    A word without ``=`` continues the previous value (a job name or a path with spaces).
    """
    fields: dict[str, str] = {}
    key: str | None = None
    for word in line.split(" "):
        if not word:
            continue
        name, sep, value = word.partition("=")
        if sep and name and (name[0].isalpha()):
            key = name
            fields[key] = value
        elif key is not None:
            fields[key] = f"{fields[key]} {word}"
    return fields


def parse_scontrol_show_job(stdout: str) -> dict[str, SchedulerStatus]:
    """Read ``scontrol show job -o`` output: one job per line, ``Key=Value`` words.

    Uses ``JobId`` (``ArrayJobId_ArrayTaskId`` for an array task, as sacct names it),
    ``JobState``, ``Reason``, ``ExitCode``, ``SubmitTime``, ``StartTime`` and ``EndTime``.
    Note that scontrol reports a timed-out or cancelled job's ExitCode as ``0:15`` where
    sacct says ``0:0``; the state decides either way. A line without ``JobId`` or
    ``JobState`` is logged and skipped.

    Returns:
        Job id → status, with ``raw`` the whole line.
    """
    result: dict[str, SchedulerStatus] = {}
    for line in stdout.splitlines():
        if not line.strip():
            continue
        fields = scontrol_fields(line.strip())
        job_id = fields.get("JobId", "")
        state = fields.get("JobState")
        if not job_id.isdigit() or not state:
            log.warning("skipping an unreadable scontrol line: %r", line)
            continue
        array_job, array_task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        if array_job and array_task and array_job.isdigit():
            job_id = f"{array_job}_{array_task}"
        exit_code, signal = parse_exit_code(fields.get("ExitCode", ""))
        status = map_slurm_state(state, exit_code, signal, fields.get("Reason"))
        result[job_id] = attrs.evolve(
            status,
            raw=line,
            submitted=parse_slurm_time(fields.get("SubmitTime", "")),
            started=parse_slurm_time(fields.get("StartTime", "")),
            ended=parse_slurm_time(fields.get("EndTime", "")),
        )
    return result


def _id_sort_key(job_id: str) -> tuple[int, int, str]:
    """Order job ids by submission: the numeric id, then the array task or component."""
    head = re.match(r"(\d+)(?:[_+](\d+))?", job_id)
    if head is None:  # cannot happen for ids that passed _JOB_ID
        return (0, 0, job_id)
    return (int(head.group(1)), int(head.group(2) or 0), job_id)


def parse_find_job(stdout: str) -> list[str]:
    """Return the job ids listed by `commands.find_job_command` and/or the sacct variant.

    Reads the first ``|``-separated field of each line, so the squeue and the sacct outputs
    may be given alone or joined together. Steps and unreadable lines are skipped, each id
    appears once, and the ids come oldest first (Slurm's ids grow with submission).
    """
    ids: set[str] = set()
    for line in stdout.splitlines():
        if not line.strip():
            continue
        job_id = line.split("|", 1)[0].strip()
        key = _job_key(job_id, line, "job listing")
        if key is not None:
            ids.add(key)
    return sorted(ids, key=_id_sort_key)


def parse_workdirs(stdout: str) -> dict[str, str]:
    """Read ``sacct --parsable2 --noheader --format JobID,WorkDir`` output: job id → directory.

    Steps and unreadable lines are skipped; a directory may itself hold ``|``.
    """
    result: dict[str, str] = {}
    for line in stdout.splitlines():
        job_id, sep, workdir = line.partition("|")
        if not sep or not workdir.strip():
            continue
        key = _job_key(job_id.strip(), line, "sacct WorkDir")
        if key is not None:
            result[key] = workdir
    return result


def parse_partitions(stdout: str) -> list[str]:
    """Read ``sinfo -h -o %P``: the partition names, without the default one's ``*`` mark."""
    names: dict[str, None] = {}
    for line in stdout.splitlines():
        name = line.strip().rstrip("*")
        if name:
            names[name] = None
    return list(names)


# What sacct prints when it cannot use accounting: AccountingStorageType=none, or slurmdbd
# unreachable ("Problem talking to the database: Connection refused").
_ACCOUNTING_UNAVAILABLE = (
    "accounting storage is disabled",
    "problem talking to the database",
    "slurm_persist_conn_open",
    "slurmdbd",
)


def accounting_unavailable(stderr: str) -> bool:
    """Whether sacct's error says that accounting is disabled or slurmdbd is unreachable."""
    text = stderr.lower()
    return any(marker in text for marker in _ACCOUNTING_UNAVAILABLE)
