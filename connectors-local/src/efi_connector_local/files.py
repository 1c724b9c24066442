"""Small JSON files written atomically, and the names of the files a job run leaves behind.

Only the standard library is used here: the wrapper imports this module and must start
fast in any interpreter that can import ``efi_connector_local``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from efi_job_manager.toolkit import atomic_write_text

__all__ = [
    "EXIT_FILE",
    "RUN_DIR_NAME",
    "STDERR_FILE",
    "STDOUT_FILE",
    "WRAPPER_FILE",
    "WRAPPER_LOG",
    "format_time",
    "parse_time",
    "read_json",
    "run_dir_for",
    "utc_now",
    "write_json_atomic",
]

#: The folder in a job's directory that holds the connector's per-run files.
RUN_DIR_NAME = ".efi-local"
#: Written by the wrapper when the command has ended: exit code, signal, times.
EXIT_FILE = "exit.json"
#: Written by the wrapper when it starts: its pid and start time.
WRAPPER_FILE = "wrapper.json"
#: The wrapper's own diagnostics (a traceback if it ever crashes).
WRAPPER_LOG = "wrapper.log"
#: The command's standard output and error, in the job's directory.
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"


def run_dir_for(job_dir: Path, scheduler_id: str) -> Path:
    """Return the folder holding one run's files: ``<job_dir>/.efi-local/<scheduler_id>``.

    Each submission has its own folder, so a job submitted again in the same directory
    (a retry, or a duplicate submission after a crash) never reads an earlier run's
    ``exit.json``.
    """
    return job_dir / RUN_DIR_NAME / scheduler_id


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def format_time(when: datetime) -> str:
    """Return ``when`` as an ISO 8601 string (how times are stored in the JSON files)."""
    return when.isoformat()


def parse_time(raw: object) -> datetime | None:
    """Return the datetime stored as ``raw`` by `format_time`, or None if absent or invalid."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically.

    The text goes to a temporary file in the same folder, is flushed to disk and then
    renamed over ``path`` (``os.replace``): a reader sees the old file or the new one,
    never half of one, even if the writer is killed.
    """
    atomic_write_text(path, json.dumps(data, sort_keys=True) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """Return the JSON object stored in ``path``, or None if it is missing or not an object."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
