"""The connector contract: `BaseConnector` and the value types that cross it.

A connector is everything the manager needs from one cluster: stage a job, submit
it, ask how it is doing, cancel it and bring its results back. Connectors are
separate distributions registered under the ``efi_job_manager.connectors`` entry
point group and built with their own configuration section (a plain mapping).

Connectors are stateless across restarts: what is needed to resume a job lives
in the database or in the job's directory. A connector never touches the
database.
"""

from __future__ import annotations

import abc
import fnmatch
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import attrs

from efi_job_manager.resources import Resources
from efi_job_manager.status import SchedulerState

__all__ = [
    "PIPELINE_PASSTHROUGH",
    "BaseConnector",
    "ConnectorError",
    "JobOutcome",
    "JobSpec",
    "PermanentError",
    "Resources",
    "SchedulerStatus",
    "TransientError",
    "pipeline_environment",
]

log = logging.getLogger(__name__)


#: The manager's environment variables a pipeline gets by default (names or patterns).
PIPELINE_PASSTHROUGH: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR")
#: Never passed on, whatever a site allows: the manager's own settings and secrets.
_NEVER = ("EFI_JOB_MANAGER_*",)


def pipeline_environment(extra: Mapping[str, str] | None = None,
                         passthrough: Iterable[str] = (),
                         environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment a pipeline (or a scheduler command submitting one) runs in.

    Only the manager's variables named in `PIPELINE_PASSTHROUGH` or ``passthrough``
    (names or shell patterns) are passed on, never ``EFI_JOB_MANAGER_*``, so the
    manager's database password and other secrets never reach a job; ``extra`` (a
    site's own values) is added last.

    Args:
        extra: Variables to set (a connector's ``env`` setting).
        passthrough: More names or patterns to pass on from the manager's environment.
        environ: The manager's environment (default ``os.environ``).
    """
    source = os.environ if environ is None else environ
    allowed = (*PIPELINE_PASSTHROUGH, *passthrough)
    env = {k: v for k, v in source.items()
           if any(fnmatch.fnmatchcase(k, p) for p in allowed)
           and not any(fnmatch.fnmatchcase(k, p) for p in _NEVER)}
    env.update(extra or {})
    return env


class ConnectorError(Exception):
    """Base of the errors a connector raises."""


class PermanentError(ConnectorError):
    """Trying again will not help (bad partition, invalid parameters): the job fails."""


class TransientError(ConnectorError):
    """The cluster or the way to it is unavailable for now: nothing changes, retry later."""


@attrs.frozen
class JobSpec:
    """Everything a connector needs to know about one job.

    Attributes:
        job_id: The row's primary key in EFI-Web's ``Job`` table.
        job_type: The row's ``job_type`` (``est_generate_blast``…).
        job_dir: The job's directory under the central results directory
            (``<results_dir>/<job_id>``), already holding ``params.json`` and the input.
        command: The pipeline command, an argument list run in the job's directory.
        params: The parameters written to ``params.json``.
        pipeline: A short name of the pipeline, used to pick resource profiles.
        input_files: Files staged in ``job_dir`` (name → path), to be copied where the job runs.
        resources: What the job asks for: the site's ``[resources]`` profiles, then a
            retry's overrides (see `Resources`); empty when the site sets none.
        claim: Identifies this claim of the row (a new one each time a job is started
            afresh); part of `name`, so a lookup by name finds only this claim's
            submissions, never those of an earlier run or of another row with the same id.

    """

    job_id: int
    job_type: str
    job_dir: Path
    command: tuple[str, ...]
    params: Mapping[str, Any] = attrs.field(factory=dict)
    pipeline: str = ""
    input_files: Mapping[str, Path] = attrs.field(factory=dict)
    resources: Resources = attrs.field(factory=Resources)
    claim: str = ""

    @property
    def name(self) -> str:
        """The scheduler job name, ``efi-<id>-<claim>``, used to find this claim's job again."""
        return f"efi-{self.job_id}-{self.claim}" if self.claim else f"efi-{self.job_id}"


@attrs.frozen
class SchedulerStatus:
    """What the scheduler says about one job.

    Attributes:
        state: The normalised state.
        reason: Why it ended or waits (``TIMEOUT``, ``OUT_OF_MEMORY``, ``EXIT_CODE 3``,
            ``JobHeldUser``…), if known.
        raw: The scheduler's own text, kept for logs and ``failure.json``.
        exit_code: The job's exit code, if the scheduler reported one.
        signal: The signal that ended it, if any.
        submitted, started, ended: Times reported by the scheduler.

    """

    state: SchedulerState
    reason: str | None = None
    raw: str = ""
    exit_code: int | None = None
    signal: int | None = None
    submitted: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None

    @classmethod
    def unknown(cls, raw: str = "", reason: str | None = None) -> SchedulerStatus:
        """Return a status for a job the scheduler says nothing certain about."""
        return cls(SchedulerState.UNKNOWN, reason=reason, raw=raw)


@attrs.frozen
class JobOutcome:
    """What became of one job of a batch call (`BaseConnector.prepare_jobs`, ``submit_jobs``).

    Attributes:
        job_id: The job (`JobSpec.job_id`).
        value: What the call gives for the job when it worked: the path of ``params.json``
            where the job runs (``prepare_jobs``) or the scheduler's id (``submit_jobs``).
        error: Why it did not: a `PermanentError` is the job's fault (the job fails);
            anything else (a `TransientError`…) leaves the job to be tried again.
        attempted: False when nothing at all was done for the job, because the connector
            stopped before it (an earlier job found the cluster unavailable): such a job
            cannot have been submitted, and goes back to the queue at once.
    """

    job_id: int
    value: str | None = None
    error: Exception | None = None
    attempted: bool = True

    def __attrs_post_init__(self) -> None:
        """Check that the outcome holds a value or an error, not both nor neither."""
        if (self.value is None) == (self.error is None):
            raise ValueError(f"job {self.job_id}: an outcome holds a value or an error")
        if not self.attempted and self.error is None:
            raise ValueError(f"job {self.job_id}: a job not attempted cannot have a value")

    @classmethod
    def not_attempted(cls, job_id: int, why: Exception) -> JobOutcome:
        """The outcome of a job the connector did not try, because of ``why``."""
        return cls(job_id, error=TransientError(f"job {job_id} not tried: {why}"),
                   attempted=False)


class BaseConnector(abc.ABC):
    """The base every connector derives from.

    Subclasses are built by the manager with their own configuration section:
    ``Connector(config)``. A constructor must not contact the cluster; do that
    lazily or in `health_check`.

    Scheduler ids are opaque non-empty strings to the contract. The manager calls one
    connector from one thread at a time (one call returns before the next starts); two
    managers on one database use two instances, possibly in two processes at once, so
    state shared between instances (files, a scheduler) must be safe for that.
    `efi_job_manager.testing.ConnectorContract` checks the contract.
    """

    #: A short human name used in logs and by ``check``; a subclass that sets none gets
    #: its class name.
    display_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give a connector class without a `display_name` its class name."""
        super().__init_subclass__(**kwargs)
        if not cls.display_name:
            cls.display_name = cls.__name__

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        """Keep the connector's configuration section."""
        self.config: Mapping[str, Any] = dict(config or {})

    # -- the four methods of EFI's first job manager -------------------------------

    @abc.abstractmethod
    def prepare_job_environment(self, spec: JobSpec) -> str:
        """Stage ``params.json`` and the input files where the job will run.

        Must be idempotent: it may be called again for the same job after a crash.

        Returns:
            The path of ``params.json`` as the job will see it.

        Raises:
            PermanentError: the job cannot be staged (its fault).
            TransientError: the cluster or its filesystem is unreachable.

        """

    @abc.abstractmethod
    def submit_job(self, spec: JobSpec, params_path: str) -> str:
        """Submit the job under the name ``spec.name``.

        Returns:
            The scheduler's job id, a string of digits.

        Raises:
            PermanentError: the scheduler refused the job (invalid partition…).
            TransientError: the scheduler is unavailable; nothing was submitted.

        """

    @abc.abstractmethod
    def retrieve_job_results(self, spec: JobSpec) -> Path:
        """Bring the job's outputs into ``spec.job_dir`` and return that directory.

        May be called more than once for the same job.

        Raises:
            TransientError: the cluster is unreachable; try again later.
            PermanentError: the results cannot be had.

        """

    # -- batches: a cycle's jobs for this destination in few calls ---------------------

    def prepare_jobs(self, specs: Sequence[JobSpec]) -> list[JobOutcome]:
        """Stage several jobs where they will run: one `JobOutcome` per spec, in order.

        The manager stages each cycle's new jobs of a destination with one call. An
        outcome's value is the job's ``params.json`` path there, as from
        `prepare_job_environment` (whose rules hold for each job). The default calls
        `prepare_job_environment` for each job; after a `TransientError` (or another
        unexpected error) it stops, and the jobs after it are not attempted. A connector
        that can stage many jobs in one transfer overrides it.
        """
        return self._one_by_one(specs, self.prepare_job_environment)

    def submit_jobs(self, jobs: Sequence[tuple[JobSpec, str]]) -> list[JobOutcome]:
        """Submit several prepared jobs, each given with its ``params.json`` path.

        One `JobOutcome` per job, in order; a value is the job's scheduler id, as from
        `submit_job` (whose rules hold for each job, the name lookup before a retry
        included). A job whose outcome is not known (the reply was lost) must have an
        attempted error: the manager then looks it up by name before submitting it
        again. The default calls `submit_job` for each job and stops after a
        `TransientError` (or another unexpected error); the jobs after it are not
        attempted. A connector that can submit many jobs in one call overrides it.
        """
        params = {spec.job_id: path for spec, path in jobs}
        return self._one_by_one([spec for spec, _ in jobs],
                                lambda spec: self.submit_job(spec, params[spec.job_id]))

    @staticmethod
    def _one_by_one(specs: Sequence[JobSpec], act: Callable[[JobSpec], str]) -> list[JobOutcome]:
        outcomes: list[JobOutcome] = []
        stopped: Exception | None = None
        for spec in specs:
            if stopped is not None:
                outcomes.append(JobOutcome.not_attempted(spec.job_id, stopped))
                continue
            try:
                outcomes.append(JobOutcome(spec.job_id, act(spec)))
            except PermanentError as exc:
                outcomes.append(JobOutcome(spec.job_id, error=exc))
            except Exception as exc:  # a connector's failure is the job's outcome
                outcomes.append(JobOutcome(spec.job_id, error=exc))
                stopped = exc
        return outcomes

    # -- with defaults ---------------------------------------------------------------

    @abc.abstractmethod
    def get_job_statuses(self, scheduler_ids: Iterable[str]) -> Mapping[str, SchedulerStatus]:
        """Return the status of many jobs, with as few scheduler calls as the scheduler allows.

        The manager asks about every running job of a destination in one call per cycle.
        Every id asked for is a key of the result. A job the scheduler does not know (yet,
        or any more) is ``UNKNOWN``, never ``COMPLETED`` or ``FAILED`` on absence alone.

        Raises:
            TransientError: the scheduler is unavailable.

        """

    def get_job_status(self, scheduler_id: str) -> SchedulerStatus:
        """Return the status of one job: `get_job_statuses` asked about that one id."""
        return self.get_job_statuses([scheduler_id])[scheduler_id]

    def cancel_jobs(self, scheduler_ids: Iterable[str]) -> None:
        """Ask the scheduler to end jobs; return once it has been asked.

        Idempotent: cancelling a job twice, a job that has already ended, or an id the
        scheduler does not know is not an error (the manager cancels again after a crash).
        An empty list does nothing. It returns in bounded time (the connector's command
        timeout), without waiting for the jobs to end: their ``CANCELLED`` state is seen
        by a later status call.

        The default refuses: a connector that cannot cancel says so rather than
        pretending it did.

        Raises:
            PermanentError: this connector cannot cancel jobs.
            TransientError: the scheduler is unavailable; nothing is known to be cancelled.

        """
        ids = list(scheduler_ids)
        if ids:
            raise PermanentError(f"{type(self).__name__} cannot cancel jobs ({', '.join(ids)})")

    def find_job(self, spec: JobSpec) -> Sequence[str]:
        """Return the ids of every scheduler job named ``spec.name``, oldest first.

        Used to recover a job whose submission was not recorded (a crash right
        after submitting). The default knows no way to look and returns nothing,
        which makes the manager submit the job again.

        Raises:
            TransientError: the scheduler is unavailable.

        """
        return ()

    def retry_resources(self, spec: JobSpec,
                        failure: Mapping[str, Any]) -> Resources | None:
        """Return what a retry of a failed job should ask for differently, or None for the same.

        Called by ``efi-job-manager jobs retry`` with the failed run's spec
        (``spec.resources``: the site's profiles and earlier retries' overrides) and its
        ``failure.json``. Only the fields to change are set; the manager records them as
        overrides for the job's next submissions. A connector that knows its defaults
        can, for example, double the time after ``TIMEOUT`` or the memory after
        ``OUT_OF_MEMORY``, capped by a maximum. The default changes nothing.
        """
        return None

    def resources_for(self, spec: JobSpec) -> Resources:
        """Return what ``spec`` asks the scheduler for here, this connector's defaults included.

        That is ``spec.resources`` over the connector's own defaults; ``jobs retry`` shows
        it as what the failed run used (``memory: 40M -> 80M``). Must not contact the
        cluster. The default (a connector with no defaults of its own) is
        ``spec.resources``.
        """
        return spec.resources

    def render_job(self, spec: JobSpec) -> str:
        """Return what `submit_job` would hand the scheduler for ``spec`` (a batch script…).

        Shown by ``efi-job-manager run --dry-run``; must not contact the cluster or write
        anything. The default (a connector with nothing to show) returns an empty string.
        """
        return ""

    def output_files(self, scheduler_id: str) -> Sequence[str]:
        """The files the scheduler wrote of submission ``scheduler_id``, standard error first.

        Names in the job's directory, once its outputs came back. A failed job's reason
        names those that exist, and ``jobs show`` prints their last lines. Must not contact
        the cluster. The default names none.
        """
        return ()

    def release_job(self, job_id: int) -> None:
        """Remove what job ``job_id`` left where it ran (a cluster's job directory, records).

        The manager calls it once the job's row is final and whatever could come back is
        in its job directory (at once, or after the destination's ``keep_job_files``, from
        ``efi-job-manager clean``). It must remove only this job's files and nothing in the
        manager's own job directory; it is idempotent (nothing left: nothing to do).
        The default removes nothing.

        Raises:
            TransientError: the cluster cannot be reached now; ``clean`` tries again.
        """

    def release_jobs(self, job_ids: Sequence[int]) -> None:
        """`release_job` for many ended jobs at once (``clean``'s sweep).

        The default releases them one by one; a connector whose every call crosses a
        network should do it in a few calls.

        Raises:
            TransientError: the cluster cannot be reached now; some may be released already.
        """
        for job_id in job_ids:
            self.release_job(job_id)

    def leftover_jobs(self) -> Sequence[int]:
        """The ids of jobs that have files where this connector runs jobs, for ``clean``.

        Whatever an older version or a crash left is found here; ``clean`` releases those
        whose rows are final (or gone). The default finds none.

        Raises:
            TransientError: the cluster cannot be reached now.
        """
        return ()

    def describe(self) -> str:
        """How this connector reaches its cluster and where jobs' files go, in one line.

        ``efi-job-manager check`` prints it for each destination, so an operator sees which
        of a connector's ways in the configuration chose. The default says nothing (empty).
        It must not contact the cluster, nor show a secret.
        """
        return ""

    def health_check(self) -> None:
        """Check that the cluster is reachable; raise a `ConnectorError` if not.

        The default checks nothing.
        """

    def check_site(self, executables: Sequence[str],
                   paths: Sequence[str]) -> Sequence[str] | None:
        """Check, where this connector's jobs run, that the site's pipeline can run there.

        ``executables`` are commands (a bare name is looked up on the jobs' ``PATH``,
        a path must be an executable file); ``paths`` must exist. Both come from the
        site's configuration (the pipeline command, EST's pipelines and configs, the
        EFI data), never from a job. ``efi-job-manager check`` calls this.

        Returns:
            One line per problem (empty: all there), or None when this connector cannot
            check (the default; ``check`` then says the paths were not checked).
        """
        return None

    def check_command(self, argv: Sequence[str]) -> str | None:
        """Run ``argv`` where this connector's jobs run, with their environment, for ``check``.

        ``argv`` comes from the site's configuration (the pipeline's program and its
        ``version_args``), never from a job; it is passed as arguments, never as shell text.

        Returns:
            None when it exited 0, else one line: what ran, its exit status and the end of
            its standard error.

        Raises:
            NotImplementedError: this connector cannot run a command there (the default;
                ``check`` then says it was not run).
            ConnectorError: the cluster could not be reached.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and other resources. May be called more than once."""

    def __enter__(self) -> BaseConnector:
        """Use the connector in a ``with`` block that closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the connector."""
        self.close()
