"""The status of many jobs at once through slurmrestd: one live listing, accounting for the rest.

The same rules as the command line's `efi_connector_slurm.statuses`, over the REST API:

- one ``GET /slurm/v0.0.38/jobs`` lists every job slurmctld holds: a job still queued or
  running is answered from it, whatever the number of jobs;
- the jobs that have left it, or that it shows ended, are asked of accounting, ``GET
  /slurmdb/v0.0.38/jobs?step=<ids>`` per ``chunk_size`` ids (``step`` is sacct's ``-j``;
  its commas must be percent-encoded, which the client does): an ending needs accounting's
  word, and accounting answers while slurmctld is down;
- slurmrestd 22.05.8's accounting gives a job that exited 3 the return code 0: a FAILED
  record without an exit code takes the one of the live listing, while slurmctld still
  holds the job (its raw wait status);
- an ended job only the listing shows (accounting lagging or down) is answered from it.

A job nobody reports is UNKNOWN, never finished or lost: the manager decides after its grace
period. Only plain job ids are asked about (the manager's jobs are never arrays). The output
files each answer names (the listing's ``standard_output``/``standard_error``, accounting's
``slurm-<id>.out``/``.err`` in the working directory) are kept for the memory-kill check
(`RestStatusReader.memory_kill_files`), which the connector makes through its transport.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from efi_connector_slurm.commands import chunks
from efi_connector_slurm.parsing import (
    accounting_failure,
    parse_rest_accounting,
    parse_rest_jobs,
    rest_failure,
    rest_records,
)
from efi_connector_slurm.rest.client import API_VERSION, RestClient
from efi_job_manager.toolkit import SchedulerState, SchedulerStatus, TransientError

__all__ = ["RestStatusReader"]

_JOBS = f"/slurm/{API_VERSION}/jobs"
_ACCOUNTING = f"/slurmdb/{API_VERSION}/jobs"

_Found = tuple[dict[str, SchedulerStatus], str | None]


class RestStatusReader:
    """Answers `SlurmConnector.get_job_statuses` through slurmrestd.

    Args:
        client: The client of the destination's slurmrestd.
        chunk_size: Job ids per accounting request.
    """

    def __init__(self, client: RestClient, chunk_size: int) -> None:
        """Remember the client; nothing is asked yet."""
        self.client = client
        self.chunk_size = chunk_size
        self._files: dict[str, list[str]] = {}  # the last answer's output files, by job id

    def read(self, scheduler_ids: Iterable[str]) -> dict[str, SchedulerStatus]:
        """Return the status of every id (see the module's description).

        Raises:
            TransientError: neither the listing nor accounting could answer, or slurmrestd
                cannot be reached.
        """
        result: dict[str, SchedulerStatus] = {}
        self._files = {}
        valid: list[str] = []
        for sid in dict.fromkeys(str(s) for s in scheduler_ids):
            if sid.isascii() and sid.isdigit():
                valid.append(sid)
            else:
                result[sid] = SchedulerStatus.unknown(raw=sid, reason="not a Slurm job id")
        if not valid:
            return result
        listed, listing_error = self._listing(valid)
        ask = [sid for sid in valid if sid not in listed or listed[sid].state.is_terminal]
        found, accounting_error = self._accounting(ask) if ask else ({}, None)
        if listing_error is not None and accounting_error is not None:
            raise TransientError(
                f"{self.client.description} cannot report on {len(valid)} jobs: jobs listing: "
                f"{listing_error}; accounting: {accounting_error}")
        for sid in valid:
            live, recorded = listed.get(sid), found.get(sid)
            if live is not None and not live.state.is_terminal:
                result[sid] = live
            elif recorded is not None:
                result[sid] = _with_live_exit(recorded, live)
            elif live is not None:
                result[sid] = live
            else:
                result[sid] = SchedulerStatus.unknown(reason=_why_absent(listing_error,
                                                                         accounting_error))
        return result

    def _listing(self, ids: Sequence[str]) -> _Found:
        answer = self.client.get(_JOBS)
        if answer.status != 200 or not isinstance(answer.document.get("jobs"), list):
            return {}, rest_failure(answer.document) or f"HTTP {answer.status} without jobs"
        wanted = set(ids)
        for job in _records(answer.document, wanted):
            sid = str(job["job_id"])
            self._files[sid] = [path.replace("%j", sid) for key in ("standard_output",
                                                                     "standard_error")
                                if isinstance(path := job.get(key), str) and path.startswith("/")]
        return parse_rest_jobs(answer.document, wanted), None

    def _accounting(self, ids: Sequence[str]) -> _Found:
        found: dict[str, SchedulerStatus] = {}
        for chunk in chunks(ids, self.chunk_size):
            answer = self.client.get(_ACCOUNTING, params={"step": ",".join(chunk)})
            why = accounting_failure(answer.document)
            if why is not None:
                return found, why
            found.update(parse_rest_accounting(answer.document, set(chunk)))
            for job in _records(answer.document, set(chunk)):
                sid, workdir = str(job["job_id"]), job.get("working_directory")
                if isinstance(workdir, str) and workdir.startswith("/"):
                    self._files.setdefault(sid, []).extend(
                        posixpath.join(workdir, f"slurm-{sid}.{ext}") for ext in ("out", "err"))
        return found, None

    def memory_kill_files(self, statuses: Mapping[str, SchedulerStatus]) -> dict[str, str]:
        """The output files (file → job id) of the jobs of ``statuses`` killed by signal 9.

        The files the last `read` saw named; a job whose files are unknown is left out.
        """
        return {path: sid for sid, status in statuses.items()
                if status.state is SchedulerState.FAILED and status.signal == 9
                and status.reason != "OUT_OF_MEMORY" for path in self._files.get(sid, [])}


def _records(document: Mapping[str, Any], wanted: set[str]) -> list[Mapping[str, Any]]:
    """The job records of an answer whose id is wanted."""
    return [j for j in rest_records(document) if str(j.get("job_id")) in wanted]


def _with_live_exit(recorded: SchedulerStatus, live: SchedulerStatus | None) -> SchedulerStatus:
    """Accounting's status, with the live listing's exit code where accounting has none."""
    if (recorded.state is SchedulerState.FAILED and recorded.exit_code is None
            and recorded.signal is None and live is not None
            and live.state is SchedulerState.FAILED
            and (live.exit_code is not None or live.signal is not None)):
        return attrs.evolve(recorded, exit_code=live.exit_code, signal=live.signal,
                            reason=live.reason)
    return recorded


def _why_absent(listing_error: str | None, accounting_error: str | None) -> str:
    if listing_error is not None:
        return f"absent from accounting; the jobs listing failed: {listing_error}"
    if accounting_error is not None:
        return f"absent from the jobs listing; accounting failed: {accounting_error}"
    return "absent from the jobs listing and accounting"
