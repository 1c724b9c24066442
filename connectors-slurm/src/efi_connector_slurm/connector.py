"""`SlurmConnector`: run EFI jobs on a Slurm cluster, from a login node or over SSH.

The connector orchestrates; each step has its module, visited once per call:

- stage: `staging` (where the job runs, what is copied there: a batch of jobs in one
  transfer) and `script` (the batch script) → the transport;
- submit: `submission` (one job with retries, or a batch in one remote call, and the outage
  hold) → `commands`, `sbatch_batch` → the transport → `parsing`;
- status: `statuses` (sacct, squeue, scontrol, the memory-kill check) → `commands` → the
  transport → `parsing`;
- cancel, find by name: `commands` → the transport → `parsing`; the site's health:
  `sitecheck`;
- with ``api = "rest"``, submit, status, cancel, find and health go to Slurm's REST daemon
  instead (`efi_connector_slurm.rest.RestScheduler`), under the same rules (the name
  lookup before a retry, the outage hold, UNKNOWN for a job nobody reports); the transport
  then moves files only.

Every Slurm command and file copy goes through an `efi_job_manager.toolkit` transport
(`LocalTransport` on a login node, `SshTransport` with one ControlMaster connection
otherwise), as argument lists. The connector keeps one small note per job, `attempts`
(``<job_dir>/.efi-slurm/attempt.json``), so that `find_job` ignores the submissions of
earlier attempts; everything else lives at the scheduler.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs

from efi_connector_slurm.attempts import ATTEMPT_FILE, Attempt, read_attempt, write_attempt
from efi_connector_slurm.commands import (
    chunks,
    find_job_command,
    find_job_sacct_command,
    memory_kill_grep_command,
    scancel_command,
    validate_job_id,
)
from efi_connector_slurm.config import SlurmSettings, parse_settings
from efi_connector_slurm.mount import make_transport
from efi_connector_slurm.parsing import (
    classify_sbatch_error,
    error_text,
    host_key_wait,
    parse_find_job,
)
from efi_connector_slurm.rest.request import rest_extra_options
from efi_connector_slurm.rest.scheduler import RestScheduler
from efi_connector_slurm.retention import leftovers, release
from efi_connector_slurm.script import (
    batch_script,
    job_resources,
    render_batch_script,
    retry_resources,
)
from efi_connector_slurm.sitecheck import check_command, check_site, health_check, way_in
from efi_connector_slurm.staging import (
    Placement,
    placement,
    require_params,
    retrieve,
    stage_jobs,
)
from efi_connector_slurm.statuses import SQUEUE_CHUNK, StatusReader, sacct_since
from efi_connector_slurm.submission import OUTAGE_HOLD, Submitter
from efi_job_manager.toolkit import (
    BaseConnector,
    CommandResult,
    ConfigError,
    HostKeyError,
    JobOutcome,
    JobSpec,
    PermanentError,
    Resources,
    SchedulerStatus,
    TransientError,
    Transport,
    one_sync,
)

__all__ = ["ATTEMPT_FILE", "OUTAGE_HOLD", "SQUEUE_CHUNK", "SlurmConnector"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _not_the_jobs_fault(job_id: int) -> Iterator[None]:
    """Turn a host key mismatch into a `TransientError` for job-level calls.

    The manager fails a job on a `PermanentError`; a changed host key is the operator's
    problem, not the job's: every job would fail. It stays transient (the cycle reports it,
    loudly and every time) until the key is checked.
    """
    try:
        yield
    except HostKeyError as exc:
        raise host_key_wait(job_id, exc) from exc


def _synced(count: int) -> contextlib.AbstractContextManager[None]:
    """`one_sync` for a batch; a lone job's one note is synced on its own (no ``os.sync``)."""
    return one_sync() if count > 1 else contextlib.nullcontext()


def _value(outcome: JobOutcome) -> str:
    """The value of a batch's outcome, or its error raised."""
    if outcome.error is not None:
        raise outcome.error
    assert outcome.value is not None  # an outcome holds one or the other  # noqa: S101
    return outcome.value


