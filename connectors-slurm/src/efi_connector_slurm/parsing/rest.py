"""Reading slurmrestd's JSON answers (Slurm 22.05, ``openapi/v0.0.38`` and ``dbv0.0.38``).

Every fact here was read from the lab's slurmrestd (``tests/slurm/capture_rest.py``; the
answers are in the tests' ``data/rest``):

- ``GET /slurm/v0.0.38/jobs`` lists the jobs slurmctld holds, every user's: ``job_state``,
  ``state_reason`` (``"None"`` when there is none) and ``exit_code``, the raw wait status
  (768 for ``exit 3``, 15 for a job ended by SIGTERM); `parse_rest_jobs`.
- ``GET /slurmdb/v0.0.38/jobs`` answers from accounting: ``state.current``,
  ``kill_request_user`` for a cancelled job, and ``exit_code`` as ``{status, return_code,
  signal}``. In 22.05.8 a job that exited 3 is reported FAILED with return code 0 (sacct says
  ``3:0``): a FAILED job's zero return code is read as unknown, not as 0;
  `parse_rest_accounting`.
- ``POST /slurm/v0.0.38/job/submit`` answers ``job_id`` when the job was created, with
  ``errors`` that may still hold a notice (2042, a held job); a refused job has no
  ``job_id`` and HTTP 500 with Slurm's message (``Invalid partition name specified``);
  `parse_rest_submit`.
- ``DELETE /slurm/v0.0.38/job/<id>`` of a job slurmctld no longer holds is HTTP 500 with
  error 2017, ``Invalid job id specified``: for a cancel, the job is gone already;
  `rest_cancel_error`. An accounting query that matched nothing is error 9003, not an
  empty answer; `accounting_failure`.
- A token that is wrong or expired is not a 401: the request fails with HTTP 500, ``Unspecified
  error`` from ``slurm_load_ctl_conf``; no token at all is a 401 (the client's business).
  `rest_failure` names it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import attrs

from efi_connector_slurm.parsing.errors import classify_sbatch_error
from efi_connector_slurm.parsing.lines import log
from efi_connector_slurm.parsing.states import map_slurm_state
from efi_job_manager.toolkit import SchedulerStatus, TransientError

__all__ = [
    "INVALID_JOB_ID",
    "NOTHING_FOUND",
    "accounting_failure",
    "parse_rest_accounting",
    "parse_rest_jobs",
    "parse_rest_submit",
    "rest_cancel_error",
    "rest_failure",
    "rest_records",
]

#: Slurm's error number for a job id slurmctld does not hold (``ESLURM_INVALID_JOB_ID``).
INVALID_JOB_ID = 2017
#: slurmrestd's error number for an accounting query that matched no job.
NOTHING_FOUND = 9003
# The source of the error slurmrestd 22.05 answers when slurmctld refused its token.
# A refused token, as slurmrestd 22.05.8 reports it (measured on the lab): slurmctld's calls
# fail with an "Unspecified error" (-1) from these sources, slurmdbd's with error 1007.
_REFUSED_SOURCES = frozenset({"slurm_load_ctl_conf", "slurm_load_jobs"})
_AUTHENTICATION_ERROR = 1007  # SLURM_PROTOCOL_AUTHENTICATION_ERROR
# The fields of a job kept in a status's ``raw`` text.
_LIVE_FIELDS = ("job_id", "name", "job_state", "state_reason", "exit_code", "user_name")


def rest_records(document: Mapping[str, Any], key: str = "jobs") -> list[Mapping[str, Any]]:
    """The objects of an answer's list ``key`` (``jobs``, ``partitions``…); others left out."""
    found = document.get(key)
    return [e for e in found if isinstance(e, Mapping)] if isinstance(found, list) else []


