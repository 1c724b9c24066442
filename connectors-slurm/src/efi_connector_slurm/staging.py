"""What goes where on the cluster side, and what comes back.

A job runs in its `Placement`: ``remote_dir/<id>``, or the manager's own job directory when
there is no ``remote_dir`` (in place: nothing is copied either way). `stage_jobs` stages a
batch of jobs: in place it writes each batch script; otherwise it sends per job
``params.json`` (job-directory paths rewritten by `relocate_params`), the batch script and
every input the job needs with one transfer per directory on the cluster side: over SSH an
in-memory archive unpacked by one command (`efi_connector_slurm.archive`) when it is small,
else one local staging tree (the inputs hard-linked) copied with `Transport.put`.
`retrieve` copies a job's directory back when it has ended, without what stays on the
cluster (``retrieve_exclude``) and without the cluster's ``params.json`` and notes.

Every copy goes through the connector's transport; the functions take it on each call.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from efi_connector_slurm.archive import Archive, TooBig, unpack_command, unpack_timeout
from efi_connector_slurm.config import SlurmSettings
from efi_connector_slurm.parsing import error_text, host_key_wait
from efi_connector_slurm.script import SCRIPT_NAME, cluster_job_dir
from efi_job_manager.toolkit import (
    CommandFailed,
    ConnectorError,
    HostKeyError,
    JobSpec,
    PermanentError,
    TransientError,
    Transport,
    relocate_params,
)

__all__ = [
    "PARAMS_NAME",
    "Placement",
    "placement",
    "require_params",
    "retrieve",
    "stage_jobs",
    "staged_names",
]

#: The parameters file, in the manager's job directory and in the job's directory where it runs.
PARAMS_NAME = "params.json"
_NOTES = ".efi"  # the manager's notes: never staged to the cluster nor brought back
_OWN = ".efi-slurm"  # this connector's own notes (`connector_folder`)
_STAGING_PREFIX = ".efi-slurm-staging-"  # the local staging tree, next to the job directories


@attrs.frozen
class Placement:
    """Where a job runs on the cluster side.

    Attributes:
        directory: The job's directory there (`cluster_job_dir`).
        job_dir: The manager's job directory (``spec.job_dir``).
    """

    directory: str
    job_dir: Path

    @property
    def in_place(self) -> bool:
        """Whether the job runs in the manager's own job directory (nothing to copy)."""
        return self.directory == str(self.job_dir.absolute())

    @property
    def params_path(self) -> str:
        """The path of ``params.json`` as the job sees it."""
        return posixpath.join(self.directory, PARAMS_NAME)

    @property
    def script_path(self) -> str:
        """The path of the batch script, as ``sbatch`` is given it."""
        return posixpath.join(self.directory, SCRIPT_NAME)


def placement(spec: JobSpec, settings: SlurmSettings) -> Placement:
    """Where ``spec`` runs: ``remote_dir/<id>``, else in place in ``spec.job_dir``.

    Raises:
        PermanentError: the directory cannot be written on an ``#SBATCH`` line.
    """
    try:
        directory = cluster_job_dir(spec, settings)
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc
    return Placement(directory, spec.job_dir)


def require_params(spec: JobSpec) -> None:
    """Check that the manager's ``params.json`` is in ``spec.job_dir``.

    Raises:
        PermanentError: it is not (the job cannot run).
    """
    local_params = spec.job_dir / PARAMS_NAME
    if not local_params.is_file():
        raise PermanentError(f"job {spec.job_id}: {local_params} does not exist")


def stage_jobs(transport: Transport, settings: SlurmSettings,
               jobs: Sequence[tuple[JobSpec, Placement, str]]) -> list[ConnectorError | None]:
    """Put each job (spec, placement, batch script) in its place; idempotent.

    In place only the script is written. The other jobs get, in their directory on the
    cluster side, ``params.json`` (job-directory paths rewritten), the batch script and the
    inputs (`staged_names`; links are never followed, they are sent as links), with one
    transfer per directory there that holds job directories (usually ``remote_dir`` alone):

    - over SSH, when the transfer's payload is at most `archive.ARCHIVE_LIMIT`, one
      command (`archive.UNPACK_SCRIPT`) unpacks a tar archive built in memory and sent on
      its standard input; an input that is not a file, a directory or a link fails its job;
    - otherwise one local tree, in a temporary directory next to the job directories
      (removed afterwards; inputs hard-linked, copied where a link cannot be made), goes
      with one `Transport.put`.

    Returns:
        Per job, in order: None when staged, else its error: a `PermanentError` when its
        ``params.json`` cannot be read, a `TransientError` when it could not be staged now
        (a failed transfer: every job of that transfer).
    """
    errors: list[ConnectorError | None] = [None] * len(jobs)
    remote: list[int] = []
    for index, (spec, where, script) in enumerate(jobs):
        if not where.in_place:
            remote.append(index)
            continue
        try:
            transport.write_text(where.script_path, script, timeout=settings.command_timeout)
        except HostKeyError as exc:
            errors[index] = host_key_wait(spec.job_id, exc)
        except (ConnectorError, OSError) as exc:
            errors[index] = TransientError(
                f"job {spec.job_id}: cannot write its batch script {where.script_path}: {exc}")
    if remote:
        _stage_remote(transport, settings, [jobs[i] for i in remote], errors, remote)
    return errors


