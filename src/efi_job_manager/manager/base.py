"""The state every step of a cycle shares, and the helpers they all use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from efi_job_manager.catalogue import Catalogue, PreparedJob
from efi_job_manager.clock import utcnow
from efi_job_manager.config import ManagerSettings, ResourceProfiles
from efi_job_manager.connector import JobSpec, Resources
from efi_job_manager.events import EventBus, EventKind, JobEvent
from efi_job_manager.faults import SiteFaults, reached
from efi_job_manager.jobdir import JobDirectory, UnsafeJobDirectory
from efi_job_manager.manager.limits import LimitCheck
from efi_job_manager.manager.presence import PresenceFile
from efi_job_manager.manager.report import Cycle, Destination
from efi_job_manager.metrics import FailureCause, ManagerMetrics
from efi_job_manager.repository import (
    InvalidSchedulerId,
    JobRef,
    JobRepository,
    RunningCounts,
    column_value,
    is_stand_in,
)
from efi_job_manager.sharing import SharePolicy, resolve_group
from efi_job_manager.status import Status
from efi_job_manager.transport import CommandTimeout, ConnectionFailed

__all__ = ["ManagerBase"]

log = logging.getLogger("efi_job_manager.manager")


class ManagerBase:
    """The manager's parts and settings, and what every step uses (see `JobManager`)."""

    def __init__(
        self,
        repository: JobRepository,
        destinations: Mapping[str, Destination],
        catalogue: Catalogue,
        settings: ManagerSettings | None = None,
        *,
        routing: Mapping[str, str] | None = None,
        resources: ResourceProfiles | Mapping[str, Resources] | None = None,
        clock: Callable[[], datetime] = utcnow,
        wait: Callable[[float], bool] | None = None,
        events: EventBus | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None and not {"results_dir", "input_dir"} <= overrides.keys():
            raise TypeError("a JobManager needs results_dir and input_dir, or ManagerSettings")
        try:
            settings = attrs.evolve(settings or ManagerSettings(), **overrides)
        except TypeError:
            unknown = sorted(set(overrides) - {f.name for f in attrs.fields(ManagerSettings)})
            raise TypeError(f"not a manager setting: {', '.join(unknown)} (known: "
                            f"{', '.join(f.name for f in attrs.fields(ManagerSettings))})"
                            ) from None
        settings = attrs.evolve(settings, results_dir=Path(settings.results_dir),
                                input_dir=Path(settings.input_dir))
        default_destination = settings.default_destination
        if default_destination not in destinations:
            raise ValueError(f"the default destination {default_destination!r} is not one of "
                             f"{', '.join(sorted(destinations)) or 'none'}")
        for job_type, name in (routing or {}).items():
            if name not in destinations:
                raise ValueError(f"routing.{job_type} = {name!r}: no such destination")
        #: The ``[manager]`` settings this manager runs with (`ManagerSettings`).
        self.settings: ManagerSettings = settings
        #: The group and mode every job directory's entries get (``results_group``/``_mode``).
        self.share = SharePolicy(
            resolve_group(settings.results_group) if settings.results_group else None,
            settings.results_mode)
        self.repository = repository
        self.destinations = dict(destinations)
        self.catalogue = catalogue
        self.routing = dict(routing or {})
        #: The site's resource profiles (``[resources]``), which every job's spec gets.
        self.resources: ResourceProfiles = (
            resources if isinstance(resources, ResourceProfiles)
            else ResourceProfiles(dict(resources or {})))
        self.clock = clock
        self.events = events or EventBus()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._destination_of: dict[int, str] = {}
        #: job id → (its stand-in in ``schedulerJobId``, the opaque id noted in its directory)
        self._opaque_ids: dict[int, tuple[int, str]] = {}
        self._cancel_settled: set[int] = set()  # cancelled jobs whose cancellation was sent
        #: jobs without a scheduler id inside submit_grace whose wait this process has said
        self._waits_said: set[int] = set()
        #: running jobs the scheduler knew at their last poll (no unknown period to clear)
        self._known_to_scheduler: set[int] = set()
        self._poll_resume_after = 0  # the last job polled when a poll step ran over
        self._site_checked: dict[str, datetime] = {}  # destination → its last check_site
        self._site_missing: set[str] = set()  # destinations paused by check_site
        self._closers: list[Callable[[], object]] = []
        self.faults = SiteFaults(log, first=max(2 * settings.interval, 60.0))
        self._statuses_checked = False
        #: The manager's Prometheus metrics (served by ``run`` when ``[metrics] port`` is set).
        self.metrics = ManagerMetrics()
        self.metrics.prepare(list(self.destinations), sorted(
            {self.pipeline_label(t) for t in catalogue.job_types()}))
        self._presence: PresenceFile | None = None  # written from the first cycle on
        #: True for a process that runs one cycle and exits (``run --once`` from cron): its
        #: heartbeat is one file per host, rewritten by each run and never marked stopped.
        self.one_shot = False
        self.events.subscribe(
            lambda event: self.metrics.on_event(event, self.pipeline_label(event.job_type)))

    @property
    def results_dir(self) -> Path:
        """The central results directory (``settings.results_dir``)."""
        return self.settings.results_dir

    @property
    def input_dir(self) -> Path:
        """The directory of uploads (``settings.input_dir``)."""
        return self.settings.input_dir

    @property
    def dry_run(self) -> bool:
        """Whether this manager only plans (``settings.dry_run``)."""
        return self.settings.dry_run

    @property
    def interval(self) -> float:
        """Seconds between two cycles (``settings.interval``)."""
        return self.settings.interval

    def stop(self) -> None:
        """Ask `run_forever` to return after the current step; idempotent and thread-safe."""
        self._stop.set()


    @property
    def stopping(self) -> bool:
        """Whether `stop` was called."""
        return self._stop.is_set()


    def _halted(self, cycle: Cycle) -> bool:
        """Whether the current step takes up no more jobs: stopping, or out of time."""
        if self._stop.is_set():
            return True
        started = cycle.step_started or self.clock()
        if (self.clock() - started).total_seconds() <= self.settings.step_timeout:
            return False
        if not cycle.overran:
            cycle.overran = True
            log.warning("cycle step %s ran over its %g s (manager.step_timeout); the jobs it "
                        "has not reached wait for the next cycle", cycle.step,
                        self.settings.step_timeout)
        return True


    def job_dir(self, job_id: int) -> JobDirectory:
        """The directory of a job under the central results directory."""
        return JobDirectory(self.results_dir, job_id)


    def route(self, job_type: str) -> str:
        """The destination a job type is sent to now."""
        return self.routing.get(job_type, self.settings.default_destination)


    def destination_of(self, job: JobRef) -> Destination:
        """The destination a job was submitted to (recorded), else where it would go now."""
        name = self._destination_of.get(job.id)
        if name is not None:  # remembered: a configured destination (checked, or routed to)
            return self.destinations[name]
        name = self.job_dir(job.id).destination()
        if name is None or name not in self.destinations:
            if name is not None:
                log.warning("job %s was sent to destination %r, which is no longer configured; "
                            "using %r", job.id, name, self.route(job.job_type))
            name = self.route(job.job_type)
        self._destination_of[job.id] = name
        return self.destinations[name]


    @staticmethod
    def _no_answer(cycle: Cycle, destination: Destination, error: BaseException) -> None:
        """A destination that did not answer (timeout, unreachable) is left for this cycle.

        The rest of the cycle skips its per-job calls (lookups, copies, submissions), so
        one dead scheduler costs one timeout, not one per job; said once, here.
        """
        if isinstance(error, CommandTimeout | ConnectionFailed) and \
                destination.name not in cycle.unavailable:
            cycle.unavailable.add(destination.name)
            log.warning("destination %s did not answer (%s): skipped for the rest of this "
                        "cycle", destination.label, error)

    def _release(self, job: JobRef) -> None:
        """Remove what an ended job left where it ran, unless its destination keeps it.

        ``keep_job_files`` set: ``efi-job-manager clean`` removes it once that has passed.
        """
        destination = self.destination_of(job)
        if destination.keep_job_files > 0:
            return
        try:
            destination.connector.release_job(job.id)
        except Exception as exc:  # never the job's fault: `clean` tries again
            log.warning("job %s: what it left on %s stays until `efi-job-manager clean`: %s",
                        job.id, destination.label, exc)

    def _spec(self, job: JobRef, prepared: PreparedJob | None = None,
              claim: str = "") -> JobSpec:
        """The job's spec; its resources are the site's profiles, then a retry's overrides."""
        jd = self.job_dir(job.id)
        pipeline = prepared.pipeline if prepared is not None else self._pipeline_name(
            job.job_type)
        resources = self.resources.for_job(pipeline, job.job_type).overlay(jd.resources())
        if prepared is None:
            return JobSpec(job.id, job.job_type, jd.path, (), pipeline=pipeline,
                           resources=resources, claim=claim)
        return JobSpec(job.id, job.job_type, jd.path, prepared.command, prepared.params,
                       pipeline,
                       {name: jd.path / name for name in [*prepared.inputs,
                                                          *prepared.extra_files]},
                       resources, claim)


    def pipeline_label(self, job_type: str) -> str:
        """The pipeline a job type runs, as metrics and ``status`` name it.

        ``unknown`` for a job type this manager does not run: a row's text never becomes a
        label of its own.
        """
        if job_type not in self.repository.known_job_types:
            return "unknown"
        return self._pipeline_name(job_type) or job_type


    def _pipeline_name(self, job_type: str) -> str:
        try:
            return self.catalogue.pipeline_name(job_type)
        except (KeyError, ValueError):
            return ""


    def _event(self, kind: EventKind, job: JobRef, reason: str | None = None,
               scheduler_id: str | None = None, cause: FailureCause | None = None) -> None:
        self.events.emit(JobEvent(
            kind, job.id, job.job_type, job.user_id, self.clock(), reason,
            self._destination_of.get(job.id), scheduler_id, job.jobName, cause))


    def _fail(self, cycle: Cycle, job: JobRef, from_: Status, reason: str, *,
              cause: FailureCause, **details: Any) -> None:
        """Fail a job for its own fault: reason in ``failure.json``, the log and the event.

        A reason that cannot be written (the results directory read-only or full) is
        a site fault: the job is left as it is (a job not yet submitted goes back to
        ``new``) and is judged again once the directory can be written.
        """
        try:
            self.job_dir(job.id).record_failure(reason, cycle.now, job_type=job.job_type,
                                                **details)
            self.job_dir(job.id).tidy()
            self.share.apply(self.job_dir(job.id).path)
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
        # the job's own fault (its input, its run): a warning; ERROR is for the site's faults
        log.warning("job %s (%s) failed: %s", job.id, job.job_type, reason)
        reached("failure-recorded")
        if self.repository.transition(job.id, from_, Status.FAILED):
            cycle.failed.append((job.id, reason))
            self._event(EventKind.FAILED, job, reason, cause=cause)
            if job.schedulerJobId is not None:  # it ran: its outputs came back (or could not)
                self._release(job)
        else:
            cycle.lost_races.append(job.id)


    def _unclaim(self, cycle: Cycle, job: JobRef, message: str) -> None:
        """A site fault stops a claimed job before submission: back to ``new``, said once."""
        cycle.site_fault = message
        cycle.errors.append(message)
        self.faults.raise_fault("start", message, cycle.now)
        if not self.repository.transition(job.id, Status.RUNNING, Status.NEW,
                                          where={"schedulerJobId": None}):
            cycle.lost_races.append(job.id)


    def _scheduler_id(self, job: JobRef) -> str | None:
        """The scheduler's id of a submitted job as its connector knows it; None if unknown.

        Digits are in ``schedulerJobId`` itself; an opaque id is read (once) from the job's
        directory, where it was noted before its stand-in was stored in the column.
        """
        value = job.schedulerJobId
        if value is None:
            return None
        if not is_stand_in(value):
            return str(value)
        cached = self._opaque_ids.get(job.id)
        if cached is not None and cached[0] == value:
            return cached[1]
        try:
            noted = self.job_dir(job.id).scheduler_id()
            if noted is None or column_value(job.id, noted) != value:
                return None
        except (OSError, UnsafeJobDirectory, InvalidSchedulerId):
            return None
        self._opaque_ids[job.id] = (value, noted)
        return noted


    def _note_scheduler_id(self, job: JobRef, destination: Destination, scheduler_id: str) -> bool:
        """Note an opaque id in the job's directory; return False if it could not be.

        The column can hold only a stand-in for an opaque id, so its note must be written
        before the column: without it the job could not be followed. A digits id is in
        the column itself: nothing is written for it.
        """
        try:
            opaque = is_stand_in(column_value(job.id, scheduler_id))
        except InvalidSchedulerId:
            opaque = False
        if not opaque:
            return True
        try:
            self.job_dir(job.id).record_destination(destination.name, scheduler_id)
        except (OSError, UnsafeJobDirectory) as exc:
            log.warning("job %s: cannot note its scheduler id in its directory: %s", job.id, exc)
            return False
        return True


    def _limits(self, counts: RunningCounts,
                unavailable: Mapping[str, str] | Collection[str] = ()) -> LimitCheck:
        """The limits over ``counts``; ``unavailable`` destinations take no job."""
        return LimitCheck(self.settings, counts, destinations=self.destinations,
                          route=self.route, pipeline_name=self._pipeline_name,
                          unavailable=unavailable)


    def _find(self, destination: Destination, job: JobRef, claim: str) -> list[str]:
        """The scheduler ids of this claim's submissions of ``job`` (`BaseConnector.find_job`)."""
        with self.metrics.command(destination.name, "find"):
            return list(destination.connector.find_job(self._spec(job, claim=claim)))


    def _cancel(self, destination: Destination, ids: list[str]) -> None:
        """Cancel ``ids`` on ``destination``, timed in the metrics; raises what it raises."""
        with self.metrics.command(destination.name, "cancel"):
            destination.connector.cancel_jobs(ids)


    def _cancel_quietly(self, destination: Destination, ids: list[str]) -> None:
        try:
            self._cancel(destination, ids)
        except Exception as exc:
            log.error("destination %s: cannot cancel %s: %s", destination.label, ids, exc)
