"""The state every part of `JobRepository` shares: the engine, the model, exact comparisons."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Engine, Select, Table, and_, func, select
from sqlalchemy.orm import sessionmaker, with_polymorphic

from efi_job_manager.clock import utcnow
from efi_job_manager.models import Job, job_classes
from efi_job_manager.repository.engine import sqlite_transactions

__all__ = ["RepositoryBase"]


class RepositoryBase:
    """The repository's engine, model and clock, and the helpers every part uses.

    See `efi_job_manager.repository.JobRepository` for the arguments.
    """

    def __init__(self, engine: Engine, job_class: type[Job] = Job, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.job_class = job_class
        self.clock = clock
        self._classes = job_classes(job_class)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        sqlite_transactions(engine)
        # MySQL/MariaDB compare text by collation ('NEW' = 'new ' = 'new'); EFI-Web's
        # strings are compared byte for byte, so a variant never passes for a known value
        self._binary = engine.dialect.name in ("mysql", "mariadb")

    @property
    def _table(self) -> Table:
        return cast("Table", self.job_class.__table__)

    def _stamped(self, changes: dict[str, Any], now: datetime) -> dict[str, Any]:
        """``changes`` with ``updatedAt = now`` when the table has EFI-Web's column for it."""
        if "updatedAt" in self._table.c and "updatedAt" not in changes:
            changes["updatedAt"] = now
        return changes

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

    # -- loading mapped jobs -------------------------------------------------------

    def _select_jobs(self) -> tuple[Any, Select[Any]]:
        entity = with_polymorphic(self.job_class, "*")
        return entity, select(entity).where(self._in(entity.job_type, sorted(self._classes)))

    def _load(self, build: Callable[[Any, Select[Any]], Select[Any]]) -> list[Job]:
        entity, stmt = self._select_jobs()
        with self._sessions() as session:
            return list(session.scalars(build(entity, stmt)).all())
