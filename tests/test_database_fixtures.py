"""Tests of the database fixtures in conftest.py themselves."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
)


def test_database_backend_matches_url(database_url: str, database_backend: str) -> None:
    dialect = {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mysql"}
    assert make_url(database_url).get_backend_name() == dialect[database_backend]


def test_database_starts_empty(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_two_engines_see_each_others_commits(database_url: str) -> None:
    first = sa.create_engine(database_url)
    second = sa.create_engine(database_url)
    try:
        metadata.create_all(first)
        with first.begin() as connection:
            connection.execute(things.insert().values(name="from first"))
        with second.begin() as connection:
            assert connection.execute(sa.select(things.c.name)).scalars().all() == ["from first"]
            connection.execute(things.insert().values(name="from second"))
        with first.connect() as connection:
            names = connection.execute(sa.select(things.c.name).order_by(things.c.id))
            assert names.scalars().all() == ["from first", "from second"]
    finally:
        first.dispose()
        second.dispose()


def test_databases_are_isolated(
    database_backend: str, make_database_url: Callable[[str], str]
) -> None:
    one, other = make_database_url(database_backend), make_database_url(database_backend)
    assert one != other
    engine_one, engine_other = sa.create_engine(one), sa.create_engine(other)
    try:
        metadata.create_all(engine_one)
        assert sa.inspect(engine_one).has_table("things")
        assert not sa.inspect(engine_other).has_table("things")
    finally:
        engine_one.dispose()
        engine_other.dispose()


def test_tables_land_in_the_tests_own_schema(
    server_database_url: str, server_database_backend: str
) -> None:
    url = make_url(server_database_url)
    if server_database_backend == "postgresql":
        own = str(url.query["options"]).removeprefix("-csearch_path=")
        current = "SELECT current_schema()"
    else:  # MariaDB: a schema is a database
        own = str(url.database)
        current = "SELECT DATABASE()"
    assert own.startswith("t_")
    engine = sa.create_engine(server_database_url)
    try:
        metadata.create_all(engine)
        with engine.connect() as connection:
            assert connection.execute(sa.text(current)).scalar() == own
            found = connection.execute(
                sa.text(
                    "SELECT table_schema FROM information_schema.tables "
                    "WHERE table_name = 'things' AND table_schema IN (:own, 'public')"
                ),
                {"own": own},
            )
            assert found.scalars().all() == [own]
    finally:
        engine.dispose()


@pytest.fixture
def leaked_connections() -> Iterator[list[sa.Connection]]:
    """Connections a test leaves open; closed only after the databases are dropped."""
    connections: list[sa.Connection] = []
    yield connections
    for connection in connections:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            connection.close()


@pytest.mark.timeout(30)
def test_leaked_connection_does_not_block_teardown(
    leaked_connections: list[sa.Connection],
    server_database_backend: str,
    make_database_url: Callable[[str], str],
) -> None:
    # An open transaction holding a lock on a table makes DROP wait; teardown ends it.
    engine = sa.create_engine(make_database_url(server_database_backend))
    metadata.create_all(engine)
    connection = engine.connect()
    connection.execute(things.insert().values(name="held"))  # transaction left open
    leaked_connections.append(connection)


@pytest.mark.parametrize(
    ("backend", "url"),
    [
        ("postgresql", "postgresql+psycopg://efi:s3cret-pw@127.0.0.1:1/efi_test"),
        ("mariadb", "mysql+pymysql://efi:s3cret-pw@127.0.0.1:1/efi_test"),
    ],
    ids=["postgresql", "mariadb"],
)
def test_unreachable_server_message_masks_password(
    check_database_server: Callable[[str, str | URL], str | None], backend: str, url: str
) -> None:
    message = check_database_server(backend, url)
    assert message is not None
    assert "s3cret-pw" not in message
    assert "is not reachable" in message
    assert "127.0.0.1:1" in message
    assert "scripts/services.sh up" in message
    assert "efi:***@127.0.0.1:1" in message
