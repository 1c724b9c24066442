"""The connector's own records in its state directory: ids, one record per job, names.

Layout of ``state_dir``::

    counter              the last scheduler id handed out (digits), under an flock
    jobs/<id>.json       one `JobRecord` per submission, replaced atomically
    jobs/<id>.cancel     present once a cancellation was asked for (the time, as JSON)
    names/<name>/<id>    one empty file per submission made under ``name``

Everything is written so that several processes (managers, a CLI) may share the
directory and so that a process killed at any point leaves it readable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from efi_connector_local.files import format_time, parse_time, read_json, write_json_atomic
from efi_connector_local.processes import ProcessId, is_alive

__all__ = ["JobRecord", "StateStore", "is_scheduler_id"]

_ID_RE = re.compile(r"[0-9]{1,18}")
_SAFE_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}")
_JOB_NAME_RE = re.compile(r"efi-([0-9]{1,18})(?:-[A-Za-z0-9]+)?")


def is_scheduler_id(value: object) -> bool:
    """Whether ``value`` has the shape of an id this connector hands out (a digit string)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


@attrs.frozen
class JobRecord:
    """What the connector remembers about one submission.

    Attributes:
        scheduler_id: The id returned by ``submit_job`` (digits).
        name: The job's scheduler name (``efi-<job id>``).
        job_dir: The job's directory; the command runs there.
        run_dir: This submission's folder of wrapper files (``exit.json``…).
        submitted: When the record was written, just before the process was started.
        process: The wrapper's pid and start time, once known.
        started: When the wrapper reported that it had started.
        launch_error: Why the wrapper could not be started, if it could not; such a
            record is no job at all and `find_job` leaves it out.
    """

    scheduler_id: str
    name: str
    job_dir: Path
    run_dir: Path
    submitted: datetime
    process: ProcessId | None = None
    started: datetime | None = None
    launch_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the record as a JSON object."""
        return {
            "id": self.scheduler_id,
            "name": self.name,
            "job_dir": str(self.job_dir),
            "run_dir": str(self.run_dir),
            "submitted": format_time(self.submitted),
            "pid": self.process.pid if self.process else None,
            "start_ticks": self.process.start_ticks if self.process else None,
            "started": format_time(self.started) if self.started else None,
            "launch_error": self.launch_error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord | None:
        """Return the record stored as ``data``, or None if it is not a valid record."""
        sid, name, job_dir, run_dir = (data.get(k) for k in ("id", "name", "job_dir", "run_dir"))
        submitted = parse_time(data.get("submitted"))
        if not (
            is_scheduler_id(sid)
            and isinstance(name, str)
            and isinstance(job_dir, str)
            and isinstance(run_dir, str)
            and submitted is not None
        ):
            return None
        pid, ticks = data.get("pid"), data.get("start_ticks")
        process = ProcessId(pid, ticks) if isinstance(pid, int) and isinstance(ticks, int) else None
        error = data.get("launch_error")
        return cls(
            scheduler_id=str(sid),
            name=name,
            job_dir=Path(job_dir),
            run_dir=Path(run_dir),
            submitted=submitted,
            process=process,
            started=parse_time(data.get("started")),
            launch_error=error if isinstance(error, str) else None,
        )


class StateStore:
    """The records kept in one state directory.

    The directory is created on first use. Several processes may use the same
    directory at once.
    """

    def __init__(self, state_dir: Path) -> None:
        """Use ``state_dir``; nothing is touched until a method needs it."""
        self.state_dir = state_dir
        self._jobs = state_dir / "jobs"
        self._names = state_dir / "names"

    def ensure(self) -> None:
        """Create the state directory and its sub-folders if they are missing."""
        for folder in (self.state_dir, self._jobs, self._names):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- ids ----------------------------------------------------------------------------

    def allocate_id(self) -> str:
        """Return a new scheduler id, greater than every id handed out before.

        The counter file is read and rewritten under an exclusive ``flock``, so
        processes sharing the directory never get the same id. If the counter is
        missing or unreadable, counting resumes after the largest recorded id.
        """
        self.ensure()
        fd = os.open(self.state_dir / "counter", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 64).decode("ascii", errors="replace").strip()
            last = int(raw) if _ID_RE.fullmatch(raw) else self._largest_recorded_id()
            new = last + 1
            data = f"{new}\n".encode("ascii")
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)  # closing the descriptor releases the lock
        return str(new)

    def _largest_recorded_id(self) -> int:
        ids = [int(p.stem) for p in self._jobs.glob("*.json") if _ID_RE.fullmatch(p.stem)]
        return max(ids, default=0)

    # -- records ------------------------------------------------------------------------

    def write(self, record: JobRecord) -> None:
        """Store ``record``, replacing any earlier version atomically."""
        self.ensure()
        write_json_atomic(self._jobs / f"{record.scheduler_id}.json", record.to_json())

    def read(self, scheduler_id: str) -> JobRecord | None:
        """Return the record of ``scheduler_id``, or None if there is none (or it is unreadable)."""
        if not is_scheduler_id(scheduler_id):
            return None
        data = read_json(self._jobs / f"{scheduler_id}.json")
        return JobRecord.from_json(data) if data is not None else None

    # -- cancellation markers -------------------------------------------------------------

    def cancel_marker(self, scheduler_id: str) -> Path:
        """Return the path of the marker that says a cancellation was asked for."""
        return self._jobs / f"{scheduler_id}.cancel"

    def mark_cancelled(self, scheduler_id: str, when: datetime) -> None:
        """Record that a cancellation of ``scheduler_id`` was asked for (idempotent)."""
        marker = self.cancel_marker(scheduler_id)
        if not marker.exists():
            self.ensure()
            write_json_atomic(marker, {"requested": format_time(when)})

    def is_cancelled(self, scheduler_id: str) -> bool:
        """Whether a cancellation of ``scheduler_id`` was asked for."""
        return self.cancel_marker(scheduler_id).exists()

    # -- the index by name ----------------------------------------------------------------

    def add_name(self, name: str, scheduler_id: str) -> None:
        """Index ``scheduler_id`` under ``name`` (one empty file, created atomically)."""
        folder = self._names / _name_key(name)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / scheduler_id).touch()

    def ids_for_name(self, name: str) -> list[str]:
        """Return every id indexed under ``name``, oldest (smallest) first."""
        try:
            entries = os.listdir(self._names / _name_key(name))
        except FileNotFoundError:
            return []
        return sorted((e for e in entries if is_scheduler_id(e)), key=int)


    # -- removal of an ended job's records ---------------------------------------------------

    def job_ids(self) -> list[int]:
        """The EFI job ids that have records here (names ``efi-<id>`` or ``efi-<id>-<claim>``)."""
        try:
            entries = os.listdir(self._names)
        except FileNotFoundError:
            return []
        found = {int(m.group(1)) for e in entries if (m := _JOB_NAME_RE.fullmatch(e))}
        return sorted(found)

    def remove_job(self, job_id: int) -> None:
        """Remove the records of every submission of EFI job ``job_id`` whose process ended.

        A record whose wrapper still runs is kept (with its name), so that the job can still
        be followed and cancelled.
        """
        try:
            entries = os.listdir(self._names)
        except FileNotFoundError:
            return
        for entry in entries:
            match = _JOB_NAME_RE.fullmatch(entry)
            if match is None or int(match.group(1)) != job_id:
                continue
            folder = self._names / entry
            for sid in os.listdir(folder):
                record = self.read(sid) if is_scheduler_id(sid) else None
                if record is not None and record.process is not None and is_alive(
                        record.process):
                    continue
                for path in (self._jobs / f"{sid}.json", self.cancel_marker(sid), folder / sid):
                    path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: a live submission keeps it
                folder.rmdir()


def _name_key(name: str) -> str:
    """Return a file name for ``name``: itself when safe, else a hex encoding of it."""
    if _SAFE_NAME_RE.fullmatch(name):
        return name
    return "%" + name.encode("utf-8").hex()  # "%" never occurs in a safe name
