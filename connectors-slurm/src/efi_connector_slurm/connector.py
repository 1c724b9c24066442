"""`SlurmConnector`: run EFI jobs on a Slurm cluster, from a login node or over SSH.

Every Slurm command and file copy goes through an `efi_job_manager.transport` transport
(`LocalTransport` on a login node, `SshTransport` with one ControlMaster connection
otherwise), as argument lists; commands are built by `efi_connector_slurm.commands` and their
output read by `efi_connector_slurm.parsing`.

The connector keeps one small note per job, ``<job_dir>/.efi-slurm/attempt.json``: the
resources of the current attempt, the scheduler ids it submitted and those of earlier attempts
(an operator's retry), so that `find_job` ignores the submissions of earlier attempts.
Everything else lives at the scheduler.
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import shlex
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs

from efi_connector_slurm.commands import (
    find_job_command,
    find_job_sacct_command,
    memory_kill_grep_command,
    sacct_command,
    sacct_version_command,
    sacct_workdir_command,
    sbatch_command,
    scancel_command,
    scontrol_show_job_command,
    sinfo_partitions_command,
    squeue_command,
    validate_job_id,
)
from efi_connector_slurm.config import SlurmSettings, parse_settings
from efi_connector_slurm.parsing import (
    accounting_unavailable,
    classify_sbatch_error,
    parse_find_job,
    parse_partitions,
    parse_sacct,
    parse_sbatch_output,
    parse_scontrol_show_job,
    parse_squeue,
    parse_workdirs,
    scontrol_fields,
)
from efi_connector_slurm.script import (
    SCRIPT_NAME,
    cluster_job_dir,
    render_batch_script,
    resolve_resources,
    retry_resources,
)
from efi_job_manager.toolkit import (
    SCHEDULER,
    BaseConnector,
    CommandFailed,
    CommandResult,
    HostKeyError,
    JobSpec,
    LocalTransport,
    PermanentError,
    SchedulerState,
    SchedulerStatus,
    SshTransport,
    TransientError,
    Transport,
    atomic_write_text,
    connector_folder,
    relocate_params,
    retry_call,
)

__all__ = ["ATTEMPT_FILE", "OUTAGE_HOLD", "SQUEUE_CHUNK", "SlurmConnector"]

log = logging.getLogger(__name__)

#: The connector's note in the manager's job directory (never copied to the cluster).
ATTEMPT_FILE = ".efi-slurm/attempt.json"
#: Where versions before the toolkit kept it (read when the new one is missing).
_LEGACY_ATTEMPT_FILE = ".efi/slurm-attempt.json"
#: Most ids on one squeue command line (one argument must stay under 128 KiB).
SQUEUE_CHUNK = 5000
#: Seconds after sbatch failed transiently (all retries used) during which further
#: submissions fail at once instead of waiting for the controller again (sbatch takes ≈9 s
#: to give up on an unreachable slurmctld, and the retries multiply that per job). A
#: successful squeue (status, find_job) ends the hold early.
OUTAGE_HOLD = 30.0
_PARAMS = "params.json"
_NOTES = ".efi"  # the manager's notes: never staged to the cluster nor brought back
_OWN = ".efi-slurm"  # this connector's own notes (`connector_folder`)
_MESSAGE = 500


def _tail(result: CommandResult) -> str:
    text = (result.stderr.strip() or result.stdout.strip()) or f"exit status {result.returncode}"
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE else "…" + text[-_MESSAGE:]


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
        raise TransientError(f"job {job_id} waits: {exc}") from exc


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


@attrs.frozen
class _Attempt:
    """The connector's note about a job's current attempt (``ATTEMPT_FILE``)."""

    cluster_dir: str = ""
    resources: Mapping[str, str] = attrs.field(factory=dict)
    submitted: tuple[str, ...] = ()
    previous: tuple[str, ...] = ()

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> _Attempt:
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
        data = {
            "cluster_dir": self.cluster_dir,
            "resources": dict(self.resources),
            "submitted": list(self.submitted),
            "previous": list(self.previous),
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


#: Prints ``x:<command>`` for each executable that cannot be run and ``p:<path>`` for
#: each path that does not exist, of its ``x:``/``p:`` arguments (never job data).
_CHECK_SITE_SCRIPT = """\
for item do
  value=${item#?:}
  case $item in
    x:*/*) { [ -f "$value" ] && [ -x "$value" ]; } || echo "$item" ;;
    x:*) command -v "$value" >/dev/null 2>&1 || echo "$item" ;;
    p:*) [ -e "$value" ] || echo "$item" ;;
  esac
done
"""


class SlurmConnector(BaseConnector):
    """Submit jobs with ``sbatch``, follow them with ``sacct``/``squeue``, cancel with ``scancel``.

    Built with the destination's ``settings`` table (see the README for every key); the
    constructor validates it and contacts nothing.

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
        self.transport: Transport = self._make_transport()
        self._warned_accounting = False
        self._user_name: str | None = None
        self._outage: tuple[float, str] | None = None

    def _make_transport(self) -> Transport:
        s = self.settings
        if s.transport == "local":
            env = {"SLURM_CONF": s.slurm_conf} if s.slurm_conf else None
            # sbatch exports its environment to the job: only an allow-list, never secrets
            return LocalTransport(env=env, passthrough=("SLURM_CONF", *s.env_passthrough),
                                  env_setup=s.env_setup)
        setup = s.env_setup
        if s.slurm_conf:
            export = f"export SLURM_CONF={shlex.quote(s.slurm_conf)}"
            setup = f"{export}\n{setup}" if setup else export
        assert s.host is not None  # parse_settings requires it for ssh  # noqa: S101
        return SshTransport(
            s.host,
            user=s.user,
            port=s.port,
            identity_file=s.identity_file,
            known_hosts=s.known_hosts,
            strict_host_key_checking=s.strict_host_key_checking,
            config_file=s.ssh_config,
            env_setup=setup,
        )

    # -- helpers ----------------------------------------------------------------------------

    def _run(self, argv: Sequence[str]) -> CommandResult:
        """Run a Slurm command; transport failures raise (`TransientError` for the way there)."""
        return self.transport.run(argv, timeout=self.settings.command_timeout)

    def _starttime(self) -> datetime:
        return datetime.now() - timedelta(seconds=self.settings.sacct_lookback)

    def _cluster_dir(self, spec: JobSpec) -> str:
        try:
            return cluster_job_dir(spec, self.settings)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc

    def _in_place(self, spec: JobSpec, directory: str) -> bool:
        return directory == str(spec.job_dir.absolute())

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s: %s", path, exc)
            return None
        return data if isinstance(data, dict) else None

    def _attempt(self, spec: JobSpec) -> _Attempt | None:
        data = (self._read_json(connector_folder(spec.job_dir, "slurm") / "attempt.json")
                or self._read_json(spec.job_dir / _LEGACY_ATTEMPT_FILE))
        return _Attempt.load(data) if data is not None else None

    def _save_attempt(self, spec: JobSpec, attempt: _Attempt) -> None:
        atomic_write_text(connector_folder(spec.job_dir, "slurm") / "attempt.json",
                          attempt.dump())

    # -- the four methods of the contract ----------------------------------------------------

    def prepare_job_environment(self, spec: JobSpec) -> str:
        """Stage the job where it runs and write its batch script ``efi-job.sbatch`` there.

        In place (local transport, no ``remote_dir``) only the script is written into
        ``spec.job_dir``. Otherwise ``remote_dir/<id>`` is made and gets ``params.json``
        (job-directory paths rewritten with `relocate_params`) and every staged input the
        parameters or the command refer to. Idempotent.

        Returns:
            The path of ``params.json`` on the cluster side.

        Raises:
            PermanentError: the job cannot run as specified (no ``params.json``, an empty
                command, an invalid resource request, a directory #SBATCH cannot carry).
            TransientError: the cluster side cannot be reached or written now.
        """
        with _not_the_jobs_fault(spec.job_id):
            return self._prepare(spec)

    def _prepare(self, spec: JobSpec) -> str:
        directory = self._cluster_dir(spec)
        local_params = spec.job_dir / _PARAMS
        if not local_params.is_file():
            raise PermanentError(f"job {spec.job_id}: {local_params} does not exist")
        attempt = self._attempt(spec)
        try:
            script = render_batch_script(spec, self.settings)
            _, resources = resolve_resources(spec, self.settings)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        in_place = self._in_place(spec, directory)
        try:
            if not in_place:
                self._stage(spec, directory, local_params)
            self.transport.write_text(posixpath.join(directory, SCRIPT_NAME), script,
                                      timeout=self.settings.command_timeout)
        except (CommandFailed, OSError) as exc:
            raise TransientError(
                f"job {spec.job_id}: cannot stage it in {directory}: {exc}"
            ) from exc
        previous = (attempt.previous + attempt.submitted) if attempt is not None else ()
        try:
            self._save_attempt(spec, _Attempt(directory, resources, (),
                                              tuple(dict.fromkeys(previous))))
        except OSError as exc:
            raise TransientError(f"job {spec.job_id}: cannot write {ATTEMPT_FILE}: {exc}") from exc
        return posixpath.join(directory, _PARAMS)

    def _stage(self, spec: JobSpec, directory: str, local_params: Path) -> None:
        job_dir = spec.job_dir.absolute()
        try:
            params = json.loads(local_params.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PermanentError(f"job {spec.job_id}: cannot read {local_params}: {exc}") from exc
        moved = relocate_params(params, job_dir, directory)
        self.transport.run(["mkdir", "-p", "--", directory],
                           timeout=self.settings.command_timeout, check=True)
        for name in self._staged_names(spec, params):
            self.transport.put(job_dir / name, posixpath.join(directory, name))
        self.transport.write_text(
            posixpath.join(directory, _PARAMS),
            json.dumps(moved, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            timeout=self.settings.command_timeout,
        )

    @staticmethod
    def _staged_names(spec: JobSpec, params: Mapping[str, Any]) -> list[str]:
        """Top-level entries of the job directory that the job needs.

        Its inputs, and whatever its parameters or command name inside the job directory
        (a taxonomy filter file, a parent job's files).
        """
        job_dir = spec.job_dir.absolute()
        prefix = str(job_dir).rstrip("/") + "/"
        names: dict[str, None] = {}
        for name in spec.input_files:
            names[Path(name).parts[0]] = None
        for text in [*_strings(params), *spec.command]:
            for candidate in (text, text.partition("=")[2]):
                if candidate.startswith(prefix):
                    rest = candidate[len(prefix):]
                    if rest:
                        names[rest.split("/", 1)[0]] = None
        skip = {_PARAMS, _NOTES, _OWN, SCRIPT_NAME, "", ".", ".."}
        return [name for name in names if name not in skip and (job_dir / name).exists()]

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
            return self._submit(spec)

    def _submit(self, spec: JobSpec) -> str:
        directory = self._cluster_dir(spec)
        script = posixpath.join(directory, SCRIPT_NAME)
        if self._outage is not None:
            since, error = self._outage
            if time.monotonic() - since < OUTAGE_HOLD:
                raise TransientError(f"not submitting job {spec.job_id}: sbatch failed "
                                     f"{time.monotonic() - since:.0f} s ago ({error})")
            self._outage = None
        calls = 0

        def once() -> str:
            nonlocal calls
            calls += 1
            if calls > 1:
                found = list(self.find_job(spec))
                if found:
                    log.warning("job %s: sbatch failed, but %s was created: using it", spec.job_id,
                                found[0])
                    if found[1:]:
                        self.cancel_jobs(found[1:])
                    return found[0]
            result = self._run(sbatch_command(script))
            if result.ok:
                return parse_sbatch_output(result.stdout)
            error = classify_sbatch_error(result.returncode, result.stderr)
            raise error(f"sbatch refused job {spec.job_id} ({spec.name}) on "
                        f"{self.transport.description}: {_tail(result)}")

        try:
            scheduler_id = retry_call(
                SCHEDULER, once, on=(TransientError,), name=f"sbatch {spec.name}"
            )
        except TransientError as exc:
            self._outage = (time.monotonic(), str(exc))
            raise
        attempt = self._attempt(spec) or _Attempt(cluster_dir=directory)
        try:
            self._save_attempt(spec, attrs.evolve(
                attempt, submitted=tuple(dict.fromkeys((*attempt.submitted, scheduler_id)))))
        except OSError as exc:
            log.warning("job %s: cannot record submission %s in %s: %s", spec.job_id,
                        scheduler_id, ATTEMPT_FILE, exc)
        log.info("job %s submitted to Slurm as %s", spec.job_id, scheduler_id)
        return scheduler_id

    def get_job_status(self, scheduler_id: str) -> SchedulerStatus:
        """Return the status of one job (see `get_job_statuses`)."""
        return self.get_job_statuses([scheduler_id])[scheduler_id]

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
            return self._retrieve(spec)

    def _retrieve(self, spec: JobSpec) -> Path:
        directory = self._cluster_dir(spec)
        if self._in_place(spec, directory):
            if not spec.job_dir.is_dir():
                raise PermanentError(f"job {spec.job_id}: {spec.job_dir} does not exist")
            return spec.job_dir
        exclude = [*self.settings.retrieve_exclude, f"/{_NOTES}/", f"/{_OWN}/", f"/{_PARAMS}"]
        try:
            self.transport.get(directory, spec.job_dir, exclude=exclude)
        except FileNotFoundError as exc:
            raise PermanentError(
                f"job {spec.job_id}: {directory} does not exist on {self.transport.description}"
            ) from exc
        except (CommandFailed, OSError) as exc:
            raise TransientError(
                f"job {spec.job_id}: cannot copy {directory} back: {exc}"
            ) from exc
        return spec.job_dir

    # -- batched status --------------------------------------------------------------------

    def get_job_statuses(self, scheduler_ids: Iterable[str]) -> Mapping[str, SchedulerStatus]:
        """Return the status of every id: one sacct per ``chunk_size`` ids, one squeue for the rest.

        - sacct (``-X``, since ``sacct_lookback``) answers for most jobs, even while
          slurmctld is down;
        - ids sacct does not show (a held job, accounting lagging) are asked of squeue in
          one call; a FAILED job seen only there is asked of ``scontrol show job`` for its
          exit code;
        - if sacct fails (accounting disabled, slurmdbd down) squeue and scontrol answer
          alone; if squeue fails too, `TransientError`;
        - a FAILED job killed by signal 9 whose ``slurm-<id>.out``/``.err`` holds
          slurmstepd's memory-limit message gets the reason ``OUT_OF_MEMORY``.

        A job nobody reports is UNKNOWN, never finished or lost: the manager decides after
        its grace period.

        Raises:
            TransientError: neither sacct nor squeue could answer, or the cluster is
                unreachable.
        """
        ids = list(dict.fromkeys(str(sid) for sid in scheduler_ids))
        result: dict[str, SchedulerStatus] = {}
        valid: list[str] = []
        for sid in ids:
            try:
                valid.append(validate_job_id(sid))
            except ValueError:
                result[sid] = SchedulerStatus.unknown(raw=sid, reason="not a Slurm job id")
        if not valid:
            return result
        start = self._starttime()
        found, sacct_error = self._sacct(valid, start)
        missing = [sid for sid in valid if sid not in found]
        queued: dict[str, SchedulerStatus] = {}
        squeue_error: str | None = None
        if missing:
            queued, squeue_error = self._squeue(missing)
        if sacct_error is not None and squeue_error is not None:
            raise TransientError(
                f"Slurm cannot report on {len(valid)} jobs on {self.transport.description}: "
                f"sacct: {sacct_error}; squeue: {squeue_error}"
            )
        for sid, status in list(queued.items()):
            if status.state is SchedulerState.FAILED:
                queued[sid] = self._scontrol(sid) or status
        found.update(queued)
        self._refine_memory_kills(found, start)
        for sid in valid:
            known = found.get(sid)
            if known is not None:
                result[sid] = known
                continue
            if squeue_error is not None:
                why = f"absent from sacct; squeue failed: {squeue_error}"
            elif sacct_error is not None:
                why = f"absent from squeue; sacct failed: {sacct_error}"
            else:
                why = "absent from sacct and squeue"
            result[sid] = SchedulerStatus.unknown(reason=why)
        return result

    def _sacct(
        self, ids: Sequence[str], start: datetime
    ) -> tuple[dict[str, SchedulerStatus], str | None]:
        found: dict[str, SchedulerStatus] = {}
        for chunk in _chunks(ids, self.settings.chunk_size):
            result = self._run(sacct_command(chunk, start))
            if not result.ok:
                error = _tail(result)
                if not self._warned_accounting or not accounting_unavailable(result.stderr):
                    log.warning("sacct failed on %s (answering from squeue/scontrol): %s",
                                self.transport.description, error)
                self._warned_accounting = True
                return found, error
            wanted = set(chunk)
            found.update({k: v for k, v in parse_sacct(result.stdout).items() if k in wanted})
        self._warned_accounting = False
        return found, None

    def _squeue(self, ids: Sequence[str]) -> tuple[dict[str, SchedulerStatus], str | None]:
        found: dict[str, SchedulerStatus] = {}
        for chunk in _chunks(ids, SQUEUE_CHUNK):
            result = self._run(squeue_command(chunk))
            if not result.ok:
                return found, _tail(result)
            self._outage = None  # slurmctld answers again
            wanted = set(chunk)
            found.update({k: v for k, v in parse_squeue(result.stdout).items() if k in wanted})
        return found, None

    def _scontrol(self, scheduler_id: str) -> SchedulerStatus | None:
        result = self._run(scontrol_show_job_command(scheduler_id))
        if not result.ok:
            return None
        return parse_scontrol_show_job(result.stdout).get(scheduler_id)

    def _refine_memory_kills(self, found: dict[str, SchedulerStatus], start: datetime) -> None:
        """Give FAILED-by-signal-9 jobs whose output shows a memory kill the reason OOM.

        The output files are named by ``scontrol show job`` (StdOut, StdErr) while slurmctld
        holds the job, else found in sacct's WorkDir (``slurm-<id>.out``/``.err``, as the
        batch script names them). sacct's record can lack WorkDir for a few seconds after the
        job ends (it is first written as ``allocation``), hence scontrol first.
        """
        candidates = [
            sid for sid, status in found.items()
            if status.state is SchedulerState.FAILED and status.signal == 9
            and status.reason != "OUT_OF_MEMORY"
        ]  # fmt: skip
        if not candidates:
            return
        files: dict[str, str] = {}
        ask: list[str] = []
        for sid in candidates:
            raw = found[sid].raw
            if not raw.startswith("JobId="):
                shown = self._run(scontrol_show_job_command(sid))
                raw = shown.stdout.strip() if shown.ok else ""
            fields = scontrol_fields(raw) if raw.startswith("JobId=") else {}
            workdir = fields.get("WorkDir", "")
            names = [fields.get("StdOut", ""), fields.get("StdErr", "")]
            if workdir:
                names += [posixpath.join(workdir, f"slurm-{sid}.{ext}") for ext in ("out", "err")]
            names = [name for name in names if name.startswith("/")]
            if names:
                files.update(dict.fromkeys(names, sid))
            else:
                ask.append(sid)
        for chunk in _chunks(ask, self.settings.chunk_size):
            result = self._run(sacct_workdir_command(chunk, start))
            if not result.ok:
                continue
            for sid, workdir in parse_workdirs(result.stdout).items():
                if sid in chunk and workdir.startswith("/"):
                    for ext in ("out", "err"):
                        files[posixpath.join(workdir, f"slurm-{sid}.{ext}")] = sid
        if not files:
            log.info("jobs %s were killed by signal 9; their output files are unknown",
                     ", ".join(candidates))
            return
        grep = self._run(memory_kill_grep_command(list(files)))
        for line in grep.stdout.splitlines():
            killed = files.get(line.strip())
            if killed is not None:
                found[killed] = attrs.evolve(found[killed], reason="OUT_OF_MEMORY")

    # -- the optional methods -------------------------------------------------------------

    def cancel_jobs(self, scheduler_ids: Iterable[str]) -> None:
        """``scancel`` every id in one call (per ``chunk_size`` ids); ended or unknown ids are fine.

        Ids that are not Slurm job ids are logged and skipped.

        Raises:
            TransientError: slurmctld or the cluster could not be reached.
            PermanentError: scancel refused (permission denied…).
        """
        ids: list[str] = []
        for sid in dict.fromkeys(str(s) for s in scheduler_ids):
            try:
                ids.append(validate_job_id(sid))
            except ValueError:
                log.warning("not cancelling %r: not a Slurm job id", sid)
        for chunk in _chunks(ids, self.settings.chunk_size):
            result = self._run(scancel_command(chunk))
            if not result.ok:
                error = classify_sbatch_error(result.returncode, result.stderr)
                raise error(f"scancel of {', '.join(chunk)} failed on "
                            f"{self.transport.description}: {_tail(result)}")

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
        user = self._user()
        queue = self._run(find_job_command(name, user=user))
        if not queue.ok:
            raise TransientError(
                f"squeue cannot look up {name} on {self.transport.description}: {_tail(queue)}"
            )
        self._outage = None  # slurmctld answers again
        accounting = self._run(find_job_sacct_command(name, self._starttime(), user=user))
        text = queue.stdout
        if accounting.ok:
            text += "\n" + accounting.stdout
        elif "accounting storage is disabled" not in accounting.stderr.lower():
            raise TransientError(
                f"sacct cannot look up {name} on {self.transport.description}: "
                f"{_tail(accounting)}"
            )
        attempt = self._attempt(spec)
        earlier = set(attempt.previous) if attempt is not None else set()
        return [sid for sid in parse_find_job(text) if sid not in earlier]

    def _user(self) -> str | None:
        """The user Slurm commands run as (``id -un``, asked once), or None if unknown."""
        if self._user_name is None:
            result = self._run(["id", "-un"])
            name = result.stdout.strip()
            if not result.ok or not name:
                log.warning("cannot tell the user on %s (%s): find_job looks at every user's "
                            "jobs", self.transport.description, _tail(result))
                return None
            self._user_name = name
        return self._user_name

    def render_job(self, spec: JobSpec) -> str:
        """Return the batch script `prepare_job_environment` would write (for dry runs)."""
        try:
            return render_batch_script(spec, self.settings)
        except ValueError as exc:
            return f"# cannot render the batch script of job {spec.job_id}: {exc}\n"

    def retry_resources(
        self, spec: JobSpec, failure: Mapping[str, Any]
    ) -> Mapping[str, str] | None:
        """Ask for more time after ``TIMEOUT``, more memory after ``OUT_OF_MEMORY``.

        The failed run's time (or memory), from its profile and ``spec.resources``, is
        multiplied by ``retry_time_factor`` (``retry_memory_factor``) and capped at the
        profile's ``max_time`` (``max_memory``); a cap below the current value never lowers
        it. Other failures change nothing.

        Returns:
            The changed resources (``{"time": "04:00:00"}``), or None.
        """
        reason = failure.get("scheduler_reason")
        if not isinstance(reason, str):
            text = str(failure.get("reason") or "")
            reason = next((r for r in ("TIMEOUT", "OUT_OF_MEMORY") if text.startswith(r)), None)
        try:
            profile, current = resolve_resources(spec, self.settings)
        except ValueError as exc:
            log.warning("job %s: cannot compute the resources of a retry: %s", spec.job_id, exc)
            return None
        scaled = retry_resources(
            profile,
            current,
            reason,
            time_factor=self.settings.retry_time_factor,
            memory_factor=self.settings.retry_memory_factor,
        )
        changed = {k: v for k, v in scaled.items() if current.get(k) != v}
        return changed or None

    def check_site(self, executables: Sequence[str], paths: Sequence[str]) -> list[str]:
        """Check, where ``sbatch`` runs (after ``env_setup``), each executable and path.

        The batch script runs on a compute node; a site whose nodes see other files
        than its login node is not covered by this check.
        """
        where = self.transport.description
        items = [f"x:{command}" for command in executables] + [f"p:{path}" for path in paths]
        if not items:
            return []
        result = self._run(["sh", "-c", _CHECK_SITE_SCRIPT, "sh", *items])
        if not result.ok:
            raise TransientError(f"checking paths on {where} failed: {_tail(result)}")
        problems = []
        for line in result.stdout.splitlines():
            kind, _, value = line.partition(":")
            if kind == "x":
                problems.append(f"{value}: not an executable on {where} (after env_setup)")
            elif kind == "p":
                problems.append(f"{value}: does not exist on {where}")
        return problems

    def health_check(self) -> None:
        """Check that Slurm answers and the configuration fits the cluster.

        ``sinfo`` must list the configured partitions, ``sacct`` must run, and a
        ``remote_dir`` must be writable.

        Raises:
            TransientError: slurmctld or the cluster cannot be reached now.
            PermanentError: the commands are missing, a configured partition does not exist,
                or ``remote_dir`` is not writable.
        """
        where = self.transport.description
        result = self._run(sinfo_partitions_command())
        if result.returncode in (126, 127):
            raise PermanentError(f"sinfo cannot be run on {where} ({_tail(result)}): install the "
                                 "Slurm client or set env_setup (e.g. 'module load slurm')")
        if not result.ok:
            error = classify_sbatch_error(result.returncode, result.stderr)
            raise error(f"sinfo failed on {where}: {_tail(result)}")
        available = parse_partitions(result.stdout)
        wanted = {self.settings.defaults.partition,
                  *(p.partition for p in self.settings.profiles.values())}
        names = {part for value in wanted if value for part in value.split(",")}
        unknown = sorted(names - set(available))
        if unknown:
            raise PermanentError(f"partition(s) {', '.join(unknown)} do not exist on {where} "
                                 f"(it has: {', '.join(available) or 'none'})")
        version = self._run(sacct_version_command())
        if not version.ok:
            raise PermanentError(f"sacct cannot be run on {where}: {_tail(version)}")
        if self.settings.remote_dir is not None:
            directory = self.settings.remote_dir
            made = self._run(["mkdir", "-p", "--", directory])
            writable = self._run(["test", "-w", directory]) if made.ok else made
            if not writable.ok:
                raise PermanentError(f"remote_dir {directory} cannot be made or written on "
                                     f"{where}: {_tail(writable)}")

    def close(self) -> None:
        """Close the transport (the SSH master connection); the connector stays usable."""
        self.transport.close()
