"""`JobManager`: one cycle (`JobManager.run_once`) and the daemon loop.

A cycle, in order:

1. propagate cancellations: jobs the web set to ``cancelled`` that still have a
   scheduler job are cancelled there once (recorded in the job's directory);
2. recover ``running`` jobs with no scheduler id past the grace period
   (DESIGN §4): take the job over with a compare-and-set, look it up by name,
   adopt the oldest submission and cancel the rest, or submit it again;
3. poll every ``running`` job with one batched status call per destination,
   and move the terminal ones to ``finished``/``failed`` with their results;
4. claim ``new`` jobs up to the capacity, oldest first, stage and submit them.

A failure that is the job's fault fails that job with a reason written to its
directory (``failure.json``) and to the log; the other jobs go on. A failure
that is not the job's fault fails no job (`efi_job_manager.faults`): a database,
scheduler or transport that does not answer skips the step and the loop backs
off; a results or input directory that is missing, unwritable or full, or a
pipeline command that cannot be run on a destination, sends the job back to
``new`` and holds new jobs back (from that destination) until it clears, said
once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy.exc import SQLAlchemyError

from efi_job_manager.clock import utcnow
from efi_job_manager.config import Settings
from efi_job_manager.connector import (
    BaseConnector,
    ConnectorError,
    JobSpec,
    PermanentError,
    SchedulerStatus,
    TransientError,
)
from efi_job_manager.discovery import load_connector
from efi_job_manager.events import EventBus, EventKind, JobEvent
from efi_job_manager.faults import (
    SiteFault,
    SiteFaults,
    probe_readable_dir,
    probe_writable_dir,
    reached,
)
from efi_job_manager.jobdir import JobDirectory, UnsafeJobDirectory
from efi_job_manager.models import Job, load_job_model
from efi_job_manager.pipelines import Catalogue, EfiDatabases, JobInputError, PreparedJob
from efi_job_manager.repository import (
    CandidateJob,
    Gate,
    InvalidSchedulerId,
    JobRepository,
    RunningCounts,
    make_engine,
    since,
)
from efi_job_manager.results import ResultError, read_stats, stats_to_columns
from efi_job_manager.retry import Backoff
from efi_job_manager.status import SchedulerState, Status, check_transition, parse_status

__all__ = ["CycleReport", "Destination", "JobManager", "PlannedAction"]

log = logging.getLogger(__name__)

#: Seconds between two checks that a destination's pipeline can run there (`check_site`).
SITE_CHECK_EVERY = 300.0


@attrs.define
class Destination:
    """A named connector instance jobs can be routed to (a cluster, or a partition of one)."""

    name: str
    connector: BaseConnector
    max_running_jobs: int | None = None


@attrs.frozen
class PlannedAction:
    """What a dry run would do for one job."""

    job_id: int
    action: str
    destination: str | None = None
    command: tuple[str, ...] = ()
    detail: str = ""


@attrs.frozen
class CycleReport:
    """What one cycle changed.

    Attributes:
        started: Jobs submitted (or adopted) this cycle.
        finished: Jobs moved to ``finished``.
        failed: Jobs moved to ``failed``, with the reason.
        cancelled: Jobs whose cancellation was sent to the scheduler.
        recovered: Jobs recovered after a crash (adopted or submitted again).
        lost_races: Jobs another actor moved first (nothing overwritten).
        running: Jobs still running after the cycle.
        errors: Problems that were not a job's fault (a step was skipped).
        planned: What a dry run would have done (empty on a real run).
    """

    started: tuple[int, ...] = ()
    finished: tuple[int, ...] = ()
    failed: tuple[tuple[int, str], ...] = ()
    cancelled: tuple[int, ...] = ()
    recovered: tuple[int, ...] = ()
    lost_races: tuple[int, ...] = ()
    running: int = 0
    errors: tuple[str, ...] = ()
    planned: tuple[PlannedAction, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the cycle moved any job."""
        return bool(self.started or self.finished or self.failed or self.cancelled
                    or self.recovered)


@attrs.define
class _Cycle:
    """Mutable bookkeeping of one cycle, frozen into a `CycleReport` at the end."""

    now: datetime
    started: list[int] = attrs.Factory(list)
    finished: list[int] = attrs.Factory(list)
    failed: list[tuple[int, str]] = attrs.Factory(list)
    cancelled: list[int] = attrs.Factory(list)
    recovered: list[int] = attrs.Factory(list)
    lost_races: list[int] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    planned: list[PlannedAction] = attrs.Factory(list)
    running: int = 0
    unavailable: set[str] = attrs.Factory(set)
    site_fault: str | None = None
    step: str = ""
    step_started: datetime | None = None  # by the manager's clock
    overran: bool = False

    def report(self) -> CycleReport:
        return CycleReport(tuple(self.started), tuple(self.finished), tuple(self.failed),
                           tuple(self.cancelled), tuple(self.recovered), tuple(self.lost_races),
                           self.running, tuple(self.errors), tuple(self.planned))


class _CycleAborted(Exception):
    """The database is unreachable: end the cycle here, nothing is lost."""


