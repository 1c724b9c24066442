"""Slurm reached through slurmrestd: what the connector asks of the scheduler, over HTTP.

`RestScheduler` answers the connector's scheduler calls when ``api = "rest"``: a submission
(`job_submission`: the script and its options as job properties), statuses
(`RestStatusReader`), cancels (one ``DELETE`` per job: the API has no list form), the jobs
of a name (the live listing and accounting's ``job_name``), and a health check (ping, the
configured partitions). The files still go through the connector's transport: the REST API
moves none.

Over REST a job runs with `JOB_ENVIRONMENT` (sbatch would pass the login shell's
environment; slurmrestd passes only what it is given): the batch script's ``env_setup``
line prepares the rest, as over the command line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from efi_connector_slurm.config import SlurmSettings
from efi_connector_slurm.parsing import (
    accounting_failure,
    classify_sbatch_error,
    parse_rest_submit,
    rest_cancel_error,
    rest_failure,
    rest_records,
)
from efi_connector_slurm.rest.client import API_VERSION, RestClient, TokenSource
from efi_connector_slurm.rest.request import job_submission
from efi_connector_slurm.rest.statuses import RestStatusReader
from efi_job_manager.toolkit import JobSpec, PermanentError, SchedulerStatus, TransientError

__all__ = ["JOB_ENVIRONMENT", "RestScheduler"]

#: The environment a job submitted over REST starts with.
JOB_ENVIRONMENT: Final[Mapping[str, str]] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

_SLURM = f"/slurm/{API_VERSION}"
_SLURMDB = f"/slurmdb/{API_VERSION}"


def _client(settings: SlurmSettings) -> RestClient:
    tokens = None
    if settings.rest_token_env is not None or settings.rest_token_file is not None:
        tokens = TokenSource(settings.rest_user or "", env=settings.rest_token_env,
                             file=Path(settings.rest_token_file)
                             if settings.rest_token_file is not None else None)
    assert settings.rest_url is not None  # parse_settings requires it  # noqa: S101
    return RestClient(settings.rest_url, tokens, timeout=settings.command_timeout)


class RestScheduler:
    """The scheduler's side of the Slurm connector over slurmrestd (``api = "rest"``)."""

    def __init__(self, settings: SlurmSettings) -> None:
        """Prepare the client; nothing is sent yet."""
        self.settings = settings
        self.client = _client(settings)
        self.statuses = RestStatusReader(self.client, settings.chunk_size)

    @property
    def description(self) -> str:
        """Where the scheduler is reached, for messages."""
        return self.client.description

    def submit(self, spec: JobSpec, directory: str) -> str:
        """Submit ``spec`` to run in ``directory``; its scheduler id.

        Raises:
            PermanentError: Slurm refused the job (its message).
            TransientError: slurmrestd or slurmctld could not take it now.
        """
        try:
            body = job_submission(spec, self.settings, directory, JOB_ENVIRONMENT)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        answer = self.client.post(f"{_SLURM}/job/submit", body)
        return parse_rest_submit(answer.status, answer.document)

    def read(self, scheduler_ids: Iterable[str]) -> dict[str, SchedulerStatus]:
        """The status of every id (`RestStatusReader.read`)."""
        return self.statuses.read(scheduler_ids)

    def cancel(self, scheduler_ids: Iterable[str]) -> None:
        """Cancel every id; a job slurmctld no longer holds is fine.

        Raises:
            TransientError: slurmrestd or slurmctld could not be reached.
            PermanentError: Slurm refused (permission denied…).
        """
        problems: list[str] = []
        for sid in dict.fromkeys(str(s) for s in scheduler_ids):
            if not (sid.isascii() and sid.isdigit()):
                continue  # not a job id of this connector: nothing to cancel
            why = rest_cancel_error(self.client.delete(f"{_SLURM}/job/{sid}").document)
            if why is not None:
                problems.append(f"{sid}: {why}")
        if problems:
            text = "; ".join(problems)
            raise classify_sbatch_error(1, text)(
                f"cancelling through {self.description} failed: {text}")

    def find(self, name: str) -> list[str]:
        """The ids of the jobs named ``name``, oldest first: the live listing and accounting.

        Raises:
            TransientError: either could not answer: one alone could miss the job.
        """
        listing = self.client.get(f"{_SLURM}/jobs")
        jobs = listing.document.get("jobs")
        if listing.status != 200 or not isinstance(jobs, list):
            raise TransientError(f"{self.description} cannot list jobs to look {name} up: "
                                 f"{rest_failure(listing.document) or listing.status}")
        recorded = self.client.get(f"{_SLURMDB}/jobs", params={"job_name": name})
        why = accounting_failure(recorded.document)
        if why is not None:
            raise TransientError(f"{self.description}: accounting cannot look {name} up: "
                                 f"{why}")
        found = {str(j["job_id"]) for answer in (listing, recorded)
                 for j in rest_records(answer.document) if j.get("name") == name}
        return sorted(found, key=int)

    def health_check(self) -> None:
        """Check that slurmrestd answers, slurmctld is up, and the configured partitions exist.

        Raises:
            TransientError: slurmrestd or slurmctld cannot be reached now.
            PermanentError: a configured partition does not exist.
        """
        ping = self.client.get(f"{_SLURM}/ping")
        pings = ping.document.get("pings")
        states = [p.get("ping") for p in pings if isinstance(p, Mapping)] \
            if isinstance(pings, list) else []
        if ping.status != 200 or "UP" not in states:
            raise TransientError(f"{self.description}: slurmctld does not answer its ping: "
                                 f"{rest_failure(ping.document) or states or ping.status}")
        parts = self.client.get(f"{_SLURM}/partitions")
        available = {str(p.get("name")) for p in rest_records(parts.document, "partitions")}
        settings = self.settings
        wanted = {settings.defaults.partition, *(p.partition for p in settings.profiles.values())}
        names = {part for value in wanted if value for part in value.split(",")}
        unknown = sorted(names - available)
        if unknown:
            raise PermanentError(f"partition(s) {', '.join(unknown)} do not exist at "
                                 f"{self.description} (it has: "
                                 f"{', '.join(sorted(available)) or 'none'})")

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

