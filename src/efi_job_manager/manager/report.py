"""What a cycle reports, and the bookkeeping it keeps while it runs."""

from __future__ import annotations

from datetime import datetime

import attrs

from efi_job_manager.connector import BaseConnector

__all__ = ["Cycle", "CycleAborted", "CycleReport", "Destination", "PlannedAction"]


@attrs.define
class Destination:
    """A named connector instance jobs can be routed to (a cluster, or a partition of one)."""

    name: str
    connector: BaseConnector
    max_running_jobs: int | None = None
    #: Seconds what a job left where it ran is kept after the job ended (0: removed as soon
    #: as its results are back); ``efi-job-manager clean`` removes it later.
    keep_job_files: float = 0.0

    @property
    def label(self) -> str:
        """The name and the connector's display name, for logs: ``hpc (slurm)``."""
        return f"{self.name} ({self.connector.display_name})"


@attrs.frozen
class PlannedAction:
    """What a dry run would do for one job."""

    job_id: int
    action: str
    destination: str | None = None
    command: tuple[str, ...] = ()
    detail: str = ""


@attrs.frozen
class CycleReport:
    """What one cycle changed.

    Attributes:
        started: Jobs submitted (or adopted) this cycle.
        finished: Jobs moved to ``finished``.
        failed: Jobs moved to ``failed``, with the reason.
        cancelled: Jobs whose cancellation was sent to the scheduler.
        recovered: Jobs recovered after a crash (adopted or submitted again).
        lost_races: Jobs another actor moved first (nothing overwritten).
        running: Jobs still running after the cycle.
        errors: Problems that were not a job's fault (a step was skipped).
        planned: What a dry run would have done (empty on a real run).
    """

    started: tuple[int, ...] = ()
    finished: tuple[int, ...] = ()
    failed: tuple[tuple[int, str], ...] = ()
    cancelled: tuple[int, ...] = ()
    recovered: tuple[int, ...] = ()
    lost_races: tuple[int, ...] = ()
    running: int = 0
    errors: tuple[str, ...] = ()
    planned: tuple[PlannedAction, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the cycle moved any job."""
        return bool(self.started or self.finished or self.failed or self.cancelled
                    or self.recovered)


@attrs.define
class Cycle:
    """Mutable bookkeeping of one cycle, frozen into a `CycleReport` at the end."""

    now: datetime
    started: list[int] = attrs.Factory(list)
    finished: list[int] = attrs.Factory(list)
    failed: list[tuple[int, str]] = attrs.Factory(list)
    cancelled: list[int] = attrs.Factory(list)
    recovered: list[int] = attrs.Factory(list)
    lost_races: list[int] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    planned: list[PlannedAction] = attrs.Factory(list)
    running: int = 0
    unavailable: set[str] = attrs.Factory(set)
    site_fault: str | None = None
    step: str = ""
    step_started: datetime | None = None  # by the manager's clock
    overran: bool = False

    def report(self) -> CycleReport:
        """The report of this cycle."""
        return CycleReport(tuple(self.started), tuple(self.finished), tuple(self.failed),
                           tuple(self.cancelled), tuple(self.recovered), tuple(self.lost_races),
                           self.running, tuple(self.errors), tuple(self.planned))


class CycleAborted(Exception):
    """The database is unreachable: end the cycle here, nothing is lost."""
