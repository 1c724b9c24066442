"""The batch script of a job (pure: nothing here touches a file or the cluster).

`render_batch_script` writes ``#SBATCH`` lines from the destination's defaults, the profile of
the job's pipeline and of its job type, and the job's own resource requests (``spec.resources``:
the site's ``[resources]`` and a retry's overrides, which win), then the pipeline command with
every argument quoted by `shlex.quote`: job data never reaches the shell unquoted.

`batch_script` is the same script with the resources it asks for, for a caller that already
knows where the job runs (`SlurmConnector.prepare_job_environment`: one derivation each).
`cluster_job_dir` is where the job runs (``remote_dir/<id>``, or the manager's job directory
itself); `job_resources` is what a job asks for, typed (`BaseConnector.resources_for`);
`retry_resources` computes the larger time or memory of a retry after a TIMEOUT or an
OUT_OF_MEMORY failure (the connector's answer to `BaseConnector.retry_resources`).
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from efi_connector_slurm.config import Profile, SlurmSettings, check_sbatch_line
from efi_connector_slurm.units import (
    format_memory,
    format_time,
    parse_memory,
    parse_time,
    scale_mib,
    scale_seconds,
)
from efi_job_manager.toolkit import JobSpec, Resources, relocate_params

__all__ = [
    "RESOURCE_KEYS",
    "SCRIPT_NAME",
    "batch_script",
    "cluster_command",
    "cluster_job_dir",
    "job_resources",
    "quote",
    "render_batch_script",
    "resolve_resources",
    "retry_resources",
]

#: The batch script's file name in the job's directory on the cluster side.
SCRIPT_NAME = "efi-job.sbatch"

#: The resources of a batch script, in the order of its ``#SBATCH`` lines.
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
    """The profile of ``spec`` and the resources it asks for, as ``#SBATCH`` values.

    Defaults < ``profiles[spec.pipeline]`` < ``profiles[spec.job_type]`` < ``spec.resources``
    (the site's ``[resources]`` and a retry's overrides: ``queue`` is the partition).

    Returns:
        The profile (for ``extra_sbatch``, ``max_time``, ``max_memory``) and the resources
        by `RESOURCE_KEYS` name (only those that are set): the profile's as written, those
        of ``spec.resources`` written as sbatch reads them (``02:00:00``, ``32G``).
    """
    profile = settings.profile_for(spec.pipeline, spec.job_type)
    resources: dict[str, str] = {}
    for key in RESOURCE_KEYS:
        value = getattr(profile, key)
        if value is not None:
            resources[key] = str(value)
    wanted = spec.resources
    if wanted.queue is not None:
        resources["partition"] = wanted.queue
    if wanted.time is not None:
        resources["time"] = format_time(wanted.time)
    if wanted.memory is not None:
        resources["memory"] = format_memory(wanted.memory)
    if wanted.cpus is not None:
        resources["cpus"] = str(wanted.cpus)
    return profile, resources


def job_resources(spec: JobSpec, settings: SlurmSettings) -> tuple[Profile, Resources]:
    """The profile of ``spec`` and what it asks for, typed: ``spec.resources`` over the profile.

    An unlimited (or zero) time in the profile is no time limit (None).

    Raises:
        ValueError: a profile's value cannot be read (not after `parse_settings`).
    """
    profile = settings.profile_for(spec.pipeline, spec.job_type)
    seconds = parse_time(profile.time) if profile.time is not None else None
    own = Resources(
        time=seconds or None,
        memory=parse_memory(profile.memory) if profile.memory is not None else None,
        cpus=profile.cpus,
        queue=profile.partition,
    )
    return profile, own.overlay(spec.resources)


def retry_resources(
    profile: Profile,
    used: Resources,
    reason: str | None,
    *,
    time_factor: float,
    memory_factor: float,
) -> Resources | None:
    """What a retry after a failure with ``reason`` asks for differently, or None.

    After ``TIMEOUT`` the time limit the failed run used is multiplied by ``time_factor``
    (rounded up to a minute, capped at the profile's ``max_time``); after ``OUT_OF_MEMORY``
    the memory by ``memory_factor`` (capped at ``max_memory``). A cap below the current
    value never lowers it. Other reasons, a run without that limit, or a value already at
    its cap change nothing.

    Args:
        profile: The job's profile (for the caps).
        used: What the failed run asked for (`job_resources`).
        reason: The failure's scheduler reason (``TIMEOUT``, ``OUT_OF_MEMORY``…).
        time_factor: How much longer a retry after TIMEOUT may run.
        memory_factor: How much more memory a retry after OUT_OF_MEMORY gets.

    Returns:
        The changed field alone (``Resources(time=7200)``), or None.
    """
    try:
        if reason == "TIMEOUT" and used.time is not None:
            cap = parse_time(profile.max_time) if profile.max_time is not None else None
            seconds = scale_seconds(used.time, time_factor, cap)
            return Resources(time=seconds) if seconds != used.time else None
        if reason == "OUT_OF_MEMORY" and used.memory is not None:
            limit = parse_memory(profile.max_memory) if profile.max_memory is not None else None
            mib = scale_mib(used.memory, memory_factor, limit)
            return Resources(memory=mib) if mib != used.memory else None
    except ValueError:
        return None
    return None


def render_batch_script(spec: JobSpec, settings: SlurmSettings) -> str:
    """Return the batch script that runs ``spec`` on the cluster.

    The ``#SBATCH`` lines, in order: ``--job-name=efi-<id>``; partition, account, qos, time,
    mem and cpus-per-task (see `resolve_resources`); the ``extra_sbatch`` lines of the
    defaults and the profiles; ``--output``/``--error`` (``slurm-%j.out``/``.err``) and
    ``--chdir`` in the job's directory on the cluster side. Then the ``env_setup`` line (if
    any), an ``export`` line per ``env`` variable (quoted), ``set -euo pipefail`` and the
    command, each argument quoted.

    Args:
        spec: The job; ``spec.resources`` overrides its profile (the site's
            ``[resources]``, a retry's larger time).
        settings: The destination's settings.

    Raises:
        ValueError: the command is empty, or the job directory cannot be written on an
            ``#SBATCH`` line.
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
    lines += [f"export {name}={quote(value)}" for name, value in sorted(settings.env.items())]
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
