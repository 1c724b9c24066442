"""`LocalConnector`: run jobs as detached process groups on this host.

Each submission gets a digit id from a counter in the state directory and a small JSON
record there (written *before* the process starts, so a crash right after starting it
can still be found by name). The job's command runs under `efi_connector_local.wrapper`,
which writes ``exit.json`` when the command ends; together with the pid and start time
of the wrapper, that is all a new connector instance (a restarted manager) needs to
tell how a job is doing (`efi_connector_local.status`). The settings are checked in
`efi_connector_local.settings`.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs

from efi_connector_local.files import EXIT_FILE, WRAPPER_FILE, run_dir_for, utc_now
from efi_connector_local.processes import ProcessId, group_alive
from efi_connector_local.records import JobRecord, StateStore, is_scheduler_id
from efi_connector_local.settings import default_state_dir, parse_config
from efi_connector_local.status import START_GRACE, process_of, record_status
from efi_job_manager.toolkit import (
    BaseConnector,
    JobSpec,
    PermanentError,
    SchedulerStatus,
    TransientError,
    pipeline_environment,
)

__all__ = ["LocalConnector", "default_state_dir"]

_CHECK_TIMEOUT = 60.0  # seconds `check` waits for the pipeline's program to print its version

log = logging.getLogger(__name__)

#: How long `submit_job` waits for the wrapper to report that it has detached.
LAUNCH_TIMEOUT = 60.0
#: How long `cancel_jobs` waits for a group to vanish after SIGKILL.
KILL_WAIT = 5.0
_POLL = 0.05


class LocalConnector(BaseConnector):
    """Run each job's command as a detached process group on this host.

    Its configuration (every key optional) is `efi_connector_local.settings.LocalSettings`
    (the reference: ``docs/settings.md``). Jobs never get the manager's whole environment
    (its secrets), only `efi_job_manager.connector.PIPELINE_PASSTHROUGH`, the
    ``env_passthrough`` names or patterns and ``env``.

    Scheduler ids are digit strings, increasing across every process that shares the
    state directory. Status survives a restart of the manager: a new instance with the
    same ``state_dir`` reports on jobs started by an earlier one.

    Raises:
        ValueError: a key is unknown or a value has the wrong type; the message names
            the key, the value and what was expected.
    """

    display_name: ClassVar[str] = "local"

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        """Validate ``config``; nothing is created on disk until it is needed."""
        super().__init__(config)
        settings = parse_config(self.config)
        #: Where the connector keeps its records.
        self.state_dir: Path = settings.state_dir
        #: Seconds between SIGTERM and SIGKILL when cancelling.
        self.kill_grace: float = settings.kill_grace
        #: The interpreter that runs the wrapper.
        self.python: str = settings.python
        #: Extra environment variables for the jobs.
        self.env: Mapping[str, str] = settings.env
        #: More of the manager's variables the jobs get.
        self.env_passthrough: tuple[str, ...] = settings.env_passthrough
        self._store = StateStore(self.state_dir)

    # -- the four methods of the contract --------------------------------------------------

    def prepare_job_environment(self, spec: JobSpec) -> str:
        """Return the path of ``<job_dir>/params.json``; the job directory is already local.

        Idempotent: nothing is copied or changed.

        Raises:
            PermanentError: ``params.json`` is not in the job's directory.
        """
        params = spec.job_dir / "params.json"
        if not params.is_file():
            raise PermanentError(f"job {spec.job_id}: {params} does not exist")
        return str(params)

    def submit_job(self, spec: JobSpec, params_path: str) -> str:
        """Start ``spec.command`` in ``spec.job_dir`` under the wrapper, detached; return its id.

        The record (with ``spec.name``) is written before the process starts. The
        command's standard output and error go to ``stdout.log`` and ``stderr.log`` in
        the job's directory. A command that cannot be executed is not an error here:
        its status becomes FAILED (exit code 127 or 126) with the reason.

        Raises:
            PermanentError: the job's directory is missing or the command is empty.
            TransientError: the wrapper could not be started (the interpreter is
                missing or broken, the disk is full…); the job's command did not run.
        """
        job_dir = spec.job_dir.absolute()
        if not job_dir.is_dir():
            raise PermanentError(f"job {spec.job_id}: the job directory {job_dir} does not exist")
        command = list(spec.command)
        if not command or not all(isinstance(arg, str) for arg in command):
            raise PermanentError(f"job {spec.job_id}: invalid command {spec.command!r}")

        try:
            scheduler_id = self._store.allocate_id()
            run_dir = run_dir_for(job_dir, scheduler_id)
            record = JobRecord(
                scheduler_id=scheduler_id,
                name=spec.name,
                job_dir=job_dir,
                run_dir=run_dir,
                submitted=utc_now(),
            )
            self._store.write(record)
            self._store.add_name(spec.name, scheduler_id)
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransientError(f"job {spec.job_id}: cannot record the submission: {exc}") from exc

        argv = [
            self.python, "-m", "efi_connector_local.wrapper",
            "--job-dir", str(job_dir),
            "--run-dir", str(run_dir),
            "--cancel-marker", str(self._store.cancel_marker(scheduler_id)),
            "--detach",
            "--", *command,
        ]  # fmt: skip
        try:
            # The wrapper's own working directory is its run folder, so that `-m` never
            # imports a module from the job's (user-provided) files; the command itself
            # runs in the job's directory.
            launcher = subprocess.Popen(
                argv,
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=pipeline_environment(self.env, self.env_passthrough),
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            self._launch_failed(record, f"cannot run {self.python!r}: {exc}")
            raise TransientError(f"job {spec.job_id}: cannot run {self.python!r}: {exc}") from exc
        try:
            out, err = launcher.communicate(timeout=LAUNCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.communicate()
            message = f"the wrapper did not start within {LAUNCH_TIMEOUT:g} s"
            self._launch_failed(record, message)
            raise TransientError(f"job {spec.job_id}: {message}") from None

        process = _parse_launch(out) if launcher.returncode == 0 else None
        if process is None:
            text = err.decode(errors="replace").strip()[-2000:]
            message = f"the wrapper failed to start (exit status {launcher.returncode}): {text}"
            self._launch_failed(record, message)
            raise TransientError(f"job {spec.job_id}: {message}")
        try:
            self._store.write(attrs.evolve(record, process=process, started=utc_now()))
        except OSError:
            # The wrapper also wrote its pid to its run folder: the status is still known.
            log.warning("job %s: could not record pid %d", scheduler_id, process.pid)
        log.info("job %s started as local job %s (pid %d)", spec.job_id, scheduler_id, process.pid)
        return scheduler_id

    def retrieve_job_results(self, spec: JobSpec) -> Path:
        """Return ``spec.job_dir``: the job ran there, so its results are already in place.

        Raises:
            PermanentError: the job's directory does not exist.
        """
        if not spec.job_dir.is_dir():
            raise PermanentError(f"job {spec.job_id}: the job directory {spec.job_dir} is gone")
        return spec.job_dir

    # -- the optional methods --------------------------------------------------------------

    def get_job_statuses(self, scheduler_ids: Iterable[str]) -> Mapping[str, SchedulerStatus]:
        """Return the status of every id asked for, each read from its record (see `_status_of`)."""
        return {sid: self._status_of(sid) for sid in scheduler_ids}

    def _status_of(self, scheduler_id: str) -> SchedulerStatus:
        """The status of one submission.

        - ``exit.json`` present: COMPLETED (exit code 0) or FAILED (reason ``EXIT_CODE n``
          or ``SIGNAL n``), CANCELLED if a cancellation was asked for and the command did
          not end cleanly on its own;
        - the wrapper alive (same pid and start time, not a zombie): RUNNING;
        - the wrapper gone without ``exit.json``: CANCELLED if cancelled, otherwise FAILED
          with reason ``LOST: …`` (this host's process table is positive evidence);
        - no wrapper yet: QUEUED (``STARTING``) for up to a minute after submission,
          then FAILED (``LOST: …``);
        - an id this connector never handed out: UNKNOWN.
        """
        if not is_scheduler_id(scheduler_id):
            return SchedulerStatus.unknown(raw=f"not a local job id: {scheduler_id!r}")
        record = self._store.read(scheduler_id)
        if record is None:
            return SchedulerStatus.unknown(
                raw=f"no record of local job {scheduler_id} in {self.state_dir}"
            )
        return record_status(record, self._store)

    def cancel_jobs(self, scheduler_ids: Iterable[str]) -> None:
        """Cancel jobs: SIGTERM each job's process group, SIGKILL what is left after ``kill_grace``.

        A cancellation marker is written first, so a wrapper that has not started its
        command yet never starts it. Ids that are unknown or whose job has already
        ended are a success and change nothing. Returns once every signalled group is
        gone, or after ``kill_grace`` plus a few seconds at most.

        Raises:
            TransientError: the marker could not be written.
        """
        signalled: list[ProcessId] = []
        for sid in scheduler_ids:
            record = self._store.read(sid) if is_scheduler_id(sid) else None
            if record is None or (record.run_dir / EXIT_FILE).exists():
                continue
            try:
                self._store.mark_cancelled(sid, utc_now())
            except OSError as exc:
                raise TransientError(f"cannot record the cancellation of {sid}: {exc}") from exc
            process, _ = process_of(record)
            if process is not None and _signal_group(process, signal.SIGTERM):
                log.info("local job %s: sent SIGTERM to process group %d", sid, process.pid)
                signalled.append(process)

        left = _wait_gone(signalled, self.kill_grace)
        for process in left:
            if _signal_group(process, signal.SIGKILL):
                log.info("process group %d: still there, sent SIGKILL", process.pid)
        left = _wait_gone(left, KILL_WAIT)
        for process in left:
            log.warning("process group %d: still there after SIGKILL", process.pid)

    def find_job(self, spec: JobSpec) -> Sequence[str]:
        """Return the ids of every submission named ``spec.name``, oldest first.

        Reads one small index folder, so the cost does not grow with the number of jobs
        ever run. Submissions that certainly never started (the wrapper could not be
        launched, or nothing started within a minute of the record being written) are
        left out, so the manager submits the job again.
        """
        found = []
        for sid in self._store.ids_for_name(spec.name):
            record = self._store.read(sid)
            if record is None or record.name != spec.name or record.launch_error is not None:
                continue
            if self._never_started(record):
                continue
            found.append(sid)
        return found

    def check_site(self, executables: Sequence[str], paths: Sequence[str]) -> list[str]:
        """Check on this machine, with the jobs' ``PATH``, each executable and path."""
        search = pipeline_environment(self.env, self.env_passthrough).get("PATH", os.defpath)
        problems = []
        for command in executables:
            if os.sep in command:
                if not (os.path.isfile(command) and os.access(command, os.X_OK)):
                    problems.append(f"{command}: not an executable file")
            elif shutil.which(command, path=search) is None:
                problems.append(f"{command}: not found on the jobs' PATH ({search})")
        problems += [f"{path}: does not exist" for path in paths if not os.path.exists(path)]
        return problems

    def check_command(self, argv: Sequence[str]) -> str | None:
        """Run ``argv`` here with the jobs' environment; None if it exited 0."""
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                                  timeout=_CHECK_TIMEOUT,
                                  env=pipeline_environment(self.env, self.env_passthrough))
        except subprocess.TimeoutExpired:
            return f"{shlex.join(argv)}: no answer within {_CHECK_TIMEOUT:.0f} s"
        except OSError as exc:
            return f"{shlex.join(argv)}: cannot be run ({exc.strerror or exc})"
        if done.returncode == 0:
            return None
        said = " ".join((done.stderr or done.stdout).split())[-300:]
        return f"{shlex.join(argv)} exited {done.returncode}{': ' + said if said else ''}"

    def output_files(self, scheduler_id: str) -> list[str]:
        """``stderr.log`` and ``stdout.log``, which the wrapper writes in the job directory."""
        return ["stderr.log", "stdout.log"]

    def release_job(self, job_id: int) -> None:
        """Remove this connector's records of the ended job ``job_id``.

        Its files in the job directory (``stdout.log``, ``.efi-local/``) are the manager's
        and stay.
        """
        self._store.remove_job(job_id)

    def leftover_jobs(self) -> list[int]:
        """The EFI job ids this connector still holds records of."""
        return self._store.job_ids()

    def describe(self) -> str:
        """Jobs run on this machine; the connector's records are in ``state_dir``."""
        return f"jobs run on this machine, in their job directories; records in {self.state_dir}"

    def health_check(self) -> None:
        """Check that the state directory is writable and the interpreter runs the wrapper.

        Raises:
            PermanentError: either check failed; the message says which and why.
        """
        try:
            self._store.ensure()
            with tempfile.NamedTemporaryFile(dir=self.state_dir, prefix=".health-"):
                pass
        except OSError as exc:
            raise PermanentError(f"state_dir {self.state_dir} is not writable: {exc}") from exc
        try:
            result = subprocess.run(
                [self.python, "-c", "import efi_connector_local.wrapper"],
                cwd=self.state_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=pipeline_environment(self.env, self.env_passthrough),
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PermanentError(f"python {self.python!r} cannot be run: {exc}") from exc
        if result.returncode != 0:
            text = result.stderr.decode(errors="replace").strip()[-2000:]
            raise PermanentError(
                f"python {self.python!r} cannot import efi_connector_local.wrapper: {text}"
            )

    def close(self) -> None:
        """Do nothing: the connector holds no connection. May be called more than once."""

    # -- internals -------------------------------------------------------------------------

    def _launch_failed(self, record: JobRecord, message: str) -> None:
        """Mark a submission whose wrapper could not be started, so it is never run or found."""
        log.error("local job %s: %s", record.scheduler_id, message)
        try:
            self._store.mark_cancelled(record.scheduler_id, utc_now())
            self._store.write(attrs.evolve(record, launch_error=message))
        except OSError as exc:
            log.error("local job %s: cannot record the failure: %s", record.scheduler_id, exc)
            return
        process, _ = process_of(record)
        if process is not None:  # it did start after all: stop it
            self.cancel_jobs([record.scheduler_id])

    def _never_started(self, record: JobRecord) -> bool:
        """Whether no wrapper ever started for ``record`` and none ever will."""
        if record.launch_error is not None:
            return True
        if record.process is not None:
            return False
        if (utc_now() - record.submitted).total_seconds() < START_GRACE:
            return False
        if (record.run_dir / WRAPPER_FILE).exists():
            return False
        # Make sure a wrapper that starts only now does not run the command, then look again.
        try:
            self._store.mark_cancelled(record.scheduler_id, utc_now())
        except OSError:
            return False
        return not (record.run_dir / WRAPPER_FILE).exists()


def _parse_launch(out: bytes) -> ProcessId | None:
    """Return the ``<pid> <start ticks>`` line printed by a detaching wrapper."""
    parts = out.decode("ascii", errors="replace").split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return ProcessId(int(parts[0]), int(parts[1]))


def _signal_group(process: ProcessId, signum: signal.Signals) -> bool:
    """Send ``signum`` to the job's process group if it is still the job's; return whether sent."""
    if not group_alive(process):
        return False
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(processes: list[ProcessId], timeout: float) -> list[ProcessId]:
    """Wait up to ``timeout`` seconds for the groups to vanish; return those still there."""
    deadline = time.monotonic() + timeout
    left = [p for p in processes if group_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(_POLL)
        left = [p for p in left if group_alive(p)]
    return left
