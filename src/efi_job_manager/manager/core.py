"""`JobManager`: the daemon loop, one cycle of four steps, and the operator's retry."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from efi_job_manager.catalogue import Catalogue, CatalogueError, EfiDatabases
from efi_job_manager.config import ConfigError, Settings
from efi_job_manager.config.errors import Problem
from efi_job_manager.discovery import load_connectors, package_version
from efi_job_manager.manager.cancelling import CancelStep
from efi_job_manager.manager.cleaning import CleanStep
from efi_job_manager.manager.overview import OverviewStep
from efi_job_manager.manager.polling import PollStep
from efi_job_manager.manager.presence import PresenceFile
from efi_job_manager.manager.recovery import RecoverStep
from efi_job_manager.manager.report import Cycle, CycleAborted, CycleReport, Destination
from efi_job_manager.models import ModelError, job_classes, load_job_model
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.repository.engine import sqlite_file
from efi_job_manager.retry import Backoff
from efi_job_manager.status import Status, check_transition, parse_status

__all__ = ["JobManager"]

log = logging.getLogger("efi_job_manager.manager")


#: Seconds between two sweeps of what ended jobs left (`JobManager.clean`) in `run_forever`,
#: when a destination keeps them (``keep_job_files``).
CLEAN_EVERY = 3600.0


class JobManager(CancelStep, RecoverStep, PollStep, OverviewStep, CleanStep):
    """Moves EFI-Web's jobs through their life on one or more clusters.

    Build it with `JobManager.from_settings` or directly with its parts. It is
    safe to call `stop` from another thread or a signal handler.

    Args:
        repository: The ``Job`` table.
        destinations: Connector instances by name; ``default`` receives every
            job type that ``routing`` does not name.
        catalogue: Turns rows into parameters, inputs and commands.
        settings: The ``[manager]`` settings (`ManagerSettings`: limits, grace periods,
            directories, dry run…); its defaults where not given.
        routing: ``job_type → destination name``.
        resources: The site's resource profiles (``[resources]``: `ResourceProfiles`, or
            ``default``/pipeline/job type name → `Resources`); none by default.
        overrides: Fields of `ManagerSettings` to set on top of ``settings``
            (``results_dir=…, max_running_jobs=3``); without ``settings``,
            ``results_dir`` and ``input_dir`` are required.
        clock: Returns "now" (naive UTC).
        wait: Waits up to the given seconds or until stopped; returns True if stopped.
        events: Where transitions are announced.
    """

    @classmethod
    def from_settings(cls, settings: Settings, *, dry_run: bool | None = None,
                      **overrides: Any) -> JobManager:
        """Build a manager, its repository, connectors and catalogue from `Settings`.

        Raises:
            ConfigError, CatalogueError, ModelError, ConnectorNotFound,
            ConnectorLoadError: the configuration cannot work. A `ConfigError` holds every
                setting the destinations' connectors refuse, every ``[routing]`` key that is
                no job type of the catalogue and every ``[resources]`` name that is no
                pipeline or job type, each named with the file and key.
        """
        problems: list[Problem] = []
        db = settings.database
        try:
            job_model = load_job_model(db.model)
        except ModelError as exc:
            problems.append(Problem.note(str(exc), (), settings.source_of(("database", "model"))))
            job_model = load_job_model(None)
        p = settings.pipelines
        classes = dict(job_classes(job_model))
        try:
            catalogue: Catalogue | None = Catalogue.from_settings(
                nextflow=p.nextflow, pipeline_dir=p.pipeline_dir, config_dir=p.config_dir,
                command=p.command, params=p.params, overrides=p.overrides,
                efi_db=EfiDatabases(p.efi_db.default, p.efi_db.template,
                                    dict(p.efi_db.versions)),
                predefined_taxonomy_filters=p.predefined_taxonomy_filters,
                job_classes=classes, version_args=p.version_args)
        except CatalogueError as exc:
            problems.append(Problem.note(str(exc), (), settings.source_of(("pipelines",))))
            catalogue = None
        job_types = catalogue.job_types() if catalogue is not None else sorted(classes)
        pipelines = {catalogue.pipeline_name(t) for t in job_types} if catalogue else set()
        engine = _engine(settings, problems)
        try:
            connectors = load_connectors(settings, [
                *problems, *settings.unknown_job_types(job_types),
                *([] if catalogue is None else
                  settings.unknown_resource_names(job_types, pipelines))])
        except BaseException:
            if engine is not None:
                engine.dispose()
            raise
        if catalogue is None or engine is None:  # not reached: load_connectors raised
            raise ConfigError(*problems)
        repository = JobRepository(engine, job_model)
        destinations = {
            name: Destination(name, connectors[name], d.max_running_jobs, d.keep_job_files)
            for name, d in settings.destinations.items()
        }
        manager_settings = settings.manager
        if dry_run is not None:
            manager_settings = attrs.evolve(manager_settings, dry_run=dry_run)
        manager = cls(repository, destinations, catalogue, manager_settings,
                      routing=settings.routing, resources=settings.resource_profiles,
                      **overrides)
        email = settings.notify.email
        if email is not None:
            from efi_job_manager.notify import EmailNotifier  # noqa: PLC0415

            notifier = EmailNotifier(email, repository)
            manager.events.subscribe(notifier)
            manager._closers.append(lambda: notifier.close(timeout=email.timeout))
        return manager


    def run_forever(self, stop: threading.Event | None = None,
                    on_cycle: Callable[[CycleReport], None] | None = None) -> None:
        """Run cycles every ``interval`` seconds until `stop` (or ``stop`` is set).

        A cycle that fails as a whole (the database is down) is retried with an
        exponential backoff from a few seconds up to one interval, so an outage's end
        is noticed within an interval.
        """
        backoff = Backoff(min(self.interval, 5.0), self.interval)
        said = time.monotonic()
        cleaned: float | None = None
        keeps = any(d.keep_job_files > 0 for d in self.destinations.values())
        while not self._stopped(stop):
            report = self.run_once()
            if on_cycle is not None:
                on_cycle(report)
            if keeps and (cleaned is None or time.monotonic() - cleaned >= CLEAN_EVERY):
                cleaned = time.monotonic()
                self._clean_quietly()
            delay = backoff.failure() if report.errors and not report.changed else self.interval
            if not report.errors:
                backoff.success()
            if report.changed:
                said = time.monotonic()
            elif time.monotonic() - said >= self.settings.heartbeat:
                said = time.monotonic()
                self._heartbeat(report, delay)
            if self._stopped(stop) or self._wait(delay):
                break
        log.info("manager stopped")


    def _clean_quietly(self) -> None:
        """`clean` from the daemon (destinations that keep files): said only when it acts."""
        if self.dry_run:
            return
        try:
            reports = self.clean()
        except Exception:  # the table or a connector's bug: the next sweep tries again
            log.exception("cleaning what ended jobs left failed; trying again in an hour")
            return
        for report in reports:
            if report.removed:
                log.info("destination %s: removed what %d ended jobs left (keep_job_files "
                         "passed)", report.destination, len(report.removed))
            if report.error is not None:
                log.warning("destination %s: cannot clean what ended jobs left: %s",
                            report.destination, report.error)

    def _heartbeat(self, report: CycleReport, delay: float) -> None:
        """One INFO line saying the daemon is alive and what waits."""
        try:
            waiting: int | str = self.repository.count(Status.NEW)
        except SQLAlchemyError:
            waiting = "?"
        log.info("alive: %s new jobs waiting, %d running, %d errors this cycle; next cycle in "
                 "%g s", waiting, report.running, len(report.errors), delay)


    def _stopped(self, stop: threading.Event | None) -> bool:
        if stop is not None and stop.is_set():
            self._stop.set()
        return self._stop.is_set()


    def close(self) -> None:
        """Deliver pending notifications, then close every connector and the database engine.

        The manager's heartbeat says it stopped, and its metrics endpoint closes.
        """
        if self._presence is not None:
            self._presence.stopped(self.clock())
        self.metrics.close()
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


    def run_once(self) -> CycleReport:
        """Run one cycle and return what changed. Never raises for a job's or a cluster's fault."""
        cycle = Cycle(now=self.clock())
        began = time.monotonic()
        if not self._statuses_checked:
            self._warn_unknown_statuses()
        steps: Sequence[Callable[[Cycle], None]] = (
            self._propagate_cancellations, self._recover, self._poll, self._submit_new)
        for step in steps:
            if self._stop.is_set():
                break
            cycle.step, cycle.step_started = step.__name__.strip("_"), self.clock()
            cycle.overran = False
            try:
                step(cycle)
            except CycleAborted as exc:
                cycle.errors.append(str(exc))
                break
            except SQLAlchemyError as exc:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                cycle.errors.append(f"database unavailable during {cycle.step}: {detail}")
                # said once (ERROR), and once more (INFO) when a whole cycle reaches it again
                self.faults.raise_fault("database", f"the database is unavailable: {detail}",
                                        cycle.now)
                break
        else:
            if not self._stop.is_set():
                self.faults.clear("database")
        with contextlib.suppress(SQLAlchemyError):
            cycle.running = self.repository.count(Status.RUNNING)
        report = cycle.report()
        self._cycle_done(cycle, report, time.monotonic() - began)
        if report.changed or report.errors:
            log.info("cycle: %d started, %d finished, %d failed, %d cancelled, %d recovered, "
                     "%d running%s", len(report.started), len(report.finished),
                     len(report.failed), len(report.cancelled), len(report.recovered),
                     report.running, f", {len(report.errors)} errors" if report.errors else "")
        return report


    def _cycle_done(self, cycle: Cycle, report: CycleReport, seconds: float) -> None:
        """Count the cycle in the metrics and say in the heartbeat file that it ran."""
        self.metrics.cycle_ended(seconds, len(report.errors))
        paused = self.paused_destinations()
        self.metrics.set_paused({name: name in paused for name in [*self.destinations, "start"]})
        if self.metrics.serving:
            try:
                self.metrics.set_job_counts(self.job_counts())
                oldest = self.oldest_waiting(cycle.now)
                self.metrics.oldest_waiting.set((oldest[1] or 0.0) if oldest else 0.0)
            except SQLAlchemyError:
                pass  # the cycle said so already; the gauges keep their last values
        if self.dry_run:
            return  # a dry run writes nothing
        if self._presence is None:
            self._presence = PresenceFile.for_this_process(
                self.results_dir, version=package_version(), started=cycle.now,
                interval=self.interval, one_shot=self.one_shot)
        self._presence.cycle(cycle.now, seconds, report.errors, paused)


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


    def retry(self, job_id: int) -> dict[str, tuple[str | None, str]]:
        """Put a failed or cancelled job back to ``new``; return the resources changed.

        When the job failed for lack of time or memory, the connector of the
        destination it ran on may ask for more (`BaseConnector.retry_resources`);
        the new values are recorded in the job's directory as overrides for its next
        submissions (``.efi/resources.json``) and returned for people as
        ``name → (what the failed run used, the new value)``: ``{"memory": ("40M",
        "80M")}``. What the run used is the connector's view (`BaseConnector.resources_for`:
        the site's profiles and earlier overrides over its own defaults), None if unknown.

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
        after, changed = before, {}
        if failure and job.schedulerJobId is not None:
            connector = self.destination_of(job).connector
            spec = self._spec(job)
            proposed = connector.retry_resources(spec, failure)
            if proposed is not None and not proposed.empty:
                used = connector.resources_for(spec)
                after = before.overlay(proposed)
                changed = {name: (used.show(name), text)
                           for name, text in proposed.describe().items()
                           if getattr(used, name) != getattr(proposed, name)}
        if not self.repository.transition(job_id, status, Status.NEW):
            raise RuntimeError(f"job {job_id} changed while retrying it; look again")
        if after != before:
            jd.record_resources(after)
        return changed


