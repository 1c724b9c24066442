"""The Slurm connector's settings: a destination's ``settings`` table, validated (pure).

`parse_settings` turns the mapping into a `SlurmSettings`; an unknown key or a value of the
wrong type raises `ValueError` naming the key (dotted for profiles: ``profiles.est.memory``),
the value and what was expected. Nothing here contacts the cluster.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from efi_connector_slurm.units import parse_memory, parse_time

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_COMMAND_TIMEOUT",
    "DEFAULT_RETRIEVE_EXCLUDE",
    "DEFAULT_SACCT_LOOKBACK",
    "FORBIDDEN_SBATCH_OPTIONS",
    "PROFILE_KEYS",
    "SETTING_KEYS",
    "Profile",
    "SlurmSettings",
    "check_sbatch_line",
    "parse_settings",
]

DEFAULT_CHUNK_SIZE = 500
DEFAULT_SACCT_LOOKBACK = 30 * 86400.0
DEFAULT_COMMAND_TIMEOUT = 60.0
DEFAULT_RETRIEVE_EXCLUDE: tuple[str, ...] = ("work/",)
DEFAULT_RETRY_FACTOR = 2.0

#: ``#SBATCH`` options the connector sets itself: an ``extra_sbatch`` line may not change them
#: (the job name is how a lost submission is found again; the output files and the working
#: directory are where the results and the memory-kill messages are looked for).
FORBIDDEN_SBATCH_OPTIONS = ("--job-name", "--output", "--error", "--chdir", "--wrap", "--parsable")

TransportKind = Literal["local", "ssh"]

_WORD = re.compile(r"[^\s,'\"\\;|&$`<>()]+(?:,[^\s,'\"\\;|&$`<>()]+)*")

#: The keys of a profile (and of the top level's resource defaults), with what they expect.
PROFILE_KEYS: Mapping[str, str] = {
    "partition": "a Slurm partition name (or a comma list), e.g. 'efi'",
    "account": "a Slurm account name",
    "qos": "a Slurm QOS name",
    "time": "a Slurm time limit: minutes as an integer, or 'MM', 'HH:MM:SS', 'D-HH:MM'…",
    "memory": "a Slurm memory size: MiB as an integer, or '32G', '500M'…",
    "cpus": "a whole number of CPUs per task, at least 1",
    "extra_sbatch": "a list of single-line '#SBATCH' options, each starting with '--'",
    "max_time": "a Slurm time limit (the most a retry after TIMEOUT may ask for)",
    "max_memory": "a Slurm memory size (the most a retry after OUT_OF_MEMORY may ask for)",
}

#: Every top-level key, with what it expects.
SETTING_KEYS: Mapping[str, str] = {
    "transport": "'local' or 'ssh'",
    "host": "a host name or ssh config alias (required for transport 'ssh')",
    "user": "a user name",
    "port": "a port number from 1 to 65535",
    "identity_file": "a path to a private key file",
    "known_hosts": "a path to a known_hosts file",
    "ssh_config": "a path to an ssh client config file",
    "strict_host_key_checking": "true, false, or one of 'yes', 'no', 'accept-new'",
    "env_setup": "a shell line run before every Slurm command and in the batch script",
    "remote_dir": "an absolute path on the cluster side (required for transport 'ssh')",
    **PROFILE_KEYS,
    "profiles": "a table of profiles by pipeline short name or job_type, each with the keys "
    + ", ".join(PROFILE_KEYS),
    "chunk_size": "a whole number of job ids per sacct call, at least 1",
    "sacct_lookback": "a number of seconds > 0 (how far back sacct looks)",
    "command_timeout": "a number of seconds > 0",
    "retrieve_exclude": "a list of rsync --exclude patterns (strings)",
    "retry_time_factor": "a number >= 1",
    "retry_memory_factor": "a number >= 1",
    "slurm_conf": "a path to slurm.conf (SLURM_CONF for the local transport)",
    "env_passthrough": "a list of environment variable names or patterns the local "
                       "transport passes on (besides PATH, HOME, locale and SLURM_CONF)",
}


@attrs.frozen
class Profile:
    """Resource requests: the top-level defaults, or one entry of ``profiles``.

    A field that is None is not set here (a lower layer's value, or Slurm's default, applies).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    memory: str | None = None
    cpus: int | None = None
    extra_sbatch: tuple[str, ...] = ()
    max_time: str | None = None
    max_memory: str | None = None

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