def _errors(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = document.get("errors")
    return [e for e in found if isinstance(e, Mapping)] if isinstance(found, list) else []


def _error_number(error: Mapping[str, Any]) -> int | None:
    number = error.get("error_number", error.get("error_code"))
    return number if isinstance(number, int) else None


def _error_text(error: Mapping[str, Any]) -> str:
    parts = [str(error[k]) for k in ("error", "description") if error.get(k)]
    return ": ".join(dict.fromkeys(parts)) or json.dumps(dict(error), sort_keys=True)


def rest_failure(document: Mapping[str, Any]) -> str | None:
    """What went wrong with a request, from its ``errors``; None if nothing did.

    A refused token is said as such, so that an operator knows to renew it: slurmdbd's
    answer names it (error 1007), slurmctld's does not (an ``Unspecified error`` of
    ``slurm_load_ctl_conf`` or ``slurm_load_jobs``, which a controller down gives too).
    """
    errors = _errors(document)
    if not errors:
        return None
    text = "; ".join(_error_text(e) for e in errors)
    if any(_error_number(e) == _AUTHENTICATION_ERROR for e in errors):
        return ("Slurm refused slurmrestd's token (wrong or expired: renew it with `scontrol "
                f"token`): {text}")
    if _refused(errors):
        return ("slurmrestd could not act for its user (a token that is wrong or expired, or "
                f"slurmctld down): {text}")
    return text


def _refused(errors: list[Mapping[str, Any]]) -> bool:
    return any(e.get("source") in _REFUSED_SOURCES or _error_number(e) == _AUTHENTICATION_ERROR
               for e in errors)


def _wait_status(value: Any) -> tuple[int | None, int | None]:
    """``exit_code`` of the jobs listing, a raw wait status: (exit code, signal)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None, None
    signal = value & 0x7F
    return (0, signal) if signal else (value >> 8, None)


def _raw(job: Mapping[str, Any], fields: Collection[str]) -> str:
    return json.dumps({k: job.get(k) for k in fields}, sort_keys=True)


def parse_rest_jobs(document: Mapping[str, Any],
                    wanted: Collection[str] | None = None) -> dict[str, SchedulerStatus]:
    """The statuses of ``GET /slurm/v0.0.38/jobs`` (or ``/job/<id>``): job id → status.

    The exit code and signal come from the raw wait status of an ended job. With ``wanted``,
    only those job ids are read (the listing holds every user's jobs). ``raw`` is the job's
    id, name, state, reason, exit code and user as JSON. A job that cannot be read is
    logged and left out.
    """
    jobs = document.get("jobs")
    result: dict[str, SchedulerStatus] = {}
    for job in jobs if isinstance(jobs, list) else []:
        job_id = job.get("job_id") if isinstance(job, Mapping) else None
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            log.warning("skipping a job of slurmrestd's listing without a job id: %.200r", job)
            continue
        key = str(job_id)
        if wanted is not None and key not in wanted:
            continue
        state = job.get("job_state")
        if not isinstance(state, str):
            log.warning("skipping job %s of slurmrestd's listing: no job_state", key)
            continue
        exit_code, signal = _wait_status(job.get("exit_code"))
        reason = job.get("state_reason")
        status = map_slurm_state(state, exit_code, signal,
                                 reason if isinstance(reason, str) else None)
        result[key] = attrs.evolve(status, raw=_raw(job, _LIVE_FIELDS))
    return result


def _accounting_exit(job: Mapping[str, Any], state: str) -> tuple[int | None, int | None]:
    """(exit code, signal) of an accounting record; a FAILED job's 0 is unknown (22.05.8)."""
    exit_code = job.get("exit_code")
    if not isinstance(exit_code, Mapping):
        return None, None
    signal_info = exit_code.get("signal")
    signal = signal_info.get("signal_id") if isinstance(signal_info, Mapping) else None
    code = exit_code.get("return_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    signal = signal if isinstance(signal, int) and not isinstance(signal, bool) else None
    if state.upper() == "FAILED" and not code and not signal:
        return None, None
    return code, signal


def parse_rest_accounting(document: Mapping[str, Any],
                          wanted: Collection[str] | None = None) -> dict[str, SchedulerStatus]:
    """The statuses of ``GET /slurmdb/v0.0.38/jobs`` (or ``/job/<id>``): job id → status.

    A cancelled job names who cancelled it (``CANCELLED by <user>``) when accounting says.
    Absence proves nothing (a job held since its submission may be missing for a while).
    ``raw`` holds the record's id, name, state, exit code and user as JSON.
    """
    jobs = document.get("jobs")
    result: dict[str, SchedulerStatus] = {}
    for job in jobs if isinstance(jobs, list) else []:
        job_id = job.get("job_id") if isinstance(job, Mapping) else None
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            log.warning("skipping an accounting record without a job id: %.200r", job)
            continue
        key = str(job_id)
        if wanted is not None and key not in wanted:
            continue
        state_info = job.get("state")
        state = state_info.get("current") if isinstance(state_info, Mapping) else None
        if not isinstance(state, str):
            log.warning("skipping accounting record %s: no state", key)
            continue
        exit_code, signal = _accounting_exit(job, state)
        reason = state_info.get("reason") if isinstance(state_info, Mapping) else None
        status = map_slurm_state(state, exit_code, signal,
                                 reason if isinstance(reason, str) else None)
        killer = job.get("kill_request_user")
        if status.reason == "CANCELLED" and isinstance(killer, str) and killer:
            status = attrs.evolve(status, reason=f"CANCELLED by {killer}")
        raw = {k: job.get(k) for k in ("job_id", "name", "state", "exit_code", "user",
                                       "kill_request_user")}
        result[key] = attrs.evolve(status, raw=json.dumps(raw, sort_keys=True))
    return result


def parse_rest_submit(status: int, document: Mapping[str, Any]) -> str:
    """The job id of a ``POST /slurm/v0.0.38/job/submit`` answer.

    Raises:
        PermanentError: Slurm refused the job (``Invalid partition name specified``…): the
            job as written will never be accepted.
        TransientError: no job id and a transient reason (slurmctld busy or unreachable, a
            refused token), or an answer without a job id nor an error.
    """
    job_id = document.get("job_id")
    if isinstance(job_id, int) and not isinstance(job_id, bool) and job_id > 0:
        return str(job_id)
    why = rest_failure(document)
    if why is None:
        raise TransientError(f"slurmrestd answered HTTP {status} without a job id or an error")
    if _refused(_errors(document)):
        raise TransientError(why)
    raise classify_sbatch_error(1, why)(why)


def accounting_failure(document: Mapping[str, Any]) -> str | None:
    """Why a ``GET /slurmdb/v0.0.38/jobs`` failed; None if it did not.

    A query that matched no job (error 9003, ``Nothing found with query``) is an answer.
    """
    errors = [e for e in _errors(document) if _error_number(e) != NOTHING_FOUND]
    return rest_failure({"errors": errors})


def rest_cancel_error(document: Mapping[str, Any]) -> str | None:
    """Why a ``DELETE /slurm/v0.0.38/job/<id>`` failed; None if it did not.

    A job slurmctld does not hold (error 2017) is not a failure: it has ended already.
    """
    errors = [e for e in _errors(document) if _error_number(e) != INVALID_JOB_ID]
    return rest_failure({"errors": errors})
