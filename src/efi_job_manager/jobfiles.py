"""A job's files as a connector handles them: atomic writes, moved paths, its own folder.

The manager keeps its notes in ``<job_dir>/.efi/``; a connector keeps its own in
``<job_dir>/.efi-<connector>/`` (`connector_folder`), never in the manager's.
Standard library only: importing this loads no database layer.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["STALE_TEMPORARY_AGE", "atomic_copy_file", "atomic_write_text", "connector_folder",
           "one_sync", "relocate_params", "remove_stale_temporaries"]

# Set inside `one_sync`: the durable writes owed a sync (a list, so nested blocks share it).
_owed: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("_owed", default=None)


@contextlib.contextmanager
def one_sync() -> Iterator[None]:
    """Make the block's durable writes durable together, with one sync at its end.

    Inside the block `atomic_write_text` does not flush each file to disk; when the
    outermost block ends (also on an error), one ``os.sync()`` does it for all of them,
    if any was written. For a batch of jobs: a few hundred fsyncs become one, and the
    files are on disk before the step that relies on them (a submission) starts.
    """
    owed = _owed.get()
    if owed is not None:  # an outer block syncs
        yield
        return
    owed = []
    token = _owed.set(owed)
    try:
        yield
    finally:
        _owed.reset(token)
        if owed:
            os.sync()

_CONNECTOR_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,40}")


def _temporary_beside(path: Path) -> tuple[int, Path]:
    """Create a new file next to ``path``; its permissions follow the umask, as a plain write's.

    The folder is made (with its parents) only when it is missing.
    """
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp


_TEMPORARY_RE = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")
STALE_TEMPORARY_AGE = 3600.0
"""Seconds after which a temporary file of `atomic_write_text` is a crash's leftover."""


def remove_stale_temporaries(folder: Path, *, older_than: float = STALE_TEMPORARY_AGE) -> int:
    """Remove the temporary files a killed writer left in ``folder`` (not below it).

    Only this module's names (``.<name>.<12 hex>.tmp``), regular files (a link is never
    followed nor removed), last changed more than ``older_than`` seconds ago: a write in
    progress takes milliseconds. A folder that does not exist holds none.

    Returns:
        How many were removed.
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        if not _TEMPORARY_RE.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                os.unlink(entry.path)
                removed += 1
    return removed


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half.

    The text goes to a temporary file in the same folder, is flushed to disk (unless
    ``durable`` is false: a file a power cut may lose, such as a heartbeat; inside
    `one_sync`, at the block's end) and renamed over ``path``. The file's permissions
    follow the umask, as for a plain write.
    """
    fd, tmp = _temporary_beside(path)
    owed = _owed.get() if durable else None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if owed is not None:
                owed.append(path)
            elif durable:
                os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that readers see the old or the new file, never half."""
    fd, tmp = _temporary_beside(target)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def connector_folder(job_dir: Path, connector: str) -> Path:
    """The folder a connector keeps its own files in: ``<job_dir>/.efi-<connector>/``.

    Raises:
        ValueError: ``connector`` is not a short lower-case name.
    """
    if not _CONNECTOR_NAME_RE.fullmatch(connector):
        raise ValueError(f"connector folder name {connector!r}: use a short lower-case name")
    return job_dir / f".efi-{connector}"


def relocate_params(params: Mapping[str, Any], job_dir: Path | str,
                    new_dir: Path | str) -> dict[str, Any]:
    """Return ``params`` with the job directory prefix rewritten for another location.

    For a connector that runs the job in another directory (a cluster's scratch
    space): every string that is ``job_dir`` or starts with ``job_dir/``, also
    after the ``=`` of a ``filter`` entry, gets ``new_dir`` instead.

    Args:
        params: The prepared parameters.
        job_dir: The job directory the parameters were prepared for.
        new_dir: The directory the job will run in.

    """
    old = str(job_dir).rstrip("/") or "/"
    new = str(new_dir).rstrip("/") or "/"

    def fix(text: str) -> str:
        if text == old or text.startswith(old + "/"):
            return new + text[len(old):]
        name, sep, rest = text.partition("=")
        if sep and (rest == old or rest.startswith(old + "/")):
            return f"{name}={new}{rest[len(old):]}"
        return text

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return fix(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return {k: walk(v) for k, v in params.items()}
