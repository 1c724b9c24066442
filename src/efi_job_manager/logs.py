"""How the product logs: UTC times, text or JSON lines, and the job each line is about.

While the manager handles one job it says so with `about_job`; every record made meanwhile,
by the manager or by a connector, then carries ``job_id`` and ``destination`` (shown in
brackets in text, as fields in JSON), whichever handler receives it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

__all__ = ["LogFormat", "about_job", "add_log_file", "configure_logging"]

LogFormat = Literal["text", "json"]
"""The shapes of a log line: ``text`` for people, ``json`` (one object a line) for collectors."""

_JOB: contextvars.ContextVar[tuple[int, str | None] | None] = contextvars.ContextVar(
    "efi_job", default=None)
_TIME = "%Y-%m-%dT%H:%M:%S"


@contextlib.contextmanager
def about_job(job_id: int, destination: str | None = None) -> Iterator[None]:
    """Mark the records logged in the block as about ``job_id`` (on ``destination``)."""
    token = _JOB.set((job_id, destination))
    try:
        yield
    finally:
        _JOB.reset(token)


def _install_job_fields() -> None:
    """Give every record made inside `about_job` its ``job_id`` and ``destination``.

    A record factory (chained to the one already set), not a handler's filter: so every
    handler sees the fields, also one added by an embedding application or by pytest.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_efi_job_fields", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        job = _JOB.get()
        if job is not None:
            record.job_id, record.destination = job
        return record

    factory._efi_job_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_install_job_fields()


def _utc(record: logging.LogRecord) -> str:
    return time.strftime(_TIME, time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class _TextFormatter(logging.Formatter):
    """``2026-12-01T08:00:00.123Z INFO logger: [job 7 on hpc] message``."""

    def format(self, record: logging.LogRecord) -> str:
        job = getattr(record, "job_id", None)
        where = getattr(record, "destination", None)
        about = "" if job is None else f"[job {job}{f' on {where}' if where else ''}] "
        line = f"{_utc(record)} {record.levelname} {record.name}: {about}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, job_id, destination."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {"time": _utc(record), "level": record.levelname,
                                   "logger": record.name, "message": record.getMessage()}
        for key in ("job_id", "destination"):
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(level: int | str, fmt: LogFormat = "text",
                      stream: TextIO | None = None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (standard error) as ``fmt`` lines."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_efi_job_manager", False):
            root.removeHandler(old)
            old.close()  # a file is closed; a stream handler leaves its stream open
    root.setLevel(level)
    return _add(logging.StreamHandler(stream or sys.stderr), fmt)


def add_log_file(path: Path, fmt: LogFormat = "text", *, max_bytes: int,
                 backups: int) -> logging.Handler:
    """Also write the root logger's records to ``path``, rotated at ``max_bytes``.

    ``backups`` rotated files are kept (``<path>.1`` …); `configure_logging` removes the
    handler again. The file is opened now, so a path that cannot be written fails here.

    Raises:
        OSError: the file cannot be opened for appending.
    """
    return _add(logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes,
                                                     backupCount=backups, encoding="utf-8"),
                fmt)


def _add(handler: logging.Handler, fmt: LogFormat) -> logging.Handler:
    """Give the root logger ``handler`` writing ``fmt`` lines, marked as ours."""
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    handler._efi_job_manager = True  # type: ignore[attr-defined]
    logging.getLogger().addHandler(handler)
    return handler
