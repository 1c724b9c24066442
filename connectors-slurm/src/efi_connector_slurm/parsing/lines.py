"""Reading one line of a Slurm listing: ``|``-separated fields and job ids.

Shared by the parsers of the package: a line that cannot be read is logged and skipped by
the caller, never the end of the listing.
"""

from __future__ import annotations

import logging
import re

__all__ = ["id_sort_key", "job_key", "split_fields"]

log = logging.getLogger("efi_connector_slurm.parsing")

# A job (not a step): 123, an array task 123_4 or a pending array 123_[1-9%2], a
# heterogeneous job component 123+1.
_JOB_ID = re.compile(r"\d+(?:_\d+|_\[[0-9,\-%:]+\]|\+\d+)?")
_STEP_ID = re.compile(r"\d+(?:_\d+|_\[[0-9,\-%:]+\]|\+\d+)?\.\S+")


def split_fields(line: str, count: int, name_index: int | None) -> list[str] | None:
    """Split a ``|``-separated line of ``count`` fields; field ``name_index`` is free text.

    A job name may itself hold ``|``: the fields before it are read from the start and the
    fields after it from the end. Without a free-text field the count must be exact.
    Returns None when the line does not have the fields it should.
    """
    parts = line.split("|")
    if name_index is None:
        return parts if len(parts) == count else None
    if len(parts) < count:
        return None
    tail = count - name_index - 1
    name = "|".join(parts[name_index : len(parts) - tail])
    return [*parts[:name_index], name, *parts[len(parts) - tail :]]


def job_key(job_id: str, line: str, source: str) -> str | None:
    """Return ``job_id`` if it names a job, None for a step (``N.batch``) or a bad id.

    A bad id is logged with the ``line`` it came from and the ``source`` listing's name.
    """
    if _JOB_ID.fullmatch(job_id):
        return job_id
    if not _STEP_ID.fullmatch(job_id):
        log.warning("skipping a %s line with an unreadable job id: %r", source, line)
    return None


def id_sort_key(job_id: str) -> tuple[int, int, str]:
    """Order job ids by submission: the numeric id, then the array task or component."""
    head = re.match(r"(\d+)(?:[_+](\d+))?", job_id)
    if head is None:  # cannot happen for ids that passed job_key
        return (0, 0, job_id)
    return (int(head.group(1)), int(head.group(2) or 0), job_id)
