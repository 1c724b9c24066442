"""The job state machine: EFI-Web's status strings and who may move a job where.

`Status` is the vocabulary of EFI-Web's ``Job.status`` column, stored exactly as
EFI-Web writes it. `TRANSITIONS` is the one table of allowed moves; every other
module asks it through `check_transition`.

`SchedulerState` is what a connector reports about a job on the cluster. It is
richer than the database vocabulary; the manager maps it onto transitions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class Status(enum.StrEnum):
    """A job's status as EFI-Web stores it in ``Job.status``."""

    NEW = "new"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"

    @property
    def is_terminal(self) -> bool:
        """Whether no manager action will ever move a job out of this status on its own."""
        return self in _TERMINAL


_TERMINAL = frozenset({Status.FINISHED, Status.FAILED, Status.CANCELLED, Status.ARCHIVED})

#: Every allowed move. ``failed``/``cancelled`` → ``new`` is an operator's retry.
TRANSITIONS: Mapping[Status, frozenset[Status]] = MappingProxyType(
    {
        Status.NEW: frozenset({Status.RUNNING, Status.FAILED, Status.CANCELLED}),
        # back to new: the claim could not proceed for the site's fault (no job is to blame)
        Status.RUNNING: frozenset({Status.NEW, Status.FINISHED, Status.FAILED,
                                   Status.CANCELLED}),
        Status.FINISHED: frozenset({Status.ARCHIVED}),
        Status.FAILED: frozenset({Status.NEW, Status.ARCHIVED}),
        Status.CANCELLED: frozenset({Status.NEW, Status.ARCHIVED}),
        Status.ARCHIVED: frozenset(),
    }
)


class UnknownStatus(ValueError):
    """A status string that is not one of EFI-Web's (a legacy ``FINISH``, a typo)."""

    def __init__(self, raw: object) -> None:
        self.raw = raw
        known = ", ".join(s.value for s in Status)
        super().__init__(f"unknown job status {raw!r} (known: {known})")


class InvalidTransition(ValueError):
    """A move that the state machine does not allow."""

    def __init__(self, from_: Status, to: Status) -> None:
        self.from_ = from_
        self.to = to
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[from_])) or "nothing"
        super().__init__(f"a job cannot go from {from_.value!r} to {to.value!r} "
                         f"(from {from_.value!r} it may go to: {allowed})")


def parse_status(raw: object) -> Status:
    """Return the `Status` for a string read from the database.

    Raises:
        UnknownStatus: ``raw`` is not exactly one of EFI-Web's strings.

    """
    if isinstance(raw, Status):
        return raw
    if not isinstance(raw, str):
        raise UnknownStatus(raw)
    try:
        return Status(raw)
    except ValueError:
        raise UnknownStatus(raw) from None


def check_transition(from_: Status, to: Status) -> None:
    """Raise `InvalidTransition` unless ``from_ → to`` is in `TRANSITIONS`."""
    if to not in TRANSITIONS[from_]:
        raise InvalidTransition(from_, to)


class SchedulerState(enum.Enum):
    """What a connector knows about a job on the cluster."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the scheduler will not run this job any further."""
        return self in (SchedulerState.COMPLETED, SchedulerState.FAILED, SchedulerState.CANCELLED)