def _stage_remote(transport: Transport, settings: SlurmSettings,
                  jobs: Sequence[tuple[JobSpec, Placement, str]],
                  errors: list[ConnectorError | None], positions: Sequence[int]) -> None:
    """Stage ``jobs`` (not in place): over SSH each small transfer as an archive, else by tree.

    The error of ``jobs[k]`` goes to ``errors[positions[k]]``.
    """
    by_tree: Sequence[int] = range(len(jobs))
    if settings.transport == "ssh":
        groups: dict[str, list[int]] = {}
        for k, (_, where, _) in enumerate(jobs):
            groups.setdefault(posixpath.dirname(where.directory), []).append(k)
        by_tree = [k for parent, group in groups.items()
                   if not _stage_archive(transport, settings, parent,
                                         [(positions[k], jobs[k]) for k in group], errors)
                   for k in group]
    if by_tree:
        _stage_tree(transport, [jobs[k] for k in by_tree], errors,
                    [positions[k] for k in by_tree])


def _stage_archive(transport: Transport, settings: SlurmSettings, parent: str,
                   members: Sequence[tuple[int, tuple[JobSpec, Placement, str]]],
                   errors: list[ConnectorError | None]) -> bool:
    """Send ``members`` (their directories all in ``parent``) as one archive, one command.

    Returns:
        False, having done nothing, when their payload passes `archive.ARCHIVE_LIMIT`.
    """
    archive = Archive()
    found: dict[int, ConnectorError] = {}
    sent: list[tuple[int, tuple[JobSpec, Placement, str]]] = []
    for position, (spec, where, script) in members:
        name = posixpath.basename(where.directory)
        if name in archive:
            found[position] = TransientError(
                f"job {spec.job_id}: given twice to one prepare_jobs call")
            continue
        try:
            params, text = _params_text(spec, where)
        except PermanentError as exc:
            found[position] = exc
            continue
        try:
            archive.add_job(name, {PARAMS_NAME: text, SCRIPT_NAME: script},
                            spec.job_dir.absolute(), staged_names(spec, params))
        except TooBig:
            return False
        except (PermanentError, ValueError) as exc:  # ValueError: text that UTF-8 cannot carry
            found[position] = PermanentError(f"job {spec.job_id}: {exc}")
        except OSError as exc:
            found[position] = TransientError(
                f"job {spec.job_id}: cannot stage it for {where.directory}: {exc}")
        else:
            sent.append((position, (spec, where, script)))
    for position, error in found.items():
        errors[position] = error
    if sent:
        text = archive.encoded()
        timeout = unpack_timeout(settings.command_timeout, text)
        try:
            result = transport.run(unpack_command(parent), input=text, timeout=timeout)
        except (ConnectorError, OSError, ValueError) as exc:
            _failed(sent, exc, errors)
        else:
            if result.returncode != 0:
                _failed(sent, error_text(result), errors)
    return True


def _failed(members: Sequence[tuple[int, tuple[JobSpec, Placement, str]]],
            reason: ConnectorError | OSError | ValueError | str,
            errors: list[ConnectorError | None]) -> None:
    """A transfer failed: every job it carried waits (a changed host key is not their fault)."""
    for position, (spec, where, _) in members:
        errors[position] = (
            host_key_wait(spec.job_id, reason) if isinstance(reason, HostKeyError)
            else TransientError(f"job {spec.job_id}: cannot stage it in {where.directory}: "
                                f"{reason}"))


