"""The repository layer, run unchanged on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from efi_job_manager.models import Job
from efi_job_manager.repository import (
    CandidateJob,
    InvalidSchedulerId,
    JobRepository,
    column_value,
    is_stand_in,
    make_engine,
)
from efi_job_manager.schema import TableExists, check_table, create_tables, status_index_ddl
from efi_job_manager.status import InvalidTransition, Status

T0 = datetime(2026, 11, 1, 12, 0, 0)


class Clock:
    """A settable clock for the repository's time columns."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_repo(database_url: str, clock: Clock) -> Iterator[Callable[[], JobRepository]]:
    """Return a factory of repositories on the test's database (each with its own engine)."""
    repos: list[JobRepository] = []
    create_tables(make_engine(database_url))

    def make() -> JobRepository:
        repo = JobRepository(make_engine(database_url), clock=clock)
        repos.append(repo)
        return repo

    yield make
    for repo in repos:
        repo.close()


@pytest.fixture
def repo(make_repo: Callable[[], JobRepository]) -> JobRepository:
    return make_repo()


def row(job_id: int, job_type: str = "est_generate_fasta", status: str = "new",
        created: datetime | None = None, **extra: Any) -> dict[str, Any]:
    """A minimal valid row of EFI-Web's table."""
    return {
        "id": job_id, "uuid": f"uuid-{job_id}", "status": status, "job_type": job_type,
        "isPublic": False, "timeCreated": created or T0 - timedelta(minutes=1000 - job_id),
        "user_id": extra.pop("user_id", 1), **extra,
    }


def status_of(repo: JobRepository, job_id: int) -> str:
    raw = repo.get_raw(job_id)
    assert raw is not None
    return str(raw["status"])


def test_claim_takes_oldest_first_and_marks_running(repo: JobRepository, clock: Clock) -> None:
    """Claimed jobs are the oldest new ones, now running, started now, with no scheduler id."""
    repo.insert([
        row(1, created=T0 - timedelta(hours=1)),
        row(2, created=T0 - timedelta(hours=3)),
        row(3, created=T0 - timedelta(hours=2)),
        row(4, status="finished", created=T0 - timedelta(hours=9)),
    ])
    claimed = repo.claim_new(2)
    assert [j.id for j in claimed] == [2, 3]  # oldest first, not by id
    repo.insert([row(9, created=T0 - timedelta(hours=5)), row(8, created=T0 - timedelta(hours=4))])
    assert [j.id for j in repo.claim_new(2)] == [9, 8]
    for job in claimed:
        assert job.status == "running"
        assert job.timeStarted == clock.now
        assert job.schedulerJobId is None
    assert status_of(repo, 1) == "new"
    assert status_of(repo, 4) == "finished"


def test_claim_returns_job_type_classes_with_their_columns(repo: JobRepository) -> None:
    """A claimed job is an instance of its job type's class with subclass columns loaded."""
    repo.insert([row(1, "gnt_gnn", neighborhoodSize=10, cooccurrence=0.2)])
    (job,) = repo.claim_new(5)
    assert type(job).__name__ == "GntGnnJob"
    assert job.neighborhoodSize == 10  # type: ignore[attr-defined]
    assert job.cooccurrence == pytest.approx(0.2)  # type: ignore[attr-defined]


def test_claim_respects_accept_predicate(repo: JobRepository) -> None:
    """A candidate the predicate refuses stays new; later candidates are still considered.

    The predicate sees the oldest new job of each (user, job type): a refused user's
    younger jobs are not offered at all.
    """
    repo.insert([row(1, user_id=7), row(2, user_id=8), row(3, user_id=7), row(4, user_id=8)])
    seen: list[CandidateJob] = []

    def accept(candidate: CandidateJob) -> bool:
        seen.append(candidate)
        return candidate.user_id != 7

    claimed = repo.claim_new(5, gate=lambda counts: accept)
    assert [j.id for j in claimed] == [2, 4]
    assert {c.id for c in seen} == {1, 2, 3, 4}
    assert status_of(repo, 1) == status_of(repo, 3) == "new"


