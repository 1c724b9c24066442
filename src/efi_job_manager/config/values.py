"""Kinds of setting values: rules to put in ``Annotated`` types, and the common types.

A settings class declares each key once, with its type; a rule in ``Annotated`` says how the
raw value is read (`Convert`) and what it must be (`Check`), with the words for "expected":

    cpus: Annotated[int, Check("a whole number of CPUs, at least 1", lambda n: n >= 1)] = 1
    timeout: PositiveDuration = 60.0   # "5s", "1h30m" or a number of seconds

A value from the environment arrives as `FromEnv` text: the rules and the engine's hooks
read numbers, booleans, lists and tables from text only then (a TOML file has types).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shlex
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import attrs

from efi_job_manager.config.errors import Invalid
from efi_job_manager.sharing import parse_mode
from efi_job_manager.units import (
    DURATION_EXPECTED,
    MEMORY_EXPECTED,
    QUEUE_EXPECTED,
    TIME_LIMIT_EXPECTED,
    check_queue,
    format_duration,
    parse_duration,
    parse_memory,
    parse_time_limit,
)

__all__ = [
    "DURATION_EXPECTED",
    "SECRET",
    "Check",
    "CommaList",
    "Command",
    "Convert",
    "Count",
    "Duration",
    "FileMode",
    "FreeForm",
    "FromEnv",
    "MemorySize",
    "PositiveDuration",
    "PositiveNumber",
    "QueueName",
    "ResolvedPath",
    "Secret",
    "Text",
    "TimeLimit",
    "at_least",
    "duration",
    "parse_duration",
    "parse_env_value",
    "relative_to",
]


class FromEnv(str):
    """Text that came from an environment variable (only then is text read as a number…)."""

    __slots__ = ()


@attrs.frozen
class Check:
    """A rule: the value, read as the base type, must pass ``test`` (if given).

    Attributes:
        expected: What the key takes, for messages (``"an integer >= 1"``).
        test: Returns whether a value is good; ``None`` only names what is expected.
    """

    expected: str
    test: Callable[[Any], bool] | None = None


@attrs.frozen
class Convert:
    """A rule: ``read`` turns the raw value into the setting (instead of the base type).

    ``read`` raises `Invalid` (with its own "expected"), or `ValueError`/`TypeError`, which
    become "expected `expected`".

    Attributes:
        expected: What the key takes, for messages.
        read: The raw value → the setting.
        write: The setting → a value ``read`` takes back, as an operator would write it
            (the settings reference shows defaults so: ``"30s"``); ``None``: as it is.
    """

    expected: str
    read: Callable[[Any], Any]
    write: Callable[[Any], Any] | None = None


@attrs.frozen
class _Marker:
    name: str


SECRET: Final = _Marker("secret")
"""Marks a type as secret in ``Annotated``: its value is shown as ``***`` in messages."""


def at_least(minimum: int, expected: str | None = None) -> Check:
    """A rule: an integer (or number) not below ``minimum``."""
    return Check(expected or f"an integer >= {minimum}", lambda n: n >= minimum)


# --------------------------------------------------------------------------- text from env


def parse_env_value(text: str) -> Any:
    """A TOML value if ``text`` is one (``42``, ``true``, ``"x"``), else ``text`` itself."""
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return str(text)
    return parsed["v"] if parsed.keys() == {"v"} else str(text)


def _plain(value: Any) -> Any:
    """``value`` with text from the environment read as TOML, all the way down."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, FromEnv):
        return parse_env_value(value)
    return value


def _freeform(value: Any) -> dict[str, Any]:
    table = _plain(value)
    if not isinstance(table, dict):
        raise Invalid("a table", value)
    return table


FreeForm = Annotated[Mapping[str, Any], Convert("a table", _freeform)]
"""A free-form table (a connector's ``settings``, pipeline ``params``), kept as written."""

Text = Annotated[str, Check("a non-empty string", lambda text: bool(text.strip()))]
"""A string that is not blank."""

Secret = Annotated[str, SECRET]
"""A password or token: any string, never shown."""

Count = Annotated[int, at_least(1)]
"""A whole number, at least 1."""

PositiveNumber = Annotated[float, Check("a number > 0", lambda number: number > 0)]
"""A number (an integer is taken too) more than zero."""


def _string_list(split: Callable[[str], list[str]]) -> Callable[[Any], tuple[str, ...]]:
    def read(value: Any) -> tuple[str, ...]:
        items = value
        if isinstance(value, FromEnv):
            parsed = parse_env_value(value)
            items = parsed if isinstance(parsed, list) else split(value)
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise ValueError(value)
        return tuple(str(item) for item in items)

    return read


