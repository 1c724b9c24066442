"""Step 2 of a cycle: a job claimed by a manager that died is adopted or submitted again."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from efi_job_manager.events import EventKind
from efi_job_manager.faults import reached
from efi_job_manager.jobdir import claimer_is_gone
from efi_job_manager.manager.report import Cycle, Destination, PlannedAction
from efi_job_manager.manager.starting import StartStep
from efi_job_manager.metrics import FailureCause
from efi_job_manager.models import Job
from efi_job_manager.repository import InvalidSchedulerId, column_value, since
from efi_job_manager.status import Status

__all__ = ["RecoverStep"]

log = logging.getLogger("efi_job_manager.manager")


class RecoverStep(StartStep):
    """Recovers running jobs with no scheduler id past ``submit_grace``: adopt or restart."""

    def _recover(self, cycle: Cycle) -> None:
        cutoff = since(cycle.now, self.settings.submit_grace)
        waiting = self.repository.running_without_scheduler_id()  # one read for both
        young = [job for job in waiting if job.timeStarted is not None
                 and job.timeStarted >= cutoff and job.id not in self._waits_said]
        if young and not self.dry_run:
            self._look_up_early(cycle, young)
        stale = [job for job in waiting if job.timeStarted is None or job.timeStarted < cutoff]
        for job in stale:
            if self._halted(cycle):
                return
            if self.dry_run:
                cycle.planned.append(PlannedAction(job.id, "recover", self.route(job.job_type)))
                continue
            destination = self.destination_of(job)
            if destination.name in cycle.unavailable:  # it did not answer this cycle
                continue
            if not self.repository.take_over(job):
                cycle.lost_races.append(job.id)
                continue
            reached("taken-over")
            claim = self.job_dir(job.id).claim_of(job.uuid)
            try:
                # only this claim's submissions: never an earlier run's, never another row's
                found = [] if claim is None else self._find(destination, job, claim)
            except Exception as exc:
                self._no_answer(cycle, destination, exc)
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


    def _look_up_early(self, cycle: Cycle, young: list[Job]) -> None:
        """Inside ``submit_grace``: adopt now what a manager that died had submitted.

        ``young``: the jobs without a scheduler id claimed within ``submit_grace`` whose wait
        this process has not said yet.

        A job claimed by a process of this host that has ended (``claim.json``'s ``by``)
        is looked up by name once; what is found is adopted at once, instead of after the
        grace period. Any other job without a scheduler id yet is said once per process,
        with when it will be recovered: no wait goes unsaid.
        """
        for job in young:
            if self._halted(cycle):
                return
            self._waits_said.add(job.id)
            record = self.job_dir(job.id).claim_record(job.uuid) or {}
            claim = record.get("claim")
            started = job.timeStarted
            if started is None:  # not reached: filtered above
                continue
            due = started + timedelta(seconds=self.settings.submit_grace)
            destination = self.destination_of(job)
            if not isinstance(claim, str) or not claimer_is_gone(record.get("by")):
                log.info("job %s: claimed at %s, no scheduler id yet; if none is stored, it is "
                         "looked up on %s and recovered at %s", job.id, job.timeStarted,
                         destination.name, due)
                continue
            if destination.name in cycle.unavailable:
                continue
            try:
                found = self._find(destination, job, claim)
            except Exception as exc:  # not knowing is not "not submitted": wait for the grace
                self._no_answer(cycle, destination, exc)
                log.warning("job %s: claimed by %s, which has ended; cannot look it up on %s "
                            "(%s): recovered at %s", job.id, record.get("by"),
                            destination.name, exc, due)
                continue
            if found:
                log.warning("job %s: claimed by %s, which has ended; its submission %s found "
                            "on %s is adopted now", job.id, record.get("by"), found[0],
                            destination.name)
                self._adopt(cycle, job, destination, found)
            else:
                log.warning("job %s: claimed by %s, which has ended; nothing found on %s yet: "
                            "looked up again and, if still not found, submitted at %s", job.id,
                            record.get("by"), destination.name, due)

    def _claimed_at(self, job: Job) -> datetime | None:
        """When this claim of ``job`` began (``claim.json``), if it can be read."""
        text = (self.job_dir(job.id).claim_record(job.uuid) or {}).get("time")
        if not isinstance(text, str):
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None

    def _adopt(self, cycle: Cycle, job: Job, destination: Destination,
               found: list[str]) -> None:
        keep, extra = found[0], found[1:]
        try:
            column_value(job.id, keep)
        except InvalidSchedulerId as exc:
            self._fail(cycle, job, Status.RUNNING, str(exc), cause=FailureCause.INTERNAL)
            return
        if not self._note_scheduler_id(job, destination, keep):
            cycle.errors.append(f"job {job.id}: cannot note its scheduler id {keep} in its "
                                "directory; adopting it next cycle")
            return
        # the row's start is the claim's, not this adoption's (the take-over moved it)
        won = self.repository.set_scheduler_id(job.id, keep, started=self._claimed_at(job))
        if not won:
            cycle.lost_races.append(job.id)
            return
        reached("adopted")
        log.warning("job %s: adopted scheduler job %s on %s found by name", job.id, keep,
                    destination.name)
        cycle.recovered.append(job.id)
        # the submission that was lost before its id was stored was never announced
        self._event(EventKind.STARTED, job, scheduler_id=keep)
        if extra:
            log.warning("job %s: cancelling duplicate submissions %s", job.id, extra)
            self._cancel_quietly(destination, extra)