def test_one_users_backlog_holds_no_other_user_back(repo: JobRepository) -> None:
    """3,000 queued jobs of a user at their limit: the next user's job is claimed first."""
    with repo.engine.begin() as conn:
        conn.execute(Job.__table__.insert(), [row(i, user_id=7) for i in range(1, 3001)])
    repo.insert([row(3001, user_id=8, created=T0 + timedelta(days=1)),
                 row(3002, "gnt_gnn", user_id=7, created=T0 + timedelta(days=2))])
    offered: list[int] = []

    def accept(candidate: CandidateJob) -> bool:
        offered.append(candidate.id)
        return candidate.user_id != 7 or candidate.job_type == "gnt_gnn"

    claimed = repo.claim_new(2, gate=lambda counts: accept)
    assert [j.id for j in claimed] == [3001, 3002]
    assert len(offered) < 20  # the oldest few, then one per (user, job type)


def test_unknown_job_types_are_not_claimed_but_reported(repo: JobRepository) -> None:
    """A row with a job_type the model does not map never crashes a claim; it is reported."""
    repo.insert([row(1, "est_generate_sequence"), row(2)])
    claimed = repo.claim_new(5)
    assert [j.id for j in claimed] == [2]
    unknown = repo.new_jobs_of_unknown_type()
    assert [(u.id, u.job_type) for u in unknown] == [(1, "est_generate_sequence")]
    assert repo.get(1) is None


