"""A clock for tests: real time that a test can push forward."""

from __future__ import annotations

from datetime import datetime, timedelta

from efi_job_manager.clock import utcnow

__all__ = ["Clock"]


class Clock:
    """The current time plus an offset a test advances (to pass grace periods at once).

    Pass it where a clock is accepted (``JobManager(clock=…)``, ``JobRepository(clock=…)``):
    calling it returns the shifted UTC time, to the second, like the manager's own clock.
    """

    def __init__(self) -> None:
        """Start at the real time (no offset)."""
        self.offset = timedelta()

    def __call__(self) -> datetime:
        """Return the current UTC time (naive, whole seconds) plus the offset."""
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        """Move this clock ``seconds`` forward."""
        self.offset += timedelta(seconds=seconds)
