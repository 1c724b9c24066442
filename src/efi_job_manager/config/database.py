"""``[database]``: where EFI-Web's ``Job`` table lives.

The one settings module using SQLAlchemy (to read and print URLs); the engine and the
connector toolkit never import it.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Final

import attrs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from efi_job_manager.config.errors import Invalid
from efi_job_manager.config.masking import encode_url_password, mask_url_text, url_repr
from efi_job_manager.config.values import (
    Check,
    Convert,
    FromEnv,
    PositiveNumber,
    Secret,
    resolve_path,
)

__all__ = ["DatabaseSettings"]

_URL_EXPECTED: Final = "an SQLAlchemy database URL (dialect+driver://user@host/dbname)"
_MODULE_RE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def _database_url(value: Any) -> str:
    """The URL, with a relative SQLite file of the file resolved against the file's folder."""
    if not isinstance(value, str):
        raise Invalid(_URL_EXPECTED, value)
    try:
        url = make_url(encode_url_password(value))
    except (ArgumentError, ValueError):
        raise Invalid(_URL_EXPECTED, value, shown=f'"{mask_url_text(value)}"') from None
    database = url.database
    if (
        url.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not os.path.isabs(database)
        and not isinstance(value, FromEnv)
    ):
        resolved = resolve_path(database, from_env=False)
        return url.set(database=str(resolved)).render_as_string(hide_password=False)
    return encode_url_password(str(value))


DatabaseUrl = Annotated[str, Convert(_URL_EXPECTED, _database_url)]
ModuleName = Annotated[str, Check("a dotted module path (mysite.efi_models)",
                                  lambda text: _MODULE_RE.fullmatch(text) is not None)]


@attrs.frozen
class DatabaseSettings:
    """Where EFI-Web's ``Job`` table lives (``[database]``).

    Attributes:
        url: An SQLAlchemy URL, ``dialect+driver://user@host/dbname``: ``sqlite:///…``,
            ``postgresql+psycopg://…``, ``mysql+pymysql://…``. A relative SQLite path in
            the file is relative to the file's directory; the default's, to the current
            directory.
        password: The database password, merged into `url` (wins over one written in it).
            Best given as ``EFI_JOB_MANAGER_DATABASE__PASSWORD``. Never printed.
        echo: Log every SQL statement (SQLAlchemy's ``echo``).
        model: Dotted path of a module with a site's own model classes (its ``Job`` model),
            imported before the job types are mapped (a documented hook,
            `efi_job_manager.models.load_job_model`); not set: the built-in ones.
        connect_timeout: Seconds to wait for a connection (or for a SQLite lock).
    """

    url: DatabaseUrl = attrs.field(default="sqlite:///efi-jobs.sqlite", repr=url_repr)
    password: Secret | None = attrs.field(default=None, repr=False, metadata={"secret": True})
    echo: bool = False
    model: ModuleName | None = None
    connect_timeout: PositiveNumber = 10.0

    @property
    def sqlalchemy_url(self) -> URL:
        """The URL to create an engine with, `password` merged in (SQLite has none)."""
        url = make_url(self.url)
        if self.password is not None and url.get_backend_name() != "sqlite":
            url = url.set(password=self.password)
        return url

    @property
    def masked_url(self) -> str:
        """The URL for printing, with the password (if any) shown as ``***``."""
        return self.sqlalchemy_url.render_as_string(hide_password=True)