def test_two_connections_racing_claim_each_job_exactly_once(
        make_repo: Callable[[], JobRepository]) -> None:
    """Two repositories on two engines claiming at the same time never claim a job twice."""
    first, second = make_repo(), make_repo()
    first.insert([row(i) for i in range(1, 121)])
    claims: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(name: str, repo: JobRepository) -> None:
        try:
            barrier.wait()
            while batch := repo.claim_new(3):
                claims[name].extend(j.id for j in batch)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=("a", first)),
               threading.Thread(target=worker, args=("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert not set(claims["a"]) & set(claims["b"])
    assert sorted(claims["a"] + claims["b"]) == list(range(1, 121))
    assert first.counts_by_status() == {"running": 120}


def test_compare_and_set_loses_to_a_concurrent_change(
        make_repo: Callable[[], JobRepository]) -> None:
    """A transition from a status the row no longer has does nothing and says so."""
    manager, web = make_repo(), make_repo()
    manager.insert([row(1)])
    (job,) = manager.claim_new(1)
    assert web.transition(job.id, Status.RUNNING, Status.CANCELLED)
    assert not manager.transition(job.id, Status.RUNNING, Status.FINISHED)
    assert status_of(manager, 1) == "cancelled"
    completion = manager.complete(job, Status.FINISHED, {"numImportedIds": 5})
    assert not completion.won
    raw = manager.get_raw(1)
    assert raw is not None
    assert raw["status"] == "cancelled"


def test_transition_not_in_the_table_is_refused(repo: JobRepository) -> None:
    """finished → running is not a move of the state machine."""
    repo.insert([row(1, status="finished")])
    with pytest.raises(InvalidTransition, match="'finished' to 'running'"):
        repo.transition(1, Status.FINISHED, Status.RUNNING)
    assert status_of(repo, 1) == "finished"


def test_retry_clears_times_and_scheduler_id(repo: JobRepository) -> None:
    """failed → new (an operator's retry) resets what the manager wrote."""
    repo.insert([row(1, status="failed", timeStarted=T0, timeCompleted=T0, schedulerJobId=42)])
    assert repo.transition(1, Status.FAILED, Status.NEW)
    raw = repo.get_raw(1)
    assert raw is not None
    assert (raw["status"], raw["timeStarted"], raw["timeCompleted"], raw["schedulerJobId"]) == (
        "new", None, None, None)


def test_scheduler_id_is_stored_once_as_an_integer(repo: JobRepository) -> None:
    """The first recorded submission wins; the column holds an integer."""
    repo.insert([row(1)])
    repo.claim_new(1)
    assert repo.set_scheduler_id(1, "4711")
    assert not repo.set_scheduler_id(1, "4712")
    raw = repo.get_raw(1)
    assert raw is not None
    assert raw["schedulerJobId"] == 4711


@pytest.mark.parametrize("opaque", ["12;cluster", "abc", "-3", "99999999999", "１２"])  # noqa: RUF001
def test_an_opaque_scheduler_id_is_stored_as_its_negative_stand_in(
        repo: JobRepository, opaque: str) -> None:
    """An id that is not digits fitting the column is kept as a stable negative stand-in."""
    repo.insert([row(1)])
    repo.claim_new(1)
    assert repo.set_scheduler_id(1, opaque)
    raw = repo.get_raw(1)
    assert raw is not None
    assert raw["schedulerJobId"] == column_value(1, opaque)
    assert is_stand_in(raw["schedulerJobId"])
    assert column_value(1, opaque) != column_value(1, opaque + "x")


@pytest.mark.parametrize("bad", ["", "a\nb", "x" * 513, 12])
def test_a_scheduler_id_that_cannot_be_kept_is_a_clear_error(repo: JobRepository,
                                                            bad: object) -> None:
    """An empty, multi-line, over-long or non-text id is refused; nothing is written."""
    repo.insert([row(1)])
    repo.claim_new(1)
    with pytest.raises(InvalidSchedulerId, match=r"job 1: the connector returned the scheduler id"):
        repo.set_scheduler_id(1, bad)  # type: ignore[arg-type]
    raw = repo.get_raw(1)
    assert raw is not None
    assert raw["schedulerJobId"] is None


def test_complete_writes_only_updatable_columns(repo: JobRepository, clock: Clock) -> None:
    """Result columns marked updatable are written with the status; other keys are rejected."""
    repo.insert([row(1, "est_generate_blast")])
    (job,) = repo.claim_new(1)
    clock.now = T0 + timedelta(hours=1)
    completion = repo.complete(job, Status.FINISHED, {
        "numBlastRetrievedIds": 17, "outputConvergenceRatio": 0.25,
        "uuid": "overwritten", "jobName": "evil", "noSuchColumn": 1,
    })
    assert completion.won
    assert completion.rejected == ("jobName", "noSuchColumn", "uuid")
    raw = repo.get_raw(1)
    assert raw is not None
    assert raw["status"] == "finished"
    assert raw["timeCompleted"] == clock.now
    assert raw["uuid"] == "uuid-1"
    assert raw["jobName"] is None
    with repo.engine.connect() as conn:
        values = conn.execute(sa.text(
            'SELECT "numBlastRetrievedIds", "outputConvergenceRatio" FROM "Job"'
            if repo.engine.dialect.name != "mysql" else
            "SELECT numBlastRetrievedIds, outputConvergenceRatio FROM Job")).one()
    assert values[0] == 17
    assert values[1] == pytest.approx(0.25)


def test_counts_by_status_reports_unknown_strings(repo: JobRepository) -> None:
    """A legacy status string is counted as it is, not crashed on."""
    repo.insert([row(1, status="FINISH"), row(2), row(3, status="finished")])
    assert repo.counts_by_status() == {"FINISH": 1, "new": 1, "finished": 1}
    assert [j.id for j in repo.jobs()] == [3, 2, 1]
    assert repo.claim_new(10)[0].id == 2


def test_running_jobs_split_by_scheduler_id_and_grace(repo: JobRepository, clock: Clock) -> None:
    """Running jobs with an id are polled; those without are recovered after the grace period."""
    repo.insert([
        row(1, status="running", schedulerJobId=11, timeStarted=T0),
        row(2, status="running", timeStarted=T0 - timedelta(minutes=30)),
        row(3, status="running", timeStarted=T0 - timedelta(seconds=10)),
        row(4, status="finished", schedulerJobId=14),
    ])
    assert [j.id for j in repo.running_jobs()] == [1]
    grace = T0 - timedelta(minutes=5)
    assert [j.id for j in repo.running_without_scheduler_id(grace)] == [2]
    assert [j.id for j in repo.running_without_scheduler_id()] == [2, 3]


def test_cancelled_to_propagate_is_bounded_by_the_window(repo: JobRepository) -> None:
    """Cancelled jobs with a scheduler id are candidates only inside the window."""
    repo.insert([
        row(1, status="cancelled", schedulerJobId=1, timeCompleted=T0 - timedelta(hours=1)),
        row(2, status="cancelled", schedulerJobId=2, timeCompleted=T0 - timedelta(days=30)),
        row(3, status="cancelled", schedulerJobId=3),
        row(4, status="cancelled"),
    ])
    assert [j.id for j in repo.cancelled_to_propagate(T0 - timedelta(days=7))] == [1, 3]


def test_take_over_has_exactly_one_winner(make_repo: Callable[[], JobRepository],
                                          clock: Clock) -> None:
    """Two recoverers that read the same stale claim: only one takes the job over."""
    a, b = make_repo(), make_repo()
    a.insert([row(1, status="running", timeStarted=T0 - timedelta(hours=1))])
    (seen_a,) = a.running_without_scheduler_id()
    (seen_b,) = b.running_without_scheduler_id()
    assert a.take_over(seen_a)
    assert not b.take_over(seen_b)
    raw = a.get_raw(1)
    assert raw is not None
    assert raw["timeStarted"] == clock.now


def test_create_tables_refuses_an_existing_table(repo: JobRepository) -> None:
    """init-db never alters a table that is already there."""
    with pytest.raises(TableExists):
        create_tables(repo.engine)


def _efi_web_like_table(metadata: sa.MetaData) -> sa.Table:
    """The Job table as EFI-Web might have made it: its own types, more columns, no index."""
    columns: list[sa.Column[Any]] = []
    for column in Job.__table__.columns:
        kind: Any = column.type
        if column.name == "id":
            kind = sa.BigInteger()
        elif isinstance(kind, sa.String):
            kind = sa.String(255)
        columns.append(sa.Column(column.name, kind, primary_key=column.primary_key,
                                 autoincrement=column.primary_key,
                                 nullable=column.nullable))
    columns.append(sa.Column("legacyNotes", sa.Text))
    columns.append(sa.Column("createdBy", sa.String(64), server_default="web"))
    return sa.Table("Job", metadata, *columns)


def test_works_on_a_table_efi_web_created(database_url: str, clock: Clock) -> None:
    """A table with other column types, unknown columns and no index works; check's DDL adds it."""
    engine = make_engine(database_url)
    _efi_web_like_table(sa.MetaData()).create(engine)
    repo = JobRepository(engine, clock=clock)
    report = check_table(engine)
    assert report.usable
    assert report.extra == ("createdBy", "legacyNotes")
    assert not report.status_indexed
    with engine.begin() as conn:
        conn.execute(sa.text(status_index_ddl(engine)))
    assert check_table(engine).status_indexed
    repo.insert([row(1, "est_generate_blast"), row(2, "gnt_gnn")])
    claimed = repo.claim_new(5)
    assert [j.id for j in claimed] == [1, 2]
    assert repo.set_scheduler_id(1, "99")
    assert repo.complete(claimed[0], Status.FINISHED, {"numBlastRetrievedIds": 3}).won
    assert repo.counts_by_status() == {"finished": 1, "running": 1}
    repo.close()


def test_check_table_reports_a_missing_table_and_a_missing_column(database_url: str) -> None:
    """check says what is wrong rather than failing later."""
    engine = make_engine(database_url)
    assert not check_table(engine).exists
    metadata = sa.MetaData()
    sa.Table("Job", metadata, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("status", sa.String(32)), sa.Column("job_type", sa.String(64)))
    metadata.create_all(engine)
    report = check_table(engine)
    assert report.exists
    assert not report.usable
    assert "schedulerJobId" in report.missing_required
    assert "numBlastEdges" in report.missing_optional
    engine.dispose()


def test_check_table_reports_a_ratio_column_that_is_an_integer(database_url: str) -> None:
    """A result column whose type would truncate EST's value is reported by check."""
    engine = make_engine(database_url)
    metadata = sa.MetaData()
    columns = [sa.Column(c.name, sa.Integer if c.name == "outputConvergenceRatio" else c.type,
                         primary_key=c.primary_key) for c in Job.__table__.columns]
    sa.Table("Job", metadata, *columns)
    metadata.create_all(engine)
    report = check_table(engine)
    assert report.usable
    assert len(report.narrowed) == 1
    assert report.narrowed[0].startswith("outputConvergenceRatio: INTEGER")
    engine.dispose()


def _plan(engine: sa.Engine, stmt: sa.Select[Any]) -> str:
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql)).all()
            return " | ".join(str(r[-1]) for r in rows)
        rows = conn.execute(sa.text("EXPLAIN " + sql)).all()
        return " | ".join(" ".join(str(v) for v in r) for r in rows)


