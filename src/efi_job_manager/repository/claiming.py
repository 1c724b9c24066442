"""The claim: counting the running jobs and claiming ``new`` ones under one database-wide lock."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import Connection, Select, func, select, text, update
from sqlalchemy.exc import OperationalError

from efi_job_manager.models import Job
from efi_job_manager.repository.base import RepositoryBase
from efi_job_manager.status import Status

__all__ = ["CLAIM_LOCK_KEY", "CLAIM_LOCK_WAIT", "CandidateJob", "Claims", "Gate",
           "RunningCounts"]

#: PostgreSQL advisory lock of the claim (a fixed 64-bit number: "efi-job-manager claim").
CLAIM_LOCK_KEY = 0x4546494A4D434C4D
#: Seconds a claim waits for another manager's claim before giving up this cycle.
CLAIM_LOCK_WAIT = 30


@attrs.frozen
class CandidateJob:
    """A ``new`` row offered to the claim's ``accept`` predicate."""

    id: int
    job_type: str
    user_id: int | None
    time_created: datetime | None


@attrs.frozen
class RunningCounts:
    """The ``running`` rows, counted inside a claim (under the claim lock).

    Attributes:
        total: Every running row.
        by_user: Running rows per ``user_id``.
        by_job_type: Running rows per ``job_type``.
    """

    total: int
    by_user: Mapping[int | None, int]
    by_job_type: Mapping[str, int]


#: Builds a claim's ``accept`` predicate from the counts read under the claim lock.
Gate = Callable[[RunningCounts], Callable[[CandidateJob], bool]]


