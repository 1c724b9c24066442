"""Reading what ``sacct`` prints: job records (`parse_sacct`) and working directories."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import attrs

from efi_connector_slurm.commands import SACCT_FIELDS
from efi_connector_slurm.parsing.lines import job_key, split_fields
from efi_connector_slurm.parsing.states import map_slurm_state, parse_exit_code, parse_slurm_time
from efi_job_manager.toolkit import SchedulerStatus

__all__ = ["parse_sacct", "parse_workdirs"]

log = logging.getLogger("efi_connector_slurm.parsing")


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
        parts = split_fields(line, len(fields), index.get("jobname"))
        if parts is None:
            log.warning("skipping a malformed sacct line: %r", line)
            continue
        key = job_key(get(parts, "jobid").strip(), line, "sacct")
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


def parse_workdirs(stdout: str) -> dict[str, str]:
    """Read ``sacct --parsable2 --noheader --format JobID,WorkDir`` output: job id → directory.

    Steps and unreadable lines are skipped; a directory may itself hold ``|``.
    """
    result: dict[str, str] = {}
    for line in stdout.splitlines():
        job_id, sep, workdir = line.partition("|")
        if not sep or not workdir.strip():
            continue
        key = job_key(job_id.strip(), line, "sacct WorkDir")
        if key is not None:
            result[key] = workdir
    return result
