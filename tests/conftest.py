"""Shared fixtures: every test that asks for a database gets a fresh, isolated one per backend.

Backends come from ``EFI_TEST_DATABASES`` (comma list, default ``sqlite,postgresql,mariadb``);
the servers from ``EFI_TEST_POSTGRESQL_URL`` and ``EFI_TEST_MARIADB_URL`` (``scripts/services.sh
up`` starts and provisions both with the defaults). An unreachable server fails the test: it is
never a skip.

- ``database_url`` (with ``database_backend``): every enabled backend.
- ``server_database_url`` (with ``server_database_backend``): PostgreSQL and MariaDB only.
- ``make_database_url``: a factory for more fresh databases within one test.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

ALL_BACKENDS = ("sqlite", "postgresql", "mariadb")
SERVER_BACKENDS = ("postgresql", "mariadb")
_URL_ENV = {"postgresql": "EFI_TEST_POSTGRESQL_URL", "mariadb": "EFI_TEST_MARIADB_URL"}
_DEFAULT_URLS = {
    "postgresql": "postgresql+psycopg://efi:efi@127.0.0.1:5432/efi_test",
    "mariadb": "mysql+pymysql://efi:efi@127.0.0.1:3306/efi_test",
}
_LABELS = {"postgresql": "PostgreSQL", "mariadb": "MariaDB"}
_DEFAULT_PORTS = {"postgresql": 5432, "mariadb": 3306}
CONNECT_TIMEOUT_S = 3


def _enabled_backends() -> list[str]:
    raw = os.environ.get("EFI_TEST_DATABASES", ",".join(ALL_BACKENDS))
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ALL_BACKENDS))
    if unknown:
        raise pytest.UsageError(
            f"EFI_TEST_DATABASES: unknown backend(s) {unknown}; choose from {list(ALL_BACKENDS)}"
        )
    return [name for name in ALL_BACKENDS if name in names]


ENABLED_BACKENDS = _enabled_backends()
ENABLED_SERVER_BACKENDS = [name for name in ENABLED_BACKENDS if name in SERVER_BACKENDS]
_NO_SERVER: list[object] = [
    pytest.param(
        None,
        marks=pytest.mark.skip(reason="EFI_TEST_DATABASES enables no server database"),
        id="no-server",
    )
]


def server_url(backend: str) -> URL:
    """The configured URL of a server backend's provisioning database."""
    return make_url(os.environ.get(_URL_ENV[backend], _DEFAULT_URLS[backend]))


def _admin_engine(url: URL) -> sa.Engine:
    return sa.create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def check_server(backend: str, url: str | URL) -> str | None:
    """Try one connection to a server; return a failure message (password masked), or None."""
    url = make_url(url)
    engine = _admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure means the server is not usable
        error = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        reason = " ".join(str(error).split()) or type(error).__name__
        return (
            f"{_LABELS[backend]} at {url.host}:{url.port or _DEFAULT_PORTS[backend]} is not "
            f"reachable: {reason}. Start it with scripts/services.sh up "
            f"(URL {url.render_as_string(hide_password=True)}, "
            f"from ${_URL_ENV[backend]} or its default)"
        )
    finally:
        engine.dispose()
    return None


_server_failures: dict[str, str | None] = {}


def _require_server(backend: str, url: URL) -> None:
    """Fail the current test if the server is unreachable; checked once per session and URL."""
    key = url.render_as_string(hide_password=False)
    if key not in _server_failures:
        _server_failures[key] = check_server(backend, url)
    message = _server_failures[key]
    if message is not None:
        pytest.fail(message, pytrace=False)


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """Create an empty database (SQLite file, PostgreSQL schema, MariaDB database); drop it after.

    Yields a URL string (password included) that any number of engines may use.
    """
    name = f"t_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    base = server_url(backend)
    _require_server(backend, base)
    admin = _admin_engine(base)
    try:
        if backend == "postgresql":
            # application_name lets teardown end connections a test leaked.
            url = base.update_query_dict(
                {"options": f"-csearch_path={name}", "application_name": name}
            )
            create = f'CREATE SCHEMA "{name}"'
            kill = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE application_name = '{name}' AND pid <> pg_backend_pid()"
            )
            drop = f'DROP SCHEMA IF EXISTS "{name}" CASCADE'
        else:
            url = base.set(database=name)
            create = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
            kill = (
                "SELECT id FROM information_schema.processlist "
                f"WHERE db = '{name}' AND id <> CONNECTION_ID()"
            )
            drop = f"DROP DATABASE IF EXISTS `{name}`"
        with admin.connect() as connection:
            connection.execute(sa.text(create))
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                leaked = connection.execute(sa.text(kill)).scalars().all()
                if backend == "mariadb":
                    for thread_id in leaked:
                        connection.execute(sa.text(f"KILL {int(thread_id)}"))
                connection.execute(sa.text(drop))
    finally:
        admin.dispose()


@pytest.fixture(params=ENABLED_BACKENDS)
def database_backend(request: pytest.FixtureRequest) -> str:
    """The backend of the current ``database_url``: ``sqlite``, ``postgresql`` or ``mariadb``."""
    return str(request.param)


@pytest.fixture
def database_url(database_backend: str, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL to a fresh, empty database of ``database_backend``, dropped afterwards."""
    with fresh_database(database_backend, tmp_path) as url:
        yield url


@pytest.fixture(params=ENABLED_SERVER_BACKENDS or _NO_SERVER)
def server_database_backend(request: pytest.FixtureRequest) -> str:
    """Like ``database_backend``, for tests that need a server: ``postgresql`` or ``mariadb``."""
    return str(request.param)


@pytest.fixture
def server_database_url(server_database_backend: str, tmp_path: Path) -> Iterator[str]:
    """Like ``database_url``, on ``server_database_backend`` (PostgreSQL or MariaDB) only."""
    with fresh_database(server_database_backend, tmp_path) as url:
        yield url


@pytest.fixture
def make_database_url(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A factory: ``make_database_url(backend)`` gives one more fresh database, dropped after."""
    with ExitStack() as stack:
        yield lambda backend: stack.enter_context(fresh_database(backend, tmp_path))


@pytest.fixture
def check_database_server() -> Callable[[str, str | URL], str | None]:
    """``check_server(backend, url)``: a masked failure message, or None if it answers."""
    return check_server


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were before the test (added ones closed)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def pytest_report_header() -> list[str]:
    """Show which databases the run uses (passwords masked)."""
    lines = [f"databases: {', '.join(ENABLED_BACKENDS) or 'none'}"]
    lines += [
        f"  {backend}: {server_url(backend).render_as_string(hide_password=True)}"
        for backend in ENABLED_SERVER_BACKENDS
    ]
    return lines
