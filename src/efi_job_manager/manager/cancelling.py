"""Step 1 of a cycle: a cancellation made in the table reaches the cluster, once."""

from __future__ import annotations

import logging

from efi_job_manager.events import EventKind
from efi_job_manager.faults import reached
from efi_job_manager.manager.base import ManagerBase
from efi_job_manager.manager.report import Cycle, PlannedAction
from efi_job_manager.models import Job
from efi_job_manager.repository import since

__all__ = ["CancelStep"]

log = logging.getLogger("efi_job_manager.manager")


class CancelStep(ManagerBase):
    """Sends the cancellations of jobs the web cancelled to their scheduler."""

    def _propagate_cancellations(self, cycle: Cycle) -> None:
        # the jobs whose cancellation this process found sent are not read again
        jobs = self.repository.cancelled_to_propagate(
            since(cycle.now, self.settings.cancel_window), skip=self._cancel_settled)
        todo: dict[str, list[tuple[Job, str]]] = {}
        for job in jobs:
            if self._halted(cycle):
                break
            jd = self.job_dir(job.id)
            known = self._scheduler_id(job)
            if known is None:
                # claimed, maybe submitted, but the id never stored (a crash): look it up
                claim = jd.claim_of(job.uuid)
                if claim is None or jd.cancel_sent(f"claim {claim}"):
                    self._cancel_settled.add(job.id)
                    continue
                for sid in self._lookup_for_cancel(cycle, job, claim):
                    todo.setdefault(self.destination_of(job).name, []).append((job, sid))
                continue
            if not jd.cancel_sent(known):
                todo.setdefault(self.destination_of(job).name, []).append((job, known))
            else:
                self._cancel_settled.add(job.id)
        for name, group in todo.items():
            ids = [sid for _, sid in group]
            if self.dry_run:
                cycle.planned.extend(PlannedAction(j.id, "cancel", name) for j, _ in group)
                continue
            try:
                self._cancel(self.destinations[name], ids)
            except Exception as exc:  # a connector's bug must not stop the cycle
                cycle.errors.append(f"cancelling {', '.join(ids)} on {name}: {exc}")
                log.warning("destination %s: cannot cancel %s: %s",
                            self.destinations[name].label, ids, exc)
                continue
            reached("cancel-sent")
            for job, sid in group:
                claim = self.job_dir(job.id).claim_of(job.uuid)
                marker = sid if self._scheduler_id(job) == sid else f"claim {claim}"
                self.job_dir(job.id).record_cancel_sent(cycle.now, marker)
                cycle.cancelled.append(job.id)
                self._event(EventKind.CANCELLED, job, "cancelled by the user or an operator", sid)
                log.info("job %s: cancelled on %s (scheduler id %s)", job.id, name, sid)


    def _lookup_for_cancel(self, cycle: Cycle, job: Job, claim: str) -> list[str]:
        """The submissions of a cancelled job whose scheduler id was never stored."""
        destination = self.destination_of(job)
        try:
            found = self._find(destination, job, claim)
        except Exception as exc:
            cycle.errors.append(f"looking up cancelled job {job.id}: {exc}")
            return []
        if not found and not self.dry_run:
            self.job_dir(job.id).record_cancel_sent(cycle.now, f"claim {claim}")
        return found