class JobManager:
    """Moves EFI-Web's jobs through their life on one or more clusters.

    Build it with `JobManager.from_settings` or directly with its parts. It is
    safe to call `stop` from another thread or a signal handler.

    Args:
        repository: The ``Job`` table.
        destinations: Connector instances by name; ``default`` receives every
            job type that ``routing`` does not name.
        catalogue: Turns rows into parameters, inputs and commands.
        results_dir: The central results directory (``<results_dir>/<job id>/``).
        input_dir: Where uploaded files are; nothing outside it is read.
        routing: ``job_type → destination name``.
        default_destination: The destination of unrouted job types.
        max_running_jobs: Most jobs running at once, over all destinations.
        max_running_jobs_per_user: Most running jobs per ``user_id``.
        max_running_jobs_per_pipeline: Most running jobs per job type or pipeline name.
        submit_grace: Seconds before a claimed job without a scheduler id is recovered.
        lost_grace: Seconds a scheduler may not know a job before it is declared lost.
        cancel_window: Seconds after which a cancelled job's cancellation is no longer sent.
        claim_batch: Most jobs claimed per cycle.
        step_timeout: Seconds a step of a cycle (cancel, recover, poll, start) may go on
            taking up jobs; the jobs it has not reached then wait for the next cycle,
            and the next cycle's poll begins with them.
        dry_run: Read and report only: write nothing, submit nothing.
        clock: Returns "now" (naive UTC).
        wait: Waits up to the given seconds or until stopped; returns True if stopped.
        events: Where transitions are announced.
    """

    def __init__(
        self,
        repository: JobRepository,
        destinations: Mapping[str, Destination],
        catalogue: Catalogue,
        *,
        results_dir: Path,
        input_dir: Path,
        routing: Mapping[str, str] | None = None,
        default_destination: str = "default",
        max_running_jobs: int = 100,
        max_running_jobs_per_user: int | None = None,
        max_running_jobs_per_pipeline: Mapping[str, int] | None = None,
        submit_grace: float = 300.0,
        lost_grace: float = 600.0,
        cancel_window: float = 7 * 86400.0,
        claim_batch: int = 50,
        interval: float = 30.0,
        step_timeout: float = 600.0,
        dry_run: bool = False,
        clock: Callable[[], datetime] = utcnow,
        wait: Callable[[float], bool] | None = None,
        events: EventBus | None = None,
    ) -> None:
        if default_destination not in destinations:
            raise ValueError(f"the default destination {default_destination!r} is not one of "
                             f"{', '.join(sorted(destinations)) or 'none'}")
        for job_type, name in (routing or {}).items():
            if name not in destinations:
                raise ValueError(f"routing.{job_type} = {name!r}: no such destination")
        self.repository = repository
        self.destinations = dict(destinations)
        self.catalogue = catalogue
        self.results_dir = Path(results_dir)
        self.input_dir = Path(input_dir)
        self.routing = dict(routing or {})
        self.default_destination = default_destination
        self.max_running_jobs = max_running_jobs
        self.max_running_jobs_per_user = max_running_jobs_per_user
        self.max_running_jobs_per_pipeline = dict(max_running_jobs_per_pipeline or {})
        self.submit_grace = submit_grace
        self.lost_grace = lost_grace
        self.cancel_window = cancel_window
        self.claim_batch = claim_batch
        self.interval = interval
        self.step_timeout = step_timeout
        self.dry_run = dry_run
        self.clock = clock
        self.events = events or EventBus()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._destination_of: dict[int, str] = {}
        self._poll_resume_after = 0  # the last job polled when a poll step ran over
        self._site_checked: dict[str, datetime] = {}  # destination → its last check_site
        self._site_missing: set[str] = set()  # destinations paused by check_site
        self._closers: list[Callable[[], object]] = []
        self.faults = SiteFaults(log, first=max(2 * interval, 60.0))
        self._statuses_checked = False

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool | None = None,
                      **overrides: Any) -> JobManager:
        """Build a manager, its repository, connectors and catalogue from `Settings`.

        Raises:
            ConfigError, CatalogueError, ModelError, ConnectorNotFound,
            ConnectorLoadError: the configuration cannot work.
        """
        db = settings.database
        repository = JobRepository(
            make_engine(db.sqlalchemy_url, connect_timeout=db.connect_timeout, echo=db.echo),
            load_job_model(db.model))
        p = settings.pipelines
        catalogue = Catalogue.from_settings(
            nextflow=p.nextflow, pipeline_dir=p.pipeline_dir, config_dir=p.config_dir,
            command=p.command, params=p.params, overrides=p.overrides,
            efi_db=EfiDatabases(p.efi_db.default, p.efi_db.template, dict(p.efi_db.versions)),
            predefined_taxonomy_filters=p.predefined_taxonomy_filters,
            job_classes=dict(repository.job_classes))
        destinations = {
            name: Destination(name, load_connector(d.connector, d.settings), d.max_running_jobs)
            for name, d in settings.destinations.items()
        }
        m = settings.manager
        manager = cls(
            repository, destinations, catalogue,
            results_dir=m.results_dir, input_dir=m.input_dir, routing=settings.routing,
            default_destination=m.default_destination, max_running_jobs=m.max_running_jobs,
            max_running_jobs_per_user=m.max_running_jobs_per_user,
            max_running_jobs_per_pipeline=m.max_running_jobs_per_pipeline,
            submit_grace=m.submit_grace, lost_grace=m.lost_grace,
            cancel_window=m.cancel_window, claim_batch=m.claim_batch, interval=m.interval,
            step_timeout=m.step_timeout, dry_run=m.dry_run if dry_run is None else dry_run,
            **overrides)
        email = settings.notify.email
        if email is not None:
            from efi_job_manager.notify import EmailNotifier  # noqa: PLC0415

            notifier = EmailNotifier(email, repository)
            manager.events.subscribe(notifier)
            manager._closers.append(lambda: notifier.close(timeout=email.timeout))
        return manager

    # -- the loop ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run_forever` to return after the current step; idempotent and thread-safe."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stop.is_set()

    def _halted(self, cycle: _Cycle) -> bool:
        """Whether the current step takes up no more jobs: stopping, or out of time."""
        if self._stop.is_set():
            return True
        started = cycle.step_started or self.clock()
        if (self.clock() - started).total_seconds() <= self.step_timeout:
            return False
        if not cycle.overran:
            cycle.overran = True
            log.warning("cycle step %s ran over its %g s (manager.step_timeout); the jobs it "
                        "has not reached wait for the next cycle", cycle.step, self.step_timeout)
        return True

    def run_forever(self, stop: threading.Event | None = None,
                    on_cycle: Callable[[CycleReport], None] | None = None) -> None:
        """Run cycles every ``interval`` seconds until `stop` (or ``stop`` is set).

        A cycle that fails as a whole (the database is down) is retried with an
        exponential backoff from a few seconds up to one interval, so an outage's end
        is noticed within an interval.
        """
        backoff = Backoff(min(self.interval, 5.0), self.interval)
        while not self._stopped(stop):
            report = self.run_once()
            if on_cycle is not None:
                on_cycle(report)
            delay = backoff.failure() if report.errors and not report.changed else self.interval
            if not report.errors:
                backoff.success()
            if self._stopped(stop) or self._wait(delay):
                break
        log.info("manager stopped")

    def _stopped(self, stop: threading.Event | None) -> bool:
        if stop is not None and stop.is_set():
            self._stop.set()
        return self._stop.is_set()

    def close(self) -> None:
        """Deliver pending notifications, then close every connector and the database engine."""
        for closer in self._closers:
            try:
                closer()
            except Exception:
                log.exception("shutting down a subscriber failed")
        for destination in self.destinations.values():
            try:
                destination.connector.close()
            except Exception:
                log.exception("closing destination %s failed", destination.name)
        self.repository.close()

    # -- one cycle -----------------------------------------------------------------------

    def run_once(self) -> CycleReport:
        """Run one cycle and return what changed. Never raises for a job's or a cluster's fault."""
        cycle = _Cycle(now=self.clock())
        if not self._statuses_checked:
            self._warn_unknown_statuses()
        steps: Sequence[Callable[[_Cycle], None]] = (
            self._propagate_cancellations, self._recover, self._poll, self._submit_new)
        for step in steps:
            if self._stop.is_set():
                break
            cycle.step, cycle.step_started = step.__name__.strip("_"), self.clock()
            cycle.overran = False
            try:
                step(cycle)
            except _CycleAborted as exc:
                cycle.errors.append(str(exc))
                break
            except SQLAlchemyError as exc:
                message = f"database unavailable during {step.__name__.strip('_')}: {exc}"
                log.error("%s", message.splitlines()[0])
                cycle.errors.append(message.splitlines()[0])
                break
        with contextlib.suppress(SQLAlchemyError):
            cycle.running = self.repository.count(Status.RUNNING)
        report = cycle.report()
        if report.changed or report.errors:
            log.info("cycle: %d started, %d finished, %d failed, %d cancelled, %d recovered, "
                     "%d running%s", len(report.started), len(report.finished),
                     len(report.failed), len(report.cancelled), len(report.recovered),
                     report.running, f", {len(report.errors)} errors" if report.errors else "")
        return report

    def _warn_unknown_statuses(self) -> None:
        """Say once, at the first cycle that reaches the database, which rows are left alone."""
        try:
            counts = self.repository.counts_by_status()
        except SQLAlchemyError:
            return
        self._statuses_checked = True
        known = {s.value for s in Status}
        unknown = {k: n for k, n in counts.items() if k not in known}
        if unknown:
            log.warning("rows with a status this manager does not know are left alone: %s "
                        "(EFI-Web's statuses: %s)",
                        ", ".join(f"{k!r} ({n})" for k, n in sorted(unknown.items())),
                        ", ".join(sorted(known)))

    # -- helpers -------------------------------------------------------------------------

    def job_dir(self, job_id: int) -> JobDirectory:
        """The directory of a job under the central results directory."""
        return JobDirectory(self.results_dir, job_id)

    def route(self, job_type: str) -> str:
        """The destination a job type is sent to now."""
        return self.routing.get(job_type, self.default_destination)

    def destination_of(self, job: Job) -> Destination:
        """The destination a job was submitted to (recorded), else where it would go now."""
        name = self._destination_of.get(job.id) or self.job_dir(job.id).destination()
        if name is None or name not in self.destinations:
            if name is not None:
                log.warning("job %s was sent to destination %r, which is no longer configured; "
                            "using %r", job.id, name, self.route(job.job_type))
            name = self.route(job.job_type)
        self._destination_of[job.id] = name
        return self.destinations[name]

    def _spec(self, job: Job, prepared: PreparedJob | None = None, claim: str = "") -> JobSpec:
        jd = self.job_dir(job.id)
        resources = jd.resources()
        if prepared is None:
            return JobSpec(job.id, job.job_type, jd.path, (),
                           pipeline=self._pipeline_name(job.job_type), resources=resources,
                           claim=claim)
        return JobSpec(job.id, job.job_type, jd.path, prepared.command, prepared.params,
                       prepared.pipeline,
                       {name: jd.path / name for name in [*prepared.inputs,
                                                          *prepared.extra_files]},
                       resources, claim)

    def _pipeline_name(self, job_type: str) -> str:
        try:
            return self.catalogue.pipeline_name(job_type)
        except (KeyError, ValueError):
            return ""

    def retry(self, job_id: int) -> dict[str, tuple[str | None, str]]:
        """Put a failed or cancelled job back to ``new``; return the resources changed.

        When the job failed for lack of time or memory, the connector of the
        destination it ran on may ask for more (`BaseConnector.retry_resources`);
        the new values are recorded in the job's directory for its next
        submission and returned as ``name → (old, new)``.

        Raises:
            LookupError: there is no such job of a known type.
            InvalidTransition: the job is neither failed nor cancelled.
            RuntimeError: someone else moved the job meanwhile.
        """
        job = self.repository.get(job_id)
        if job is None:
            raise LookupError(f"there is no job {job_id} of a known job type")
        status = parse_status(job.status)
        check_transition(status, Status.NEW)
        jd = self.job_dir(job_id)
        failure = jd.failure() or {}
        before = jd.resources()
        after: dict[str, str] = dict(before)
        if failure and job.schedulerJobId is not None:
            proposed = self.destination_of(job).connector.retry_resources(
                self._spec(job), failure)
            after.update(proposed or {})
        if not self.repository.transition(job_id, status, Status.NEW):
            raise RuntimeError(f"job {job_id} changed while retrying it; look again")
        if after != before:
            jd.record_resources(after)
        return {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}

    def _event(self, kind: EventKind, job: Job, reason: str | None = None,
               scheduler_id: str | None = None) -> None:
        self.events.emit(JobEvent(
            kind, job.id, job.job_type, job.user_id, self.clock(), reason,
            self._destination_of.get(job.id), scheduler_id, job.jobName))

    def _fail(self, cycle: _Cycle, job: Job, from_: Status, reason: str,
              **details: Any) -> None:
        """Fail a job for its own fault: reason in ``failure.json``, the log and the event.

        A reason that cannot be written (the results directory read-only or full) is
        a site fault: the job is left as it is (a job not yet submitted goes back to
        ``new``) and is judged again once the directory can be written.
        """
        try:
            self.job_dir(job.id).record_failure(reason, cycle.now, job_type=job.job_type,
                                                **details)
        except UnsafeJobDirectory as exc:  # the job's own directory: it fails all the same
            log.error("job %s: cannot write failure.json: %s", job.id, exc)
        except OSError as exc:
            message = (f"the results directory {self.results_dir}: cannot write why job "
                       f"{job.id} failed ({exc.strerror or exc})")
            log.warning("job %s: left as it is, not failed, until its reason can be written: "
                        "%s", job.id, reason)
            if from_ is Status.RUNNING and job.schedulerJobId is None:
                self._unclaim(cycle, job, message)
            else:
                cycle.errors.append(message)
                self.faults.raise_fault("start", message, cycle.now)
            return
        log.error("job %s (%s) failed: %s", job.id, job.job_type, reason)
        reached("failure-recorded")
        if self.repository.transition(job.id, from_, Status.FAILED):
            cycle.failed.append((job.id, reason))
            self._event(EventKind.FAILED, job, reason)
        else:
            cycle.lost_races.append(job.id)

    # -- step 1: cancellations -----------------------------------------------------------

    def _propagate_cancellations(self, cycle: _Cycle) -> None:
        jobs = self.repository.cancelled_to_propagate(since(cycle.now, self.cancel_window))
        todo: dict[str, list[tuple[Job, str]]] = {}
        for job in jobs:
            if self._halted(cycle):
                break
            jd = self.job_dir(job.id)
            if job.schedulerJobId is None:
                # claimed, maybe submitted, but the id never stored (a crash): look it up
                claim = jd.claim_of(job.uuid)
                if claim is None or jd.cancel_sent(f"claim {claim}"):
                    continue
                for sid in self._lookup_for_cancel(cycle, job, claim):
                    todo.setdefault(self.destination_of(job).name, []).append((job, sid))
                continue
            sid = str(job.schedulerJobId)
            if not jd.cancel_sent(sid):
                todo.setdefault(self.destination_of(job).name, []).append((job, sid))
        for name, group in todo.items():
            ids = [sid for _, sid in group]
            if self.dry_run:
                cycle.planned.extend(PlannedAction(j.id, "cancel", name) for j, _ in group)
                continue
            try:
                self.destinations[name].connector.cancel_jobs(ids)
            except Exception as exc:  # a connector's bug must not stop the cycle
                cycle.errors.append(f"cancelling {', '.join(ids)} on {name}: {exc}")
                log.warning("destination %s: cannot cancel %s: %s", name, ids, exc)
                continue
            reached("cancel-sent")
            for job, sid in group:
                claim = self.job_dir(job.id).claim_of(job.uuid)
                marker = sid if job.schedulerJobId is not None else f"claim {claim}"
                self.job_dir(job.id).record_cancel_sent(cycle.now, marker)
                cycle.cancelled.append(job.id)
                self._event(EventKind.CANCELLED, job, "cancelled by the user or an operator", sid)
                log.info("job %s: cancelled on %s (scheduler id %s)", job.id, name, sid)

    def _lookup_for_cancel(self, cycle: _Cycle, job: Job, claim: str) -> list[str]:
        """The submissions of a cancelled job whose scheduler id was never stored."""
        destination = self.destination_of(job)
        try:
            found = list(destination.connector.find_job(self._spec(job, claim=claim)))
        except Exception as exc:
            cycle.errors.append(f"looking up cancelled job {job.id}: {exc}")
            return []
        if not found and not self.dry_run:
            self.job_dir(job.id).record_cancel_sent(cycle.now, f"claim {claim}")
        return found

    # -- step 2: recovery ----------------------------------------------------------------

    def _recover(self, cycle: _Cycle) -> None:
        stale = self.repository.running_without_scheduler_id(
            since(cycle.now, self.submit_grace))
        for job in stale:
            if self._halted(cycle):
                return
            if self.dry_run:
                cycle.planned.append(PlannedAction(job.id, "recover", self.route(job.job_type)))
                continue
            if not self.repository.take_over(job):
                cycle.lost_races.append(job.id)
                continue
            reached("taken-over")
            destination = self.destination_of(job)
            claim = self.job_dir(job.id).claim_of(job.uuid)
            try:
                # only this claim's submissions: never an earlier run's, never another row's
                found = [] if claim is None else list(
                    destination.connector.find_job(self._spec(job, claim=claim)))
            except Exception as exc:
                # Not knowing whether it was submitted is not "not submitted": submitting
                # again could run it twice. Try again next cycle.
                cycle.errors.append(f"recovering job {job.id}: find_job failed: {exc}")
                log.warning("job %s: cannot look it up on %s (%s); trying again next cycle",
                            job.id, destination.name, exc)
                continue
            if found:
                self._adopt(cycle, job, destination, found)
            else:
                log.warning("job %s: claimed at %s but never recorded as submitted and not "
                            "found on %s; submitting it again", job.id, job.timeStarted,
                            destination.name)
                if self._start(cycle, job):
                    cycle.recovered.append(job.id)

    def _adopt(self, cycle: _Cycle, job: Job, destination: Destination,
               found: list[str]) -> None:
        keep, extra = found[0], found[1:]
        try:
            won = self.repository.set_scheduler_id(job.id, keep)
        except InvalidSchedulerId as exc:
            self._fail(cycle, job, Status.RUNNING, str(exc))
            return
        if not won:
            cycle.lost_races.append(job.id)
            return
        reached("adopted")
        try:  # the id is in the table; the note only saves a lookup
            self.job_dir(job.id).record_destination(destination.name, keep)
        except (OSError, UnsafeJobDirectory) as exc:
            log.warning("job %s: cannot note its scheduler id in its directory: %s", job.id, exc)
        log.warning("job %s: adopted scheduler job %s on %s found by name", job.id, keep,
                    destination.name)
        cycle.recovered.append(job.id)
        if extra:
            log.warning("job %s: cancelling duplicate submissions %s", job.id, extra)
            self._cancel_quietly(destination, extra)

    def _cancel_quietly(self, destination: Destination, ids: list[str]) -> None:
        try:
            destination.connector.cancel_jobs(ids)
        except Exception as exc:
            log.error("destination %s: cannot cancel %s: %s", destination.name, ids, exc)

    # -- step 3: polling -----------------------------------------------------------------

    def _poll(self, cycle: _Cycle) -> None:
        jobs = self.repository.running_jobs()
        # after a poll that ran over, the jobs it did not reach go first
        jobs.sort(key=lambda j: (j.id <= self._poll_resume_after, j.id))
        self._poll_resume_after = 0
        running = {job.id for job in jobs}
        last_polled = 0
        self._destination_of = {k: v for k, v in self._destination_of.items() if k in running}
        by_destination: dict[str, list[Job]] = {}
        for job in jobs:
            by_destination.setdefault(self.destination_of(job).name, []).append(job)
        for name, group in by_destination.items():
            connector = self.destinations[name].connector
            ids = [str(j.schedulerJobId) for j in group]
            try:
                statuses = connector.get_job_statuses(ids)
            except Exception as exc:  # a connector's bug must not stop the cycle
                cycle.unavailable.add(name)
                cycle.errors.append(f"status of {len(ids)} jobs on {name}: {exc}")
                log.warning("destination %s: cannot get the status of %d jobs: %s",
                            name, len(ids), exc)
                continue
            reached("polled")
            for job in group:
                if self._halted(cycle):
                    if cycle.overran:
                        self._poll_resume_after = last_polled
                    return
                last_polled = job.id
                status = statuses.get(str(job.schedulerJobId)) or SchedulerStatus.unknown(
                    reason="the connector did not report this job")
                try:
                    self._on_status(cycle, job, connector, status)
                except SQLAlchemyError:
                    raise
                except UnsafeJobDirectory as exc:
                    self._cancel_quietly(self.destinations[name], [str(job.schedulerJobId)])
                    self._fail(cycle, job, Status.RUNNING, str(exc))
                except Exception:
                    log.exception("job %s: unexpected error handling status %s; it stays as "
                                  "it is", job.id, status.state.value)

    def _on_status(self, cycle: _Cycle, job: Job, connector: BaseConnector,
                   status: SchedulerStatus) -> None:
        jd = self.job_dir(job.id)
        if status.state is SchedulerState.UNKNOWN:
            self._on_unknown(cycle, job, status)
            return
        if not self.dry_run:
            jd.clear_unknown()
        if status.state is SchedulerState.RUNNING or status.state is SchedulerState.COMPLETED:
            self.faults.clear(self.destination_of(job).name)
        if not status.state.is_terminal:
            return
        if self.dry_run:
            cycle.planned.append(PlannedAction(job.id, f"collect ({status.state.value})",
                                               self._destination_of.get(job.id),
                                               detail=status.raw))
            return
        details = {"state": status.state.value, "scheduler_reason": status.reason,
                   "raw": status.raw, "exit_code": status.exit_code, "signal": status.signal,
                   "scheduler_id": str(job.schedulerJobId)}
        spec = self._spec(job)
        if status.state is SchedulerState.COMPLETED:
            self._collect(cycle, job, connector, spec, details)
            return
        if status.state is SchedulerState.FAILED and status.exit_code in _CANNOT_RUN:
            self._command_fault(cycle, job, status)
            return
        try:
            connector.retrieve_job_results(spec)  # logs and partial outputs, if any
        except ConnectorError as exc:
            log.warning("job %s: cannot retrieve the outputs of a failed job: %s", job.id, exc)
        reason = _failure_reason(status)
        self._fail(cycle, job, Status.RUNNING, reason, **details)

    def _command_fault(self, cycle: _Cycle, job: Job, status: SchedulerStatus) -> None:
        """The pipeline command could not be run (exit 126/127): the site's fault, not the job's."""
        name = self.destination_of(job).name
        why = "not found" if status.exit_code == 127 else "not executable"
        message = (f"destination {name}: the pipeline command could not be run (exit code "
                   f"{status.exit_code}: {why}; see [pipelines] nextflow/command and the "
                   f"destination's environment)")
        cycle.errors.append(message)
        self.faults.raise_fault(name, message, cycle.now, pause=True)
        if self.repository.transition(job.id, Status.RUNNING, Status.NEW,
                                      where={"schedulerJobId": job.schedulerJobId}):
            log.warning("job %s: back to new (%s)", job.id, message)
        else:
            cycle.lost_races.append(job.id)

    def _on_unknown(self, cycle: _Cycle, job: Job, status: SchedulerStatus) -> None:
        if self.dry_run:
            return
        first = self.job_dir(job.id).unknown_since(cycle.now)
        waited = (cycle.now - first).total_seconds()
        if waited < self.lost_grace:
            log.info("job %s: the scheduler does not know job %s (for %.0f s): %s", job.id,
                     job.schedulerJobId, waited, status.reason or status.raw or "absent")
            return
        reason = (f"LOST: the scheduler has not known job {job.schedulerJobId} for "
                  f"{waited:.0f} s ({status.reason or status.raw or 'absent'})")
        self._fail(cycle, job, Status.RUNNING, reason, state="unknown", raw=status.raw,
                   scheduler_id=str(job.schedulerJobId))

    def _collect(self, cycle: _Cycle, job: Job, connector: BaseConnector, spec: JobSpec,
                 details: Mapping[str, Any]) -> None:
        try:
            job_dir = connector.retrieve_job_results(spec)
        except TransientError as exc:
            cycle.errors.append(f"results of job {job.id}: {exc}")
            log.warning("job %s: results not retrievable yet: %s", job.id, exc)
            return
        except PermanentError as exc:
            self._fail(cycle, job, Status.RUNNING, f"results cannot be retrieved: {exc}",
                       **details)
            return
        except Exception as exc:
            log.exception("job %s: retrieving results failed; trying again next cycle", job.id)
            cycle.errors.append(f"results of job {job.id}: {exc}")
            return
        reached("retrieved")
        columns = self.catalogue.result_columns(job.job_type)
        try:
            stats = read_stats(job_dir) if columns else {}
        except ResultError as exc:
            self._fail(cycle, job, Status.RUNNING, str(exc), **details)
            return
        update = stats_to_columns(type(job), stats, columns)
        if update.errors:
            self._fail(cycle, job, Status.RUNNING, "; ".join(update.errors), **details)
            return
        completion = self.repository.complete(job, Status.FINISHED, update.columns)
        if completion.won:
            reached("finished")
            cycle.finished.append(job.id)
            log.info("job %s (%s) finished: %s", job.id, job.job_type,
                     ", ".join(f"{k}={v}" for k, v in sorted(update.columns.items())) or
                     "no result columns")
            self._event(EventKind.FINISHED, job, scheduler_id=str(job.schedulerJobId))
        else:
            cycle.lost_races.append(job.id)

    # -- step 4: new jobs ----------------------------------------------------------------

    def _fail_unknown_types(self, cycle: _Cycle) -> None:
        for row in self.repository.new_jobs_of_unknown_type():
            reason = (f"unknown job_type {row.job_type!r}: this manager runs "
                      f"{', '.join(sorted(self.repository.known_job_types))}")
            if self.dry_run:
                cycle.planned.append(PlannedAction(row.id, "fail", detail=reason))
                continue
            log.error("job %s failed: %s", row.id, reason)
            try:
                self.job_dir(row.id).record_failure(reason, cycle.now, job_type=row.job_type)
            except (OSError, UnsafeJobDirectory) as exc:
                log.error("job %s: cannot write failure.json: %s", row.id, exc)
            if self.repository.transition(row.id, Status.NEW, Status.FAILED):
                cycle.failed.append((row.id, reason))
                self.events.emit(JobEvent(EventKind.FAILED, row.id, row.job_type, None,
                                          cycle.now, reason))

    def _submit_new(self, cycle: _Cycle) -> None:
        self._fail_unknown_types(cycle)
        running = self.repository.count(Status.RUNNING)
        free = min(self.max_running_jobs - running, self.claim_batch)
        if free <= 0:
            return
        gate = self._gate(cycle.unavailable)
        if self.dry_run:
            self._plan_new(cycle, free, gate(self.repository.running_counts()))
            return
        try:
            probe_writable_dir(self.results_dir, "the results directory")
            probe_readable_dir(self.input_dir, "the input directory")
        except SiteFault as exc:
            cycle.errors.append(str(exc))
            self.faults.raise_fault("start", str(exc), cycle.now)
            return
        self._check_destinations(cycle)
        for name in self.destinations:
            if self.faults.paused(name, cycle.now):
                cycle.unavailable.add(name)
        # One claim at a time: a destination that fails a submission is left alone for the
        # rest of the cycle, so no more jobs are claimed for it only to wait for recovery.
        for _ in range(free):
            if self._halted(cycle) or cycle.site_fault:
                return
            claimed = self.repository.claim_new(1, gate=gate)
            if not claimed:
                return
            reached("claimed")
            try:
                self._start(cycle, claimed[0])
            except SQLAlchemyError:
                raise
            except Exception as exc:  # whatever a row holds, it fails only itself
                log.exception("job %s: unexpected error while starting it", claimed[0].id)
                self._fail(cycle, claimed[0], Status.RUNNING,
                           f"internal error while starting the job: {type(exc).__name__}: {exc}")

    def _check_destinations(self, cycle: _Cycle) -> None:
        """Now and then, before claiming for a destination, check that its pipeline can run.

        The program, EST's workflows and configs and the EFI data are checked where the
        jobs run (`BaseConnector.check_site`) at most every `SITE_CHECK_EVERY` seconds, and
        again whenever a pause for a missing piece has run out; a missing one pauses the
        destination (a site fault) rather than failing each job that would need it.
        """
        for name, destination in self.destinations.items():
            if self.faults.paused(name, cycle.now):
                continue
            last = self._site_checked.get(name)
            if (last is not None and name not in self._site_missing
                    and (cycle.now - last).total_seconds() < SITE_CHECK_EVERY):
                continue
            self._site_checked[name] = cycle.now
            needs = self.catalogue.site_needs(
                t for t in self.catalogue.job_types() if self.route(t) == name)
            try:
                missing = destination.connector.check_site(needs.executables, needs.paths)
            except Exception as exc:  # not knowing is no reason to hold jobs back
                log.warning("destination %s: cannot check its pipeline's files: %s", name, exc)
                continue
            if missing:
                shown = "; ".join(missing[:5]) + (f"; {len(missing) - 5} more"
                                                  if len(missing) > 5 else "")
                message = f"destination {name}: its pipeline cannot run there: {shown}"
                self._site_missing.add(name)
                cycle.errors.append(message)
                self.faults.raise_fault(name, message, cycle.now, pause=True)
            elif name in self._site_missing:
                self._site_missing.discard(name)
                self.faults.clear(name)

    def _gate(self, unavailable: set[str]) -> Gate:
        """The limits, applied to the running counts a claim reads under its lock.

        Per-pipeline limits count job types and pipeline names; a destination's
        limit counts the running jobs whose job type is routed to it now.
        """
        per_pipeline = self.max_running_jobs_per_pipeline

        def gate(counts: RunningCounts) -> Callable[[CandidateJob], bool]:
            by_user = dict(counts.by_user)
            by_type: Counter[str] = Counter()  # per job type and per pipeline name
            by_destination: Counter[str] = Counter()
            for job_type, n in counts.by_job_type.items():
                by_type[job_type] += n
                pipeline = self._pipeline_name(job_type)
                if pipeline and pipeline != job_type:
                    by_type[pipeline] += n
                by_destination[self.route(job_type)] += n
            total = counts.total

            def accept(candidate: CandidateJob) -> bool:
                nonlocal total
                destination = self.destinations[self.route(candidate.job_type)]
                if total >= self.max_running_jobs or destination.name in unavailable:
                    return False
                user = candidate.user_id
                if (self.max_running_jobs_per_user is not None and user is not None
                        and by_user.get(user, 0) >= self.max_running_jobs_per_user):
                    return False
                pipeline = self.catalogue.pipeline_name(candidate.job_type)
                if any(key in per_pipeline and by_type[key] >= per_pipeline[key]
                       for key in (candidate.job_type, pipeline)):
                    return False
                if (destination.max_running_jobs is not None
                        and by_destination[destination.name] >= destination.max_running_jobs):
                    return False
                total += 1
                if user is not None:
                    by_user[user] = by_user.get(user, 0) + 1
                by_type[candidate.job_type] += 1
                if pipeline != candidate.job_type:
                    by_type[pipeline] += 1
                by_destination[destination.name] += 1
                return True

            return accept

        return gate

    def _plan_new(self, cycle: _Cycle, free: int,
                  accept: Callable[[CandidateJob], bool]) -> None:
        candidates = self.repository.jobs([Status.NEW], limit=4 * free, newest_first=False)
        candidates.sort(key=lambda j: (j.timeCreated or datetime.min, j.id))
        planned = 0
        for job in candidates:
            if planned >= free:
                break
            if not accept(CandidateJob(job.id, job.job_type, job.user_id, job.timeCreated)):
                continue
            planned += 1
            name = self.route(job.job_type)
            try:
                prepared = self.catalogue.prepare(job, job_dir=self.job_dir(job.id).path,
                                                  input_dir=self.input_dir,
                                                  results_dir=self.results_dir)
            except JobInputError as exc:
                cycle.planned.append(PlannedAction(job.id, "fail", name, detail=str(exc)))
                continue
            except SiteFault as exc:
                cycle.planned.append(PlannedAction(job.id, "wait", name, detail=str(exc)))
                continue
            cycle.planned.append(PlannedAction(
                job.id, "submit" if prepared.runs_pipeline else "finish", name,
                prepared.command, detail=self._render(name, job, prepared)))

    def _render(self, destination: str, job: Job, prepared: PreparedJob) -> str:
        connector = self.destinations[destination].connector
        render = getattr(connector, "render_job", None)
        if callable(render):
            return str(render(self._spec(job, prepared)))
        return ""

    def _stage(self, cycle: _Cycle, job: Job) -> tuple[PreparedJob, str] | None:
        """Prepare and stage a claimed job (and its claim's id); None if it failed or went back."""
        jd = self.job_dir(job.id)
        try:
            prepared = self.catalogue.prepare(job, job_dir=jd.path, input_dir=self.input_dir,
                                              results_dir=self.results_dir)
        except JobInputError as exc:
            self._fail(cycle, job, Status.RUNNING, str(exc))
            return None
        except SiteFault as exc:
            self._unclaim(cycle, job, str(exc))
            return None
        try:
            claim = jd.begin_claim(job.uuid, cycle.now)
            jd.stage(prepared.params, prepared.inputs, prepared.extra_files)
        except UnsafeJobDirectory as exc:
            self._fail(cycle, job, Status.RUNNING, f"cannot stage the job: {exc}")
            return None
        except OSError as exc:
            self._unclaim(cycle, job, f"cannot stage jobs in the results directory "
                                      f"{self.results_dir}: {exc.strerror or exc}")
            return None
        self.faults.clear("start")
        return prepared, claim

    def _start(self, cycle: _Cycle, job: Job) -> bool:
        """Stage and submit a claimed job; return whether it is now submitted or done."""
        staged = self._stage(cycle, job)
        if staged is None:
            return False
        prepared, claim = staged
        jd = self.job_dir(job.id)
        if not prepared.runs_pipeline:
            completion = self.repository.complete(job, Status.FINISHED)
            if completion.won:
                cycle.finished.append(job.id)
                self._event(EventKind.FINISHED, job)
            return completion.won
        destination = self.destinations[self.route(job.job_type)]
        self._destination_of[job.id] = destination.name
        jd.record_destination(destination.name)
        spec = self._spec(job, prepared, claim)
        connector = destination.connector
        reached("staged")
        try:
            params_path = connector.prepare_job_environment(spec)
            reached("prepared")
            scheduler_id = connector.submit_job(spec, params_path)
        except PermanentError as exc:
            self._fail(cycle, job, Status.RUNNING, f"submission refused: {exc}")
            return False
        except Exception as exc:  # transient, or a connector's bug: recovery decides later
            cycle.unavailable.add(destination.name)
            cycle.errors.append(f"submitting job {job.id} to {destination.name}: {exc}")
            log.warning("job %s: not submitted (%s: %s); it will be recovered after %.0f s",
                        job.id, type(exc).__name__, exc, self.submit_grace)
            return False
        reached("submitted")
        try:
            won = self.repository.set_scheduler_id(job.id, scheduler_id)
        except InvalidSchedulerId as exc:
            self._cancel_quietly(destination, [scheduler_id])
            self._fail(cycle, job, Status.RUNNING, str(exc))
            return False
        if not won:
            log.warning("job %s: another actor moved it while it was being submitted; "
                        "cancelling scheduler job %s", job.id, scheduler_id)
            self._cancel_quietly(destination, [scheduler_id])
            cycle.lost_races.append(job.id)
            return False
        reached("id-stored")
        try:  # the id is in the table; the note only saves a lookup
            jd.record_destination(destination.name, scheduler_id)
        except (OSError, UnsafeJobDirectory) as exc:
            log.warning("job %s: cannot note its scheduler id in its directory: %s", job.id, exc)
        cycle.started.append(job.id)
        log.info("job %s (%s) submitted to %s as %s", job.id, job.job_type, destination.name,
                 scheduler_id)
        self._event(EventKind.STARTED, job, scheduler_id=scheduler_id)
        return True

    def _unclaim(self, cycle: _Cycle, job: Job, message: str) -> None:
        """A site fault stops a claimed job before submission: back to ``new``, said once."""
        cycle.site_fault = message
        cycle.errors.append(message)
        self.faults.raise_fault("start", message, cycle.now)
        if not self.repository.transition(job.id, Status.RUNNING, Status.NEW,
                                          where={"schedulerJobId": None}):
            cycle.lost_races.append(job.id)


#: Exit codes of a command that could not be run (not found, not executable).
_CANNOT_RUN = frozenset({126, 127})


def _failure_reason(status: SchedulerStatus) -> str:
    if status.state is SchedulerState.CANCELLED:
        return f"cancelled on the cluster ({status.reason or status.raw or 'CANCELLED'})"
    reason = status.reason or status.raw or "FAILED"
    if status.exit_code is not None and "EXIT_CODE" not in reason and status.exit_code != 0:
        reason += f" (exit code {status.exit_code})"
    return reason

