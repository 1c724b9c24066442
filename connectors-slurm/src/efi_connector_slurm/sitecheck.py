"""Whether the site can run jobs: Slurm answers, the settings fit it, the tools are there.

`health_check` runs ``sinfo`` (the configured partitions exist), ``sacct --version`` and
checks that ``remote_dir`` can be written; `check_site` checks executables and paths where
``sbatch`` runs, in one ``sh -c``. Both run their commands through the connector's transport
(`SlurmConnector.health_check`, `SlurmConnector.check_site`). `way_in` says, for ``check``,
which way in the settings chose.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from efi_connector_slurm.commands import sacct_version_command, sinfo_partitions_command
from efi_connector_slurm.config import SlurmSettings
from efi_connector_slurm.parsing import classify_sbatch_error, error_text, parse_partitions
from efi_job_manager.toolkit import PermanentError, TransientError, Transport

__all__ = ["check_command", "check_site", "health_check", "way_in"]

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


def check_site(transport: Transport, settings: SlurmSettings, executables: Sequence[str],
               paths: Sequence[str]) -> list[str]:
    """Check, where ``sbatch`` runs (after ``env_setup``), each executable and path.

    Returns:
        One line per problem (``<name>: not an executable on …``, ``<path>: does not
        exist on …``); empty when everything is there.

    Raises:
        TransientError: the check itself could not run.
    """
    where = transport.description
    items = [f"x:{command}" for command in executables] + [f"p:{path}" for path in paths]
    if not items:
        return []
    result = transport.run(["sh", "-c", _CHECK_SITE_SCRIPT, "sh", *items],
                           timeout=settings.command_timeout)
    if not result.ok:
        raise TransientError(f"checking paths on {where} failed: {error_text(result)}")
    problems = []
    for line in result.stdout.splitlines():
        kind, _, value = line.partition(":")
        if kind == "x":
            problems.append(f"{value}: not an executable on {where} (after env_setup)")
        elif kind == "p":
            problems.append(f"{value}: does not exist on {where}")
    return problems


def health_check(transport: Transport, settings: SlurmSettings, *,
                 scheduler: bool = True) -> None:
    """Check that Slurm answers and the configuration fits the cluster.

    Without ``scheduler`` (Slurm is reached through its REST daemon) only ``remote_dir``
    is checked.

    Raises:
        TransientError: slurmctld or the cluster cannot be reached now.
        PermanentError: the commands are missing, a configured partition does not exist,
            or ``remote_dir`` is not writable.
    """
    where = transport.description
    timeout = settings.command_timeout
    if scheduler:
        _scheduler_check(transport, settings)
    if settings.remote_dir is not None:
        directory = settings.remote_dir
        made = transport.run(["mkdir", "-p", "--", directory], timeout=timeout)
        writable = (transport.run(["test", "-w", directory], timeout=timeout) if made.ok
                    else made)
        if not writable.ok:
            raise PermanentError(f"remote_dir {directory} cannot be made or written on "
                                 f"{where}: {error_text(writable)}")


def _scheduler_check(transport: Transport, settings: SlurmSettings) -> None:
    """Check that sinfo lists the configured partitions and that sacct runs."""
    where = transport.description
    timeout = settings.command_timeout
    result = transport.run(sinfo_partitions_command(), timeout=timeout)
    if result.returncode in (126, 127):
        raise PermanentError(f"sinfo cannot be run on {where} ({error_text(result)}): install "
                             "the Slurm client or set env_setup (e.g. 'module load slurm')")
    if not result.ok:
        error = classify_sbatch_error(result.returncode, result.stderr)
        raise error(f"sinfo failed on {where}: {error_text(result)}")
    available = parse_partitions(result.stdout)
    wanted = {settings.defaults.partition, *(p.partition for p in settings.profiles.values())}
    names = {part for value in wanted if value for part in value.split(",")}
    unknown = sorted(names - set(available))
    if unknown:
        raise PermanentError(f"partition(s) {', '.join(unknown)} do not exist on {where} "
                             f"(it has: {', '.join(available) or 'none'})")
    version = transport.run(sacct_version_command(), timeout=timeout)
    if not version.ok:
        raise PermanentError(f"sacct cannot be run on {where}: {error_text(version)}")


def way_in(settings: SlurmSettings, transport: str) -> str:
    """One line: how Slurm is reached and where jobs' files go (nothing secret, no contact).

    E.g. ``Slurm's REST API at http://…:6820 as efijm (token from the file …); files over
    SSH (ssh://efijm@login) in /scratch/efi``. ``transport`` is the transport's description.
    """
    s = settings
    if s.api == "rest":
        way = f"Slurm's REST API at {s.rest_url}"
        if s.rest_user is not None:
            token = (f"the file {s.rest_token_file}" if s.rest_token_file is not None
                     else f"${s.rest_token_env}")
            way += f" as {s.rest_user} (token from {token})"
        else:
            way += " (local authentication: jobs run as the daemon's user)"
    elif s.transport == "ssh":
        way = f"Slurm's commands over SSH ({transport})"
    else:
        way = "Slurm's commands on this host"
    if s.remote_dir is None:
        files = ("files in place: the compute nodes see this host's job directories at the "
                 "same paths")
    elif s.transport == "ssh":
        files = f"files over SSH ({transport}) in {s.remote_dir}"
    elif s.remote_dir_mount is not None:
        files = (f"files in {s.remote_dir} (the cluster's path), copied through its mount "
                 f"here at {s.remote_dir_mount}")
    else:
        files = f"files copied into {s.remote_dir}, on a file system shared at the same path"
    return f"{way}; {files}"


def check_command(transport: Transport, settings: SlurmSettings,
                  argv: Sequence[str]) -> str | None:
    """Run ``argv`` where ``sbatch`` runs, after ``env_setup``, with ``env``.

    Returns None if it exited 0, else one line (`BaseConnector.check_command`).

    Raises:
        TransientError: the cluster could not be reached.
    """
    variables = [f"{name}={value}" for name, value in sorted(settings.env.items())]
    command = ["env", *variables, *argv] if variables else list(argv)
    result = transport.run(command, timeout=settings.command_timeout)
    if result.ok:
        return None
    said = " ".join((result.stderr or result.stdout).split())[-300:]
    return (f"{shlex.join(argv)} exited {result.returncode} on {transport.description}"
            f"{': ' + said if said else ''}")
