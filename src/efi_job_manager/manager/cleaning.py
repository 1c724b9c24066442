"""``efi-job-manager clean``: remove what ended jobs left where they ran.

Each destination's connector lists the jobs that still have files where it runs them
(`BaseConnector.leftover_jobs`: the Slurm connector's ``remote_dir/<id>``). A job whose row
is final (finished, failed, cancelled, archived) and ended at least the destination's
``keep_job_files`` ago, or whose row is gone, is released (`BaseConnector.release_job`);
a job still new or running, or ended more recently, is kept. Nothing in the results
directory is touched. A destination that cannot be reached is reported and skipped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import attrs

from efi_job_manager.connector import ConnectorError
from efi_job_manager.manager.base import ManagerBase
from efi_job_manager.status import Status

__all__ = ["CleanReport", "CleanStep"]

log = logging.getLogger("efi_job_manager.manager")

_FINAL = frozenset(s.value for s in Status if s.is_terminal)


@attrs.frozen
class CleanReport:
    """What ``clean`` did on one destination.

    Attributes:
        destination: The destination's name.
        removed: Jobs whose files were removed (or would be, in a dry run); none when the
            removal failed (``error``).
        kept: Jobs whose files stay: still new or running, or ended within
            ``keep_job_files``.
        error: Why the destination could not be cleaned (unreachable…), else None.
    """

    destination: str
    removed: tuple[int, ...] = ()
    kept: tuple[int, ...] = ()
    error: str | None = None


class CleanStep(ManagerBase):
    """Removes what ended jobs left on their destinations (``efi-job-manager clean``)."""

    def clean(self, *, dry_run: bool = False) -> list[CleanReport]:
        """Release every leftover job whose row is final and old enough, or gone.

        Args:
            dry_run: Only say what would be removed.

        Returns:
            One report per destination, in name order.
        """
        now = self.clock()
        reports = []
        for name in sorted(self.destinations):
            destination = self.destinations[name]
            try:
                leftovers = list(destination.connector.leftover_jobs())
            except ConnectorError as exc:
                reports.append(CleanReport(name, error=str(exc)))
                continue
            rows = {row.id: row for row in self.repository.job_rows(ids=leftovers, limit=None)}
            keep = timedelta(seconds=destination.keep_job_files)
            removed: list[int] = []
            kept: list[int] = []
            for job_id in leftovers:
                row = rows.get(job_id)
                ended = row is None or (row.status in _FINAL and (
                    row.time_completed is None or row.time_completed + keep <= now))
                (removed if ended else kept).append(job_id)
            if removed and not dry_run:
                try:  # in a few calls: a sweep of an older version's leftovers may be long
                    destination.connector.release_jobs(removed)
                except ConnectorError as exc:
                    reports.append(CleanReport(name, (), tuple(kept), str(exc)))
                    continue
                log.info("destination %s: removed what jobs %s left", destination.label,
                         ", ".join(map(str, removed)))
            reports.append(CleanReport(name, tuple(removed), tuple(kept)))
        return reports
