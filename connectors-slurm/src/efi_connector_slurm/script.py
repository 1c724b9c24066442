"""The batch script of a job (pure: nothing here touches a file or the cluster).

`render_batch_script` writes ``#SBATCH`` lines from the destination's defaults, the profile of
the job's pipeline and of its job type, and the job's own resource requests, then the pipeline
command with every argument quoted by `shlex.quote`: job data never reaches the shell unquoted.

`batch_script` is the same script with the resources it asks for, for a caller that already
knows where the job runs (`SlurmConnector.prepare_job_environment`: one derivation each).
`cluster_job_dir` is where the job runs (``remote_dir/<id>``, or the manager's job directory
itself); `retry_resources` computes the larger time or memory of a retry after a TIMEOUT or an
OUT_OF_MEMORY failure (the connector's answer to `BaseConnector.retry_resources`).
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping
from typing import Any

from efi_connector_slurm.config import Profile, SlurmSettings, check_sbatch_line
from efi_connector_slurm.units import parse_memory, parse_time, scale_memory, scale_time
from efi_job_manager.toolkit import JobSpec, relocate_params

__all__ = [
    "RESOURCE_KEYS",
    "SCRIPT_NAME",
    "batch_script",
    "cluster_command",
    "cluster_job_dir",
    "quote",
    "render_batch_script",
    "resolve_resources",
    "retry_resources",
]

#: The batch script's file name in the job's directory on the cluster side.
SCRIPT_NAME = "efi-job.sbatch"

#: The keys of ``JobSpec.resources`` (and of `retry_resources`' result) this connector reads.
RESOURCE_KEYS = ("partition", "account", "qos", "time", "memory", "cpus")

_SBATCH_OPTION = {
    "partition": "--partition",
    "account": "--account",
    "qos": "--qos",
    "time": "--time",
    "memory": "--mem",
    "cpus": "--cpus-per-task",
}


def cluster_job_dir(spec: JobSpec, settings: SlurmSettings) -> str:
    """The job's directory where it runs: ``remote_dir/<job id>``, else ``spec.job_dir``.

    Raises:
        ValueError: the directory holds a character the ``#SBATCH`` lines cannot carry
            (whitespace, a quote, ``%``).
    """
    if settings.remote_dir is not None:
        path = posixpath.join(settings.remote_dir, str(int(spec.job_id)))
    else:
        path = str(spec.job_dir.absolute())
    if any(c.isspace() or c in "'\"%\\" for c in path):
        raise ValueError(
            f"job {spec.job_id}: the job directory {path!r} holds whitespace, a quote, a "
            "backslash or '%', which #SBATCH lines cannot carry"
        )
    return path


def cluster_command(
    spec: JobSpec, settings: SlurmSettings, directory: str | None = None
) -> tuple[str, ...]:
    """The pipeline command as it runs on the cluster side (job-dir paths relocated).

    ``directory`` is the job's `cluster_job_dir`, when the caller has it already.
    """
    if directory is None:
        directory = cluster_job_dir(spec, settings)
    if directory == str(spec.job_dir.absolute()):
        return tuple(spec.command)
    moved = relocate_params({"command": list(spec.command)}, spec.job_dir.absolute(), directory)
    return tuple(str(arg) for arg in moved["command"])


def resolve_resources(spec: JobSpec, settings: SlurmSettings) -> tuple[Profile, dict[str, str]]:
    """The profile of ``spec`` and the resources it asks for, highest precedence last.

    Defaults < ``profiles[spec.pipeline]`` < ``profiles[spec.job_type]`` < ``spec.resources``
    (the overrides of a retry, see `retry_resources`).

    Returns:
        The profile (for ``extra_sbatch``, ``max_time``, ``max_memory``) and the resources
        by `RESOURCE_KEYS` name (only those that are set).

    Raises:
        ValueError: ``spec.resources`` holds an unknown key or a bad value.
    """
    profile = settings.profile_for(spec.pipeline, spec.job_type)
    resources: dict[str, str] = {}
    for key in RESOURCE_KEYS:
        value = getattr(profile, key)
        if value is not None:
            resources[key] = str(value)
    for key, value in spec.resources.items():
        if key not in RESOURCE_KEYS:
            raise ValueError(
                f"job {spec.job_id}: unknown resources key {key!r} "
                f"(known: {', '.join(RESOURCE_KEYS)})"
            )
        resources[key] = _check_resource(spec, key, str(value))
    return profile, resources


def _check_resource(spec: JobSpec, key: str, value: str) -> str:
    text = value.strip()
    valid = True
    try:
        if key == "time":
            parse_time(text)
        elif key == "memory":
            parse_memory(text)
        elif key == "cpus":
            valid = text.isdigit() and int(text) >= 1
        else:
            valid = bool(text) and not any(c.isspace() or c in "'\"\\;|&$`<>()" for c in text)
        if not valid:
            raise ValueError(text)
    except ValueError:
        raise ValueError(f"job {spec.job_id}: invalid {key} {value!r}") from None
    return text


def retry_resources(
    profile: Profile,
    previous: Mapping[str, str],
    reason: str | None,
    *,
    time_factor: float,
    memory_factor: float,
) -> dict[str, str]:
    """The resources of a retry after a failure with ``reason``.

    After ``TIMEOUT`` the previous time limit is multiplied by ``time_factor`` (capped at the
    profile's ``max_time``); after ``OUT_OF_MEMORY`` the memory by ``memory_factor`` (capped at
    ``max_memory``). Other reasons, or a previous submission without that request, change
    nothing.

    Args:
        profile: The job's profile (for the caps).
        previous: The resources of the submission that failed.
        reason: The failure's scheduler reason (``TIMEOUT``, ``OUT_OF_MEMORY``…).
        time_factor: How much longer a retry after TIMEOUT may run.
        memory_factor: How much more memory a retry after OUT_OF_MEMORY gets.

    Returns:
        The resources of ``previous`` with the time or memory scaled.
    """
    resources = dict(previous)
    try:
        if reason == "TIMEOUT" and "time" in resources:
            resources["time"] = scale_time(resources["time"], time_factor, profile.max_time)
        elif reason == "OUT_OF_MEMORY" and "memory" in resources:
            resources["memory"] = scale_memory(
                resources["memory"], memory_factor, profile.max_memory
            )
    except ValueError:
        return dict(previous)
    return resources


def render_batch_script(spec: JobSpec, settings: SlurmSettings) -> str:
    """Return the batch script that runs ``spec`` on the cluster.

    The ``#SBATCH`` lines, in order: ``--job-name=efi-<id>``; partition, account, qos, time,
    mem and cpus-per-task (see `resolve_resources`); the ``extra_sbatch`` lines of the
    defaults and the profiles; ``--output``/``--error`` (``slurm-%j.out``/``.err``) and
    ``--chdir`` in the job's directory on the cluster side. Then the ``env_setup`` line (if
    any), ``set -euo pipefail`` and the command, each argument quoted.

    Args:
        spec: The job; ``spec.resources`` overrides its profile (a retry's larger time).
        settings: The destination's settings.

    Raises:
        ValueError: the command is empty, a resource is invalid, or the job directory
            cannot be written on an ``#SBATCH`` line.
    """
    return batch_script(spec, settings)[0]


def batch_script(
    spec: JobSpec, settings: SlurmSettings, directory: str | None = None
) -> tuple[str, dict[str, str]]:
    """Return `render_batch_script`'s script and the resources it asks for.

    Args:
        spec: The job.
        settings: The destination's settings.
        directory: The job's `cluster_job_dir`, when the caller has it already.

    Returns:
        The script, and the resources by `RESOURCE_KEYS` name (those of `resolve_resources`).

    Raises:
        ValueError: as `render_batch_script`.
    """
    if not spec.command or not all(isinstance(arg, str) for arg in spec.command):
        raise ValueError(f"job {spec.job_id}: invalid command {spec.command!r}")
    if directory is None:
        directory = cluster_job_dir(spec, settings)
    profile, resources = resolve_resources(spec, settings)
    lines = ["#!/bin/bash", f"#SBATCH --job-name={spec.name}"]
    lines += [f"#SBATCH {_SBATCH_OPTION[key]}={resources[key]}" for key in RESOURCE_KEYS
              if key in resources]
    lines += [
        f"#SBATCH {check_sbatch_line('extra_sbatch', line)}" for line in profile.extra_sbatch
    ]
    lines += [
        f"#SBATCH --output={directory}/slurm-%j.out",
        f"#SBATCH --error={directory}/slurm-%j.err",
        f"#SBATCH --chdir={directory}",
        f"# efi-job-manager: job {spec.job_id} ({_one_line(spec.job_type)}"
        f"{', pipeline ' + _one_line(spec.pipeline) if spec.pipeline else ''})",
    ]
    if settings.env_setup:
        lines.append(settings.env_setup)
    lines.append("set -euo pipefail")
    lines.append(" ".join(quote(arg) for arg in cluster_command(spec, settings, directory)))
    return "\n".join(lines) + "\n", resources


def quote(arg: str) -> str:
    """Quote one argument for bash: `shlex.quote`, or ``$'…'`` when it holds control characters.

    ``$'…'`` keeps a newline in an argument from starting a new line of the script, so no
    job data can ever look like an ``#SBATCH`` line or a command of its own.
    """
    if not any(ord(c) < 32 or ord(c) == 127 for c in arg):
        return shlex.quote(arg)
    out = []
    for c in arg:
        if c in "\\'":
            out.append("\\" + c)
        elif ord(c) < 32 or ord(c) == 127:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "$'" + "".join(out) + "'"


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())