class SlurmConnector(BaseConnector):
    """Submit jobs with ``sbatch``, follow them with ``sacct``/``squeue``, cancel with ``scancel``.

    Built with the destination's ``settings`` table (`efi_connector_slurm.config.SlurmSettings`;
    the reference: ``docs/settings.md``); the constructor validates it and contacts nothing.

    Raises:
        ValueError: a setting is unknown or has the wrong type; the message names the key,
            the value and what was expected.
    """

    display_name: ClassVar[str] = "slurm"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        """Validate ``config`` and build the transport (which connects on first use)."""
        super().__init__(config)
        #: The validated settings.
        self.settings: SlurmSettings = parse_settings(self.config)
        #: Where the Slurm commands run.
        self.transport: Transport = make_transport(self.settings)
        self._statuses = StatusReader(on_squeue_answer=self._controller_answers)
        self._user_name: str | None = None
        self._submitter = Submitter(find_job=self.find_job, cancel_jobs=self.cancel_jobs)
        #: Slurm's REST daemon, with ``api = "rest"`` (None otherwise).
        self.rest: RestScheduler | None = self._make_rest()

    def _make_rest(self) -> RestScheduler | None:
        """The REST scheduler for ``api = "rest"``; every ``extra_sbatch`` must be sendable."""
        s = self.settings
        if s.api != "rest":
            return None
        for key, profile in [("extra_sbatch", s.defaults), *(
                (f"profiles.{name}.extra_sbatch", p) for name, p in s.profiles.items())]:
            try:
                rest_extra_options(profile.extra_sbatch)
            except ValueError as exc:
                raise ConfigError(f"slurm connector settings: {key}: {exc}") from None
        return RestScheduler(s)

    def _run(self, argv: Sequence[str]) -> CommandResult:
        """Run a Slurm command; transport failures raise (`TransientError` for the way there)."""
        return self.transport.run(argv, timeout=self.settings.command_timeout)

    def _controller_answers(self) -> None:
        """Slurmctld answered (squeue): submissions need not wait any more (`OUTAGE_HOLD`)."""
        self._submitter.answered()

    # -- the four methods of the contract ----------------------------------------------------

    def prepare_job_environment(self, spec: JobSpec) -> str:
        """Stage the job where it runs and write its batch script ``efi-job.sbatch`` there.

        In place (local transport, no ``remote_dir``) only the script is written into
        ``spec.job_dir``. Otherwise ``remote_dir/<id>`` gets ``params.json`` (job-directory
        paths rewritten with `relocate_params`), the script and every staged input the
        parameters or the command refer to. Idempotent. `prepare_jobs` with one job.

        Returns:
            The path of ``params.json`` on the cluster side.

        Raises:
            PermanentError: the job cannot run as specified (no ``params.json``, an empty
                command, a directory #SBATCH cannot carry).
            TransientError: the cluster side cannot be reached or written now.
        """
        return _value(self.prepare_jobs([spec])[0])

    def prepare_jobs(self, specs: Sequence[JobSpec]) -> list[JobOutcome]:
        """Stage several jobs as `prepare_job_environment` does, in one transfer.

        The jobs not in place go with one transfer per directory on the cluster side (over
        SSH an archive unpacked by one command, else a local staging tree: `stage_jobs`);
        every job's attempt note is written with one sync. One outcome per job, in order: a
        job's own fault (no ``params.json``, a script that cannot be written) fails that job
        alone; a failed transfer is a `TransientError` for each job it carried (a changed
        host key too: not the jobs' fault).
        """
        outcomes: list[JobOutcome | None] = [None] * len(specs)
        planned: list[tuple[int, JobSpec, Placement, str, dict[str, str], Attempt | None]] = []
        for index, spec in enumerate(specs):
            try:
                where = placement(spec, self.settings)
                require_params(spec)
                before = read_attempt(spec.job_dir)
                try:
                    script, resources = batch_script(spec, self.settings, where.directory)
                except ValueError as exc:
                    raise PermanentError(str(exc)) from exc
            except PermanentError as exc:
                outcomes[index] = JobOutcome(spec.job_id, error=exc)
                continue
            planned.append((index, spec, where, script, resources, before))
        with _synced(len(planned)):
            errors = stage_jobs(self.transport, self.settings,
                                [(spec, where, script) for _, spec, where, script, _, _ in planned])
            for (index, spec, where, _, resources, before), staged in zip(planned, errors,
                                                                           strict=True):
                error = staged
                if error is None:
                    try:
                        write_attempt(spec.job_dir,
                                      Attempt.begin(where.directory, resources, before))
                    except OSError as exc:
                        error = TransientError(
                            f"job {spec.job_id}: cannot write {ATTEMPT_FILE}: {exc}")
                outcomes[index] = (JobOutcome(spec.job_id, where.params_path) if error is None
                                   else JobOutcome(spec.job_id, error=error))
        return [outcome for outcome in outcomes if outcome is not None]

    def submit_job(self, spec: JobSpec, params_path: str) -> str:
        """Run ``sbatch --parsable efi-job.sbatch``; return the job id.

        A transient failure is retried (policy ``SCHEDULER``); since a lost reply may hide
        a job that was created, every retry first looks the job up by name and returns the
        id it finds instead of submitting again.

        Raises:
            PermanentError: Slurm refused the job (``Invalid partition name specified``…);
                the message is Slurm's.
            TransientError: Slurm could not be reached; nothing was submitted.
        """
        with _not_the_jobs_fault(spec.job_id):
            return self._submitter.submit_one(
                self.transport, self.settings, spec,
                submit=None if self.rest is None else self.rest.submit)

    def submit_jobs(self, jobs: Sequence[tuple[JobSpec, str]]) -> list[JobOutcome]:
        """Submit several prepared jobs with one remote call per ``chunk_size`` jobs.

        The call (`efi_connector_slurm.sbatch_batch`) runs ``sbatch --parsable`` for each
        job's script, ``submit_parallel`` at a time. Per job: an id is recorded in its attempt
        note (every note with one sync); Slurm's refusal (``Invalid partition…``) is a
        `PermanentError`; a transient failure sends the job down `submit_job`'s path, which
        looks it up by name first (a lost reply may have created it), and the scripts not
        yet started then are not run (not attempted); a job the call gave no answer for (it
        failed, timed out, printed no record) gets an attempted `TransientError`: it may have
        been submitted. During an `OUTAGE_HOLD` nothing is tried. A lone job goes the way of
        `submit_job`.
        """
        if self.rest is not None:  # no list form over REST: one request a job
            return super().submit_jobs(jobs)
        return self._submitter.submit_many(self.transport, self.settings,
                                           [spec for spec, _ in jobs])

    def retrieve_job_results(self, spec: JobSpec) -> Path:
        """Bring the job's directory back from the cluster side into ``spec.job_dir``.

        In place: nothing to copy. Otherwise ``remote_dir/<id>`` is copied over, without
        ``retrieve_exclude`` (``work/``), the cluster's ``params.json``, ``.efi/`` and
        ``.efi-slurm/``.

        Raises:
            TransientError: the copy failed or the cluster could not be reached.
            PermanentError: the job's directory does not exist (any more).
        """
        with _not_the_jobs_fault(spec.job_id):
            return retrieve(self.transport, self.settings, spec)

    # -- batched status --------------------------------------------------------------------

    def get_job_statuses(self, scheduler_ids: Iterable[str]) -> Mapping[str, SchedulerStatus]:
        """Return the status of every id: one sacct per ``chunk_size`` ids, one squeue for the rest.

        sacct answers for most jobs, even while slurmctld is down; squeue (and ``scontrol
        show job`` for a FAILED job's exit code) for the rest, or alone if sacct fails; a
        signal-9 kill with slurmstepd's memory message in the job's output is
        ``OUT_OF_MEMORY`` (see `efi_connector_slurm.statuses`). A job nobody reports is
        UNKNOWN, never finished or lost: the manager decides after its grace period.

        Raises:
            TransientError: neither sacct nor squeue could answer, or the cluster is
                unreachable.
        """
        if self.rest is not None:
            statuses = self.rest.read(scheduler_ids)
            self._controller_answers()
            return self._memory_kills(statuses)
        return self._statuses.read(self.transport, self.settings, scheduler_ids)

    def _memory_kills(self, statuses: dict[str, SchedulerStatus]) -> dict[str, SchedulerStatus]:
        """Over REST: a signal-9 kill whose output holds slurmstepd's memory message is OOM."""
        assert self.rest is not None  # noqa: S101 - REST only
        files = self.rest.statuses.memory_kill_files(statuses)
        if files:
            grep = self._run(memory_kill_grep_command(list(files)))
            for line in grep.stdout.splitlines():
                killed = files.get(line.strip())
                if killed is not None:
                    statuses[killed] = attrs.evolve(statuses[killed], reason="OUT_OF_MEMORY")
        return statuses

    # -- the optional methods -------------------------------------------------------------

    def cancel_jobs(self, scheduler_ids: Iterable[str]) -> None:
        """``scancel`` every id in one call (per ``chunk_size`` ids); ended or unknown ids are fine.

        Ids that are not Slurm job ids are logged and skipped.

        Raises:
            TransientError: slurmctld or the cluster could not be reached.
            PermanentError: scancel refused (permission denied…).
        """
        if self.rest is not None:
            self.rest.cancel(scheduler_ids)
            return
        ids: list[str] = []
        for sid in dict.fromkeys(str(s) for s in scheduler_ids):
            try:
                ids.append(validate_job_id(sid))
            except ValueError:
                log.warning("not cancelling %r: not a Slurm job id", sid)
        for chunk in chunks(ids, self.settings.chunk_size):
            result = self._run(scancel_command(chunk))
            if not result.ok:
                error = classify_sbatch_error(result.returncode, result.stderr)
                raise error(f"scancel of {', '.join(chunk)} failed on "
                            f"{self.transport.description}: {error_text(result)}")

    def find_job(self, spec: JobSpec) -> Sequence[str]:
        """Return the ids of the jobs named ``efi-<id>`` of this attempt, oldest first.

        Asks squeue (pending, held, running and just-ended jobs) and sacct (jobs slurmctld
        has forgotten; sacct may miss held jobs and briefly name a job ``allocation``).
        Submissions of earlier attempts of the same job (before an operator's retry), as
        recorded in ``.efi-slurm/attempt.json``, are left out.

        Raises:
            TransientError: squeue failed, or sacct failed while accounting is enabled: an
                answer from one alone could miss the job and cause a second submission.
        """
        name = spec.name
        if self.rest is not None:
            attempt = read_attempt(spec.job_dir)
            earlier = set(attempt.previous) if attempt is not None else set()
            return [sid for sid in self.rest.find(name) if sid not in earlier]
        user = self._user()
        queue = self._run(find_job_command(name, user=user))
        if not queue.ok:
            raise TransientError(
                f"squeue cannot look up {name} on {self.transport.description}: {error_text(queue)}"
            )
        self._controller_answers()
        accounting = self._run(find_job_sacct_command(name, sacct_since(self.settings),
                                                       user=user))
        text = queue.stdout
        if accounting.ok:
            text += "\n" + accounting.stdout
        elif "accounting storage is disabled" not in accounting.stderr.lower():
            raise TransientError(
                f"sacct cannot look up {name} on {self.transport.description}: "
                f"{error_text(accounting)}"
            )
        attempt = read_attempt(spec.job_dir)
        earlier = set(attempt.previous) if attempt is not None else set()
        return [sid for sid in parse_find_job(text) if sid not in earlier]

    def _user(self) -> str | None:
        """The user Slurm commands run as (``id -un``, asked once), or None if unknown."""
        if self._user_name is None:
            result = self._run(["id", "-un"])
            name = result.stdout.strip()
            if not result.ok or not name:
                log.warning("cannot tell the user on %s (%s): find_job looks at every user's "
                            "jobs", self.transport.description, error_text(result))
                return None
            self._user_name = name
        return self._user_name

    def render_job(self, spec: JobSpec) -> str:
        """Return the batch script `prepare_job_environment` would write (for dry runs)."""
        try:
            return render_batch_script(spec, self.settings)
        except ValueError as exc:
            return f"# cannot render the batch script of job {spec.job_id}: {exc}\n"

    def retry_resources(self, spec: JobSpec, failure: Mapping[str, Any]) -> Resources | None:
        """Ask for more time after ``TIMEOUT``, more memory after ``OUT_OF_MEMORY``.

        The failed run's time (or memory), `resources_for` ``spec``, is multiplied by
        ``retry_time_factor`` (``retry_memory_factor``), rounded up to a minute (a MiB), and
        capped at the profile's ``max_time`` (``max_memory``); a cap below the current value
        never lowers it. Other failures change nothing.

        Returns:
            The changed field (``Resources(time=14400)``), or None.
        """
        reason = failure.get("scheduler_reason")
        if not isinstance(reason, str):
            text = str(failure.get("reason") or "")
            reason = next((r for r in ("TIMEOUT", "OUT_OF_MEMORY") if text.startswith(r)), None)
        try:
            profile, used = job_resources(spec, self.settings)
        except ValueError as exc:
            log.warning("job %s: cannot compute the resources of a retry: %s", spec.job_id, exc)
            return None
        return retry_resources(
            profile,
            used,
            reason,
            time_factor=self.settings.retry_time_factor,
            memory_factor=self.settings.retry_memory_factor,
        )

    def resources_for(self, spec: JobSpec) -> Resources:
        """What ``spec`` asks for: ``spec.resources`` over this destination's profiles.

        ``queue`` is the partition; an unlimited time is no time (None).
        """
        try:
            return job_resources(spec, self.settings)[1]
        except ValueError:
            return spec.resources

    def check_site(self, executables: Sequence[str], paths: Sequence[str]) -> list[str]:
        """Check, where ``sbatch`` runs (after ``env_setup``), each executable and path.

        The batch script runs on a compute node; a site whose nodes see other files
        than its login node is not covered by this check.
        """
        return check_site(self.transport, self.settings, executables, paths)

    def check_command(self, argv: Sequence[str]) -> str | None:
        """Run ``argv`` where ``sbatch`` runs, as a job's environment has it (`sitecheck`)."""
        return check_command(self.transport, self.settings, argv)

    def output_files(self, scheduler_id: str) -> list[str]:
        """``slurm-<id>.err`` and ``slurm-<id>.out``: the batch script's error and output."""
        return [f"slurm-{scheduler_id}.err", f"slurm-{scheduler_id}.out"]

    def release_job(self, job_id: int) -> None:
        """Remove ``remote_dir/<job_id>`` on the cluster side (`retention.release`)."""
        release(self.transport, self.settings, [job_id])

    def release_jobs(self, job_ids: Sequence[int]) -> None:
        """Remove the jobs' ``remote_dir/<id>``, one ``rm`` per ``chunk_size`` jobs."""
        release(self.transport, self.settings, job_ids)

    def leftover_jobs(self) -> list[int]:
        """The ids of the job directories in ``remote_dir`` (`retention.leftovers`)."""
        return leftovers(self.transport, self.settings)

    def describe(self) -> str:
        """Which way in reaches Slurm (commands here, over SSH, or slurmrestd) and where files go.

        ``efi-job-manager check`` prints it (see `sitecheck.way_in`).
        """
        return way_in(self.settings, self.transport.description)

    def health_check(self) -> None:
        """Check that Slurm answers and the configuration fits the cluster.

        ``sinfo`` must list the configured partitions, ``sacct`` must run, and a
        ``remote_dir`` must be writable.

        Raises:
            TransientError: slurmctld or the cluster cannot be reached now.
            PermanentError: the commands are missing, a configured partition does not exist,
                or ``remote_dir`` is not writable.
        """
        if self.rest is not None:
            self.rest.health_check()
        health_check(self.transport, self.settings, scheduler=self.rest is None)

    def close(self) -> None:
        """Close the transport (the SSH master connection); the connector stays usable."""
        self.transport.close()
        if self.rest is not None:
            self.rest.close()
