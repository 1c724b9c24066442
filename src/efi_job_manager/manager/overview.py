"""The site at a glance (`Overview`): jobs by status, what waits and why, the live managers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from efi_job_manager.manager.base import ManagerBase
from efi_job_manager.manager.limits import Hold
from efi_job_manager.manager.presence import ManagerPresence, read_presences
from efi_job_manager.status import Status

__all__ = ["HeldBack", "JobCount", "Overview", "OverviewStep"]

#: At most this many waiting jobs are judged against the limits for an overview.
HELD_BACK_SCAN = 1000


@attrs.frozen
class JobCount:
    """How many rows have one status, pipeline and destination.

    ``destination`` is where the job type is routed now (``[routing]``); ``pipeline`` is
    the job type's pipeline, ``unknown`` for a job type this manager does not know.
    """

    status: str
    pipeline: str
    destination: str
    count: int


@attrs.frozen
class HeldBack:
    """A ``new`` job that the limits keep waiting, and which limit."""

    job_id: int
    job_type: str
    user_id: int | None
    destination: str
    hold: Hold


@attrs.frozen
class Overview:
    """The site at one moment, as ``efi-job-manager status`` shows it.

    Attributes:
        time: When it was taken (naive UTC).
        jobs: Row counts by status, pipeline and destination.
        oldest_waiting: The oldest ``new`` job's id and age in seconds, if any.
        held_back: ``new`` jobs the limits hold back now (of the oldest `HELD_BACK_SCAN`),
            oldest first.
        managers: Every manager's last heartbeat, newest first.
    """

    time: datetime
    jobs: tuple[JobCount, ...]
    oldest_waiting: tuple[int, float | None] | None
    held_back: tuple[HeldBack, ...]
    managers: tuple[ManagerPresence, ...]

    def to_json(self) -> dict[str, Any]:
        """This overview as JSON-ready data."""
        return {
            "time": self.time.replace(microsecond=0).isoformat() + "Z",
            "jobs": [attrs.asdict(c) for c in self.jobs],
            "oldest_waiting": None if self.oldest_waiting is None else {
                "job_id": self.oldest_waiting[0], "age_seconds": self.oldest_waiting[1]},
            "held_back": [{"job_id": h.job_id, "job_type": h.job_type, "user_id": h.user_id,
                           "destination": h.destination, "limit": h.hold.limit,
                           "detail": h.hold.detail} for h in self.held_back],
            "managers": [dict(m.to_json(), state=m.state(self.time)) for m in self.managers],
        }


class OverviewStep(ManagerBase):
    """What `JobManager.overview` and the metrics read from the table."""

    def job_counts(self) -> dict[tuple[str, str, str], int]:
        """Rows by ``(status, pipeline, destination)``: one grouped query.

        A status or job type this manager does not know counts as ``unknown``: what a row
        holds never becomes a label of its own.
        """
        counts: dict[tuple[str, str, str], int] = {}
        known = {s.value for s in Status}
        for (status, job_type), n in self.repository.counts_by_status_and_type().items():
            key = (status if status in known else "unknown", self.pipeline_label(job_type),
                   self.route(job_type))
            counts[key] = counts.get(key, 0) + n
        return counts

    def oldest_waiting(self, now: datetime) -> tuple[int, float | None] | None:
        """The oldest ``new`` job's id and its age in seconds (None if it has no time)."""
        oldest = self.repository.oldest_new()
        if oldest is None:
            return None
        job_id, created = oldest
        return job_id, None if created is None else max(0.0, (now - created).total_seconds())

    def held_back(self, paused: Mapping[str, str] | None = None) -> list[HeldBack]:
        """The waiting jobs the limits hold back now, judged oldest first as a claim would.

        Args:
            paused: Destination → the site fault pausing it (from the managers' heartbeats);
                by default this manager's own.
        """
        limits = self._limits(self.repository.running_counts(),
                              self.paused_destinations() if paused is None else paused)
        held: list[HeldBack] = []
        for job in self.repository.waiting(HELD_BACK_SCAN):
            hold = limits.hold(job)
            if hold is not None:
                held.append(HeldBack(job.id, job.job_type, job.user_id,
                                     self.route(job.job_type), hold))
        return held

    def paused_destinations(self) -> dict[str, str]:
        """Destination (or ``start``) → the site fault in force there, in this manager."""
        return {key: message for key in [*self.destinations, "start"]
                if (message := self.faults.active(key)) is not None}

    def overview(self) -> Overview:
        """The site now: jobs, the oldest waiting, the held back and every manager's heartbeat.

        The destinations paused by a site fault are those the live managers report.
        """
        now = self.clock()
        managers = read_presences(self.results_dir, now)
        paused = self.paused_destinations()
        for presence in managers:
            if presence.state(now) == "running":
                paused.update(presence.paused)
        jobs = tuple(JobCount(status, pipeline, destination, n) for (status, pipeline,
                     destination), n in sorted(self.job_counts().items()))
        return Overview(now, jobs, self.oldest_waiting(now), tuple(self.held_back(paused)),
                        tuple(managers))
