"""Whose fault: a failure of the site, which fails no job.

A job fails only for its own fault (its parameters, its upload, its pipeline's
exit). A directory missing, unwritable or full, a pipeline command that cannot be
run, a database, scheduler or transport that does not answer: those are the
site's. The manager leaves the jobs as they are (a claimed job goes back to
``new``), says so once, and carries on by itself when the fault clears.

`reached` marks the named steps of a cycle (`STEPS`) where the crash tests kill
the manager; it does nothing unless ``EFI_FAULT_KILL_AT`` is set.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

__all__ = ["STEPS", "SiteFault", "SiteFaults", "probe_readable_dir", "probe_writable_dir",
           "reached"]


class SiteFault(Exception):
    """The site cannot run jobs right now; no job is to blame (the message says what)."""


def probe_writable_dir(path: Path, what: str) -> None:
    """Check that ``path`` is a directory a file can be made in and removed from.

    Raises:
        SiteFault: it is missing, not a directory, a symbolic link, or not writable.
    """
    if path.is_symlink():
        raise SiteFault(f"{what} {path} is a symbolic link; the manager never follows one")
    if not path.is_dir():
        raise SiteFault(f"{what} {path} does not exist (not mounted?)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".efi-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SiteFault(f"{what} {path} is not writable: {exc.strerror or exc}") from None


def probe_readable_dir(path: Path, what: str) -> None:
    """Check that ``path`` is a directory that can be listed.

    Raises:
        SiteFault: it is missing, not a directory, or not readable.
    """
    if not path.is_dir():
        raise SiteFault(f"{what} {path} does not exist (not mounted?)")
    try:
        with os.scandir(path) as entries:
            next(entries, None)
    except OSError as exc:
        raise SiteFault(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


class SiteFaults:
    """The site faults in force, each said once: ERROR when it appears, INFO when it clears.

    A fault is keyed by what it concerns (``"start"`` for starting jobs, a
    destination's name); ``paused`` tells whether new jobs are held back from it.
    A destination fault (its pipeline command cannot run) holds it back for a
    while, doubling from ``first`` to ``longest`` seconds while it recurs, so one
    job tries again now and then and the destination resumes by itself.
    """

    def __init__(self, log: logging.Logger, *, first: float = 60.0,
                 longest: float = 3600.0) -> None:
        """Keep faults for ``log``; pauses last ``first`` to ``longest`` seconds."""
        self._log = log
        self._first = first
        self._longest = longest
        self._messages: dict[str, str] = {}
        self._until: dict[str, datetime] = {}
        self._length: dict[str, float] = {}

    def raise_fault(self, key: str, message: str, now: datetime, *,
                    pause: bool = False) -> None:
        """Record a fault; say it unless it is already said; pause ``key`` if asked."""
        if self._messages.get(key) != message:
            self._log.error("%s; jobs are left as they are until it is fixed", message)
            self._messages[key] = message
        if pause and not self.paused(key, now):  # jobs already in flight do not lengthen it
            length = min(self._length.get(key, self._first / 2) * 2, self._longest)
            self._length[key] = length
            self._until[key] = now + timedelta(seconds=length)
            self._log.warning("%s: no new job is sent there for %.0f s", key, length)

    def clear(self, key: str) -> None:
        """The fault of ``key`` is over (a job staged, ran or finished there): say so once."""
        message = self._messages.pop(key, None)
        self._until.pop(key, None)
        self._length.pop(key, None)
        if message is not None:
            self._log.info("fixed: %s", message)

    def paused(self, key: str, now: datetime) -> bool:
        """Whether new jobs are held back from ``key`` now."""
        until = self._until.get(key)
        return until is not None and now < until

    def active(self, key: str) -> str | None:
        """The fault of ``key`` in force, if any."""
        return self._messages.get(key)


#: The named steps of a cycle where a test can kill the manager (``EFI_FAULT_KILL_AT``).
STEPS: Final = (
    "claimed",           # a new job moved to running, nothing staged yet
    "staged",            # params and inputs written, the connector not yet called
    "prepared",          # the connector staged the job where it runs, not yet submitted
    "submitted",         # the scheduler took the job, its id not yet stored
    "id-stored",         # the id stored, the destination note not yet written
    "polled",            # statuses read, none handled yet
    "retrieved",         # results brought back, stats.json not yet read
    "finished",          # the row is finished, the event not yet sent
    "failure-recorded",  # failure.json written, the row not yet failed
    "cancel-sent",       # the scheduler asked to cancel, not yet recorded
    "taken-over",        # recovery took a job over, not yet looked up
    "adopted",           # recovery stored a found submission's id, not yet noted
)

_KILL_AT: Final = os.environ.get("EFI_FAULT_KILL_AT", "")
_reached: dict[str, int] = {}


def reached(step: str) -> None:
    """Mark a named step of a cycle; inert unless ``EFI_FAULT_KILL_AT`` names it.

    ``EFI_FAULT_KILL_AT=<step>`` (or ``<step>:<n>``, the n-th time) makes the process
    kill itself with SIGKILL there: the crash tests use it to stop a manager between
    any two steps, as a power cut would.
    """
    if not _KILL_AT:
        return
    name, _, nth = _KILL_AT.partition(":")
    if name != step:
        return
    _reached[step] = _reached.get(step, 0) + 1
    if _reached[step] >= int(nth or 1):
        logging.getLogger(__name__).warning("EFI_FAULT_KILL_AT: killing myself at %s", step)
        os.kill(os.getpid(), signal.SIGKILL)
