"""The repository's writes: compare-and-set transitions, the scheduler id, take-over, results."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import update

from efi_job_manager.models import Job, updatable_columns
from efi_job_manager.repository.base import RepositoryBase
from efi_job_manager.repository.reading import JobRef
from efi_job_manager.repository.schedulerid import column_value
from efi_job_manager.status import Status, check_transition

__all__ = ["Completion", "Transitions"]

log = logging.getLogger("efi_job_manager.repository")


@attrs.frozen
class Completion:
    """The outcome of `JobRepository.complete`.

    Attributes:
        won: The compare-and-set succeeded and the values were written.
        written: Columns written (empty if not won).
        rejected: Keys that were asked for but are not updatable columns of the job's type.
    """

    won: bool
    written: Mapping[str, Any]
    rejected: tuple[str, ...]


class Transitions(RepositoryBase):
    """The writing part of `efi_job_manager.repository.JobRepository` (claims aside)."""

    def transition(self, job_id: int, from_: Status, to: Status, *,
                   values: Mapping[str, Any] | None = None,
                   where: Mapping[str, Any] | None = None) -> bool:
        """Move one job ``from_ → to`` with compare-and-set; return whether it won.

        Time columns follow the move: entering ``running`` sets ``timeStarted``;
        entering ``finished``/``failed``/``cancelled`` sets ``timeCompleted``;
        a retry (back to ``new``) clears both and ``schedulerJobId``.

        Args:
            values: More columns to write in the same statement (base columns only).
            where: More equality conditions (e.g. ``{"schedulerJobId": None}``).

        Raises:
            InvalidTransition: ``from_ → to`` is not allowed.
        """
        check_transition(from_, to)
        table = self._table
        now = self.clock()
        changes: dict[str, Any] = {"status": to.value}
        if to is Status.RUNNING:
            changes["timeStarted"] = now
        elif to in (Status.FINISHED, Status.FAILED, Status.CANCELLED):
            changes["timeCompleted"] = now
        elif to is Status.NEW:
            changes.update(timeStarted=None, timeCompleted=None, schedulerJobId=None)
        changes.update(values or {})
        stmt = update(table).where(table.c.id == job_id, self._eq(table.c.status, from_.value))
        for column, value in (where or {}).items():
            col = table.c[column]
            stmt = stmt.where(col.is_(None) if value is None else col == value)
        with self.engine.begin() as conn:
            won = conn.execute(stmt.values(**self._stamped(changes, now))).rowcount == 1
        log.debug("job %s: %s → %s %s", job_id, from_.value, to.value, "won" if won else "lost")
        return won

    def set_scheduler_id(self, job_id: int, scheduler_id: str, *,
                         started: datetime | None = None) -> bool:
        """Record the scheduler's id of a ``running`` job that has none yet.

        ``started``: also write ``timeStarted`` (an adoption gives back the claim's time,
        which the take-over had moved to restart the grace period).

        Compare-and-set on ``schedulerJobId IS NULL``: of two managers that
        submitted the same job, only the first records its id; the loser must
        cancel its own submission.

        An id that is not digits fitting the column is stored as its negative stand-in
        (`column_value`); the caller keeps the id itself in the job's directory first.

        Raises:
            InvalidSchedulerId: ``scheduler_id`` is empty, too long or not printable text.
        """
        return job_id in self.set_scheduler_ids({job_id: scheduler_id}, started=started)

    def set_scheduler_ids(self, scheduler_ids: Mapping[int, str], *,
                          started: datetime | None = None) -> set[int]:
        """`set_scheduler_id` for many jobs in one transaction; return the ids that won.

        Each row is its own compare-and-set; only the commit is shared.

        Raises:
            InvalidSchedulerId: an id is empty, too long or not printable text (nothing
                is written).
        """
        values = {job_id: column_value(job_id, sid) for job_id, sid in scheduler_ids.items()}
        if not values:
            return set()
        table = self._table
        won: set[int] = set()
        stamp = self._stamped({} if started is None else {"timeStarted": started},
                              self.clock())
        with self.engine.begin() as conn:
            for job_id, value in values.items():
                stmt = (update(table)
                        .where(table.c.id == job_id,
                               self._eq(table.c.status, Status.RUNNING.value),
                               table.c.schedulerJobId.is_(None))
                        .values(schedulerJobId=value, **stamp))
                if conn.execute(stmt).rowcount == 1:
                    won.add(job_id)
        return won

    def take_over(self, job: Job) -> bool:
        """Take a ``running`` job without a scheduler id over for recovery.

        Compare-and-set on the claim time read in ``job``: of several managers
        recovering the same job, exactly one wins, and the job's
        ``timeStarted`` moves to now so the grace period starts again.
        """
        table = self._table
        stmt = update(table).where(
            table.c.id == job.id, self._eq(table.c.status, Status.RUNNING.value),
            table.c.schedulerJobId.is_(None))
        if job.timeStarted is None:
            stmt = stmt.where(table.c.timeStarted.is_(None))
        else:
            stmt = stmt.where(table.c.timeStarted == job.timeStarted)
        with self.engine.begin() as conn:
            now = self.clock()
            changes = self._stamped({"timeStarted": now}, now)
            return conn.execute(stmt.values(**changes)).rowcount == 1

    def complete(self, job: JobRef, to: Status, results: Mapping[str, Any] | None = None, *,
                 from_: Status = Status.RUNNING) -> Completion:
        """Move a job to ``to`` and write its result columns in one compare-and-set.

        Only columns marked updatable for the job's type are written; other
        keys are returned in ``rejected`` (and logged), never written.

        Raises:
            InvalidTransition: ``from_ → to`` is not allowed.
        """
        allowed = updatable_columns(self.job_classes[job.job_type])
        results = dict(results or {})
        rejected = tuple(sorted(k for k in results if k not in allowed))
        if rejected:
            log.warning("job %s: not writing %s: not updatable result columns of %s",
                        job.id, ", ".join(rejected), job.job_type)
        written = {k: v for k, v in results.items() if k in allowed}
        won = self.transition(job.id, from_, to, values=written)
        return Completion(won, written if won else {}, rejected)
