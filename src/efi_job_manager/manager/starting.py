"""Step 4 of a cycle: new jobs claimed within the limits, then staged and submitted."""

from __future__ import annotations

import logging
from datetime import datetime

from efi_job_manager.catalogue import JobInputError, PreparedJob
from efi_job_manager.events import EventKind, JobEvent
from efi_job_manager.faults import SiteFault, probe_readable_dir, probe_writable_dir, reached
from efi_job_manager.jobdir import UnsafeJobDirectory
from efi_job_manager.manager.limits import LimitCheck
from efi_job_manager.manager.report import Cycle, PlannedAction
from efi_job_manager.manager.submitting import SubmitStep
from efi_job_manager.metrics import FailureCause
from efi_job_manager.models import Job
from efi_job_manager.repository import (
    CandidateJob,
    Gate,
)
from efi_job_manager.status import Status

__all__ = ["StartStep"]

log = logging.getLogger("efi_job_manager.manager")

#: Seconds between two checks that a destination's pipeline can run there (`check_site`).
SITE_CHECK_EVERY = 300.0


class StartStep(SubmitStep):
    """Claims new jobs, stages and submits them; holds back destinations that cannot run them."""

    def _fail_unknown_types(self, cycle: Cycle) -> None:
        for row in self.repository.new_jobs_of_unknown_type():
            reason = (f"unknown job_type {row.job_type!r}: this manager runs "
                      f"{', '.join(sorted(self.repository.known_job_types))}")
            if self.dry_run:
                cycle.planned.append(PlannedAction(row.id, "fail", detail=reason))
                continue
            log.warning("job %s failed: %s", row.id, reason)
            try:
                self.job_dir(row.id).record_failure(reason, cycle.now, job_type=row.job_type)
            except (OSError, UnsafeJobDirectory) as exc:
                log.error("job %s: cannot write failure.json: %s", row.id, exc)
            if self.repository.transition(row.id, Status.NEW, Status.FAILED):
                cycle.failed.append((row.id, reason))
                self.events.emit(JobEvent(EventKind.FAILED, row.id, row.job_type, None,
                                          cycle.now, reason, cause=FailureCause.UNKNOWN_TYPE))


    def _submit_new(self, cycle: Cycle) -> None:
        self._fail_unknown_types(cycle)
        running = self.repository.count(Status.RUNNING)
        free = min(self.settings.max_running_jobs - running, self.settings.claim_batch)
        if free <= 0:
            return
        if self.dry_run:
            self._plan_new(cycle, free, self._limits(self.repository.running_counts(),
                                                     cycle.unavailable))
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
        # One claim for the cycle: the jobs are staged and submitted a batch per destination;
        # those a destination did not take go back to new (see `SubmitStep`).
        claimed = self.repository.claim_new(free, gate=self._gate(cycle.unavailable))
        for _ in claimed:
            reached("claimed")
        if claimed:
            self._start_jobs(cycle, claimed)


    def _check_destinations(self, cycle: Cycle) -> None:
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
                with self.metrics.command(name, "check_site"):
                    missing = destination.connector.check_site(needs.executables, needs.paths)
            except Exception as exc:  # not knowing is no reason to hold jobs back
                log.warning("destination %s: cannot check its pipeline's files: %s",
                            destination.label, exc)
                continue
            if missing:
                shown = "; ".join(missing[:5]) + (f"; {len(missing) - 5} more"
                                                  if len(missing) > 5 else "")
                message = f"destination {destination.label}: its pipeline cannot run there: {shown}"
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
        return lambda counts: self._limits(counts, unavailable).accept


    def _plan_new(self, cycle: Cycle, free: int, limits: LimitCheck) -> None:
        candidates = self.repository.jobs([Status.NEW], limit=4 * free, newest_first=False)
        candidates.sort(key=lambda j: (j.timeCreated or datetime.min, j.id))
        planned = 0
        for job in candidates:
            if planned >= free:
                break
            hold = limits.hold(CandidateJob(job.id, job.job_type, job.user_id, job.timeCreated))
            if hold is not None:
                cycle.planned.append(PlannedAction(job.id, "hold", self.route(job.job_type),
                                                   detail=str(hold)))
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
        return self.destinations[destination].connector.render_job(self._spec(job, prepared))
