"""Step 3 of a cycle: statuses read in one batch per destination; ended jobs collected or failed."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from efi_job_manager.connector import (
    BaseConnector,
    ConnectorError,
    JobSpec,
    PermanentError,
    SchedulerStatus,
    TransientError,
)
from efi_job_manager.events import EventKind
from efi_job_manager.faults import reached
from efi_job_manager.jobdir import UnsafeJobDirectory
from efi_job_manager.logs import about_job
from efi_job_manager.manager.base import ManagerBase
from efi_job_manager.manager.report import Cycle, PlannedAction
from efi_job_manager.metrics import FailureCause
from efi_job_manager.repository import JobRef
from efi_job_manager.results import ResultError, read_stats, stats_to_columns
from efi_job_manager.status import SchedulerState, Status

__all__ = ["PollStep"]

log = logging.getLogger("efi_job_manager.manager")


class PollStep(ManagerBase):
    """Polls running jobs and moves the ended ones to ``finished`` or ``failed``."""

    def _poll(self, cycle: Cycle) -> None:
        jobs = self.repository.running_jobs()  # by id
        if self._poll_resume_after:  # after a poll that ran over, those it missed go first
            jobs.sort(key=lambda j: (j.id <= self._poll_resume_after, j.id))
        self._poll_resume_after = 0
        running = {job.id for job in jobs}
        last_polled = 0
        self._destination_of = {k: v for k, v in self._destination_of.items() if k in running}
        self._opaque_ids = {k: v for k, v in self._opaque_ids.items() if k in running}
        self._known_to_scheduler &= running
        self._cancel_settled -= running  # retried since: a new cancellation is a new one
        for name, group in self._by_destination(jobs).items():
            connector = self.destinations[name].connector
            ids = [sid for _, sid in group if sid is not None]
            try:
                with self.metrics.command(name, "status"):
                    statuses = connector.get_job_statuses(ids) if ids else {}
            except Exception as exc:  # a connector's bug must not stop the cycle
                cycle.unavailable.add(name)
                cycle.errors.append(f"status of {len(ids)} jobs on {name}: {exc}")
                log.warning("destination %s: cannot get the status of %d jobs: %s",
                            self.destinations[name].label, len(ids), exc)
                continue
            reached("polled")
            running_seen = False
            for job, sid in group:
                status = statuses.get(sid) if sid is not None else None
                if (status is not None and status.state in _STILL_THERE
                        and job.id in self._known_to_scheduler and not self.dry_run):
                    # the steady case, most jobs of most cycles: nothing to do, nor to time
                    running_seen = running_seen or status.state is SchedulerState.RUNNING
                    continue
                if self._halted(cycle):
                    if cycle.overran:
                        self._poll_resume_after = last_polled
                    return
                last_polled = job.id
                if sid is None:
                    status = SchedulerStatus.unknown(
                        reason="its scheduler id is missing from its directory")
                elif status is None:
                    status = SchedulerStatus.unknown(
                        reason="the connector did not report this job")
                try:
                    self._on_status(cycle, job, connector, status)
                except SQLAlchemyError:
                    raise
                except UnsafeJobDirectory as exc:
                    if sid is not None:
                        self._cancel_quietly(self.destinations[name], [sid])
                    self._fail(cycle, job, Status.RUNNING, str(exc), cause=FailureCause.RESULTS)
                except Exception:
                    log.exception("job %s: unexpected error handling status %s; it stays as "
                                  "it is", job.id, status.state.value)
            if running_seen:
                self.faults.clear(name)  # a job runs there: whatever paused it is over


    def _by_destination(self, jobs: list[JobRef]) -> dict[str, list[tuple[JobRef, str | None]]]:
        """The jobs grouped by the destination they were submitted to, each with its scheduler id.

        One pass over the running jobs; a remembered destination costs one look-up.
        """
        by_destination: dict[str, list[tuple[JobRef, str | None]]] = {}
        remembered = self._destination_of
        for job in jobs:
            name = remembered.get(job.id) or self.destination_of(job).name
            group = by_destination.get(name)
            if group is None:
                group = by_destination[name] = []
            group.append((job, self._scheduler_id(job)))
        return by_destination


    def _on_status(self, cycle: Cycle, job: JobRef, connector: BaseConnector,
                   status: SchedulerStatus) -> None:
        with about_job(job.id, self._destination_of.get(job.id)):
            self._status_seen(cycle, job, connector, status)


    def _status_seen(self, cycle: Cycle, job: JobRef, connector: BaseConnector,
                     status: SchedulerStatus) -> None:
        if status.state is SchedulerState.UNKNOWN:
            self._on_unknown(cycle, job, status)
            return
        if not self.dry_run and job.id not in self._known_to_scheduler:
            # once per job and process: no file work in a steady cycle
            self.job_dir(job.id).clear_unknown()
            self._known_to_scheduler.add(job.id)
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
                   "scheduler_id": self._scheduler_id(job)}
        spec = self._spec(job)
        if status.state is SchedulerState.COMPLETED:
            self._collect(cycle, job, connector, spec, details)
            return
        if status.state is SchedulerState.FAILED and status.exit_code in _CANNOT_RUN:
            self._command_fault(cycle, job, status)
            return
        try:
            with self.metrics.command(self.destination_of(job).name, "retrieve"):
                connector.retrieve_job_results(spec)  # logs and partial outputs, if any
        except ConnectorError as exc:
            log.warning("job %s: cannot retrieve the outputs of a failed job: %s", job.id, exc)
        reason = _failure_reason(status)
        outputs = self._output_files(connector, spec, details.get("scheduler_id"))
        if outputs:
            reason += f"; see {', '.join(outputs)} in the job's directory"
        self._fail(cycle, job, Status.RUNNING, reason, cause=_failure_cause(status),
                   output_files=outputs, **details)


    @staticmethod
    def _output_files(connector: BaseConnector, spec: JobSpec,
                      scheduler_id: object) -> list[str]:
        """The scheduler's output files of this run that came back (non-empty), stderr first."""
        if not isinstance(scheduler_id, str) or not scheduler_id:
            return []
        try:
            names = connector.output_files(scheduler_id)
        except Exception:  # a connector's bug must not stop the failure being recorded
            log.exception("job %s: output_files failed", spec.job_id)
            return []
        found = []
        for name in names:
            path = spec.job_dir / name
            with contextlib.suppress(OSError):
                if not path.is_symlink() and path.is_file() and path.stat().st_size > 0:
                    found.append(name)
        return found

    def _command_fault(self, cycle: Cycle, job: JobRef, status: SchedulerStatus) -> None:
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


    def _on_unknown(self, cycle: Cycle, job: JobRef, status: SchedulerStatus) -> None:
        if self.dry_run:
            return
        self._known_to_scheduler.discard(job.id)
        first = self.job_dir(job.id).unknown_since(cycle.now)
        waited = (cycle.now - first).total_seconds()
        sid = self._scheduler_id(job) or str(job.schedulerJobId)
        if waited < self.settings.lost_grace:
            log.info("job %s: the scheduler does not know job %s (for %.0f s): %s", job.id,
                     sid, waited, status.reason or status.raw or "absent")
            return
        reason = (f"LOST: the scheduler has not known job {sid} for "
                  f"{waited:.0f} s ({status.reason or status.raw or 'absent'})")
        self._fail(cycle, job, Status.RUNNING, reason, cause=FailureCause.LOST, state="unknown",
                   raw=status.raw, scheduler_id=sid)


    def _collect(self, cycle: Cycle, job: JobRef, connector: BaseConnector, spec: JobSpec,
                 details: Mapping[str, Any]) -> None:
        destination = self.destination_of(job)
        if destination.name in cycle.unavailable:  # it did not answer: next cycle
            return
        try:
            with self.metrics.command(destination.name, "retrieve"):
                job_dir = connector.retrieve_job_results(spec)
        except TransientError as exc:
            self._no_answer(cycle, destination, exc)
            cycle.errors.append(f"results of job {job.id}: {exc}")
            log.warning("job %s: results not retrievable yet: %s", job.id, exc)
            return
        except PermanentError as exc:
            self._fail(cycle, job, Status.RUNNING, f"results cannot be retrieved: {exc}",
                       cause=FailureCause.RESULTS, **details)
            return
        except Exception as exc:
            log.exception("job %s: retrieving results failed; trying again next cycle", job.id)
            cycle.errors.append(f"results of job {job.id}: {exc}")
            return
        reached("retrieved")
        try:
            self.job_dir(job.id).tidy()
            self.share.apply(job_dir)
        except OSError as exc:  # the site's setting or disk, not the job: it waits
            message = (f"the results directory {self.results_dir}: cannot give results the "
                       f"configured results_group and results_mode ({exc.strerror or exc})")
            cycle.errors.append(message)
            self.faults.raise_fault("share", message, cycle.now)
            return
        self.faults.clear("share")
        columns = self.catalogue.result_columns(job.job_type)
        try:
            stats = read_stats(job_dir) if columns else {}
        except ResultError as exc:
            self._fail(cycle, job, Status.RUNNING, str(exc), cause=FailureCause.RESULTS,
                       **details)
            return
        update = stats_to_columns(self.repository.job_classes[job.job_type], stats, columns)
        if update.errors:
            self._fail(cycle, job, Status.RUNNING, "; ".join(update.errors),
                       cause=FailureCause.RESULTS, **details)
            return
        completion = self.repository.complete(job, Status.FINISHED, update.columns)
        if completion.won:
            reached("finished")
            cycle.finished.append(job.id)
            log.info("job %s (%s) finished: %s", job.id, job.job_type,
                     ", ".join(f"{k}={v}" for k, v in sorted(update.columns.items())) or
                     "no result columns")
            self._event(EventKind.FINISHED, job, scheduler_id=self._scheduler_id(job))
            self._release(job)
        else:
            cycle.lost_races.append(job.id)


#: What a job still queued or running is: on the steady path of a poll.
_STILL_THERE = frozenset({SchedulerState.QUEUED, SchedulerState.RUNNING})
#: Exit codes of a command that could not be run (not found, not executable).
_CANNOT_RUN = frozenset({126, 127})


def _failure_cause(status: SchedulerStatus) -> FailureCause:
    if status.state is SchedulerState.CANCELLED:
        return FailureCause.CANCELLED_ON_CLUSTER
    return {"TIMEOUT": FailureCause.TIME_LIMIT, "OUT_OF_MEMORY": FailureCause.MEMORY}.get(
        status.reason or "", FailureCause.PIPELINE)


def _failure_reason(status: SchedulerStatus) -> str:
    if status.state is SchedulerState.CANCELLED:
        return f"cancelled on the cluster ({status.reason or status.raw or 'CANCELLED'})"
    reason = status.reason or status.raw or "FAILED"
    if status.exit_code is not None and "EXIT_CODE" not in reason and status.exit_code != 0:
        reason += f" (exit code {status.exit_code})"
    return reason

