"""Reading a finished job's ``stats.json`` into updates of its result columns.

EST pipelines write ``stats.json`` into the job directory (for ``est`` the merge
of ``import_stats.json`` and the convergence-ratio statistics). `read_stats` reads
it; `stats_to_columns` turns its keys into column values through the catalogue's
``stats key → column`` mapping (`efi_job_manager.catalogue.Catalogue.result_columns`),
converting each value to the column's SQL type.

A missing, unreadable or malformed ``stats.json`` is the job's fault
(`ResultError`); so is a value that does not fit its column, reported in
`StatsUpdate.errors` so the manager can fail the job with every reason at once.
Keys without a column are ignored, with one INFO line each.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
from sqlalchemy import Boolean, DateTime, Float, Integer, String, inspect
from sqlalchemy.sql.schema import Column

from efi_job_manager.catalogue.rowvalues import flag
from efi_job_manager.models import Job, column_meta

__all__ = ["STATS_FILE", "ResultError", "StatsUpdate", "read_stats", "stats_to_columns"]

log = logging.getLogger(__name__)

#: The file EST pipelines write their statistics to, in the job directory.
STATS_FILE: Final = "stats.json"
#: A ``stats.json`` larger than this is not EST's (EST's are a few hundred bytes).
MAX_STATS_BYTES: Final = 4 * 1024 * 1024
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # SQL INTEGER on MySQL/MariaDB and PostgreSQL


class ResultError(Exception):
    """The job's results cannot be read (missing, invalid or malformed ``stats.json``)."""


@attrs.frozen
class StatsUpdate:
    """What a job's ``stats.json`` writes.

    Attributes:
        columns: Column name → converted value, to write with the ``finished`` transition.
        ignored: ``stats.json`` keys that fill no column of this job type.
        errors: One message per value that does not fit its column (naming key,
            column and value); the manager fails the job when there are any.

    """

    columns: dict[str, Any]
    ignored: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def read_stats(job_dir: Path) -> dict[str, Any]:
    """Return the object in ``<job_dir>/stats.json``.

    The file is read only if it is a regular file (never through a symbolic link,
    never a pipe that would block), at most `MAX_STATS_BYTES`, and parsed with
    nesting bounded by the interpreter's recursion limit.

    Raises:
        ResultError: the file is missing, a link or not a regular file, unreadable,
            too large, not JSON (NaN and Infinity included), nested too deep, or not
            a JSON object.

    """
    path = job_dir / STATS_FILE
    for place in (job_dir, path):
        try:
            info = os.lstat(place)
        except FileNotFoundError:
            raise ResultError(f"{path}: the pipeline wrote no {STATS_FILE}") from None
        except OSError as exc:
            raise ResultError(f"{place}: cannot be read: {exc.strerror or exc}") from None
        if stat.S_ISLNK(info.st_mode):
            raise ResultError(f"{place}: a symbolic link; the manager never follows one")
    if not stat.S_ISREG(info.st_mode):
        raise ResultError(f"{path}: not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ResultError(f"{path}: not a regular file")
            data = fh.read(MAX_STATS_BYTES + 1)
    except OSError as exc:
        raise ResultError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_STATS_BYTES:
        raise ResultError(f"{path}: larger than {MAX_STATS_BYTES} bytes")
    try:
        stats = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ResultError(f"{path}: not UTF-8 text: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: invalid JSON: {exc.msg} at line {exc.lineno} "
                          f"column {exc.colno}") from None
    except RecursionError:
        raise ResultError(f"{path}: nested too deep to be EST's statistics") from None
    except ValueError as exc:
        raise ResultError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(stats, dict):
        raise ResultError(f"{path}: expected a JSON object, got {type(stats).__name__}")
    return stats


class _Unfit(ValueError):
    """A value that does not fit its column (internal)."""


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise _Unfit("a flag is not a whole number")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, numbers.Real):
        f = float(value)
        if not (math.isfinite(f) and f.is_integer()):
            raise _Unfit("not a whole number")
        number = int(f)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                raise _Unfit("not a number") from None
            if not (math.isfinite(f) and f.is_integer()):
                raise _Unfit("not a whole number") from None
            number = int(f)
    else:
        raise _Unfit("not a number")
    if not _INT_MIN <= number <= _INT_MAX:
        raise _Unfit("out of the column's range")
    return number


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Unfit("a flag is not a number")
    if isinstance(value, numbers.Real):
        f = float(value)
    elif isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            raise _Unfit("not a number") from None
    else:
        raise _Unfit("not a number")
    if not math.isfinite(f):
        raise _Unfit("not a finite number")
    return f


def _boolean(value: Any) -> bool:
    result = flag(value)
    if result is None:
        raise _Unfit("not true or false")
    return result


def _text(value: Any, column: Column[Any]) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, numbers.Real):
        text = str(value)
    else:  # lists and objects: kept as JSON (resultFileStats is a Text column)
        text = json.dumps(value, sort_keys=True)
    length = getattr(column.type, "length", None)
    if isinstance(length, int) and len(text) > length:
        raise _Unfit(f"longer than the column's {length} characters")
    return text


def _convert(value: Any, column: Column[Any]) -> Any:
    kind = column.type
    if isinstance(kind, Boolean):
        return _boolean(value)
    if isinstance(kind, Integer):
        return _integer(value)
    if isinstance(kind, Float):
        return _float(value)
    if isinstance(kind, DateTime):
        raise _Unfit("a result cannot write a date column")
    if isinstance(kind, String):  # Text is a String
        return _text(value, column)
    raise _Unfit(f"unsupported column type {kind}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def stats_to_columns(job_cls: type[Job], stats: Mapping[str, Any],
                     result_columns: Mapping[str, str]) -> StatsUpdate:
    """Convert ``stats.json`` values into values of the job's result columns.

    Args:
        job_cls: The job's mapped class (its columns give the SQL types).
        stats: The object read by `read_stats`.
        result_columns: ``stats key → column`` (the catalogue's `result_columns`).

    Returns:
        The columns to write, the keys ignored and the values that do not fit.
        A JSON ``null`` writes NULL.

    """
    table = {c.name: c for c in inspect(job_cls).columns if isinstance(c, Column)}
    columns: dict[str, Any] = {}
    ignored: list[str] = []
    errors: list[str] = []
    for key, value in stats.items():
        name = result_columns.get(key)
        if name is None:
            ignored.append(key)
            log.info("stats.json key %r fills no column of %s; ignored", key,
                     job_cls.__name__)
            continue
        column = table.get(name)
        if column is None or not column_meta(column).updatable:
            errors.append(f"stats.json key {key!r}: column {name!r} is not a result column "
                          f"of {job_cls.__name__}")
            continue
        if value is None:
            columns[name] = None
            continue
        try:
            columns[name] = _convert(value, column)
        except _Unfit as exc:
            errors.append(f"stats.json key {key!r} = {_shown(value)} does not fit column "
                          f"{name!r} ({column.type}): {exc}")
    return StatsUpdate(columns=columns, ignored=tuple(ignored), errors=tuple(errors))