def _comma_split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _command(value: Any) -> tuple[str, ...]:
    command = _string_list(shlex.split)(value)
    if not command:
        raise ValueError(value)
    return command


CommaList = Annotated[tuple[str, ...], Convert("a list of non-empty strings",
                                               _string_list(_comma_split))]
"""A list of strings; from the environment a TOML array or comma-separated text."""

Command = Annotated[tuple[str, ...], Convert(
    "a non-empty list of non-empty strings (the command's arguments)", _command)]
"""A command's arguments; from the environment a TOML array or a shell-quoted line."""

# --------------------------------------------------------------------------- durations

def duration(*, positive: bool = False, minimum: float = 0.0, why: str = "",
             expected: str | None = None) -> Convert:
    """A rule: a duration (`parse_duration`), > 0 if ``positive``, at least ``minimum`` s.

    Its `Convert.write` is `format_duration` (``"1h30m"``).

    Args:
        positive: Refuse zero.
        minimum: The shortest duration taken, in seconds.
        why: Said after the minimum in messages (``"a shorter one …"``).
        expected: What the key takes, for a value that is no duration at all; ``None``:
            `DURATION_EXPECTED`, with the minimum or "> 0" said.
    """
    bound = f" of at least {minimum:g} s" if minimum > 0 else " > 0" if positive else ""
    words = expected or DURATION_EXPECTED.replace("a duration", f"a duration{bound}", 1)

    def read(value: Any) -> float:
        try:
            seconds = parse_duration(value)
        except (TypeError, ValueError):
            raise Invalid(words, value) from None
        if positive and seconds <= 0:
            raise Invalid("a duration > 0", value)
        if seconds < minimum:
            reason = f" ({why})" if why else ""
            raise Invalid(f"a duration of at least {minimum:g} s{reason}", value)
        return seconds

    return Convert(words, read, format_duration)


Duration = Annotated[float, duration()]
"""Seconds, not negative: a number or a string such as ``"500ms"``, ``"5m"``, ``"1h30m"``."""

PositiveDuration = Annotated[float, duration(positive=True)]
"""Seconds, more than zero (see `Duration`)."""

# --------------------------------------------------------------------------- paths

_BASE_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "efi_job_manager_settings_base_dir", default=None)


@contextlib.contextmanager
def relative_to(base_dir: Path | None) -> Iterator[None]:
    """Resolve `ResolvedPath` values of a file against ``base_dir`` within the block."""
    token = _BASE_DIR.set(base_dir)
    try:
        yield
    finally:
        _BASE_DIR.reset(token)


def resolve_path(value: Any, *, from_env: bool | None = None) -> Path:
    """Return ``value`` as an absolute path.

    A relative path from a file is resolved against the file's folder (see `relative_to`),
    one from the environment (or read with no file) against the current directory.
    """
    env = isinstance(value, FromEnv) if from_env is None else from_env
    base = _BASE_DIR.get()
    if env or base is None:
        base = Path(os.path.abspath(os.curdir))
    return Path(os.path.abspath(base / Path(value).expanduser()))


def _path(value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(value)
    return resolve_path(value)


ResolvedPath = Annotated[Path, Convert("a path (a non-empty string)", _path)]
"""A local path, made absolute (relative to the file that gave it, or the current folder)."""


def _file_mode(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(value)
    return parse_mode(value)


FILE_MODE_EXPECTED: Final = ('an octal file mode such as "0640" (permission bits only, the '
                             'owner reading)')
FileMode = Annotated[int, Convert(FILE_MODE_EXPECTED, _file_mode)]
"""Permission bits, from an octal string: ``"0640"``."""


# --------------------------------------------------------------------------- resource values


TimeLimit = Annotated[float, Convert(TIME_LIMIT_EXPECTED, parse_time_limit)]
"""Seconds, more than zero: ``"2h"``, ``"1h30m"``, ``7200`` or ``"24:00:00"``, ``"1-12"``."""

MemorySize = Annotated[int, Convert(MEMORY_EXPECTED, parse_memory)]
"""MiB: an integer, or ``"32G"``, ``"500M"``, ``"32GB"``."""

QueueName = Annotated[str, Convert(QUEUE_EXPECTED, check_queue)]
"""A partition or queue name, or a comma list of them (see `check_queue`)."""
