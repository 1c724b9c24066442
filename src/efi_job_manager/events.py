"""Hooks fired on job transitions: started, finished, failed, cancelled.

Subscribers are plain callables taking a `JobEvent`. A subscriber that raises
is logged and never breaks a cycle; the email notifier is one subscriber.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from datetime import datetime

import attrs

__all__ = ["EventBus", "EventKind", "JobEvent", "Subscriber"]

log = logging.getLogger(__name__)


class EventKind(enum.StrEnum):
    """What happened to a job."""

    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


@attrs.frozen
class JobEvent:
    """One transition of one job, as subscribers see it.

    Attributes:
        kind: What happened.
        job_id: The row's id.
        job_type: The row's ``job_type``.
        user_id: The row's ``user_id``, if any.
        time: When the manager saw it.
        reason: Why (for failures and cancellations), if known.
        destination: The destination the job ran on, if any.
        scheduler_id: The scheduler's id, if any.
        job_name: The row's ``jobName``, for messages to users.
        cause: For a failure, its class (`efi_job_manager.metrics.FailureCause`: ``input``,
            ``pipeline``, ``time_limit``…), if known.
    """

    kind: EventKind
    job_id: int
    job_type: str
    user_id: int | None
    time: datetime
    reason: str | None = None
    destination: str | None = None
    scheduler_id: str | None = None
    job_name: str | None = None
    cause: str | None = None


#: A subscriber receives every event.
Subscriber = Callable[[JobEvent], None]


class EventBus:
    """Delivers events to subscribers in the order they subscribed."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; return a function that removes it again."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def emit(self, event: JobEvent) -> None:
        """Deliver ``event`` to every subscriber; a subscriber's error is logged, not raised."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s of job %s",
                              subscriber, event.kind.value, event.job_id)
