"""`make_engine`: an engine for any supported database, with SQLite's transactions fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

__all__ = ["make_engine", "sqlite_file", "sqlite_transactions"]


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") \
            or parsed.query.get("mode") == "memory":
        return None
    return Path(parsed.database)


def make_engine(url: str | URL, *, connect_timeout: float = 10.0, echo: bool = False,
                create: bool = True) -> Engine:
    """Create an engine with a connect timeout and pool pre-ping for any supported database.

    Args:
        url: A SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``,
            ``mysql+pymysql://…``).
        connect_timeout: Seconds to wait for a connection (or a SQLite lock).
        echo: Log every statement (never passwords: SQLAlchemy logs parameters, not the URL).
        create: For SQLite, whether a missing file may be created (False: a missing file is
            an error at connection, never an empty database the manager would loop on).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        connect_args["timeout"] = connect_timeout
        path = sqlite_file(parsed)
        if path is not None and not create:  # SQLAlchemy's form of sqlite3's URI filenames
            parsed = parsed.set(database=f"file:{quote(str(path))}",
                                query={**parsed.query, "mode": "rw", "uri": "true"})
    elif backend in ("postgresql", "mysql", "mariadb"):
        connect_args["connect_timeout"] = max(1, round(connect_timeout))
    engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=True, echo=echo)
    sqlite_transactions(engine)
    return engine


def sqlite_transactions(engine: Engine) -> None:
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