@attrs.frozen
class SlurmSettings:
    """The validated settings of one Slurm destination (see the README for each key)."""

    transport: TransportKind = "local"
    host: str | None = None
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    strict_host_key_checking: bool | str = True
    env_setup: str | None = None
    remote_dir: str | None = None
    defaults: Profile = Profile()
    profiles: Mapping[str, Profile] = attrs.field(factory=dict)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    sacct_lookback: float = DEFAULT_SACCT_LOOKBACK
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    retrieve_exclude: tuple[str, ...] = DEFAULT_RETRIEVE_EXCLUDE
    retry_time_factor: float = DEFAULT_RETRY_FACTOR
    retry_memory_factor: float = DEFAULT_RETRY_FACTOR
    slurm_conf: str | None = None
    env_passthrough: tuple[str, ...] = ()

    def profile_for(self, pipeline: str, job_type: str) -> Profile:
        """The defaults, then the profile of ``pipeline``, then the profile of ``job_type``."""
        profile = self.defaults
        for name in (pipeline, job_type):
            if name and name in self.profiles:
                profile = self.profiles[name].over(profile)
        return profile


# -- validation ---------------------------------------------------------------------------------


def _bad(key: str, value: object, expected: str) -> ValueError:
    return ValueError(
        f"invalid slurm connector setting {key!r}: {value!r} (expected {expected})"
    )


