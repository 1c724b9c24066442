"""The connector's note about a job's current attempt: ``<job_dir>/.efi-slurm/attempt.json``.

It holds where the attempt runs on the cluster side, the resources it asked for, the scheduler
ids it submitted and those of earlier attempts (before an operator's retry), which `find_job`
leaves out. The note lives in the manager's job directory and is never copied to the cluster;
versions before the toolkit kept it in ``.efi/slurm-attempt.json``, which is read when the
new one is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from efi_job_manager.toolkit import atomic_write_text, connector_folder

__all__ = ["ATTEMPT_FILE", "LEGACY_ATTEMPT_FILE", "Attempt", "read_attempt", "write_attempt"]

# The connector's logger: these notes were part of it, and log configurations name it.
log = logging.getLogger("efi_connector_slurm.connector")

#: The connector's note in the manager's job directory (never copied to the cluster).
ATTEMPT_FILE = ".efi-slurm/attempt.json"
#: Where versions before the toolkit kept it (read when the new one is missing).
LEGACY_ATTEMPT_FILE = ".efi/slurm-attempt.json"


@attrs.frozen
class Attempt:
    """The connector's note about a job's current attempt (``ATTEMPT_FILE``).

    Attributes:
        cluster_dir: The job's directory on the cluster side.
        resources: The resources the attempt asked for.
        submitted: The scheduler ids this attempt submitted, oldest first.
        previous: The scheduler ids of earlier attempts (`find_job` leaves them out).
    """

    cluster_dir: str = ""
    resources: Mapping[str, str] = attrs.field(factory=dict)
    submitted: tuple[str, ...] = ()
    previous: tuple[str, ...] = ()

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> Attempt:
        """Read the note's JSON object; missing or malformed entries are empty."""

        def ids(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        def table(key: str) -> dict[str, str]:
            value = data.get(key)
            return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

        return cls(
            cluster_dir=str(data.get("cluster_dir", "")),
            resources=table("resources"),
            submitted=ids("submitted"),
            previous=ids("previous"),
        )

    def dump(self) -> str:
        """The note as the JSON text of the file (sorted keys, trailing newline)."""
        data = {
            "cluster_dir": self.cluster_dir,
            "resources": dict(self.resources),
            "submitted": list(self.submitted),
            "previous": list(self.previous),
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def begin(cls, cluster_dir: str, resources: Mapping[str, str],
              before: Attempt | None) -> Attempt:
        """A new attempt: nothing submitted yet; every id of ``before`` becomes an earlier one."""
        previous = (before.previous + before.submitted) if before is not None else ()
        return cls(cluster_dir, resources, (), tuple(dict.fromkeys(previous)))

    def with_submission(self, scheduler_id: str) -> Attempt:
        """This attempt with ``scheduler_id`` added to its submissions (once)."""
        return attrs.evolve(self, submitted=tuple(dict.fromkeys((*self.submitted, scheduler_id))))


def read_attempt(job_dir: Path) -> Attempt | None:
    """The note of the job in ``job_dir`` (the legacy one if the new one is missing), or None.

    An unreadable note is logged and counts as missing.
    """
    data = (_read_json(connector_folder(job_dir, "slurm") / "attempt.json")
            or _read_json(job_dir / LEGACY_ATTEMPT_FILE))
    return Attempt.load(data) if data is not None else None


def write_attempt(job_dir: Path, attempt: Attempt) -> None:
    """Write the note of the job in ``job_dir`` atomically.

    Raises:
        OSError: the job directory cannot be written.
    """
    atomic_write_text(connector_folder(job_dir, "slurm") / "attempt.json", attempt.dump())


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None
