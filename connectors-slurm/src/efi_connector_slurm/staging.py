"""What goes where on the cluster side, and what comes back.

A job runs in its `Placement`: ``remote_dir/<id>``, or the manager's own job directory when
there is no ``remote_dir`` (in place: nothing is copied either way). `stage` makes the
directory on the cluster side and copies ``params.json`` (job-directory paths rewritten with
`relocate_params`) and every input the job needs into it, then writes the batch script;
`retrieve` copies the directory back when the job has ended, without what stays on the
cluster (``retrieve_exclude``) and without the cluster's ``params.json`` and notes.

Every copy goes through the connector's transport; the functions take it on each call.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from efi_connector_slurm.config import SlurmSettings
from efi_connector_slurm.script import SCRIPT_NAME, cluster_job_dir
from efi_job_manager.toolkit import (
    CommandFailed,
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
    "stage",
    "staged_names",
]

#: The parameters file, in the manager's job directory and in the job's directory where it runs.
PARAMS_NAME = "params.json"
_NOTES = ".efi"  # the manager's notes: never staged to the cluster nor brought back
_OWN = ".efi-slurm"  # this connector's own notes (`connector_folder`)


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


def stage(transport: Transport, settings: SlurmSettings, spec: JobSpec, where: Placement,
          script: str) -> None:
    """Put the job in its place and write its batch script there; idempotent.

    Not in place: makes the directory, copies the inputs (`staged_names`) and writes
    ``params.json`` from the manager's one, its job-directory paths rewritten. In place:
    only the script is written.

    Raises:
        PermanentError: the manager's ``params.json`` cannot be read.
        TransientError: the cluster side cannot be reached or written now.
    """
    in_place = where.in_place
    try:
        if not in_place:
            _copy_in(transport, settings, spec, where.directory)
        transport.write_text(where.script_path, script, timeout=settings.command_timeout)
    except (CommandFailed, OSError) as exc:
        raise TransientError(
            f"job {spec.job_id}: cannot stage it in {where.directory}: {exc}"
        ) from exc


def _copy_in(transport: Transport, settings: SlurmSettings, spec: JobSpec,
             directory: str) -> None:
    job_dir = spec.job_dir.absolute()
    local_params = spec.job_dir / PARAMS_NAME
    try:
        params = json.loads(local_params.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PermanentError(f"job {spec.job_id}: cannot read {local_params}: {exc}") from exc
    moved = relocate_params(params, job_dir, directory)
    transport.run(["mkdir", "-p", "--", directory],
                  timeout=settings.command_timeout, check=True)
    for name in staged_names(spec, params):
        transport.put(job_dir / name, posixpath.join(directory, name))
    transport.write_text(
        posixpath.join(directory, PARAMS_NAME),
        json.dumps(moved, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        timeout=settings.command_timeout,
    )


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
