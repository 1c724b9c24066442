"""A job's directory under the central results directory, and the manager's notes in it.

EFI-Web's table has no column for what only the manager needs, so that lives
here as small JSON files written atomically (temporary name, then rename):

- ``params.json`` and the staged inputs: what the pipeline reads;
- ``failure.json``: why a job failed, for users, operators and ``jobs show``;
- ``.efi/destination.json``: where the job was submitted (and its scheduler id when
  ``schedulerJobId`` holds only a stand-in for it), so status, cancel and results go to
  the same place after routing changes;
- ``.efi/cancel.json``: the cancellation was sent to the scheduler;
- ``.efi/unknown.json``: since when the scheduler has not known the job;
- ``.efi/resources.json``: resource overrides for the next submissions (set by a retry;
  `Resources` as JSON, seconds and MiB; older versions' Slurm strings are read too);
- ``.efi/claim.json``: the row (its ``uuid``) and the claim the directory now serves;
  a directory left by another row with the same id (EFI-Web reused it) is moved to
  ``<results_dir>/.superseded/`` before a new claim starts in it.

The manager never follows a symbolic link it did not make: if the job directory,
or any directory on the way to a file it writes, reads or removes, is a link
(planted before the job, or by the pipeline), writes raise `UnsafeJobDirectory`
and reads see nothing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from efi_job_manager.connector import Resources
from efi_job_manager.jobfiles import (
    atomic_copy_file,
    atomic_write_text,
    remove_stale_temporaries,
)

__all__ = ["JobDirectory", "UnsafeJobDirectory", "claimer", "claimer_is_gone"]

log = logging.getLogger(__name__)

_NOTES = ".efi"


class UnsafeJobDirectory(Exception):
    """A path in a job directory is a symbolic link: the manager refuses to use it."""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")


def claimer() -> str:
    """Who claims: ``<host>:<pid>`` of this process (recorded in ``claim.json``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claimer_is_gone(by: object) -> bool:
    """Whether the process that made a claim (``claim.json``'s ``by``) has ended.

    Known only for a process of this host other than this one; any doubt (another host, an
    older claim without ``by``, a process that still exists) is "not known to be gone".
    """
    if not isinstance(by, str):
        return False
    host, _, pid_text = by.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, another user's
        return False
    return False


class JobDirectory:
    """``<results_dir>/<job id>/`` and the files the manager keeps there."""

    def __init__(self, results_dir: Path, job_id: int) -> None:
        self.path = results_dir / str(int(job_id))
        self.job_id = int(job_id)

    def exists(self) -> bool:
        """Whether the directory has been made (and is a directory, not a link to one)."""
        return self.path.is_dir() and not self.path.is_symlink()

    # -- generic ----------------------------------------------------------------------

    def _inside(self, relative: str, *, make: bool = False) -> Path:
        """Return ``<job dir>/<relative>`` after checking that no directory on the way is a link.

        Raises:
            UnsafeJobDirectory: the job directory or a directory inside it on the way is a
                symbolic link, or ``relative`` leaves the job directory.
        """
        parts = Path(relative).parts
        if Path(relative).is_absolute() or ".." in parts or not parts:
            raise UnsafeJobDirectory(f"job {self.job_id}: {relative!r} leaves the job directory")
        place = self.path
        for part in ("", *parts[:-1]):
            place = place / part if part else place
            if place.is_symlink():
                raise UnsafeJobDirectory(f"{place} is a symbolic link; the manager never "
                                         f"follows one")
            if make and not place.exists():
                place.mkdir(parents=False)
        return self.path.joinpath(*parts)

    def write_json(self, relative: str, data: Mapping[str, Any]) -> Path:
        """Write a JSON file inside the directory atomically and return its path."""
        target = self._inside(relative, make=True)
        atomic_write_text(target, json.dumps(data, indent=2, sort_keys=True,
                                             default=_json_default) + "\n")
        return target

    def read_json(self, relative: str) -> dict[str, Any] | None:
        """Read a JSON object from the directory; None if absent, unsafe or unreadable (logged)."""
        try:
            target = self._inside(relative)
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as handle:
                data = json.loads(handle.read(1024 * 1024).decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError, UnsafeJobDirectory) as exc:
            log.warning("job %s: cannot read %s: %s", self.job_id, relative, exc)
            return None
        return data if isinstance(data, dict) else None

    def _remove(self, relative: str) -> None:
        try:
            path = self._inside(relative)
            if os.path.lexists(path):  # unlinking a missing file fails on a read-only mount
                path.unlink(missing_ok=True)
        except UnsafeJobDirectory as exc:
            log.warning("job %s: not removing %s: %s", self.job_id, relative, exc)

    # -- staging ----------------------------------------------------------------------

    def stage(self, params: Mapping[str, Any], inputs: Mapping[str, Path],
              extra_files: Mapping[str, str]) -> Path:
        """Write ``params.json``, copy the inputs and write extra files; idempotent.

        Returns:
            The path of ``params.json``.

        Raises:
            UnsafeJobDirectory: a link in the way (the job's fault: nothing is written).
            OSError: the results directory cannot be written (the site's fault).
        """
        for name, source in inputs.items():
            atomic_copy_file(source, self._inside(name, make=True))
        for name, text in extra_files.items():
            atomic_write_text(self._inside(name, make=True), text)
        return self.write_json("params.json", params)

    # -- the manager's notes ----------------------------------------------------------

    def record_destination(self, destination: str, scheduler_id: str | None = None) -> None:
        """Remember where the job was (or is about to be) submitted."""
        data: dict[str, Any] = {"destination": destination}
        if scheduler_id is not None:
            data["scheduler_id"] = scheduler_id
        self.write_json(f"{_NOTES}/destination.json", data)

    def destination_note(self) -> tuple[str | None, str | None]:
        """The destination and scheduler id recorded for this job (None where not), one read."""
        data = self.read_json(f"{_NOTES}/destination.json") or {}
        destination, scheduler_id = data.get("destination"), data.get("scheduler_id")
        return (destination if isinstance(destination, str) else None,
                scheduler_id if isinstance(scheduler_id, str) else None)

    def destination(self) -> str | None:
        """The destination recorded for this job, if any."""
        return self.destination_note()[0]

    def scheduler_id(self) -> str | None:
        """The scheduler id recorded with the destination, if any."""
        return self.destination_note()[1]

    def record_cancel_sent(self, time: datetime, scheduler_id: str) -> None:
        """Remember that the scheduler was asked to cancel this job."""
        self.write_json(f"{_NOTES}/cancel.json", {"time": time, "scheduler_id": scheduler_id})

    def cancel_sent(self, scheduler_id: str) -> bool:
        """Whether the cancellation of this scheduler job was already sent."""
        data = self.read_json(f"{_NOTES}/cancel.json")
        return bool(data) and data.get("scheduler_id") == scheduler_id  # type: ignore[union-attr]

    def record_failure(self, reason: str, time: datetime, **details: Any) -> None:
        """Write ``failure.json`` with the reason and whatever the scheduler said."""
        self.write_json("failure.json", {"job_id": self.job_id, "reason": reason, "time": time,
                                         **details})

    def failure(self) -> dict[str, Any] | None:
        """The recorded failure, if any."""
        return self.read_json("failure.json")

    def unknown_since(self, now: datetime) -> datetime:
        """Since when the scheduler has not known the job (recorded now if not yet)."""
        data = self.read_json(f"{_NOTES}/unknown.json")
        if data and isinstance(data.get("since"), str):
            try:
                return datetime.fromisoformat(data["since"])
            except ValueError:
                pass
        self.write_json(f"{_NOTES}/unknown.json", {"since": now})
        return now

    def begin_claim(self, uuid: str, now: datetime) -> str:
        """Start a new claim of the directory for the row ``uuid``; return the claim's id.

        The directory of another row (another ``uuid``, or no claim recorded) is moved
        to ``<results_dir>/.superseded/<id>-<time>``; an earlier run of the same row
        loses its results and notes. Nothing is ever read from a previous claim.

        Raises:
            UnsafeJobDirectory: the directory is a link.
            OSError: the results directory cannot be written (the site's fault).
        """
        self._inside("claim.json")  # refuses a link at the directory itself
        try:
            self.path.mkdir()
        except FileExistsError:
            self._forget_earlier_claims(uuid, now)
        # else a new directory: nothing to move aside or forget
        claim = secrets.token_hex(4)
        self.write_json(f"{_NOTES}/claim.json", {"uuid": uuid, "claim": claim, "time": now,
                                                 "by": claimer()})
        return claim

    def _forget_earlier_claims(self, uuid: str, now: datetime) -> None:
        """Move another row's directory aside; remove the notes of this row's earlier claim."""
        record = self.claim()
        if self.path.exists() and (record is None or record.get("uuid") != uuid) \
                and any(self.path.iterdir()):
            aside = self.path.parent / ".superseded" / f"{self.job_id}-{now:%Y%m%dT%H%M%S}"
            aside.parent.mkdir(exist_ok=True)
            self.path.rename(aside)
            log.warning("job %s: the directory of an earlier row with this id was moved to %s",
                        self.job_id, aside)
        for relative in ("stats.json", "failure.json", f"{_NOTES}/unknown.json",
                         f"{_NOTES}/cancel.json", f"{_NOTES}/destination.json"):
            self._remove(relative)

    def claim(self) -> dict[str, Any] | None:
        """The claim recorded in the directory (``uuid``, ``claim``, ``time``), if any."""
        return self.read_json(f"{_NOTES}/claim.json")

    def claim_record(self, uuid: str) -> dict[str, Any] | None:
        """The claim of the row ``uuid`` (``claim``, ``time``, ``by``); None: none, or not its."""
        record = self.claim()
        if not record or record.get("uuid") != uuid or not isinstance(record.get("claim"), str):
            return None
        return record

    def claim_of(self, uuid: str) -> str | None:
        """The id of the claim recorded for the row ``uuid`` (None if none or another row's)."""
        record = self.claim_record(uuid)
        return None if record is None else str(record["claim"])

    def tidy(self) -> int:
        """Remove what killed writers left (stale temporary files) here and in ``.efi/``."""
        if not self.exists():
            return 0
        return sum(remove_stale_temporaries(folder) for folder in (self.path,
                                                                    self.path / _NOTES))

    def record_resources(self, resources: Resources) -> None:
        """Remember resource overrides for the job's next submissions (a retry's larger time).

        Written as `Resources.to_json` (seconds, MiB).
        """
        self.write_json(f"{_NOTES}/resources.json", resources.to_json())

    def resources(self) -> Resources:
        """Resource overrides recorded for this job (empty if none).

        A note of older versions (Slurm strings: ``{"time": "01:00:00", "memory": "80M"}``)
        is read too; a note that cannot be read is logged and counts as none.
        """
        data = self.read_json(f"{_NOTES}/resources.json") or {}
        try:
            return Resources.from_json(data)
        except (TypeError, ValueError) as exc:
            log.warning("job %s: resource overrides in %s left out: %s", self.job_id,
                        f"{_NOTES}/resources.json", exc)
            return Resources()

    def clear_unknown(self) -> None:
        """Forget an unknown period: the scheduler knows the job again."""
        self._remove(f"{_NOTES}/unknown.json")