def _string(key: str, value: object, expected: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise _bad(key, value, expected)
    return value


def _path(key: str, value: object, expected: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = _string(key, value, expected)
    if "\n" in text:
        raise _bad(key, value, expected)
    return text


def _word(key: str, value: object, expected: str) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value) or value.startswith("-"):
        raise _bad(key, value, expected)
    return value


def _number(key: str, value: object, expected: str, minimum: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, value, expected)
    number = float(value)
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        raise _bad(key, value, expected)
    return number


def _integer(key: str, value: object, expected: str, minimum: int, maximum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, value, expected)
    if value < minimum or (maximum is not None and value > maximum):
        raise _bad(key, value, expected)
    return value


def _time(key: str, value: object, expected: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(key, value, expected)
    try:
        parse_time(value)
    except ValueError:
        raise _bad(key, value, expected) from None
    return str(value).strip()


def _memory(key: str, value: object, expected: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(key, value, expected)
    try:
        parse_memory(value)
    except ValueError:
        raise _bad(key, value, expected) from None
    return str(value).strip()


def check_sbatch_line(key: str, line: object) -> str:
    """Return ``line`` if it can be one ``#SBATCH`` option line of the batch script.

    Raises:
        ValueError: not a string, more than one line, not starting with ``--``, or one of
            the options the connector sets itself (`FORBIDDEN_SBATCH_OPTIONS`).
    """
    expected = PROFILE_KEYS["extra_sbatch"]
    if not isinstance(line, str) or not line.strip():
        raise _bad(key, line, expected)
    text = line.strip()
    if any(c in text for c in "\n\r\0") or not text.startswith("--") or len(text) < 3:
        raise _bad(key, line, expected)
    option = text.split("=", 1)[0].split(None, 1)[0]
    if option in FORBIDDEN_SBATCH_OPTIONS:
        raise _bad(
            key, line, f"an option other than {', '.join(FORBIDDEN_SBATCH_OPTIONS)}, which the "
            "connector sets itself"
        )
    return text


def _sbatch_lines(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _bad(key, value, PROFILE_KEYS["extra_sbatch"])
    return tuple(check_sbatch_line(f"{key}[{i}]", line) for i, line in enumerate(value))


_PROFILE_CHECKS: Mapping[str, Callable[[str, object], object]] = {
    "partition": lambda k, v: _word(k, v, PROFILE_KEYS["partition"]),
    "account": lambda k, v: _word(k, v, PROFILE_KEYS["account"]),
    "qos": lambda k, v: _word(k, v, PROFILE_KEYS["qos"]),
    "time": lambda k, v: _time(k, v, PROFILE_KEYS["time"]),
    "memory": lambda k, v: _memory(k, v, PROFILE_KEYS["memory"]),
    "cpus": lambda k, v: _integer(k, v, PROFILE_KEYS["cpus"], 1, None),
    "extra_sbatch": _sbatch_lines,
    "max_time": lambda k, v: _time(k, v, PROFILE_KEYS["max_time"]),
    "max_memory": lambda k, v: _memory(k, v, PROFILE_KEYS["max_memory"]),
}


def _profile(prefix: str, values: Mapping[str, Any]) -> Profile:
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _PROFILE_CHECKS:
            raise ValueError(
                f"unknown slurm connector setting {prefix + str(key)!r} "
                f"(a profile knows: {', '.join(PROFILE_KEYS)})"
            )
        if value is not None:
            checked[key] = _PROFILE_CHECKS[key](prefix + key, value)
    return Profile(**checked)


def _profiles(value: object) -> dict[str, Profile]:
    if not isinstance(value, Mapping):
        raise _bad("profiles", value, SETTING_KEYS["profiles"])
    profiles: dict[str, Profile] = {}
    for name, entry in value.items():
        if not isinstance(name, str) or not name:
            raise _bad("profiles", value, SETTING_KEYS["profiles"])
        if not isinstance(entry, Mapping):
            raise _bad(
                f"profiles.{name}", entry, "a table with the keys " + ", ".join(PROFILE_KEYS)
            )
        profiles[name] = _profile(f"profiles.{name}.", entry)
    return profiles


def _ssh_values(get: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in ("host", "user"):
        if key in get:
            values[key] = _word(key, get[key], SETTING_KEYS[key])
    if "port" in get:
        values["port"] = _integer("port", get["port"], SETTING_KEYS["port"], 1, 65535)
    for key in ("identity_file", "known_hosts", "ssh_config", "slurm_conf"):
        if key in get:
            values[key] = _path(key, get[key], SETTING_KEYS[key])
    if "strict_host_key_checking" in get:
        strict = get["strict_host_key_checking"]
        if not isinstance(strict, bool) and strict not in ("yes", "no", "accept-new"):
            raise _bad("strict_host_key_checking", strict,
                       SETTING_KEYS["strict_host_key_checking"])
        values["strict_host_key_checking"] = strict
    return values


def parse_settings(config: Mapping[str, Any] | None) -> SlurmSettings:
    """Validate a destination's ``settings`` table and return the `SlurmSettings`.

    Raises:
        ValueError: an unknown key, a value of the wrong type or out of range, or a missing
            ``host``/``remote_dir`` for the ssh transport; the message names the key, the
            value and what was expected.
    """
    config = dict(config or {})
    unknown = sorted(str(k) for k in config if k not in SETTING_KEYS)
    if unknown:
        raise ValueError(
            f"unknown slurm connector setting(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(SETTING_KEYS)})"
        )
    values: dict[str, Any] = {}
    get = {k: v for k, v in config.items() if v is not None}

    kind = get.get("transport", "local")
    if kind not in ("local", "ssh"):
        raise _bad("transport", kind, SETTING_KEYS["transport"])
    values["transport"] = kind
    values.update(_ssh_values(get))
    if "env_setup" in get:
        setup = get["env_setup"]
        if not isinstance(setup, str) or "\0" in setup:
            raise _bad("env_setup", setup, SETTING_KEYS["env_setup"])
        values["env_setup"] = setup.strip() or None
    if "remote_dir" in get:
        remote = _path("remote_dir", get["remote_dir"], SETTING_KEYS["remote_dir"])
        if not remote.startswith("/") or any(c.isspace() or c in "'\"%" for c in remote):
            raise _bad(
                "remote_dir", remote, "an absolute path without spaces, quotes or '%'"
            )
        values["remote_dir"] = remote.rstrip("/") or "/"

    values["defaults"] = _profile("", {k: v for k, v in get.items() if k in PROFILE_KEYS})
    if "profiles" in get:
        values["profiles"] = _profiles(get["profiles"])
    if "chunk_size" in get:
        values["chunk_size"] = _integer(
            "chunk_size", get["chunk_size"], SETTING_KEYS["chunk_size"], 1, None
        )
    for key in ("sacct_lookback", "command_timeout"):
        if key in get:
            values[key] = _number(key, get[key], SETTING_KEYS[key], 0.0, strict=True)
    for key in ("retry_time_factor", "retry_memory_factor"):
        if key in get:
            values[key] = _number(key, get[key], SETTING_KEYS[key], 1.0, strict=False)
    for key in ("retrieve_exclude", "env_passthrough"):
        if key in get:
            patterns = get[key]
            if (
                isinstance(patterns, str)
                or not isinstance(patterns, Sequence)
                or not all(isinstance(p, str) and p and "\n" not in p for p in patterns)
            ):
                raise _bad(key, patterns, SETTING_KEYS[key])
            values[key] = tuple(patterns)

    if kind == "ssh":
        if "host" not in values:
            raise _bad("host", config.get("host"), SETTING_KEYS["host"])
        if "remote_dir" not in values:
            raise _bad("remote_dir", config.get("remote_dir"), SETTING_KEYS["remote_dir"])
    return SlurmSettings(**values)
