"""Which files a job reads, checked and placed: its upload and its parent job's results.

A row names its upload relative to the site's input directory; nothing outside that
directory is read, whatever the row holds (absolute paths, ``..``, symbolic links
leading out are the job's fault). The upload is staged as ``input/<sanitised name>``
and parent-job files as ``parent/<name>``, so they never collide with what the
pipeline writes into the job directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Final

from efi_job_manager.catalogue.jobtypes import JobType
from efi_job_manager.catalogue.rowvalues import JobInputError, RowReader, fail, is_empty, to_int
from efi_job_manager.faults import probe_readable_dir

__all__ = ["INPUT_SUBDIR", "PARENT_SUBDIR", "stage_parent", "stage_upload"]

INPUT_SUBDIR: Final = "input"
PARENT_SUBDIR: Final = "parent"
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]")


def _safe_name(name: str) -> str:
    cleaned = _UNSAFE_NAME.sub("_", name).lstrip(".")
    return cleaned[:200] or "input"


def _resolve_upload(column: str, value: object, input_dir: Path) -> Path:
    """Return the uploaded file a row names, strictly inside ``input_dir``."""
    if is_empty(value):
        raise fail(column, value, "no uploaded file: the job needs one")
    if not isinstance(value, str):
        raise fail(column, value, "expected a file name")
    if "\x00" in value:
        raise fail(column, value, "contains a NUL byte")
    if value.startswith(("/", "\\")) or os.path.isabs(value) or PurePosixPath(value).is_absolute():
        raise fail(column, value, "an absolute path; uploads are named relative to the input "
                                  "directory")
    if ".." in re.split(r"[\\/]", value):
        raise fail(column, value, "contains '..'")
    base = input_dir.resolve()
    try:
        target = (base / value).resolve()
    except (OSError, RuntimeError) as exc:
        raise fail(column, value, f"cannot be resolved: {exc}") from None
    if not target.is_relative_to(base) or target == base:
        raise fail(column, value, "leaves the input directory (a symbolic link?)")
    if not target.is_file():
        raise fail(column, value, "no such uploaded file in the input directory")
    return target


def stage_upload(jt: JobType, row: RowReader, job_dir: Path, input_dir: Path,
                 inputs: dict[str, Path]) -> str | None:
    """Add a job type's upload to ``inputs`` (as ``input/<name>``); return its path in the job."""
    upload = jt.upload
    if upload is None:
        return None
    value = row.raw(upload.column)
    if is_empty(value) and not upload.required:
        return None
    probe_readable_dir(input_dir, "the input directory")
    source = _resolve_upload(upload.column, value, input_dir)
    name = f"{INPUT_SUBDIR}/{_safe_name(source.name)}"
    inputs[name] = source
    return str(job_dir / name)


def stage_parent(jt: JobType, row: RowReader, *, job_dir: Path, results_dir: Path,
                 inputs: dict[str, Path]) -> dict[str, str]:
    """Add the parent job's files to ``inputs``; return name → path in the job (``""``: the dir)."""
    parent = jt.parent
    if parent is None:
        return {}
    col = parent.column
    raw = row.raw(col)
    if is_empty(raw):
        raise JobInputError(f"{col} is required for {jt.job_type}: it names the job whose "
                            f"results this one reads", column=col)
    parent_id = to_int(col, raw)
    if parent_id <= 0:
        raise fail(col, raw, "not a job id")
    if parent_id == row.raw("id"):
        raise fail(col, raw, "a job cannot be its own parent")
    probe_readable_dir(results_dir, "the results directory")
    base = results_dir.resolve()
    parent_dir = (base / str(parent_id)).resolve()
    if not parent_dir.is_relative_to(base) or not parent_dir.is_dir():
        raise fail(col, raw, f"the parent job has no results in {base}")
    staged = {"": str(job_dir / PARENT_SUBDIR)}
    for name, required in parent.files:
        source = (parent_dir / name).resolve()
        if not source.is_relative_to(base) or not source.is_file():
            if required:
                raise fail(col, raw, f"the parent job's results lack {name}")
            continue
        inputs[f"{PARENT_SUBDIR}/{name}"] = source
        staged[name] = str(job_dir / PARENT_SUBDIR / name)
    return staged
