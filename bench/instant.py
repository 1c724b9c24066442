"""A connector that answers at once, so that a benchmark measures the manager's own cost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from efi_job_manager.connector import BaseConnector, JobSpec, SchedulerStatus
from efi_job_manager.status import SchedulerState


class InstantConnector(BaseConnector):
    """Answers at once that every job is still running: the cycle's cost is ours alone."""

    def prepare_job_environment(self, spec: JobSpec) -> str:
        return str(spec.job_dir / "params.json")

    def submit_job(self, spec: JobSpec, params_path: str) -> str:
        return str(spec.job_id)

    def get_job_status(self, scheduler_id: str) -> SchedulerStatus:
        return SchedulerStatus(SchedulerState.RUNNING)

    def get_job_statuses(self, scheduler_ids: Iterable[str]) -> Mapping[str, SchedulerStatus]:
        return {i: SchedulerStatus(SchedulerState.RUNNING) for i in scheduler_ids}

    def retrieve_job_results(self, spec: JobSpec) -> Path:
        return spec.job_dir
