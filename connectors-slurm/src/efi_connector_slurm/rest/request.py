"""A job's submission to slurmrestd: the batch script's options as job properties (pure).

slurmrestd 22.05 reads no ``#SBATCH`` line of the script it is given (measured on the lab:
a script asking for a name, a partition, a time limit and ``--hold`` ran at once, unnamed,
in the default partition, without a limit). So `job_submission` sends the same script as
`efi_connector_slurm.script.batch_script` renders (the ``#SBATCH`` lines stay in it, for a
person reading it), and every option of those lines again as a property of the ``job``
object: the job's name, the resources of `resolve_resources`, the ``extra_sbatch`` options
this module knows (`REST_OPTIONS`; any other is refused with a clear error), the output
files and the working directory.

The job's environment must be given whole over REST (sbatch passes the login shell's); it
is ``environment`` as the caller builds it, never this process's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from efi_connector_slurm.config import SlurmSettings
from efi_connector_slurm.script import batch_script, resolve_resources
from efi_connector_slurm.units import parse_memory, parse_time
from efi_job_manager.toolkit import JobSpec

__all__ = ["REST_OPTIONS", "job_submission", "rest_extra_options"]


def _flag(name: str) -> Callable[[str | None], tuple[str, Any]]:
    def convert(value: str | None) -> tuple[str, Any]:
        if value is not None:
            raise ValueError("takes no value")
        return name, True
    return convert


def _text(name: str) -> Callable[[str | None], tuple[str, Any]]:
    def convert(value: str | None) -> tuple[str, Any]:
        if not value:
            raise ValueError("needs a value")
        return name, value
    return convert


def _number(name: str) -> Callable[[str | None], tuple[str, Any]]:
    def convert(value: str | None) -> tuple[str, Any]:
        try:
            return name, int(value or "")
        except ValueError:
            raise ValueError("needs a whole number") from None
    return convert


#: The ``extra_sbatch`` options a job may carry over REST, and the job property each becomes.
REST_OPTIONS: Mapping[str, Callable[[str | None], tuple[str, Any]]] = {
    "--hold": _flag("hold"),
    "--requeue": _flag("requeue"),
    "--exclusive": _flag("exclusive"),
    "--comment": _text("comment"),
    "--constraint": _text("constraints"),
    "--reservation": _text("reservation"),
    "--gres": _text("gres"),
    "--licenses": _text("licenses"),
    "--mail-type": _text("mail_type"),
    "--mail-user": _text("mail_user"),
    "--wckey": _text("wckey"),
    "--nice": _number("nice"),
    "--ntasks": _number("tasks"),
}


def rest_extra_options(lines: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The job properties of ``extra_sbatch`` lines (``--gres=gpu:1``…).

    Raises:
        ValueError: an option `REST_OPTIONS` does not know, or a value it cannot take; the
            message names the line and the options it knows.
    """
    properties: dict[str, Any] = {}
    for line in lines:
        option, sep, value = line.strip().partition("=")
        convert = REST_OPTIONS.get(option)
        if convert is None:
            raise ValueError(f"extra_sbatch {line!r} cannot be sent to slurmrestd, which reads "
                             f"no #SBATCH line; over REST the options are: "
                             f"{', '.join(REST_OPTIONS)}")
        try:
            key, converted = convert(value if sep else None)
        except ValueError as exc:
            raise ValueError(f"extra_sbatch {line!r}: {option} {exc}") from None
        properties[key] = converted
    return properties


def job_submission(spec: JobSpec, settings: SlurmSettings, directory: str,
                   environment: Mapping[str, str]) -> dict[str, Any]:
    """The body of ``POST /slurm/v0.0.38/job/submit`` for ``spec``, run in ``directory``.

    Raises:
        ValueError: as `batch_script`, or an ``extra_sbatch`` option that cannot be sent.
    """
    script, resources = batch_script(spec, settings, directory)
    profile, _ = resolve_resources(spec, settings)
    job: dict[str, Any] = {
        "name": spec.name,
        "current_working_directory": directory,
        "standard_output": f"{directory}/slurm-%j.out",
        "standard_error": f"{directory}/slurm-%j.err",
        "environment": dict(environment),
    }
    for key in ("partition", "account", "qos"):
        if key in resources:
            job[key] = resources[key]
    if "time" in resources:
        seconds = parse_time(resources["time"])
        if seconds:  # unlimited (or 0) is no limit: the partition's
            job["time_limit"] = max(1, math.ceil(seconds / 60))
    if "memory" in resources:
        job["memory_per_node"] = parse_memory(resources["memory"])
    if "cpus" in resources:
        job["cpus_per_task"] = int(resources["cpus"])
    job.update(rest_extra_options(profile.extra_sbatch))
    return {"script": script, "job": job}
