"""The repository's queries: one job, listings, counts, and the rows each cycle step takes up."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import attrs
from sqlalchemy import Select, func, or_, select

from efi_job_manager.models import Job
from efi_job_manager.repository.base import RepositoryBase
from efi_job_manager.status import Status

__all__ = ["JobRef", "JobRow", "ReadQueries", "UnknownJobRow", "since"]


@attrs.frozen
class UnknownJobRow:
    """A row whose ``job_type`` the model does not know."""

    id: int
    job_type: str
    status: str


@attrs.frozen
class JobRow:
    """A row as listings show it, whatever its ``job_type`` (known to the model or not)."""

    id: int
    job_type: str
    status: str
    user_id: int | None
    scheduler_id: int | None
    time_created: datetime | None
    time_started: datetime | None
    time_completed: datetime | None


class JobRef(Protocol):
    """What the manager reads of a job to follow it: a mapped `Job`, or a row of those columns.

    `ReadQueries.running_jobs` gives the rows: a status cycle reads only these columns of
    its running jobs, not a row's 75, and makes no object of its own for each.
    """

    @property
    def id(self) -> int: ...  # noqa: D102
    @property
    def uuid(self) -> str: ...  # noqa: D102
    @property
    def job_type(self) -> str: ...  # noqa: D102
    @property
    def user_id(self) -> int | None: ...  # noqa: D102
    @property
    def schedulerJobId(self) -> int | None: ...  # noqa: D102
    @property
    def jobName(self) -> str | None: ...  # noqa: D102
    @property
    def timeCreated(self) -> datetime | None: ...  # noqa: D102


class ReadQueries(RepositoryBase):
    """The reading part of `efi_job_manager.repository.JobRepository`."""

    def get(self, job_id: int) -> Job | None:
        """Return one job, or None if there is no row with a known job type for this id."""
        rows = self._load(lambda e, s: s.where(e.id == job_id))
        return rows[0] if rows else None

    def get_raw(self, job_id: int) -> Mapping[str, Any] | None:
        """Return one row as a plain mapping of its mapped base columns, whatever its type."""
        table = self._table
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(table.c.id == job_id)).mappings().first()
        return dict(row) if row is not None else None

    def jobs(self, statuses: Iterable[Status] | None = None, *, limit: int = 100,
             newest_first: bool = True) -> list[Job]:
        """Return jobs of known types, optionally by status, for listings."""
        wanted = [s.value for s in statuses] if statuses is not None else None

        def build(e: Any, s: Select[Any]) -> Select[Any]:
            if wanted is not None:
                s = s.where(self._in(e.status, wanted))
            order = e.id.desc() if newest_first else e.id.asc()
            return s.order_by(order).limit(limit)

        return self._load(build)

    def job_rows(self, statuses: Iterable[str] | None = None, *, limit: int | None = 100,
                 ids: Iterable[int] | None = None, completed_since: datetime | None = None,
                 completed_until: datetime | None = None) -> list[JobRow]:
        """Return rows of any job type, newest first, for listings and bulk actions.

        Args:
            statuses: Only these exact status strings.
            limit: At most this many rows (None: all).
            ids: Only these ids.
            completed_since: Only rows whose ``timeCompleted`` is at or after this.
            completed_until: Only rows whose ``timeCompleted`` is before this.
        """
        t = self._table
        stmt = select(t.c.id, t.c.job_type, t.c.status, t.c.user_id, t.c.schedulerJobId,
                      t.c.timeCreated, t.c.timeStarted, t.c.timeCompleted)
        if statuses is not None:
            stmt = stmt.where(self._in(t.c.status, list(statuses)))
        if ids is not None:
            stmt = stmt.where(t.c.id.in_(list(ids)))
        if completed_since is not None:
            stmt = stmt.where(t.c.timeCompleted >= completed_since)
        if completed_until is not None:
            stmt = stmt.where(t.c.timeCompleted < completed_until)
        stmt = stmt.order_by(t.c.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            return [JobRow(int(r[0]), _text(r[1]), _text(r[2]),
                           None if r[3] is None else int(r[3]),
                           None if r[4] is None else int(r[4]), r[5], r[6], r[7])
                    for r in conn.execute(stmt)]

    def counts_by_status(self) -> dict[str, int]:
        """Return ``raw status string → number of rows``, unknown strings included."""
        table = self._table
        status = func.binary(table.c.status) if self._binary else table.c.status
        stmt = select(status, func.count()).group_by(status)
        with self.engine.connect() as conn:
            return {(value.decode() if isinstance(value, bytes) else str(value)): int(n)
                    for value, n in conn.execute(stmt)}

    def counts_by_status_and_type(self) -> dict[tuple[str, str], int]:
        """Return ``(raw status, job_type) → number of rows``, every row counted."""
        table = self._table
        status = func.binary(table.c.status) if self._binary else table.c.status
        stmt = select(status, table.c.job_type, func.count()).group_by(status, table.c.job_type)
        with self.engine.connect() as conn:
            return {(_text(value), _text(job_type)): int(n)
                    for value, job_type, n in conn.execute(stmt)}

    def oldest_new(self) -> tuple[int, datetime | None] | None:
        """Return the id and ``timeCreated`` of the oldest ``new`` row, if there is one."""
        table = self._table
        stmt = (select(table.c.id, table.c.timeCreated)
                .where(self._eq(table.c.status, Status.NEW.value))
                .order_by(table.c.timeCreated.is_(None), table.c.timeCreated, table.c.id)
                .limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (int(row[0]), row[1])

    def count(self, status: Status) -> int:
        """Return the number of rows with one status (an index range, whatever the table size)."""
        table = self._table
        stmt = select(func.count()).select_from(table).where(self._eq(table.c.status, status.value))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def running_jobs(self) -> list[JobRef]:
        """Return every ``running`` job of a known type that has a scheduler id, oldest first.

        One SELECT of the columns a status cycle needs (`JobRef`'s); `get` gives a job's
        whole row when it ends.
        """
        t = self._table
        stmt = (select(t.c.id, t.c.uuid, t.c.job_type, t.c.user_id, t.c.schedulerJobId,
                       t.c.jobName, t.c.timeCreated)
                .where(self._eq(t.c.status, Status.RUNNING.value), t.c.schedulerJobId.is_not(None),
                       self._in(t.c.job_type, sorted(self._classes)))
                .order_by(t.c.id))
        with self.engine.connect() as conn:
            return cast("list[JobRef]", list(conn.execute(stmt).all()))

    def running_without_scheduler_id(self, started_before: datetime | None = None) -> list[Job]:
        """Return ``running`` jobs with no scheduler id (claimed, submission not recorded).

        Args:
            started_before: Only jobs claimed before this time (the grace period).
        """
        t = self._table
        where = [self._eq(t.c.status, Status.RUNNING.value), t.c.schedulerJobId.is_(None)]
        if started_before is not None:
            where.append(or_(t.c.timeStarted.is_(None), t.c.timeStarted < started_before))
        return self._load_ids(self._ids_where(*where))

    def cancelled_to_propagate(self, since: datetime,
                               skip: Collection[int] = ()) -> list[Job]:
        """Return ``cancelled`` jobs that were claimed, cancelled since ``since``.

        Those with a scheduler id, and those claimed (``timeStarted`` set) whose
        submission may exist although its id was never stored. Whether the
        cancellation was already sent is the manager's record (in the job's
        directory); this returns the candidates, less the ids in ``skip`` (those the
        manager already knows about). Jobs with no ``timeCompleted`` are included
        whatever their age.
        """
        t = self._table
        ids = self._ids_where(
            self._eq(t.c.status, Status.CANCELLED.value),
            or_(t.c.schedulerJobId.is_not(None), t.c.timeStarted.is_not(None)),
            or_(t.c.timeCompleted.is_(None), t.c.timeCompleted >= since))
        return self._load_ids([i for i in ids if i not in skip])

    def _ids_where(self, *where: Any) -> list[int]:
        """The ids of the rows of a known type that match ``where``, in order."""
        t = self._table
        stmt = (select(t.c.id).where(*where, self._in(t.c.job_type, sorted(self._classes)))
                .order_by(t.c.id))
        with self.engine.connect() as conn:
            return [int(i) for i in conn.execute(stmt).scalars()]

    def _load_ids(self, ids: Sequence[int]) -> list[Job]:
        """The mapped jobs of ``ids`` (none: no query at all), in order of id."""
        jobs: list[Job] = []
        for start in range(0, len(ids), _LOAD_CHUNK):
            chunk = list(ids[start:start + _LOAD_CHUNK])

            def build(e: Any, s: Select[Any], chunk: list[int] = chunk) -> Select[Any]:
                return s.where(e.id.in_(chunk)).order_by(e.id)

            jobs += self._load(build)
        return jobs

    def ids_with_status(self, status: str, limit: int = 10) -> list[int]:
        """Return the ids of up to ``limit`` rows whose status is exactly ``status``."""
        table = self._table
        stmt = (select(table.c.id).where(self._eq(table.c.status, status))
                .order_by(table.c.id).limit(limit))
        with self.engine.connect() as conn:
            return [int(i) for i in conn.execute(stmt).scalars()]

    def new_jobs_of_unknown_type(self, limit: int = 100) -> list[UnknownJobRow]:
        """Return ``new`` rows whose ``job_type`` the model does not map."""
        table = self._table
        stmt = (select(table.c.id, table.c.job_type, table.c.status)
                .where(self._eq(table.c.status, Status.NEW.value),
                       self._not_in(table.c.job_type, sorted(self._classes)))
                .order_by(table.c.id).limit(limit))
        with self.engine.connect() as conn:
            return [UnknownJobRow(int(i), str(t), str(s)) for i, t, s in conn.execute(stmt)]


#: Ids per query when whole rows are loaded by id.
_LOAD_CHUNK = 500


def since(now: datetime, seconds: float) -> datetime:
    """Return ``now`` minus ``seconds`` (a helper for grace periods and windows)."""
    return now - timedelta(seconds=seconds)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
