"""Each running manager's heartbeat: a small file per manager in the results directory.

Several managers may share one database; they always share the results directory (each
job's directory is there), so that is where they say they are alive, never in EFI-Web's
table: ``<results_dir>/.efi-managers/<host>-<pid>.json``, rewritten atomically after each
cycle and marked stopped when the manager closes. ``efi-job-manager status`` reads them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import cattrs

from efi_job_manager.jobfiles import atomic_write_text

__all__ = ["PRESENCE_DIR", "ManagerPresence", "PresenceFile", "read_presences"]

log = logging.getLogger(__name__)

#: The folder of the heartbeat files, in the results directory.
PRESENCE_DIR = ".efi-managers"
#: Heartbeat files older than this are removed by a starting manager and ignored by readers.
FORGET_AFTER = timedelta(days=7)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _format_time(value: datetime) -> str:
    return value.replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value.endswith("Z"):
        raise ValueError(f"not a UTC time: {value!r}")
    return datetime.fromisoformat(value[:-1])


_converter = cattrs.Converter()
_converter.register_structure_hook(datetime, lambda value, _: _parse_time(value))
_converter.register_unstructure_hook(datetime, _format_time)


@attrs.frozen
class ManagerPresence:
    """What one manager said of itself at its last cycle. Times are naive UTC.

    Attributes:
        host: The host it runs on.
        pid: Its process id there.
        version: Its efi-job-manager version.
        started: When it started.
        interval: Seconds between its cycles.
        cycles: How many cycles it has run.
        last_cycle: When its last cycle began; None before the first.
        last_cycle_seconds: How long that cycle took.
        errors: The problems of the site its last cycle met (not a job's fault).
        paused: Destination (or ``start``) → the site fault pausing it.
        stopped: When it stopped; None while it runs (or if it died).
    """

    host: str
    pid: int
    version: str
    started: datetime
    interval: float
    cycles: int = 0
    last_cycle: datetime | None = None
    last_cycle_seconds: float | None = None
    errors: tuple[str, ...] = ()
    paused: Mapping[str, str] = attrs.field(factory=dict)
    stopped: datetime | None = None

    def seen(self) -> datetime:
        """The last time this manager was known alive."""
        return self.stopped or self.last_cycle or self.started

    def state(self, now: datetime) -> str:
        """``running``, ``stopped`` or ``silent`` (no cycle for three intervals: hung or dead)."""
        if self.stopped is not None:
            return "stopped"
        silent_after = max(3 * self.interval, 90.0) + (self.last_cycle_seconds or 0.0)
        return "running" if (now - self.seen()).total_seconds() <= silent_after else "silent"

    def to_json(self) -> dict[str, Any]:
        """This record as JSON-ready data (times as ``…Z`` strings)."""
        data: dict[str, Any] = _converter.unstructure(self)
        return data


class PresenceFile:
    """This manager's heartbeat file: written after each cycle, marked stopped at the end."""

    def __init__(self, results_dir: Path, presence: ManagerPresence, *,
                 one_shot: bool = False) -> None:
        """The file of ``presence``; a one-shot run's is ``<host>-once.json``, never stopped."""
        key = f"{presence.host}-once" if one_shot else f"{presence.host}-{presence.pid}"
        self.path = results_dir / PRESENCE_DIR / (_SAFE_NAME.sub("_", key) + ".json")
        self.presence = presence
        self.one_shot = one_shot
        self._failed = False

    @classmethod
    def for_this_process(cls, results_dir: Path, *, version: str, started: datetime,
                         interval: float, one_shot: bool = False) -> PresenceFile:
        """The heartbeat file of the calling process."""
        return cls(results_dir, ManagerPresence(socket.gethostname(), os.getpid(), version,
                                                started, interval), one_shot=one_shot)

    def cycle(self, began: datetime, seconds: float, errors: tuple[str, ...],
              paused: Mapping[str, str]) -> None:
        """Record a cycle that began at ``began`` and took ``seconds``."""
        self.presence = attrs.evolve(self.presence, cycles=self.presence.cycles + 1,
                                     last_cycle=began, last_cycle_seconds=round(seconds, 3),
                                     errors=errors[:20], paused=dict(paused))
        if self.presence.cycles == 1:
            _forget_old(self.path.parent)
        self._write()

    def stopped(self, when: datetime) -> None:
        """Record that this manager stopped (after at least one cycle; not a one-shot run)."""
        if self.presence.cycles and not self.one_shot:
            self.presence = attrs.evolve(self.presence, stopped=when)
            self._write()

    def _write(self) -> None:
        folder = self.path.parent
        try:
            if folder.is_symlink():  # never follow a link this manager did not make
                raise OSError(f"{folder} is a symbolic link")
            folder.mkdir(exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.presence.to_json(), indent=1) + "\n",
                              durable=False)  # a heartbeat: the next cycle writes it anew
        except OSError as exc:  # the results directory's faults are said by the start step
            if not self._failed:
                log.warning("cannot write this manager's heartbeat %s: %s", self.path, exc)
            self._failed = True
            return
        self._failed = False


def read_presences(results_dir: Path, now: datetime) -> list[ManagerPresence]:
    """Every manager's last heartbeat (within `FORGET_AFTER` of ``now``), newest first.

    A file that cannot be read or is not a heartbeat is skipped; links are not followed.
    """
    folder = results_dir / PRESENCE_DIR
    found: list[ManagerPresence] = []
    try:
        if folder.is_symlink():
            return []
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, encoding="utf-8") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    continue
                presence = _converter.structure(json.load(handle), ManagerPresence)
        except (OSError, ValueError, TypeError, KeyError, cattrs.BaseValidationError):
            continue
        if now - presence.seen() <= FORGET_AFTER:
            found.append(presence)
    found.sort(key=lambda p: p.seen(), reverse=True)
    return found


def _forget_old(folder: Path) -> None:
    """Remove heartbeat files no manager has written for `FORGET_AFTER` (by their mtime)."""
    now = datetime.now(UTC)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if (entry.name.endswith(".json") and entry.is_file(follow_symlinks=False)
                    and now - datetime.fromtimestamp(entry.stat(follow_symlinks=False).st_mtime,
                                                     UTC) > FORGET_AFTER):
                os.unlink(entry.path)
        except OSError:
            continue
