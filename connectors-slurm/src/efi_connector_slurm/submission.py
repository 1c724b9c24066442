"""Submitting jobs: one sbatch with retries, or a batch of jobs in one remote call.

A lone job runs ``sbatch --parsable`` and retries a transient failure (policy
``SCHEDULER``), looking the job up by name before each retry: a lost reply may hide a job
that was created. A batch runs `sbatch_batch_command` (``submit_parallel`` sbatch at a
time, the stop rule after a transient failure) and sends each job whose sbatch failed
transiently down the lone job's path, name lookup first. After a transient failure (the
retries used up, or the batch call itself failed) nothing is submitted for `OUTAGE_HOLD`
seconds, unless squeue answers in the meantime.

Every submitted id is added to the job's attempt note (`attempts`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from efi_connector_slurm.attempts import ATTEMPT_FILE, Attempt, read_attempt, write_attempt
from efi_connector_slurm.commands import chunks, sbatch_command
from efi_connector_slurm.config import SlurmSettings
from efi_connector_slurm.parsing import (
    SbatchBatch,
    SbatchRecord,
    classify_record,
    classify_sbatch_error,
    error_text,
    host_key_wait,
    parse_sbatch_batch,
    parse_sbatch_output,
)
from efi_connector_slurm.sbatch_batch import sbatch_batch_command, sbatch_batch_timeout
from efi_connector_slurm.staging import Placement, placement
from efi_job_manager.toolkit import (
    SCHEDULER,
    CommandResult,
    CommandTimeout,
    ConnectionFailed,
    ConnectorError,
    HostKeyError,
    JobOutcome,
    JobSpec,
    PermanentError,
    TransientError,
    Transport,
    one_sync,
    retry_call,
)

__all__ = ["NO_ANSWER_MARKERS", "OUTAGE_HOLD", "Submitter"]

# The connector's logger: submission was part of it, and log configurations name it.
log = logging.getLogger("efi_connector_slurm.connector")

#: Seconds after sbatch failed transiently (all retries used) during which further
#: submissions fail at once instead of waiting for the controller again (sbatch takes ≈9 s
#: to give up on an unreachable slurmctld, and the retries multiply that per job). A
#: successful squeue (status, find_job) ends the hold early.
OUTAGE_HOLD = 30.0


class Submitter:
    """Answers `SlurmConnector.submit_job` and ``submit_jobs``, keeping the outage hold.

    Args:
        find_job: The connector's `SlurmConnector.find_job` (the lookup by name).
        cancel_jobs: The connector's `SlurmConnector.cancel_jobs` (for extra copies found).
    """

    def __init__(self, find_job: Callable[[JobSpec], Sequence[str]],
                 cancel_jobs: Callable[[Iterable[str]], None]) -> None:
        """Start without an outage."""
        self._find_job = find_job
        self._cancel_jobs = cancel_jobs
        self._outage: tuple[float, str] | None = None

    def answered(self) -> None:
        """Slurmctld answered (squeue): submissions need not wait any more."""
        self._outage = None

    def held(self) -> TransientError | None:
        """Why nothing is submitted now (`OUTAGE_HOLD`), or None."""
        if self._outage is None:
            return None
        since, error = self._outage
        if time.monotonic() - since < OUTAGE_HOLD:
            return TransientError(f"sbatch failed {time.monotonic() - since:.0f} s ago ({error})")
        self._outage = None
        return None

    # -- one job -------------------------------------------------------------------------

    def submit_one(self, transport: Transport, settings: SlurmSettings, spec: JobSpec, *,
                   lookup_first: bool = False,
                   submit: Callable[[JobSpec, str], str] | None = None) -> str:
        """Submit one job with retries; ``lookup_first``: look it up by name before sbatch too.

        ``submit`` replaces sbatch (Slurm's REST daemon: the job and the directory it runs
        in; its id, or a `TransientError`/`PermanentError`); the rules around it are the
        same.

        Raises:
            PermanentError: Slurm refused the job; the message is Slurm's.
            TransientError: Slurm could not be reached (an outage hold starts), or the
                hold is on.
            HostKeyError: the cluster's host key changed.
        """
        where = placement(spec, settings)
        held = self.held()
        if held is not None:
            raise TransientError(f"not submitting job {spec.job_id}: {held}")
        calls = 0

        def once() -> str:
            nonlocal calls
            calls += 1
            if calls > 1 or lookup_first:
                found = list(self._find_job(spec))
                if found:
                    log.warning("job %s: sbatch failed, but %s was created: using it", spec.job_id,
                                found[0])
                    if found[1:]:
                        self._cancel_jobs(found[1:])
                    return found[0]
            try:
                if submit is not None:
                    return submit(spec, where.directory)
                result = transport.run(sbatch_command(where.script_path),
                                       timeout=settings.command_timeout)
            except (CommandTimeout, ConnectionFailed) as exc:  # its reply may be lost
                raise _NoAnswer(exc, look_up=True) from exc
            except TransientError as exc:  # slurmrestd's answer: slurmctld not reached
                if any(marker in str(exc) for marker in NO_ANSWER_MARKERS):
                    raise _NoAnswer(exc) from exc
                raise
            if result.ok:
                return parse_sbatch_output(result.stdout)
            error = classify_sbatch_error(result.returncode, result.stderr)
            refusal = error(_refusal(transport, spec, result))
            if isinstance(refusal, TransientError) and any(
                    marker in result.stderr for marker in NO_ANSWER_MARKERS):
                raise _NoAnswer(refusal)
            raise refusal

        try:
            scheduler_id = retry_call(
                SCHEDULER, once, on=(TransientError,), name=f"sbatch {spec.name}"
            )
        except _NoAnswer as stop:  # not again in this cycle: each try would wait as long
            found = self._look_up_once(spec) if stop.look_up else []
            if not found:
                self._outage = (time.monotonic(), str(stop.error))
                raise stop.error from None
            log.warning("job %s: sbatch did not answer, but %s was created: using it",
                        spec.job_id, found[0])
            if found[1:]:
                self._cancel_jobs(found[1:])
            scheduler_id = found[0]
        except TransientError as exc:
            self._outage = (time.monotonic(), str(exc))
            raise
        _note_submission(spec, where, scheduler_id)
        return scheduler_id

    def _look_up_once(self, spec: JobSpec) -> list[str]:
        """The lost-reply rule after a submission that got no answer: one lookup by name."""
        try:
            return list(self._find_job(spec))
        except ConnectorError:  # no answer either: the job is looked up again on recovery
            return []

    def _one_outcome(self, transport: Transport, settings: SlurmSettings, spec: JobSpec, *,
                     lookup_first: bool = False) -> JobOutcome:
        try:
            scheduler_id = self.submit_one(transport, settings, spec, lookup_first=lookup_first)
        except HostKeyError as exc:  # the operator's problem, not the job's
            return JobOutcome(spec.job_id, error=host_key_wait(spec.job_id, exc))
        except Exception as exc:  # a job's failure is its outcome
            return JobOutcome(spec.job_id, error=exc)
        return JobOutcome(spec.job_id, scheduler_id)

    # -- a batch -------------------------------------------------------------------------

    def submit_many(self, transport: Transport, settings: SlurmSettings,
                    specs: Sequence[JobSpec]) -> list[JobOutcome]:
        """Submit ``specs``, one remote call per ``chunk_size`` jobs; one outcome per job.

        See `SlurmConnector.submit_jobs`. The attempt notes are written with one sync.
        """
        outcomes: list[JobOutcome] = []
        with one_sync() if len(specs) > 1 else contextlib.nullcontext():
            for chunk in chunks(specs, settings.chunk_size):
                held = self.held()
                if held is not None:
                    outcomes += [JobOutcome.not_attempted(spec.job_id, held) for spec in chunk]
                elif len(chunk) == 1:
                    outcomes.append(self._one_outcome(transport, settings, chunk[0]))
                else:
                    outcomes += self._submit_chunk(transport, settings, chunk)
        return outcomes

    def _submit_chunk(self, transport: Transport, settings: SlurmSettings,
                      specs: Sequence[JobSpec]) -> list[JobOutcome]:
        outcomes: list[JobOutcome | None] = [None] * len(specs)
        members: list[tuple[int, Placement]] = []
        for index, spec in enumerate(specs):
            try:
                where = placement(spec, settings)
                sbatch_command(where.script_path)
            except (PermanentError, ValueError) as exc:
                outcomes[index] = JobOutcome(spec.job_id, error=PermanentError(str(exc)))
                continue
            members.append((index, where))
        if not members:
            return [outcome for outcome in outcomes if outcome is not None]
        reply, failure = self._run_batch(transport, settings,
                                         [where.script_path for _, where in members])
        again: list[int] = []
        for position, (index, where) in enumerate(members):
            spec, record = specs[index], reply.records.get(position)
            if (record is not None and not record.ok and not record.skipped
                    and classify_record(record) is TransientError):
                log.warning("job %s: %s; looking it up by name before trying again",
                            spec.job_id, _refusal(transport, spec, _as_result(record)))
                again.append(index)
                continue
            outcomes[index] = _batch_outcome(transport, spec, where, record, failure)
        for index in again:  # after a lost reply the job may exist: name lookup first
            outcomes[index] = self._one_outcome(transport, settings, specs[index],
                                                lookup_first=True)
        return [outcome for outcome in outcomes if outcome is not None]

    def _run_batch(self, transport: Transport, settings: SlurmSettings,
                   scripts: Sequence[str]) -> tuple[SbatchBatch, ConnectorError | None]:
        """Run the batch call: its records, and why it failed (an outage hold starts)."""
        parallel = settings.submit_parallel
        timeout = sbatch_batch_timeout(len(scripts), parallel, settings.command_timeout)
        failure: ConnectorError
        reply = SbatchBatch({}, complete=False)
        try:
            result = transport.run(sbatch_batch_command(scripts, parallel), timeout=timeout)
        except HostKeyError as exc:  # the operator's problem, not the jobs'
            failure = TransientError(f"the jobs wait: {exc}")
        except ConnectorError as exc:  # ConnectionFailed, CommandTimeout
            failure = exc
        else:
            reply = parse_sbatch_batch(result.stdout, len(scripts))
            if reply.complete:
                return reply, None
            failure = TransientError(f"the batch submission on {transport.description} did "
                                     f"not finish: {error_text(result)}")
        self._outage = (time.monotonic(), str(failure))
        return reply, failure


def _batch_outcome(transport: Transport, spec: JobSpec, where: Placement,
                   record: SbatchRecord | None, failure: ConnectorError | None) -> JobOutcome:
    """The outcome of one job of a batch call whose sbatch did not fail transiently."""
    if record is None:
        return JobOutcome(spec.job_id, error=TransientError(
            f"sbatch of job {spec.job_id} ({spec.name}) on {transport.description}: no answer, "
            f"it may have been submitted ({failure or 'no record of it'})"))
    if record.skipped:
        return JobOutcome.not_attempted(spec.job_id, TransientError(
            "an earlier sbatch of its batch failed transiently"))
    if not record.ok:
        return JobOutcome(spec.job_id,
                          error=PermanentError(_refusal(transport, spec, _as_result(record))))
    try:
        # the script printed sbatch's lines as one: the id is its last word
        scheduler_id = parse_sbatch_output("\n".join(record.stdout.split()))
    except PermanentError as exc:
        return JobOutcome(spec.job_id, error=exc)
    _note_submission(spec, where, scheduler_id)
    return JobOutcome(spec.job_id, scheduler_id)


def _as_result(record: SbatchRecord) -> CommandResult:
    return CommandResult((), record.returncode or 0, record.stdout, record.stderr, 0.0)


#: sbatch's (and slurmrestd's) messages when slurmctld does not answer at all: they have
#: waited (and retried) already, so trying again within the cycle only makes it wait again.
NO_ANSWER_MARKERS = ("Unable to contact slurm controller", "Slurm controller not responding",
                     "Socket timed out")


class _NoAnswer(Exception):
    """The scheduler did not answer: not retried within the cycle (carries the error).

    ``look_up``: the submission may have gone through with its reply lost (a timeout, a
    broken connection): one lookup by name decides, instead of another submission.
    """

    def __init__(self, error: TransientError, *, look_up: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.look_up = look_up


def _refusal(transport: Transport, spec: JobSpec, result: CommandResult) -> str:
    return (f"sbatch refused job {spec.job_id} ({spec.name}) on {transport.description}: "
            f"{error_text(result)}")


def _note_submission(spec: JobSpec, where: Placement, scheduler_id: str) -> None:
    """Add ``scheduler_id`` to the job's attempt note (a failure to write it is logged)."""
    attempt = read_attempt(spec.job_dir) or Attempt(cluster_dir=where.directory)
    try:
        write_attempt(spec.job_dir, attempt.with_submission(scheduler_id))
    except OSError as exc:
        log.warning("job %s: cannot record submission %s in %s: %s", spec.job_id,
                    scheduler_id, ATTEMPT_FILE, exc)
    log.info("job %s submitted to Slurm as %s", spec.job_id, scheduler_id)