#: How to install each database driver a URL may name.
_DRIVER_HINTS = {
    "psycopg": "pip install 'efi-job-manager[postgresql]'",
    "pymysql": "pip install 'efi-job-manager[mysql]'",
    "psycopg2": "pip install psycopg2, or write postgresql+psycopg:// and pip install "
                "'efi-job-manager[postgresql]'",
    "MySQLdb": "pip install mysqlclient, or write mysql+pymysql:// and pip install "
               "'efi-job-manager[mysql]'",
}


def _engine(settings: Settings, problems: list[Problem]) -> Engine | None:
    """The database engine, or None with the problem found.

    A SQLite file that is not there is a problem (never created empty), and so is a driver
    that is not installed (naming the extra that brings it).
    """
    db = settings.database
    where = settings.source_of(("database", "url"))
    path = sqlite_file(db.sqlalchemy_url)
    if path is not None and not path.exists():
        problems.append(Problem.note(
            f"database.url: the SQLite database {path} does not exist (efi-job-manager "
            "init-db makes it, with the Job table, for development)", (), where))
    try:
        return make_engine(db.sqlalchemy_url, connect_timeout=db.connect_timeout,
                           echo=db.echo, create=False)
    except ModuleNotFoundError as exc:
        hint = _DRIVER_HINTS.get((exc.name or "").split(".")[0],
                                 "install the driver the URL names")
        problems.append(Problem.note(
            f"database.url: the database driver {exc.name} is not installed: {hint}", (),
            where))
        return None
