"""`JobRepository`: every SQL statement of the product.

The manager never writes SQL; it asks the repository. Every status change is
one compare-and-set ``UPDATE … WHERE id = :id AND status = :from`` with its
column updates in the same transaction, and says whether it won: zero rows
means someone else (the web, an operator, another manager) moved the job
first, and the caller must re-read rather than overwrite.

Queries that run every cycle select by ``status`` (indexed: ``ix_Job_status``),
so a cycle's cost does not grow with the number of finished rows.

Rows whose ``job_type`` the model does not know are never loaded as objects
(SQLAlchemy would refuse them); `new_jobs_of_unknown_type` reports them so
the manager can fail them with a reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import attrs
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker, with_polymorphic

from efi_job_manager.clock import utcnow
from efi_job_manager.models import Job, job_classes, updatable_columns
from efi_job_manager.status import Status, check_transition

__all__ = [
    "CandidateJob",
    "Completion",
    "Gate",
    "InvalidSchedulerId",
    "JobRepository",
    "RunningCounts",
    "UnknownJobRow",
    "make_engine",
]

log = logging.getLogger(__name__)

#: Largest value of EFI-Web's INTEGER ``schedulerJobId`` column on every supported database.
_MAX_SCHEDULER_ID = 2**31 - 1
#: PostgreSQL advisory lock of the claim (a fixed 64-bit number: "efi-job-manager claim").
_CLAIM_LOCK_KEY = 0x4546494A4D434C4D
#: Seconds a claim waits for another manager's claim before giving up this cycle.
_CLAIM_LOCK_WAIT = 30


class InvalidSchedulerId(ValueError):
    """A connector returned a scheduler id that is not a non-negative integer."""

    def __init__(self, job_id: int, value: object) -> None:
        self.job_id = job_id
        self.value = value
        super().__init__(
            f"job {job_id}: scheduler id {value!r} cannot be stored in Job.schedulerJobId "
            f"(an integer column): the connector must return a string of digits")


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


@attrs.frozen
class UnknownJobRow:
    """A row whose ``job_type`` the model does not know."""

    id: int
    job_type: str
    status: str


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


def make_engine(url: str | URL, *, connect_timeout: float = 10.0, echo: bool = False) -> Engine:
    """Create an engine with a connect timeout and pool pre-ping for any supported database.

    Args:
        url: A SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``,
            ``mysql+pymysql://…``).
        connect_timeout: Seconds to wait for a connection (or a SQLite lock).
        echo: Log every statement (never passwords: SQLAlchemy logs parameters, not the URL).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        connect_args["timeout"] = connect_timeout
    elif backend in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = max(1, round(connect_timeout))
    engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=True, echo=echo)
    _sqlite_transactions(engine)
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions (idempotent).

    The sqlite3 module begins a transaction only before a write; a claim must
    count and claim in one ``BEGIN IMMEDIATE`` (SQLAlchemy's documented recipe).
    """
    if engine.dialect.name != "sqlite" or event.contains(engine, "begin", _sqlite_begin):
        return
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("efi_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class JobRepository:
    """Reads and moves rows of EFI-Web's ``Job`` table.

    Args:
        engine: Where the table is.
        job_class: The mapped base class (the shipped `efi_job_manager.models.Job`
            or a project's own, see `efi_job_manager.models.load_job_model`).
        clock: Returns "now" for time columns (naive UTC by default); tests inject one.
    """

    def __init__(self, engine: Engine, job_class: type[Job] = Job, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.job_class = job_class
        self.clock = clock
        self._classes = job_classes(job_class)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        _sqlite_transactions(engine)
        # MySQL/MariaDB compare text by collation ('NEW' = 'new ' = 'new'); EFI-Web's
        # strings are compared byte for byte, so a variant never passes for a known value
        self._binary = engine.dialect.name in ("mysql", "mariadb")

    @classmethod
    def from_url(cls, url: str | URL, *, job_class: type[Job] = Job,
                 connect_timeout: float = 10.0) -> JobRepository:
        """Create a repository on a new engine for ``url``."""
        return cls(make_engine(url, connect_timeout=connect_timeout), job_class)

    @property
    def _table(self) -> Table:
        return cast("Table", self.job_class.__table__)

    @property
    def job_classes(self) -> Mapping[str, type[Job]]:
        """``job_type → mapped class`` of the repository's model."""
        return self._classes

    @property
    def known_job_types(self) -> frozenset[str]:
        """The ``job_type`` values the model maps."""
        return frozenset(self._classes)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    # -- exact comparisons ---------------------------------------------------------

    def _eq(self, column: Any, value: str) -> ColumnElement[bool]:
        """``column = value``, byte for byte on every backend (the index still serves)."""
        clause: ColumnElement[bool] = column == value
        return and_(clause, func.binary(column) == value) if self._binary else clause

    def _in(self, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
        """``column IN values``, byte for byte."""
        clause: ColumnElement[bool] = column.in_(values)
        return and_(clause, func.binary(column).in_(values)) if self._binary else clause

    def _not_in(self, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
        """``column NOT IN values``, byte for byte (a case or space variant is not in)."""
        clause: ColumnElement[bool] = (func.binary(column) if self._binary else column).not_in(
            values)
        return clause

    # -- reading -------------------------------------------------------------------

    def _select_jobs(self) -> tuple[Any, Select[Any]]:
        entity = with_polymorphic(self.job_class, "*")
        return entity, select(entity).where(self._in(entity.job_type, sorted(self._classes)))

    def _load(self, build: Callable[[Any, Select[Any]], Select[Any]]) -> list[Job]:
        entity, stmt = self._select_jobs()
        with self._sessions() as session:
            return list(session.scalars(build(entity, stmt)).all())

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

    def counts_by_status(self) -> dict[str, int]:
        """Return ``raw status string → number of rows``, unknown strings included."""
        table = self._table
        status = func.binary(table.c.status) if self._binary else table.c.status
        stmt = select(status, func.count()).group_by(status)
        with self.engine.connect() as conn:
            return {(value.decode() if isinstance(value, bytes) else str(value)): int(n)
                    for value, n in conn.execute(stmt)}

    def count(self, status: Status) -> int:
        """Return the number of rows with one status (an index range, whatever the table size)."""
        table = self._table
        stmt = select(func.count()).select_from(table).where(self._eq(table.c.status, status.value))
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def running_counts(self) -> RunningCounts:
        """Return the running jobs counted by ``user_id`` and by ``job_type`` (no lock)."""
        with self.engine.connect() as conn:
            return self._running_counts(conn)

    def running_jobs(self) -> list[Job]:
        """Return every ``running`` job that has a scheduler id, oldest first."""
        return self._load(lambda e, s: s.where(
            self._eq(e.status, Status.RUNNING.value), e.schedulerJobId.is_not(None)
        ).order_by(e.id))

    def running_without_scheduler_id(self, started_before: datetime | None = None) -> list[Job]:
        """Return ``running`` jobs with no scheduler id (claimed, submission not recorded).

        Args:
            started_before: Only jobs claimed before this time (the grace period).
        """
        def build(e: Any, s: Select[Any]) -> Select[Any]:
            s = s.where(self._eq(e.status, Status.RUNNING.value), e.schedulerJobId.is_(None))
            if started_before is not None:
                s = s.where(or_(e.timeStarted.is_(None), e.timeStarted < started_before))
            return s.order_by(e.id)

        return self._load(build)

    def cancelled_to_propagate(self, since: datetime) -> list[Job]:
        """Return ``cancelled`` jobs that were claimed, cancelled since ``since``.

        Those with a scheduler id, and those claimed (``timeStarted`` set) whose
        submission may exist although its id was never stored. Whether the
        cancellation was already sent is the manager's record (in the job's
        directory); this returns the candidates. Jobs with no ``timeCompleted``
        are included whatever their age.
        """
        return self._load(lambda e, s: s.where(
            self._eq(e.status, Status.CANCELLED.value),
            or_(e.schedulerJobId.is_not(None), e.timeStarted.is_not(None)),
            or_(e.timeCompleted.is_(None), e.timeCompleted >= since),
        ).order_by(e.id))

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

    # -- writing -------------------------------------------------------------------

    def claim_new(self, limit: int, *, gate: Gate | None = None) -> list[Job]:
        """Move up to ``limit`` ``new`` jobs to ``running``, oldest first, and return them.

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
                    candidates = (CandidateJob(int(r.id), str(r.job_type), r.user_id,
                                               r.timeCreated) for r in conn.execute(stmt))
                    pick = next((c for c in candidates if accept is None or accept(c)), None)
                    if pick is not None:
                        break
                else:
                    break
                result = conn.execute(
                    update(table)
                    .where(table.c.id == pick.id, self._eq(table.c.status, Status.NEW.value))
                    .values(status=Status.RUNNING.value, timeStarted=now, schedulerJobId=None))
                if result.rowcount == 1:
                    claimed.append(pick.id)
        if not claimed:
            return []
        return self._load(lambda e, s: s.where(e.id.in_(claimed)).order_by(e.id))

    @contextlib.contextmanager
    def _claim_lock(self) -> Iterator[Connection]:
        """A transaction that no other claim on the database runs beside."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK_KEY})
                yield conn
        elif dialect in ("mysql", "mariadb"):
            with self.engine.connect() as conn:
                name = f"efi_job_manager.claim.{self.engine.url.database}"[:64]
                got = conn.execute(text("SELECT GET_LOCK(:name, :wait)"),
                                   {"name": name, "wait": _CLAIM_LOCK_WAIT}).scalar()
                conn.commit()
                if got != 1:
                    raise OperationalError("SELECT GET_LOCK", {}, TimeoutError(
                        f"the claim lock {name!r} was not free within {_CLAIM_LOCK_WAIT} s"))
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
            won = conn.execute(stmt.values(**changes)).rowcount == 1
        log.debug("job %s: %s → %s %s", job_id, from_.value, to.value, "won" if won else "lost")
        return won

    def set_scheduler_id(self, job_id: int, scheduler_id: str) -> bool:
        """Record the scheduler's id of a ``running`` job that has none yet.

        Compare-and-set on ``schedulerJobId IS NULL``: of two managers that
        submitted the same job, only the first records its id; the loser must
        cancel its own submission.

        Raises:
            InvalidSchedulerId: ``scheduler_id`` is not a string of digits that fits the column.
        """
        value = parse_scheduler_id(job_id, scheduler_id)
        table = self._table
        stmt = (update(table)
                .where(table.c.id == job_id, self._eq(table.c.status, Status.RUNNING.value),
                       table.c.schedulerJobId.is_(None))
                .values(schedulerJobId=value))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

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
            return conn.execute(stmt.values(timeStarted=self.clock())).rowcount == 1

    def complete(self, job: Job, to: Status, results: Mapping[str, Any] | None = None, *,
                 from_: Status = Status.RUNNING) -> Completion:
        """Move a job to ``to`` and write its result columns in one compare-and-set.

        Only columns marked updatable for the job's type are written; other
        keys are returned in ``rejected`` (and logged), never written.

        Raises:
            InvalidTransition: ``from_ → to`` is not allowed.
        """
        allowed = updatable_columns(type(job))
        results = dict(results or {})
        rejected = tuple(sorted(k for k in results if k not in allowed))
        if rejected:
            log.warning("job %s: not writing %s: not updatable result columns of %s",
                        job.id, ", ".join(rejected), job.job_type)
        written = {k: v for k, v in results.items() if k in allowed}
        won = self.transition(job.id, from_, to, values=written)
        return Completion(won, written if won else {}, rejected)

    # -- development only ----------------------------------------------------------

    def table_exists(self) -> bool:
        """Whether the ``Job`` table exists."""
        return inspect(self.engine).has_table(self.job_class.__tablename__)

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows (column name → value) in one transaction: for demos and tests.

        EFI-Web is the only writer of new rows in production.
        """
        if not rows:
            return
        table = self._table
        groups: dict[frozenset[str], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(frozenset(r), []).append(dict(r))
        with self.engine.begin() as conn:
            for group in groups.values():
                conn.execute(table.insert(), group)


def parse_scheduler_id(job_id: int, scheduler_id: object) -> int:
    """Convert a connector's scheduler id to the integer stored in ``schedulerJobId``.

    Raises:
        InvalidSchedulerId: not a string of digits, or too large for the column.
    """
    if not isinstance(scheduler_id, str) or not scheduler_id.isascii() \
            or not scheduler_id.isdigit():
        raise InvalidSchedulerId(job_id, scheduler_id)
    value = int(scheduler_id)
    if value > _MAX_SCHEDULER_ID:
        raise InvalidSchedulerId(job_id, scheduler_id)
    return value


def since(now: datetime, seconds: float) -> datetime:
    """Return ``now`` minus ``seconds`` (a helper for grace periods and windows)."""
    return now - timedelta(seconds=seconds)
