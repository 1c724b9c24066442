"""`JobRepository`: the repository's parts (queries, claims, transitions) as one class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import URL

from efi_job_manager.models import Job
from efi_job_manager.repository.claiming import Claims
from efi_job_manager.repository.engine import make_engine
from efi_job_manager.repository.reading import ReadQueries
from efi_job_manager.repository.writing import Transitions

__all__ = ["JobRepository"]


class JobRepository(ReadQueries, Claims, Transitions):
    """Reads and moves rows of EFI-Web's ``Job`` table.

    Args:
        engine: Where the table is.
        job_class: The mapped base class (the shipped `efi_job_manager.models.Job`
            or a project's own, see `efi_job_manager.models.load_job_model`).
        clock: Returns "now" for time columns (naive UTC by default); tests inject one.
    """

    @classmethod
    def from_url(cls, url: str | URL, *, job_class: type[Job] = Job,
                 connect_timeout: float = 10.0) -> JobRepository:
        """Create a repository on a new engine for ``url``."""
        return cls(make_engine(url, connect_timeout=connect_timeout), job_class)

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