def _stage_tree(transport: Transport, jobs: Sequence[tuple[JobSpec, Placement, str]],
                errors: list[ConnectorError | None], positions: Sequence[int]) -> None:
    """Stage ``jobs`` (not in place) with one transfer per parent directory on the cluster.

    The error of ``jobs[k]`` goes to ``errors[positions[k]]``.
    """
    beside = jobs[0][0].job_dir.absolute().parent
    try:
        staging = tempfile.TemporaryDirectory(prefix=_STAGING_PREFIX, dir=beside,
                                              ignore_cleanup_errors=True)
    except OSError as exc:
        for k, (spec, _, _) in enumerate(jobs):
            errors[positions[k]] = TransientError(
                f"job {spec.job_id}: cannot make a staging directory in {beside}: {exc}")
        return
    with staging as root:
        numbers: dict[str, int] = {}  # a folder of the tree per parent directory
        groups: dict[str, list[int]] = {}
        for k, (spec, where, script) in enumerate(jobs):
            parent, name = posixpath.split(where.directory)
            folder = Path(root, str(numbers.setdefault(parent, len(numbers))), name)
            if folder.exists():
                errors[positions[k]] = TransientError(
                    f"job {spec.job_id}: given twice to one prepare_jobs call")
                continue
            try:
                _fill(folder, spec, where, script)
            except PermanentError as exc:
                errors[positions[k]] = exc
            except OSError as exc:
                errors[positions[k]] = TransientError(
                    f"job {spec.job_id}: cannot stage it for {where.directory}: {exc}")
            else:
                groups.setdefault(parent, []).append(k)
                continue
            shutil.rmtree(folder, ignore_errors=True)  # never sent half-made
        for parent, group in groups.items():
            _send(transport, Path(root, str(numbers[parent])), parent,
                  [(positions[k], jobs[k]) for k in group], errors)


def _send(transport: Transport, tree: Path, parent: str,
          members: Sequence[tuple[int, tuple[JobSpec, Placement, str]]],
          errors: list[ConnectorError | None]) -> None:
    """Copy ``tree``'s job directories into ``parent``; a failure is every member's."""
    try:
        transport.put(tree, parent)
    except (ConnectorError, OSError, ValueError) as exc:  # CommandFailed is a PermanentError
        _failed(members, exc, errors)


def _fill(folder: Path, spec: JobSpec, where: Placement, script: str) -> None:
    """Make the job's directory in the staging tree, as it must be on the cluster side.

    Raises:
        PermanentError: the manager's ``params.json`` cannot be read.
        OSError: the staging tree cannot be written, or an input cannot be read.
    """
    job_dir = spec.job_dir.absolute()
    params, text = _params_text(spec, where)
    folder.mkdir(parents=True)
    (folder / PARAMS_NAME).write_text(text, encoding="utf-8")
    (folder / SCRIPT_NAME).write_text(script, encoding="utf-8")
    for name in staged_names(spec, params):
        source = job_dir / name
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, folder / name, symlinks=True, copy_function=_link)
        else:
            _link(str(source), str(folder / name))


def _params_text(spec: JobSpec, where: Placement) -> tuple[Any, str]:
    """The manager's parameters, and the text of ``params.json`` on the cluster side.

    Raises:
        PermanentError: the manager's ``params.json`` cannot be read.
    """
    local_params = spec.job_dir / PARAMS_NAME
    try:
        params = json.loads(local_params.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PermanentError(f"job {spec.job_id}: cannot read {local_params}: {exc}") from exc
    moved = relocate_params(params, spec.job_dir.absolute(), where.directory)
    return params, json.dumps(moved, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _link(source: str, target: str) -> None:
    """Hard-link ``source`` (a file, or a link itself) at ``target``; copy it if that fails."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def staged_names(spec: JobSpec, params: Mapping[str, Any]) -> list[str]:
    """Top-level entries of the job directory that the job needs.

    Its inputs, and whatever its parameters or command name inside the job directory
    (a taxonomy filter file, a parent job's files); never ``params.json``, the batch script
    or the notes folders, and only entries that exist.
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
    skip = {PARAMS_NAME, _NOTES, _OWN, SCRIPT_NAME, "", ".", ".."}
    return [name for name in names if name not in skip and (job_dir / name).exists()]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def retrieve(transport: Transport, settings: SlurmSettings, spec: JobSpec) -> Path:
    """Bring the job's directory back into ``spec.job_dir``; return ``spec.job_dir``.

    In place there is nothing to copy. Otherwise everything but ``retrieve_exclude``, the
    cluster's ``params.json``, ``.efi/`` and ``.efi-slurm/`` is copied over.

    Raises:
        PermanentError: the job's directory does not exist (any more).
        TransientError: the copy failed or the cluster could not be reached.
    """
    where = placement(spec, settings)
    if where.in_place:
        if not spec.job_dir.is_dir():
            raise PermanentError(f"job {spec.job_id}: {spec.job_dir} does not exist")
        return spec.job_dir
    exclude = [*settings.retrieve_exclude, f"/{_NOTES}/", f"/{_OWN}/", f"/{PARAMS_NAME}"]
    try:
        transport.get(where.directory, spec.job_dir, exclude=exclude)
    except FileNotFoundError as exc:
        raise PermanentError(
            f"job {spec.job_id}: {where.directory} does not exist on {transport.description}"
        ) from exc
    except (CommandFailed, OSError) as exc:
        raise TransientError(
            f"job {spec.job_id}: cannot copy {where.directory} back: {exc}"
        ) from exc
    return spec.job_dir
