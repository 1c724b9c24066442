"""Claimed jobs staged and submitted: one batch per destination, each job's outcome its own.

The jobs a cycle claims (or recovery restarts) are staged in their directories with one sync
to disk for all of them, then handed to each destination's connector in two calls
(`BaseConnector.prepare_jobs`, `BaseConnector.submit_jobs`): a cluster reached over SSH is
then staged in one transfer and submitted in one remote call. The exactly-once rules hold job
by job: the claim is on disk before the submission, every scheduler id is noted and stored
with compare-and-set, and a job whose submission may have happened is left to recovery,
which looks it up by name. A job nothing was tried for goes straight back to ``new``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import timedelta

import attrs
from sqlalchemy.exc import SQLAlchemyError

from efi_job_manager.catalogue import JobInputError, PreparedJob
from efi_job_manager.connector import JobOutcome, JobSpec, PermanentError
from efi_job_manager.events import EventKind
from efi_job_manager.faults import SiteFault, reached
from efi_job_manager.jobdir import UnsafeJobDirectory
from efi_job_manager.jobfiles import one_sync
from efi_job_manager.logs import about_job
from efi_job_manager.manager.base import ManagerBase
from efi_job_manager.manager.report import Cycle, Destination
from efi_job_manager.metrics import FailureCause
from efi_job_manager.models import Job
from efi_job_manager.repository import InvalidSchedulerId, column_value
from efi_job_manager.status import Status

__all__ = ["SubmitStep"]

log = logging.getLogger("efi_job_manager.manager")

#: A job bound for a destination: its row and its spec.
_Bound = tuple[Job, JobSpec]

#: Chunks a start of many jobs is cut into, so that writing one chunk's directories overlaps
#: the connectors' calls for the previous one; a chunk has at least `PIPELINE_CHUNK_MIN` jobs.
PIPELINE_PARTS = 4
PIPELINE_CHUNK_MIN = 8


@attrs.frozen
class _Reply:
    """What a destination's connector did with a batch: each job's outcome of each call.

    Attributes:
        staged: Each job's `BaseConnector.prepare_jobs` outcome.
        submitted: The `BaseConnector.submit_jobs` outcome of each job that was staged.
        staging_error: Why ``prepare_jobs`` itself failed (every job then goes back).
    """

    staged: dict[int, JobOutcome]
    submitted: dict[int, JobOutcome]
    staging_error: Exception | None


class SubmitStep(ManagerBase):
    """Stages claimed jobs and submits them, a batch per destination."""

    def _start(self, cycle: Cycle, job: Job) -> bool:
        """Stage and submit one claimed job; return whether it is now submitted or done."""
        return job.id in self._start_jobs(cycle, [job])


    def _start_jobs(self, cycle: Cycle, jobs: Sequence[Job]) -> set[int]:
        """Stage and submit claimed jobs; return the ids now submitted (or done without one).

        Whatever a row holds, it fails only itself; a site fault puts the jobs not yet
        staged back to ``new``. Many jobs go in a few chunks, pipelined: while the
        connectors stage and submit one chunk (in a worker thread, one call at a time),
        the next chunk's directories are written here.
        """
        done: set[int] = set()
        size = max(PIPELINE_CHUNK_MIN, -(-len(jobs) // PIPELINE_PARTS))
        chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
        if len(chunks) == 1:
            for destination, bound in self._stage_jobs(cycle, chunks[0], done):
                self._settle(cycle, destination, bound,
                             self._connector_calls(destination, bound), done)
            return done
        with concurrent.futures.ThreadPoolExecutor(1, "efi-submit") as worker:
            in_flight: list[tuple[Destination, list[_Bound], Future[_Reply]]] = []
            for chunk in chunks:
                staged = self._stage_jobs(cycle, chunk, done)
                for destination, bound, reply in in_flight:
                    self._settle(cycle, destination, bound, reply.result(), done)
                in_flight = [(destination, bound,
                              worker.submit(self._connector_calls, destination, bound))
                             for destination, bound in staged]
            for destination, bound, reply in in_flight:
                self._settle(cycle, destination, bound, reply.result(), done)
        return done


    def _stage_jobs(self, cycle: Cycle, jobs: Sequence[Job],
                    done: set[int]) -> list[tuple[Destination, list[_Bound]]]:
        """Stage jobs in their directories (one sync); those for a scheduler, by destination."""
        groups: dict[str, list[_Bound]] = {}
        with one_sync():  # each claim is on disk before any submission
            for job in jobs:
                self._cancel_settled.discard(job.id)  # retried since: a new cancellation
                if cycle.site_fault or self._halted(cycle):
                    self._put_back(cycle, job)
                    continue
                stage = functools.partial(self._stage_one, cycle, job, done)
                with about_job(job.id, self.route(job.job_type)):
                    spec = self._guarded(cycle, job, stage)
                if spec is not None:
                    groups.setdefault(self._destination_of[job.id], []).append((job, spec))
        for bound in groups.values():
            for _ in bound:
                reached("staged")
        return [(self.destinations[name], bound) for name, bound in groups.items()]


    def _guarded(self, cycle: Cycle, job: Job,
                 act: Callable[[], JobSpec | None]) -> JobSpec | None:
        """Run a job's own step; an unexpected error fails that job alone."""
        try:
            return act()
        except SQLAlchemyError:
            raise
        except Exception as exc:  # whatever a row holds, it fails only itself
            log.exception("job %s: unexpected error while starting it", job.id)
            self._fail(cycle, job, Status.RUNNING,
                       f"internal error while starting the job: {type(exc).__name__}: {exc}",
                       cause=FailureCause.INTERNAL)
            return None


    def _stage(self, cycle: Cycle, job: Job) -> tuple[PreparedJob, str] | None:
        """Prepare and stage a claimed job (and its claim's id); None if it failed or went back."""
        jd = self.job_dir(job.id)
        try:
            prepared = self.catalogue.prepare(job, job_dir=jd.path, input_dir=self.input_dir,
                                              results_dir=self.results_dir)
        except JobInputError as exc:
            self._fail(cycle, job, Status.RUNNING, str(exc), cause=FailureCause.INPUT)
            return None
        except SiteFault as exc:
            self._unclaim(cycle, job, str(exc))
            return None
        try:
            claim = jd.begin_claim(job.uuid, cycle.now)
            jd.stage(prepared.params, prepared.inputs, prepared.extra_files)
            self.share.apply(jd.path)
        except UnsafeJobDirectory as exc:
            self._fail(cycle, job, Status.RUNNING, f"cannot stage the job: {exc}",
                       cause=FailureCause.INPUT)
            return None
        except OSError as exc:
            self._unclaim(cycle, job, f"cannot stage jobs in the results directory "
                                      f"{self.results_dir}: {exc.strerror or exc}")
            return None
        self.faults.clear("start")
        return prepared, claim


    def _stage_one(self, cycle: Cycle, job: Job, done: set[int]) -> JobSpec | None:
        """Stage a job; its spec when it goes to a scheduler, None when it failed or is done."""
        staged = self._stage(cycle, job)
        if staged is None:
            return None
        prepared, claim = staged
        if not prepared.runs_pipeline:
            completion = self.repository.complete(job, Status.FINISHED)
            if completion.won:
                cycle.finished.append(job.id)
                self._event(EventKind.FINISHED, job)
                done.add(job.id)
            return None
        destination = self.destinations[self.route(job.job_type)]
        self._destination_of[job.id] = destination.name
        self.job_dir(job.id).record_destination(destination.name)
        return self._spec(job, prepared, claim)


    def _connector_calls(self, destination: Destination, bound: list[_Bound]) -> _Reply:
        """Prepare and submit a destination's staged jobs, one call each; nothing else.

        Runs in the submission worker: it touches the connector and the metrics only.
        """
        connector = destination.connector
        try:
            with self.metrics.command(destination.name, "prepare"):
                staged = _by_job(connector.prepare_jobs([spec for _, spec in bound]), bound,
                                 attempted=False)
        except Exception as exc:  # nothing was submitted: every job goes back
            return _Reply({job.id: JobOutcome.not_attempted(job.id, exc) for job, _ in bound},
                          {}, exc)
        ready = [(job, spec, str(staged[job.id].value)) for job, spec in bound
                 if staged[job.id].value is not None]
        for _ in ready:
            reached("prepared")
        if not ready:
            return _Reply(staged, {}, None)
        try:
            with self.metrics.command(destination.name, "submit"):
                submitted = _by_job(connector.submit_jobs([(s, p) for _, s, p in ready]),
                                    [(j, s) for j, s, _ in ready], attempted=True)
        except Exception as exc:  # a reply lost: each may have been submitted
            submitted = {job.id: JobOutcome(job.id, error=exc) for job, _, _ in ready}
        return _Reply(staged, submitted, None)


    def _settle(self, cycle: Cycle, destination: Destination, bound: list[_Bound],
                reply: _Reply, done: set[int]) -> None:
        """Act on what the connector did with each job of a batch."""
        if reply.staging_error is not None:
            exc = reply.staging_error
            cycle.errors.append(f"staging jobs on {destination.name}: {exc}")
            log.warning("destination %s: cannot stage jobs (%s: %s); they go back to the queue",
                        destination.name, type(exc).__name__, exc)
        accepted: list[tuple[Job, JobSpec, str]] = []
        for job, spec in bound:
            submitted = reply.submitted.get(job.id)
            if submitted is None:
                self._not_started(cycle, destination, job, reply.staged[job.id],
                                  submitting=False)
            elif submitted.value is None:
                self._not_started(cycle, destination, job, submitted, submitting=True)
            else:
                reached("submitted")
                accepted.append((job, spec, submitted.value))
        if accepted:
            self._record_submissions(cycle, destination, accepted, done)


    def _not_started(self, cycle: Cycle, destination: Destination, job: Job,
                     outcome: JobOutcome, *, submitting: bool) -> None:
        """A job the connector did not take: failed, back to ``new``, or left to recovery."""
        error = outcome.error
        with about_job(job.id, destination.name):
            if isinstance(error, PermanentError):
                self._fail(cycle, job, Status.RUNNING, f"submission refused: {error}",
                           cause=FailureCause.REFUSED)
                return
            cycle.unavailable.add(destination.name)
            if not outcome.attempted:  # the error that stopped the connector is said already
                log.info("job %s: back to the queue, not tried on %s", job.id, destination.name)
                self._put_back(cycle, job)
                return
            step = "submitting" if submitting else "staging"
            cycle.errors.append(f"{step} job {job.id} on {destination.name}: {error}")
            if submitting:
                started = job.timeStarted or cycle.now
                due = started + timedelta(seconds=self.settings.submit_grace)
                log.warning("job %s: not submitted (%s: %s); it is looked up by name and "
                            "recovered at %s (submit_grace after its claim)", job.id,
                            type(error).__name__, error, due)
                return
            log.warning("job %s: back to the queue, %s cannot stage it now (%s: %s)", job.id,
                        destination.name, type(error).__name__, error)
            self._put_back(cycle, job)


    def _record_submissions(self, cycle: Cycle, destination: Destination,
                            accepted: list[tuple[Job, JobSpec, str]], done: set[int]) -> None:
        """Note and store the scheduler ids of a batch: one sync, one transaction."""
        noted: dict[int, tuple[Job, JobSpec, str]] = {}
        with one_sync():
            for job, spec, scheduler_id in accepted:
                try:
                    column_value(job.id, scheduler_id)
                except InvalidSchedulerId as exc:
                    self._cancel_quietly(destination, [scheduler_id])
                    self._fail(cycle, job, Status.RUNNING, str(exc), cause=FailureCause.INTERNAL)
                    continue
                if not self._note_scheduler_id(job, destination, scheduler_id):
                    self._cancel_quietly(destination, [scheduler_id])
                    self._unclaim(cycle, job, f"the results directory {self.results_dir}: cannot "
                                              f"note the scheduler id of job {job.id} in its "
                                              "directory")
                    continue
                noted[job.id] = (job, spec, scheduler_id)
        won = self.repository.set_scheduler_ids({i: sid for i, (_, _, sid) in noted.items()})
        lost = [i for i in noted if i not in won]
        if lost:
            log.warning("jobs %s: another actor moved them while they were being submitted; "
                        "cancelling their scheduler jobs", ", ".join(map(str, lost)))
            self._cancel_quietly(destination, [noted[i][2] for i in lost])
            cycle.lost_races.extend(lost)
        for job_id in won:
            job, spec, scheduler_id = noted[job_id]
            reached("id-stored")
            cycle.started.append(job.id)
            done.add(job.id)
            waited = (cycle.now - job.timeCreated).total_seconds() if job.timeCreated else None
            self.metrics.submitted(destination.name, spec.pipeline, waited)
            with about_job(job.id, destination.name):
                log.info("job %s (%s) submitted to %s as %s", job.id, job.job_type,
                         destination.name, scheduler_id)
            self._event(EventKind.STARTED, job, scheduler_id=scheduler_id)


    def _put_back(self, cycle: Cycle, job: Job) -> None:
        """A claimed job nothing was submitted for goes back to ``new`` (not a failure)."""
        if not self.repository.transition(job.id, Status.RUNNING, Status.NEW,
                                          where={"schedulerJobId": None}):
            cycle.lost_races.append(job.id)


def _by_job(outcomes: Sequence[JobOutcome], bound: Sequence[_Bound], *,
            attempted: bool) -> dict[int, JobOutcome]:
    """A connector's outcomes by job; a job it said nothing about gets an error.

    Such a job counts as ``attempted`` when the call may have submitted it.
    """
    by_job: dict[int, JobOutcome] = {}
    for outcome in outcomes:
        by_job.setdefault(outcome.job_id, outcome)
    for job, _ in bound:
        if job.id not in by_job:
            by_job[job.id] = JobOutcome(
                job.id, error=RuntimeError(f"the connector said nothing about job {job.id}"),
                attempted=attempted)
    return by_job