@pytest.mark.slow
def test_cycle_queries_use_the_status_index_with_100000_finished_rows(
        repo: JobRepository) -> None:
    """With 100,000 finished rows, claims find the new jobs through the status index."""
    table = Job.__table__
    batch = 10_000
    with repo.engine.begin() as conn:
        for start in range(0, 100_000, batch):
            conn.execute(table.insert(), [
                row(i, status="finished", created=T0 - timedelta(days=1))
                for i in range(start + 1, start + batch + 1)])
    repo.insert([row(200_001 + i, created=T0 + timedelta(seconds=i)) for i in range(3)])
    repo.insert([row(300_001, status="running", schedulerJobId=5)])
    with repo.engine.begin() as conn:
        if repo.engine.dialect.name == "postgresql":
            conn.execute(sa.text('ANALYZE "Job"'))
        elif repo.engine.dialect.name == "mysql":
            conn.execute(sa.text("ANALYZE TABLE Job"))
        else:
            conn.execute(sa.text("ANALYZE"))
    for name, stmt in repo.cycle_queries().items():
        plan = _plan(repo.engine, stmt)
        assert "ix_Job_status" in plan, f"{name} does not use the status index: {plan}"
    assert [j.id for j in repo.claim_new(10)] == [200_001, 200_002, 200_003]
    assert [j.id for j in repo.running_jobs()] == [300_001]
    assert repo.counts_by_status() == {"finished": 100_000, "running": 4}


def test_every_change_writes_updated_at(repo: JobRepository, clock: Clock) -> None:
    """EFI-Web's ``updatedAt`` follows each write: the claim, the scheduler id, a take-over,
    the end."""
    repo.insert([row(1)])

    def updated() -> datetime | None:
        raw = repo.get_raw(1)
        assert raw is not None
        return raw["updatedAt"]

    assert updated() is None
    (job,) = repo.claim_new(1)
    assert updated() == clock()
    clock.now += timedelta(seconds=60)
    assert repo.take_over(job)
    assert updated() == clock()
    clock.now += timedelta(seconds=60)
    assert repo.set_scheduler_ids({1: "77"}) == {1}
    assert updated() == clock()
    clock.now += timedelta(seconds=60)
    assert repo.transition(1, Status.RUNNING, Status.FINISHED)
    assert updated() == clock()
