"""The running limits, applied to one candidate at a time: whether it may start, and if not why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping

import attrs

from efi_job_manager.config import ManagerSettings
from efi_job_manager.manager.report import Destination
from efi_job_manager.repository import CandidateJob, RunningCounts

__all__ = ["Hold", "LimitCheck"]


@attrs.frozen
class Hold:
    """Why a new job is held back.

    Attributes:
        limit: The setting that holds it: ``max_running_jobs``,
            ``max_running_jobs_per_user``, ``max_running_jobs_per_pipeline.<name>``,
            ``destinations.<name>.max_running_jobs`` or ``paused`` (its destination is
            paused by a site fault).
        detail: The numbers, for people: ``user 7 has 2 of 2 running``.
    """

    limit: str
    detail: str

    def __str__(self) -> str:
        return f"{self.limit}: {self.detail}"


class LimitCheck:
    """The limits over the running counts, counting in each candidate it lets through.

    Built from the counts a claim reads under its lock (or, for a report, without it), it
    answers candidates in order, oldest first, as one claim would: each one let through
    counts as running for the next.
    """

    def __init__(self, settings: ManagerSettings, counts: RunningCounts, *,
                 destinations: Mapping[str, Destination], route: Callable[[str], str],
                 pipeline_name: Callable[[str], str],
                 unavailable: Mapping[str, str] | Collection[str] = ()) -> None:
        self._settings = settings
        self._destinations = destinations
        self._route = route
        self._pipeline_name = pipeline_name
        self._unavailable = (dict(unavailable) if isinstance(unavailable, Mapping)
                             else dict.fromkeys(unavailable, "unavailable this cycle"))
        self._by_user = dict(counts.by_user)
        self._by_type: Counter[str] = Counter()  # per job type and per pipeline name
        self._by_destination: Counter[str] = Counter()
        for job_type, n in counts.by_job_type.items():
            self._by_type[job_type] += n
            pipeline = pipeline_name(job_type)
            if pipeline and pipeline != job_type:
                self._by_type[pipeline] += n
            self._by_destination[route(job_type)] += n
        self._total = counts.total

    def hold(self, candidate: CandidateJob) -> Hold | None:
        """Why ``candidate`` may not start now; None if it may (it then counts as running)."""
        s = self._settings
        if self._total >= s.max_running_jobs:
            return Hold("max_running_jobs", f"{self._total} of {s.max_running_jobs} running")
        destination = self._destinations[self._route(candidate.job_type)]
        if destination.name in self._unavailable:
            return Hold("paused", f"destination {destination.name}: "
                                  f"{self._unavailable[destination.name]}")
        user = candidate.user_id
        per_user = s.max_running_jobs_per_user
        if per_user is not None and user is not None and self._by_user.get(user, 0) >= per_user:
            return Hold("max_running_jobs_per_user",
                        f"user {user} has {self._by_user[user]} of {per_user} running")
        pipeline = self._pipeline_name(candidate.job_type) or candidate.job_type
        for key in (candidate.job_type, pipeline):
            limit = s.max_running_jobs_per_pipeline.get(key)
            if limit is not None and self._by_type[key] >= limit:
                return Hold(f"max_running_jobs_per_pipeline.{key}",
                            f"{self._by_type[key]} of {limit} {key} jobs running")
        limit = destination.max_running_jobs
        if limit is not None and self._by_destination[destination.name] >= limit:
            return Hold(f"destinations.{destination.name}.max_running_jobs",
                        f"{self._by_destination[destination.name]} of {limit} running there")
        self._total += 1
        if user is not None:
            self._by_user[user] = self._by_user.get(user, 0) + 1
        self._by_type[candidate.job_type] += 1
        if pipeline != candidate.job_type:
            self._by_type[pipeline] += 1
        self._by_destination[destination.name] += 1
        return None

    def accept(self, candidate: CandidateJob) -> bool:
        """Whether ``candidate`` may start now (it then counts as running)."""
        return self.hold(candidate) is None
