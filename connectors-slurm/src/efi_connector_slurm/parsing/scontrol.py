"""Reading what ``scontrol show job -o`` prints: one job per line, ``Key=Value`` words."""

from __future__ import annotations

import logging

import attrs

from efi_connector_slurm.parsing.states import map_slurm_state, parse_exit_code, parse_slurm_time
from efi_job_manager.toolkit import SchedulerStatus

__all__ = ["parse_scontrol_show_job", "scontrol_fields"]

log = logging.getLogger("efi_connector_slurm.parsing")


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
