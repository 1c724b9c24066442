"""Reading what ``squeue`` prints: job states (`parse_squeue`) and jobs found by name.

`parse_find_job` also reads the sacct listing of `commands.find_job_sacct_command`, alone or
joined to squeue's: both put the job id first.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from efi_connector_slurm.commands import SQUEUE_FIELDS
from efi_connector_slurm.parsing.lines import id_sort_key, job_key, split_fields
from efi_connector_slurm.parsing.states import map_slurm_state
from efi_job_manager.toolkit import SchedulerStatus

__all__ = ["SqueueMemo", "parse_find_job", "parse_squeue"]

log = logging.getLogger("efi_connector_slurm.parsing")

#: Lines of an earlier listing, each with the job id and the status read from it.
SqueueMemo = dict[str, tuple[str, SchedulerStatus]]


def parse_squeue(stdout: str, wanted: Collection[str] | None = None,
                 memo: SqueueMemo | None = None) -> dict[str, SchedulerStatus]:
    """Read ``squeue --noheader --format=%i|%j|%T|%r`` output (see `commands.squeue_command`).

    squeue reports no exit code: a FAILED job seen only here has the reason ``FAILED``. A
    malformed line is logged and skipped. With ``wanted``, only the lines of those job ids
    are read (a listing of every job of a user holds others too). With ``memo`` (only with
    ``wanted``), a line seen in the previous listing is not read again: its status is
    reused (the line is the whole of what it was read from); the memo then holds this
    listing's lines.

    Returns:
        Job id → status, with ``raw`` the whole line. A job slurmctld does not hold is absent.
    """
    result: dict[str, SchedulerStatus] = {}
    mapped: dict[tuple[str, str], SchedulerStatus] = {}  # a listing repeats a few states
    count, name_index = len(SQUEUE_FIELDS), SQUEUE_FIELDS.index("%j")
    keep = memo if wanted is not None else None
    previous: SqueueMemo = {}
    if keep is not None:
        previous = keep.copy()
        keep.clear()
    for line in stdout.splitlines():
        seen = previous.get(line)
        if seen is not None and keep is not None and wanted is not None:
            if seen[0] in wanted:
                result[seen[0]] = seen[1]
                keep[line] = seen
            continue
        if not line.strip():
            continue
        if wanted is not None and line.partition("|")[0].strip() not in wanted:
            continue
        fields = line.split("|")  # only a job name holding "|" needs split_fields
        parts = fields if len(fields) == count else split_fields(line, count, name_index)
        if parts is None:
            log.warning("skipping a malformed squeue line: %r", line)
            continue
        job_id, _name, state, reason = parts
        # an id asked for is a job id already (a step or a bad id is not asked for)
        key = job_id.strip() if wanted is not None else job_key(job_id.strip(), line, "squeue")
        if key is None:
            continue
        status = mapped.get((state, reason))
        if status is None:
            status = mapped[state, reason] = map_slurm_state(state, None, None, reason)
        result[key] = SchedulerStatus(status.state, reason=status.reason, raw=line,
                                      exit_code=status.exit_code, signal=status.signal)
        if keep is not None:
            keep[line] = (key, result[key])
    return result


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
        key = job_key(job_id, line, "job listing")
        if key is not None:
            ids.add(key)
    return sorted(ids, key=id_sort_key)
