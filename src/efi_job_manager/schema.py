"""The ``Job`` table's shape: create it (development and tests only) and check it.

In production EFI-Web creates and migrates the table; this product never
creates or alters it there. `create_tables` is what ``efi-job-manager init-db``
runs for a development database, and it refuses to touch a table that exists.
`check_table` compares an existing table with the mapping for
``efi-job-manager check``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import attrs
from sqlalchemy import Engine, Float, Index, Integer, String, Table, inspect
from sqlalchemy.schema import CreateIndex

from efi_job_manager.models import REQUIRED_COLUMNS, Job, column_meta

__all__ = ["TableExists", "TableReport", "check_table", "create_tables", "status_index_ddl"]



class TableExists(RuntimeError):
    """`create_tables` found a ``Job`` table already there and left it alone."""


@attrs.frozen
class TableReport:
    """How an existing ``Job`` table compares with the mapping.

    Attributes:
        exists: Whether the table is there at all.
        missing_required: Columns the product cannot work without that the table lacks.
        missing_optional: Mapped columns the table lacks (their job types cannot be loaded).
        extra: Columns of the table the mapping does not know (harmless).
        status_indexed: Whether some index starts with ``status``; without one a
            cycle's cost grows with the number of rows.
        narrowed: ``column: why`` for columns whose type in the table cannot hold what
            the product writes there (a ratio in an INTEGER column would be truncated).
    """

    exists: bool
    missing_required: tuple[str, ...] = ()
    missing_optional: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    status_indexed: bool = False
    narrowed: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Whether the repository can work on this table."""
        return self.exists and not self.missing_required and not self.missing_optional


def _table(job_class: type[Job]) -> Table:
    return cast("Table", job_class.__table__)


def create_tables(engine: Engine, job_class: type[Job] = Job) -> None:
    """Create the ``Job`` table and its status index, for development and tests.

    Raises:
        TableExists: the table is already there; nothing was changed.
    """
    table = _table(job_class)
    if inspect(engine).has_table(table.name):
        raise TableExists(
            f"table {table.name!r} already exists at {engine.url!r}; init-db never alters "
            "an existing table (EFI-Web owns it)")
    table.create(engine)


def status_index_ddl(engine: Engine, job_class: type[Job] = Job) -> str:
    """The ``CREATE INDEX`` statement for ``Job.status`` in the database's own dialect.

    Every cycle's queries rely on this index; EFI-Web's own table may lack it.
    """
    table = _table(job_class)
    index = next((ix for ix in table.indexes if ix.name == "ix_Job_status"), None)
    if index is None:
        index = Index("ix_Job_status", table.c.status)
    return str(CreateIndex(index).compile(dialect=engine.dialect)).strip()


def check_table(engine: Engine, job_class: type[Job] = Job) -> TableReport:
    """Compare the database's ``Job`` table with the mapping, without changing anything."""
    table = _table(job_class)
    inspector = inspect(engine)
    if not inspector.has_table(table.name):
        return TableReport(exists=False)
    reflected = {c["name"]: c["type"] for c in inspector.get_columns(table.name)}
    present = set(reflected)
    mapped = {c.name for c in table.columns}
    missing = sorted(mapped - present)
    indexes = inspector.get_indexes(table.name)
    status_indexed = any(
        (ix.get("column_names") or [None])[0] == "status" for ix in indexes)
    return TableReport(
        exists=True,
        missing_required=tuple(c for c in missing if c in REQUIRED_COLUMNS),
        missing_optional=tuple(c for c in missing if c not in REQUIRED_COLUMNS),
        extra=tuple(sorted(present - mapped)),
        status_indexed=status_indexed,
        narrowed=tuple(_narrowed(table, reflected)),
    )


def _narrowed(table: Table, reflected: Mapping[str, Any]) -> list[str]:
    """Columns whose type in the table is narrower than the mapping's (for updates)."""
    out = []
    for column in table.columns:
        actual = reflected.get(column.name)
        if actual is None or not column_meta(column).updatable:
            continue
        wanted = column.type
        if isinstance(wanted, Float) and isinstance(actual, Integer):
            out.append(f"{column.name}: {actual} in the table, but EST's value is a fraction "
                       f"(it would be stored truncated)")
        elif isinstance(wanted, String) and isinstance(actual, String) \
                and wanted.length and actual.length and actual.length < wanted.length:
            out.append(f"{column.name}: {actual} in the table, shorter than "
                       f"{wanted.length} characters")
    return out
