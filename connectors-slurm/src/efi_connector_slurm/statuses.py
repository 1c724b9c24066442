"""The status of many jobs at once: one squeue listing, sacct for the rest, scontrol when needed.

- one ``squeue --me`` lists every job slurmctld holds for the commands' user: a job still
  queued or running is answered from it, whatever the number of jobs (Slurm before 20.11,
  without ``--me``: squeue per `SQUEUE_CHUNK` ids);
- the jobs that have left the queue, or that squeue shows ended, are asked of sacct (``-X``,
  since ``sacct_lookback``), one call per ``chunk_size`` ids: an ending needs accounting's
  word (its exit code), and sacct answers even while slurmctld is down;
- an ended job that only squeue shows (accounting lagging or down) is answered from squeue; a
  FAILED one is asked of ``scontrol show job`` for its exit code;
- a FAILED job killed by signal 9 whose ``slurm-<id>.out``/``.err`` holds slurmstepd's
  memory-limit message gets the reason ``OUT_OF_MEMORY``.

A job nobody reports is UNKNOWN, never finished or lost. Every command is built by
`efi_connector_slurm.commands`, run by the connector's transport and read by
`efi_connector_slurm.parsing`.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import attrs

from efi_connector_slurm.commands import (
    chunks,
    memory_kill_grep_command,
    sacct_command,
    sacct_workdir_command,
    scontrol_show_job_command,
    squeue_command,
    squeue_listing_command,
    validate_job_id,
)
from efi_connector_slurm.config import SlurmSettings
from efi_connector_slurm.parsing import (
    SqueueMemo,
    accounting_unavailable,
    error_text,
    parse_sacct,
    parse_scontrol_show_job,
    parse_squeue,
    parse_workdirs,
    scontrol_fields,
)
from efi_job_manager.toolkit import (
    CommandResult,
    SchedulerState,
    SchedulerStatus,
    TransientError,
    Transport,
)

__all__ = ["SQUEUE_CHUNK", "StatusReader", "sacct_since"]

# The connector's logger: status gathering was part of it, and log configurations name it.
log = logging.getLogger("efi_connector_slurm.connector")

#: Most ids on one squeue command line (one argument must stay under 128 KiB).
SQUEUE_CHUNK = 5000


def sacct_since(settings: SlurmSettings) -> datetime:
    """The ``--starttime`` of sacct: now minus ``sacct_lookback``, in local time."""
    return datetime.now() - timedelta(seconds=settings.sacct_lookback)


@attrs.frozen
class _Cluster:
    """The transport and settings of one status call."""

    transport: Transport
    settings: SlurmSettings

    def run(self, argv: Sequence[str]) -> CommandResult:
        return self.transport.run(argv, timeout=self.settings.command_timeout)


class StatusReader:
    """Answers `SlurmConnector.get_job_statuses`, remembering between calls what it warned of.

    Args:
        on_squeue_answer: Called each time squeue answers: slurmctld is reachable again.
    """

    def __init__(self, on_squeue_answer: Callable[[], None]) -> None:
        """Start with no warning given."""
        self._on_squeue_answer = on_squeue_answer
        self._warned_accounting = False
        self._listing = True  # squeue --me works (until it says it does not know --me)
        self._last_listing: SqueueMemo = {}  # its lines, reused when a job's line is unchanged

    def read(self, transport: Transport, settings: SlurmSettings,
             scheduler_ids: Iterable[str]) -> dict[str, SchedulerStatus]:
        """Return the status of every id (see the module's description).

        Ids that are not Slurm job ids are UNKNOWN (``not a Slurm job id``).

        Raises:
            TransientError: neither sacct nor squeue could answer, or the cluster is
                unreachable.
        """
        cluster = _Cluster(transport, settings)
        ids = list(dict.fromkeys(str(sid) for sid in scheduler_ids))
        result: dict[str, SchedulerStatus] = {}
        valid: list[str] = []
        for sid in ids:
            try:
                valid.append(validate_job_id(sid))
            except ValueError:
                result[sid] = SchedulerStatus.unknown(raw=sid, reason="not a Slurm job id")
        if not valid:
            return result
        start = sacct_since(settings)
        queued, squeue_error = self._squeue(cluster, valid)
        live = {sid: status for sid, status in queued.items()
                if not status.state.is_terminal}
        ask = [sid for sid in valid if sid not in live]
        found, sacct_error = self._sacct(cluster, ask, start) if ask else ({}, None)
        if sacct_error is not None and squeue_error is not None:
            raise TransientError(
                f"Slurm cannot report on {len(valid)} jobs on {transport.description}: "
                f"sacct: {sacct_error}; squeue: {squeue_error}"
            )
        found.update(live)
        queued = {sid: status for sid, status in queued.items() if sid not in found}
        for sid, status in list(queued.items()):
            if status.state is SchedulerState.FAILED:
                queued[sid] = _scontrol(cluster, sid) or status
        found.update(queued)
        _refine_memory_kills(cluster, found, start)
        for sid in valid:
            known = found.get(sid)
            if known is not None:
                result[sid] = known
                continue
            if squeue_error is not None:
                why = f"absent from sacct; squeue failed: {squeue_error}"
            elif sacct_error is not None:
                why = f"absent from squeue; sacct failed: {sacct_error}"
            else:
                why = "absent from sacct and squeue"
            result[sid] = SchedulerStatus.unknown(reason=why)
        return result

    def _sacct(
        self, cluster: _Cluster, ids: Sequence[str], start: datetime
    ) -> tuple[dict[str, SchedulerStatus], str | None]:
        found: dict[str, SchedulerStatus] = {}
        for chunk in chunks(ids, cluster.settings.chunk_size):
            result = cluster.run(sacct_command(chunk, start))
            if not result.ok:
                error = error_text(result)
                if not self._warned_accounting or not accounting_unavailable(result.stderr):
                    log.warning("sacct failed on %s (answering from squeue/scontrol): %s",
                                cluster.transport.description, error)
                self._warned_accounting = True
                return found, error
            wanted = set(chunk)
            found.update({k: v for k, v in parse_sacct(result.stdout).items() if k in wanted})
        self._warned_accounting = False
        return found, None

    def _squeue(
        self, cluster: _Cluster, ids: Sequence[str]
    ) -> tuple[dict[str, SchedulerStatus], str | None]:
        """The statuses squeue shows of ``ids``: one listing, or per chunk before Slurm 20.11."""
        wanted = set(ids)
        if self._listing:
            result = cluster.run(squeue_listing_command())
            if result.ok:
                self._on_squeue_answer()
                return parse_squeue(result.stdout, wanted, self._last_listing), None
            if "--me" not in result.stderr:
                return {}, error_text(result)
            log.info("squeue on %s has no --me (Slurm before 20.11): asking it by job id",
                     cluster.transport.description)
            self._listing = False
        found: dict[str, SchedulerStatus] = {}
        for chunk in chunks(ids, SQUEUE_CHUNK):
            result = cluster.run(squeue_command(chunk))
            if not result.ok:
                return found, error_text(result)
            self._on_squeue_answer()
            wanted = set(chunk)
            found.update({k: v for k, v in parse_squeue(result.stdout).items() if k in wanted})
        return found, None


def _scontrol(cluster: _Cluster, scheduler_id: str) -> SchedulerStatus | None:
    result = cluster.run(scontrol_show_job_command(scheduler_id))
    if not result.ok:
        return None
    return parse_scontrol_show_job(result.stdout).get(scheduler_id)


def _refine_memory_kills(cluster: _Cluster, found: dict[str, SchedulerStatus],
                         start: datetime) -> None:
    """Give FAILED-by-signal-9 jobs whose output shows a memory kill the reason OOM.

    The output files are named by ``scontrol show job`` (StdOut, StdErr) while slurmctld
    holds the job, else found in sacct's WorkDir (``slurm-<id>.out``/``.err``, as the
    batch script names them). sacct's record can lack WorkDir for a few seconds after the
    job ends (it is first written as ``allocation``), hence scontrol first.
    """
    candidates = [
        sid for sid, status in found.items()
        if status.state is SchedulerState.FAILED and status.signal == 9
        and status.reason != "OUT_OF_MEMORY"
    ]  # fmt: skip
    if not candidates:
        return
    files: dict[str, str] = {}
    ask: list[str] = []
    for sid in candidates:
        raw = found[sid].raw
        if not raw.startswith("JobId="):
            shown = cluster.run(scontrol_show_job_command(sid))
            raw = shown.stdout.strip() if shown.ok else ""
        fields = scontrol_fields(raw) if raw.startswith("JobId=") else {}
        workdir = fields.get("WorkDir", "")
        names = [fields.get("StdOut", ""), fields.get("StdErr", "")]
        if workdir:
            names += [posixpath.join(workdir, f"slurm-{sid}.{ext}") for ext in ("out", "err")]
        names = [name for name in names if name.startswith("/")]
        if names:
            files.update(dict.fromkeys(names, sid))
        else:
            ask.append(sid)
    for chunk in chunks(ask, cluster.settings.chunk_size):
        result = cluster.run(sacct_workdir_command(chunk, start))
        if not result.ok:
            continue
        for sid, workdir in parse_workdirs(result.stdout).items():
            if sid in chunk and workdir.startswith("/"):
                for ext in ("out", "err"):
                    files[posixpath.join(workdir, f"slurm-{sid}.{ext}")] = sid
    if not files:
        log.info("jobs %s were killed by signal 9; their output files are unknown",
                 ", ".join(candidates))
        return
    grep = cluster.run(memory_kill_grep_command(list(files)))
    for line in grep.stdout.splitlines():
        killed = files.get(line.strip())
        if killed is not None:
            found[killed] = attrs.evolve(found[killed], reason="OUT_OF_MEMORY")