class Claims(RepositoryBase):
    """The claiming part of `efi_job_manager.repository.JobRepository`."""

    def running_counts(self) -> RunningCounts:
        """Return the running jobs counted by ``user_id`` and by ``job_type`` (no lock)."""
        with self.engine.connect() as conn:
            return self._running_counts(conn)

    def waiting(self, limit: int) -> list[CandidateJob]:
        """The ``limit`` oldest ``new`` rows of a known type, in the order a claim takes them."""
        with self.engine.connect() as conn:
            return [_candidate(r) for r in conn.execute(self._candidates(scan=limit))]

    def claim_new(self, limit: int, *, gate: Gate | None = None) -> list[Job]:
        """Move up to ``limit`` ``new`` jobs to ``running``, oldest first; return them so.

        Counting and claiming happen under one lock for every manager on the
        database (an advisory lock held by the transaction on PostgreSQL, a
        named lock around it on MariaDB, an immediate transaction on SQLite), so
        limits computed from the counts hold across any number of managers. Each
        claim is a compare-and-set ``new → running`` that sets ``timeStarted``
        and clears ``schedulerJobId``.

        Args:
            limit: Most jobs to claim.
            gate: Given the running counts read under the lock, returns the predicate
                that decides each candidate in order (False leaves it ``new``). It may
                decide by the candidate's user and job type only: when the oldest few are
                all held back, the candidates are the oldest ``new`` row of each (user,
                job type), so one user's ten thousand queued jobs hold no other user's
                back.
        """
        if limit <= 0:
            return []
        oldest, heads = self._candidates(scan=4), self._candidates()
        table = self._table
        claimed: list[int] = []
        with self._claim_lock() as conn:
            now = self.clock()
            accept = gate(self._running_counts(conn)) if gate is not None else None
            for _ in range(2 * limit):  # a lost compare-and-set (a cancel) costs a round
                if len(claimed) >= limit:
                    break
                # the oldest few usually hold the pick; when all of them are held back,
                # the oldest of each (user, job type) is read: one per pair, not all rows
                for stmt in (oldest, heads):
                    candidates = (_candidate(r) for r in conn.execute(stmt))
                    pick = next((c for c in candidates if accept is None or accept(c)), None)
                    if pick is not None:
                        break
                else:
                    break
                result = conn.execute(
                    update(table)
                    .where(table.c.id == pick.id, self._eq(table.c.status, Status.NEW.value))
                    .values(**self._stamped({"status": Status.RUNNING.value, "timeStarted": now,
                                             "schedulerJobId": None}, now)))
                if result.rowcount == 1:
                    claimed.append(pick.id)
        if not claimed:
            return []
        loaded = {job.id: job for job in self._load(lambda e, s: s.where(e.id.in_(claimed)))}
        return [loaded[job_id] for job_id in claimed if job_id in loaded]  # in claim order

    @contextlib.contextmanager
    def _claim_lock(self) -> Iterator[Connection]:
        """A transaction that no other claim on the database runs beside."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
                yield conn
        elif dialect in ("mysql", "mariadb"):
            with self.engine.connect() as conn:
                name = f"efi_job_manager.claim.{self.engine.url.database}"[:64]
                got = conn.execute(text("SELECT GET_LOCK(:name, :wait)"),
                                   {"name": name, "wait": CLAIM_LOCK_WAIT}).scalar()
                conn.commit()
                if got != 1:
                    raise OperationalError("SELECT GET_LOCK", {}, TimeoutError(
                        f"the claim lock {name!r} was not free within {CLAIM_LOCK_WAIT} s"))
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
                    conn.commit()
        else:
            with self.engine.connect().execution_options(efi_immediate=True) as conn, \
                    conn.begin():
                yield conn

    def _running_counts(self, conn: Connection) -> RunningCounts:
        table = self._table
        running = self._eq(table.c.status, Status.RUNNING.value)
        by_user = {u: int(n) for u, n in conn.execute(
            select(table.c.user_id, func.count()).where(running).group_by(table.c.user_id))}
        by_type = {str(t): int(n) for t, n in conn.execute(
            select(table.c.job_type, func.count()).where(running).group_by(table.c.job_type))}
        return RunningCounts(sum(by_user.values()), by_user, by_type)

    def _candidates(self, scan: int | None = None) -> Select[Any]:
        """The ``scan`` oldest new rows of a known type, else each (user, job type)'s oldest."""
        table = self._table
        if scan is not None:
            return (select(table.c.id, table.c.job_type, table.c.user_id, table.c.timeCreated)
                    .where(self._eq(table.c.status, Status.NEW.value),
                           self._in(table.c.job_type, sorted(self._classes)))
                    .order_by(table.c.timeCreated, table.c.id).limit(scan))
        rank = func.row_number().over(partition_by=(table.c.user_id, table.c.job_type),
                                      order_by=(table.c.timeCreated, table.c.id))
        new = (select(table.c.id, table.c.job_type, table.c.user_id, table.c.timeCreated,
                      rank.label("rank"))
               .where(self._eq(table.c.status, Status.NEW.value),
                      self._in(table.c.job_type, sorted(self._classes)))
               .subquery())
        return (select(new.c.id, new.c.job_type, new.c.user_id, new.c.timeCreated)
                .where(new.c.rank == 1).order_by(new.c.timeCreated, new.c.id))

    def cycle_queries(self) -> dict[str, Select[Any]]:
        """Return the selects every cycle runs, by name, for query-plan checks and benchmarks."""
        table = self._table
        running = self._eq(table.c.status, Status.RUNNING.value)
        return {
            "claim": self._candidates(scan=200),
            "claim_by_pair": self._candidates(),
            "running": select(table.c.id).where(running, table.c.schedulerJobId.is_not(None)),
            "unknown_types": select(table.c.id).where(
                self._eq(table.c.status, Status.NEW.value),
                self._not_in(table.c.job_type, sorted(self._classes))),
            "count_running": select(func.count()).select_from(table).where(running),
            "running_by_user": select(table.c.user_id, func.count())
                .where(running).group_by(table.c.user_id),
        }


def _candidate(row: Any) -> CandidateJob:
    """A row of `Claims._candidates` as the gate sees it."""
    return CandidateJob(int(row.id), str(row.job_type), row.user_id, row.timeCreated)
