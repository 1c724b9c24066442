"""How a connector's scheduler id is kept in EFI-Web's INTEGER ``schedulerJobId`` column.

Scheduler ids are opaque strings to the connector contract. An id of digits that fits
the column (Slurm's, the local connector's) is stored as itself, so EFI-Web shows it.
Any other id is stored as a negative stand-in derived from it (`column_value`), and the
manager keeps the id itself in the job's directory; the stand-in tells it which id the
note must hold, so a stale note is never taken for the current one.
"""

from __future__ import annotations

import zlib

__all__ = ["MAX_ID_LENGTH", "MAX_SCHEDULER_ID", "InvalidSchedulerId", "column_value",
           "is_stand_in"]

#: Largest value of EFI-Web's INTEGER ``schedulerJobId`` column on every supported database.
MAX_SCHEDULER_ID = 2**31 - 1
#: The longest opaque id accepted (it is kept in a small JSON note).
MAX_ID_LENGTH = 512


class InvalidSchedulerId(ValueError):
    """A connector returned a scheduler id that cannot be kept: empty, too long, not text."""

    def __init__(self, job_id: int, value: object) -> None:
        self.job_id = job_id
        self.value = value
        super().__init__(
            f"job {job_id}: the connector returned the scheduler id {value!r}, which cannot "
            f"be kept (expected a non-empty string of at most {MAX_ID_LENGTH} printable "
            "characters)")


def column_value(job_id: int, scheduler_id: object) -> int:
    """Return what ``schedulerJobId`` holds for ``scheduler_id``.

    Digits that fit the column are the id itself; any other id maps to a negative
    stand-in (a CRC-32 of the id, from -1 to -2**31).

    Raises:
        InvalidSchedulerId: not a non-empty string of printable characters.
    """
    if not isinstance(scheduler_id, str) or not scheduler_id \
            or len(scheduler_id) > MAX_ID_LENGTH or not scheduler_id.isprintable():
        raise InvalidSchedulerId(job_id, scheduler_id)
    if scheduler_id.isascii() and scheduler_id.isdigit() and int(scheduler_id) <= MAX_SCHEDULER_ID:
        return int(scheduler_id)
    return -(zlib.crc32(scheduler_id.encode()) & MAX_SCHEDULER_ID) - 1


def is_stand_in(value: int) -> bool:
    """Whether a ``schedulerJobId`` value stands in for an id kept in the job's directory."""
    return value < 0

