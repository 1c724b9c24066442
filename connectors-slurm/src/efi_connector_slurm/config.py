"""The Slurm connector's settings: a destination's ``settings`` table, declared once (pure).

`SlurmSettings` (with `Profile`, whose keys are also the top level's resource defaults)
declares every key with its type; `parse_settings` reads the table with the core's settings
engine (`structure_settings`). Every wrong, missing or unknown key is reported at once in a
`ConfigError` naming the key (dotted for profiles: ``profiles.est.memory``), the value and
what was expected, with "did you mean" for a misspelt key; durations take the core's forms
(``command_timeout = "5s"``). Nothing here contacts the cluster.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

import attrs

from efi_connector_slurm.units import parse_memory, parse_time
from efi_job_manager.toolkit import (
    Check,
    ConfigError,
    Convert,
    Invalid,
    at_least,
    describe,
    duration,
    structure_settings,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_COMMAND_TIMEOUT",
    "DEFAULT_RETRIEVE_EXCLUDE",
    "DEFAULT_SACCT_LOOKBACK",
    "DEFAULT_SUBMIT_PARALLEL",
    "FORBIDDEN_SBATCH_OPTIONS",
    "PROFILE_KEYS",
    "SETTING_KEYS",
    "WHERE",
    "Profile",
    "SlurmSettings",
    "check_sbatch_line",
    "parse_settings",
]

DEFAULT_CHUNK_SIZE = 500
"""Job ids per ``sacct`` call."""
DEFAULT_SUBMIT_PARALLEL = 4
"""``sbatch`` commands run at once when a batch of jobs is submitted."""
DEFAULT_SACCT_LOOKBACK = 30 * 86400.0
"""Seconds ``sacct`` looks back."""
DEFAULT_COMMAND_TIMEOUT = 60.0
"""Seconds a Slurm command may take."""
DEFAULT_RETRIEVE_EXCLUDE: tuple[str, ...] = ("work/",)
"""What ``rsync`` leaves on the cluster when results come back."""
DEFAULT_RETRY_FACTOR = 2.0
"""How much more time or memory a retry asks for."""

WHERE: Final = "slurm connector settings"
"""How messages name the table when no file is known (the core names the file instead)."""

#: ``#SBATCH`` options the connector sets itself: an ``extra_sbatch`` line may not change them
#: (the job name is how a lost submission is found again; the output files and the working
#: directory are where the results and the memory-kill messages are looked for).
FORBIDDEN_SBATCH_OPTIONS = ("--job-name", "--output", "--error", "--chdir", "--wrap", "--parsable")

TransportKind = Literal["local", "ssh"]
ApiKind = Literal["commands", "rest"]

_WORD = re.compile(r"[^\s,'\"\\;|&$`<>()]+(?:,[^\s,'\"\\;|&$`<>()]+)*")
_SBATCH_EXPECTED = "a list of single-line '#SBATCH' options, each starting with '--'"
_SBATCH_LINE_EXPECTED = "a single-line '#SBATCH' option starting with '--'"


# -- how values are read ------------------------------------------------------------------------


def _word(value: Any) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value) or value.startswith("-"):
        raise ValueError(value)
    return value


def _path(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\0\n"):
        raise ValueError(value)
    return value


def _time(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(value)
    parse_time(value)
    return str(value).strip()


def _memory(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(value)
    parse_memory(value)
    return str(value).strip()


def _sbatch_line(line: Any) -> str:
    if not isinstance(line, str) or not line.strip():
        raise TypeError(line)
    text = line.strip()
    if any(c in text for c in "\n\r\0") or not text.startswith("--") or len(text) < 3:
        raise ValueError(line)
    option = text.split("=", 1)[0].split(None, 1)[0]
    if option in FORBIDDEN_SBATCH_OPTIONS:
        raise Invalid(f"an option other than {', '.join(FORBIDDEN_SBATCH_OPTIONS)}, which the "
                      "connector sets itself", line)
    return text


def _transport(value: Any) -> str:
    if value not in ("local", "ssh"):
        raise ValueError(value)
    return str(value)


def _api(value: Any) -> str:
    if value not in ("commands", "rest"):
        raise ValueError(value)
    return str(value)


_REST_URL_EXPECTED = "http://host:port, https://host:port, or unix:/path/to/slurmrestd.socket"


def _rest_url(value: Any) -> str:
    if not isinstance(value, str) or any(c.isspace() or c == "\0" for c in value):
        raise ValueError(value)
    if value.startswith("unix:/") or re.fullmatch(r"https?://[^/?#@]+(:\d+)?/?", value):
        return value.rstrip("/") if not value.startswith("unix:") else value
    raise ValueError(value)


def _env_name(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(value)
    return value


_ENV_EXPECTED = "a table of environment variable names to strings"


def _environment(value: Any) -> dict[str, str]:
    """The ``env`` table, each wrong name or value reported under its own key."""
    if not isinstance(value, Mapping):
        raise Invalid(_ENV_EXPECTED, value)
    wrong: list[Invalid] = []
    for name, text in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            wrong.append(Invalid("a shell variable name as the key (letters, digits, '_')",
                                 text, key=str(name)))
        elif name.startswith("EFI_JOB_MANAGER_"):
            wrong.append(Invalid("a variable the pipeline needs: EFI_JOB_MANAGER_* are the "
                                 "manager's settings and secrets, never a job's", text,
                                 key=name))
        elif not isinstance(text, str) or "\0" in text:
            wrong.append(Invalid("a string without NUL", text, key=name))
    if wrong:
        raise ExceptionGroup("wrong environment variables", wrong)
    return dict(value)


def _strict(value: Any) -> bool | str:
    if not isinstance(value, bool) and value not in ("yes", "no", "accept-new"):
        raise ValueError(value)
    return value if isinstance(value, bool) else str(value)


def _env_setup(value: Any) -> str | None:
    if not isinstance(value, str) or "\0" in value:
        raise ValueError(value)
    return value.strip() or None


def _remote_dir(value: Any) -> str:
    remote = _path(value)
    if not remote.startswith("/") or any(c.isspace() or c in "'\"%" for c in remote):
        raise Invalid("an absolute path without spaces, quotes or '%'", value)
    return remote.rstrip("/") or "/"


def check_sbatch_line(key: str, line: object) -> str:
    """Return ``line`` if it can be one ``#SBATCH`` option line of the batch script.

    Raises:
        ValueError: not a string, more than one line, not starting with ``--``, or one of
            the options the connector sets itself (`FORBIDDEN_SBATCH_OPTIONS`).
    """
    try:
        return _sbatch_line(line)
    except Invalid as exc:
        expected = exc.expected
    except (TypeError, ValueError):
        expected = _SBATCH_LINE_EXPECTED
    raise ConfigError(f"{WHERE}: {key} = {json.dumps(line, default=str)}: expected {expected}")


SbatchLine = Annotated[str, Convert(_SBATCH_LINE_EXPECTED, _sbatch_line)]
Pattern = Annotated[str, Check("a non-empty string on one line",
                               lambda text: bool(text) and "\n" not in text)]
Factor = Annotated[float, Check("a number >= 1", lambda number: number >= 1)]


# -- the settings -------------------------------------------------------------------------------


@attrs.frozen
class Profile:
    """Resource requests: the top-level defaults, or one entry of ``profiles``.

    A key not set here (None) leaves a lower layer's value, or Slurm's default.

    Attributes:
        partition: ``--partition``: a partition name, or a comma list.
        account: ``--account``.
        qos: ``--qos``.
        time: ``--time``: minutes, or ``MM``, ``HH:MM:SS``, ``D-HH:MM``…
        memory: ``--mem``: MiB, or ``32G``, ``500M``…
        cpus: ``--cpus-per-task``.
        extra_sbatch: More ``#SBATCH`` lines, each one line starting with ``--``; not the
            job name, output, error or working directory, which the connector sets itself.
            The lines of every layer add up.
        max_time: The longest ``--time`` a retry after ``TIMEOUT`` may ask for (also when
            the failed run's time came from the site's ``[resources]``).
        max_memory: The largest ``--mem`` a retry after ``OUT_OF_MEMORY`` may ask for (also
            when the failed run's memory came from the site's ``[resources]``).
    """

    partition: Annotated[str, Convert(
        "a Slurm partition name (or a comma list), e.g. 'efi'", _word)] | None = None
    account: Annotated[str, Convert("a Slurm account name", _word)] | None = None
    qos: Annotated[str, Convert("a Slurm QOS name", _word)] | None = None
    time: Annotated[str, Convert(
        "a Slurm time limit: minutes as an integer, or 'MM', 'HH:MM:SS', 'D-HH:MM'…",
        _time)] | None = None
    memory: Annotated[str, Convert(
        "a Slurm memory size: MiB as an integer, or '32G', '500M'…", _memory)] | None = None
    cpus: Annotated[int, at_least(1, "a whole number of CPUs per task, at least 1")] | None = None
    extra_sbatch: Annotated[tuple[SbatchLine, ...], Check(_SBATCH_EXPECTED)] = ()
    max_time: Annotated[str, Convert(
        "a Slurm time limit (the most a retry after TIMEOUT may ask for)", _time)] | None = None
    max_memory: Annotated[str, Convert(
        "a Slurm memory size (the most a retry after OUT_OF_MEMORY may ask for)",
        _memory)] | None = None

    def over(self, base: Profile) -> Profile:
        """This profile layered over ``base``: set fields win, ``extra_sbatch`` lines add up."""
        return Profile(
            partition=self.partition if self.partition is not None else base.partition,
            account=self.account if self.account is not None else base.account,
            qos=self.qos if self.qos is not None else base.qos,
            time=self.time if self.time is not None else base.time,
            memory=self.memory if self.memory is not None else base.memory,
            cpus=self.cpus if self.cpus is not None else base.cpus,
            extra_sbatch=base.extra_sbatch + self.extra_sbatch,
            max_time=self.max_time if self.max_time is not None else base.max_time,
            max_memory=self.max_memory if self.max_memory is not None else base.max_memory,
        )


PROFILE_KEYS: Mapping[str, str] = describe(Profile)
"""The keys of a profile (and of the top level's resource defaults), with what they expect."""

_PROFILES_EXPECTED = ("a table of profiles by pipeline short name or job_type, each with the "
                      "keys " + ", ".join(PROFILE_KEYS))
_HOST_EXPECTED = "a host name or ssh config alias (required for transport 'ssh')"
#: Keys that only mean something over SSH: set with the local transport they are an error.
_SSH_ONLY = ("host", "user", "port", "identity_file", "known_hosts", "ssh_config")
_REMOTE_DIR_EXPECTED = "an absolute path on the cluster side (required for transport 'ssh')"


@attrs.frozen
class SlurmSettings(Profile):
    """The validated settings of one Slurm destination.

    The resource keys (``partition``, ``account``, ``qos``, ``time``, ``memory``, ``cpus``,
    ``extra_sbatch``, ``max_time``, ``max_memory``) at the top level are what every job of
    the destination asks for (not set: Slurm's default). A job's ``profiles`` entries go
    over them, and the site's ``[resources]`` over those, for ``time``, ``memory``,
    ``cpus`` and the partition (``queue``); ``account``, ``qos``, ``extra_sbatch``,
    ``max_time`` and ``max_memory`` come from these settings alone.

    Attributes:
        transport: Where Slurm's commands run: ``local`` (on this host) or ``ssh`` (on
            ``host``, through the system OpenSSH client).
        host: The login node (a host name or an alias of ``ssh_config``); required for
            ``ssh``.
        user: The ssh user; not set: ssh's default.
        port: The ssh port; not set: ssh's default.
        identity_file: The ssh private key; not set: ssh's default.
        known_hosts: The known_hosts file ssh checks the host key against; not set: ssh's
            default.
        ssh_config: An ssh client config file (``ssh -F``); not set: ssh's default.
        strict_host_key_checking: ssh's ``StrictHostKeyChecking``. A changed host key is a
            ``HostKeyError`` (a ``PermanentError``): nothing is done on the cluster until an
            operator checks the key, and no job fails for it (each cycle reports it).
        env: Variables the pipeline gets, over both ways in (names to strings): exported
            by the batch script, after ``env_setup`` and before the command (``NXF_HOME``,
            ``JAVA_HOME``, a ``PATH`` that holds ``nextflow``…). Values are taken as written
            (quoted: ``$HOME`` is not expanded; expand in ``env_setup``).
        env_setup: A shell line (the old ``SOURCE_ENV_CMD``: ``module load slurm``) run
            before every Slurm command and in the batch script before ``set -euo pipefail``.
        remote_dir: Where job directories live on the cluster side (``<remote_dir>/<id>``,
            absolute); required for ``ssh``. Not set with ``local``: a job runs in the
            manager's own job directory (on a filesystem the compute nodes share).
        remote_dir_mount: With ``local``: where this host sees ``remote_dir``, when the
            cluster's file system is mounted here at another path (``remote_dir =
            "/scratch/efi"``, ``remote_dir_mount = "/mnt/hpc/scratch/efi"``). Files are
            copied through the mount; the scheduler is given ``remote_dir``'s paths.
        profiles: Resource profiles by pipeline short name (``est``, ``generatessn``…) or
            job type: a job's pipeline's profile, then its job type's, go over the
            top-level resource keys.
        chunk_size: Job ids per ``sacct`` and per ``scancel`` call, and jobs per remote call
            that submits a batch of jobs.
        submit_parallel: How many ``sbatch`` run at once in the remote call that submits a
            batch of jobs (one worker each).
        sacct_lookback: How far back ``sacct`` looks (``sacct --starttime``; without it
            sacct shows only today's jobs).
        command_timeout: Seconds a Slurm command may take; a timeout is a
            ``TransientError``.
        retrieve_exclude: ``rsync --exclude`` patterns: what is left on the cluster when
            the results come back.
        retry_time_factor: A retry after ``TIMEOUT`` asks for this much more time (rounded
            up to a minute, at most ``max_time``).
        retry_memory_factor: A retry after ``OUT_OF_MEMORY`` asks for this much more memory
            (at most ``max_memory``).
        slurm_conf: ``SLURM_CONF`` for the Slurm commands (local transport: in their
            environment; ssh: exported by the remote shell).
        env_passthrough: Local transport: more of the manager's environment variables
            (names or patterns) that ``sbatch``, and so the batch job, gets, besides
            ``PATH``, ``HOME``, the locale and ``SLURM_CONF``; never an
            ``EFI_JOB_MANAGER_*`` variable (the manager's secrets).
        api: How Slurm is reached: ``commands`` (sbatch, squeue, sacct, scancel through the
            transport) or ``rest`` (Slurm's REST daemon, slurmrestd, at ``rest_url``; the
            transport then only moves files).
        rest_url: slurmrestd: ``http(s)://host:port`` (a token is needed) or
            ``unix:/path`` (its local authentication: jobs run as the daemon's user).
        rest_user: The Slurm user the token belongs to; required with a URL.
        rest_token_env: The environment variable holding the token (as ``scontrol token``
            prints it); never the token itself in this file.
        rest_token_file: A file holding the token, read at each request (renew it in place).
    """

    transport: Annotated[TransportKind, Convert("'local' or 'ssh'", _transport)] = "local"
    host: Annotated[str, Convert(_HOST_EXPECTED, _word)] | None = None
    user: Annotated[str, Convert("a user name", _word)] | None = None
    port: Annotated[int, Check("a port number from 1 to 65535",
                               lambda port: 1 <= port <= 65535)] | None = None
    identity_file: Annotated[str, Convert("a path to a private key file", _path)] | None = None
    known_hosts: Annotated[str, Convert("a path to a known_hosts file", _path)] | None = None
    ssh_config: Annotated[str, Convert("a path to an ssh client config file", _path)] | None = (
        None)
    strict_host_key_checking: Annotated[bool | str, Convert(
        "true, false, or one of 'yes', 'no', 'accept-new'", _strict)] = True
    env: Annotated[Mapping[str, str], Convert(_ENV_EXPECTED, _environment)] = attrs.field(
        factory=dict)
    env_setup: Annotated[str | None, Convert(
        "a shell line run before every Slurm command and in the batch script",
        _env_setup)] = None
    remote_dir: Annotated[str, Convert(_REMOTE_DIR_EXPECTED, _remote_dir)] | None = None
    remote_dir_mount: Annotated[str, Convert(
        "the absolute path at which this host sees remote_dir", _remote_dir)] | None = None
    profiles: Annotated[Mapping[str, Profile], Check(_PROFILES_EXPECTED)] = attrs.field(
        factory=dict)
    chunk_size: Annotated[int, at_least(
        1, "a whole number of job ids per sacct call, at least 1")] = DEFAULT_CHUNK_SIZE
    submit_parallel: Annotated[int, at_least(
        1, "a whole number of sbatch run at once, at least 1")] = DEFAULT_SUBMIT_PARALLEL
    sacct_lookback: Annotated[float, duration(
        positive=True, expected='a duration > 0 (how far back sacct looks): seconds, or a '
        'string such as "30d", "12h"')] = DEFAULT_SACCT_LOOKBACK
    command_timeout: Annotated[float, duration(
        positive=True, expected='a duration > 0: seconds, or a string such as "30s", "2m"')] = (
        DEFAULT_COMMAND_TIMEOUT)
    retrieve_exclude: Annotated[tuple[Pattern, ...], Check(
        "a list of rsync --exclude patterns (strings)")] = DEFAULT_RETRIEVE_EXCLUDE
    retry_time_factor: Factor = DEFAULT_RETRY_FACTOR
    retry_memory_factor: Factor = DEFAULT_RETRY_FACTOR
    slurm_conf: Annotated[str, Convert(
        "a path to slurm.conf (SLURM_CONF for the Slurm commands)", _path)] | None = None
    env_passthrough: Annotated[tuple[Pattern, ...], Check(
        "a list of environment variable names or patterns the local transport passes on "
        "(besides PATH, HOME, locale and SLURM_CONF)")] = ()
    api: Annotated[ApiKind, Convert("'commands' or 'rest'", _api)] = "commands"
    rest_url: Annotated[str, Convert(_REST_URL_EXPECTED, _rest_url)] | None = None
    rest_user: Annotated[str, Convert("the Slurm user the token is for", _word)] | None = None
    rest_token_env: Annotated[str, Convert(
        "the name of an environment variable holding the token", _env_name)] | None = None
    rest_token_file: Annotated[str, Convert(
        "a path to a file holding the token", _path)] | None = None

    def __attrs_post_init__(self) -> None:
        """Check the settings that go together.

        The ssh transport needs ``host`` and ``remote_dir``; the local one takes no ssh key;
        the REST API needs its URL, and a user and one token source for a URL.
        """
        self._check_rest()
        self._check_mount()
        if self.transport != "ssh":
            ignored = [Invalid("nothing with transport 'local', which runs Slurm's commands on "
                               "this host: set transport = \"ssh\" to run them over SSH",
                               getattr(self, key), key=key)
                       for key in _SSH_ONLY if getattr(self, key) is not None]
            if ignored:
                raise ExceptionGroup("ssh settings with the local transport", ignored)
            return
        missing = [Invalid(expected, key=key) for key, expected in (
            ("host", _HOST_EXPECTED), ("remote_dir", _REMOTE_DIR_EXPECTED))
            if getattr(self, key) is None]
        if missing:
            raise ExceptionGroup("the ssh transport needs host and remote_dir", missing)

    def _check_mount(self) -> None:
        if self.remote_dir_mount is None:
            return
        if self.transport != "local":
            why = ("nothing with transport 'ssh', which copies files over SSH: a mount is for "
                   "a file system this host shares with the cluster")
        elif self.remote_dir is None:
            why = "nothing without remote_dir (the same directory as the cluster's nodes see it)"
        else:
            return
        raise ExceptionGroup("remote_dir_mount", [
            Invalid(why, self.remote_dir_mount, key="remote_dir_mount")])

    def _check_rest(self) -> None:
        keys = ("rest_url", "rest_user", "rest_token_env", "rest_token_file")
        if self.api != "rest":
            ignored = [Invalid("nothing with api 'commands': set api = \"rest\" to reach Slurm "
                               "through slurmrestd", getattr(self, key), key=key)
                       for key in keys if getattr(self, key) is not None]
            if ignored:
                raise ExceptionGroup("REST settings without api 'rest'", ignored)
            return
        problems = []
        if self.rest_url is None:
            problems.append(Invalid(_REST_URL_EXPECTED, key="rest_url"))
        elif not self.rest_url.startswith("unix:"):
            if self.rest_user is None:
                problems.append(Invalid("the Slurm user the token is for (a URL needs a token)",
                                        key="rest_user"))
            if self.rest_token_env is None and self.rest_token_file is None:
                problems.append(Invalid("rest_token_env or rest_token_file (a URL needs a "
                                        "token)", key="rest_token_file"))
            elif self.rest_token_env is not None and self.rest_token_file is not None:
                problems.append(Invalid("rest_token_env or rest_token_file, not both",
                                        self.rest_token_file, key="rest_token_file"))
        if problems:
            raise ExceptionGroup("the REST API's settings", problems)

    @property
    def defaults(self) -> Profile:
        """The top level's resource requests: what every job asks for unless a profile says."""
        return Profile(**{f.name: getattr(self, f.name) for f in attrs.fields(Profile)})

    def profile_for(self, pipeline: str, job_type: str) -> Profile:
        """The defaults, then the profile of ``pipeline``, then the profile of ``job_type``."""
        profile = self.defaults
        for name in (pipeline, job_type):
            if name and name in self.profiles:
                profile = self.profiles[name].over(profile)
        return profile


SETTING_KEYS: Mapping[str, str] = describe(SlurmSettings)
"""Every top-level key, with what it expects."""


def parse_settings(config: Mapping[str, Any] | None) -> SlurmSettings:
    """Validate a destination's ``settings`` table and return the `SlurmSettings`.

    Keys set to ``None`` count as not set.

    Raises:
        ConfigError: (a `ValueError`) with every unknown key, value of the wrong type or out
            of range, and missing ``host``/``remote_dir`` for the ssh transport; each message
            names the key, the value and what was expected.
    """
    values = {key: value for key, value in (config or {}).items() if value is not None}
    return structure_settings(SlurmSettings, values, where=WHERE)
