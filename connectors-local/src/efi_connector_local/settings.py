"""The local connector's settings: a destination's ``settings`` table, declared once.

`LocalSettings` declares every key with its type and what it takes; `parse_config` reads
the table with the core's settings engine (`structure_settings`). Every key is optional.
Every unknown key ("did you mean …") and wrong value is reported at once in one
`ConfigError` (a `ValueError`) naming the key (dotted inside ``env``: ``env.PATH``), the
value and what was expected; ``kill_grace`` takes the core's durations (``"5s"``). What each
key means is said once, in `LocalSettings`' docstring; the settings reference
(``docs/settings.md``) is generated from it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import attrs

from efi_job_manager.toolkit import (
    Check,
    Convert,
    Invalid,
    describe,
    documented_default,
    duration,
    structure_settings,
)

__all__ = [
    "DEFAULT_KILL_GRACE",
    "SETTING_KEYS",
    "WHERE",
    "LocalSettings",
    "default_state_dir",
    "parse_config",
]

DEFAULT_KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL when cancelling, unless ``kill_grace`` says."""

WHERE: Final = "local connector settings"
"""How messages name the table when no file is known (the core names the file instead)."""

_ENV_EXPECTED = "a table of environment variable names to strings"
_ENV_NAME_EXPECTED = "an environment variable name as the key (not empty, without '=' or NUL)"
_ENV_VALUE_EXPECTED = "a string without NUL characters"


def default_state_dir() -> Path:
    """Return ``$XDG_STATE_HOME/efi-connector-local``, or ``~/.local/state/efi-connector-local``.

    ``XDG_STATE_HOME`` is used only when it is set to an absolute path, as the XDG
    specification asks.
    """
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "efi-connector-local"


# -- how values are read ------------------------------------------------------------------------


def _text_or_path(value: Any) -> str:
    """A non-empty string or path-like, as a string."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ValueError(value)
    return value


def _state_dir(value: Any) -> Path:
    return Path(_text_or_path(value)).expanduser()


def _environment(value: Any) -> dict[str, str]:
    """The ``env`` table, each wrong name or value reported under its own key."""
    if not isinstance(value, Mapping):
        raise Invalid(_ENV_EXPECTED, value)
    wrong: list[Invalid] = []
    for name, text in value.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            wrong.append(Invalid(_ENV_NAME_EXPECTED, text, key=str(name)))
        elif not isinstance(text, str) or "\0" in text:
            wrong.append(Invalid(_ENV_VALUE_EXPECTED, text, key=name))
    if wrong:
        raise ExceptionGroup("wrong environment variables", wrong)
    return dict(value)


Pattern = Annotated[str, Check("a non-empty string", bool)]


# -- the settings -------------------------------------------------------------------------------


@attrs.frozen
class LocalSettings:
    """The validated settings of one `LocalConnector`.

    Every key is optional.

    Attributes:
        state_dir: Where the connector keeps its records (``~`` expanded); every manager
            and connector on the host using the same directory sees the same jobs.
        kill_grace: Time between SIGTERM and SIGKILL when cancelling.
        python: The interpreter that runs the wrapper; it must be able to import
            ``efi_connector_local``.
        env: Extra environment variables for the jobs (names to strings).
        env_passthrough: More of the manager's variables the jobs get (names or shell
            patterns such as ``CONDA_*``); never an ``EFI_JOB_MANAGER_*`` variable.
    """

    state_dir: Annotated[Path, Convert(
        "a path (a non-empty string): where the connector keeps its records",
        _state_dir)] = attrs.field(factory=default_state_dir, metadata=documented_default(
            "``$XDG_STATE_HOME/efi-connector-local`` (an absolute ``XDG_STATE_HOME``), "
            "else ``~/.local/state/efi-connector-local``"))
    kill_grace: Annotated[float, duration(
        expected='a duration >= 0 (between SIGTERM and SIGKILL): seconds, or a string such '
        'as "5s", "1m"')] = DEFAULT_KILL_GRACE
    python: Annotated[str, Convert(
        "a path or command name of a Python interpreter (a non-empty string)",
        _text_or_path)] = attrs.field(factory=lambda: sys.executable, metadata=(
            documented_default("the interpreter running the manager (``sys.executable``)")))
    env: Annotated[Mapping[str, str], Convert(_ENV_EXPECTED, _environment)] = attrs.field(
        factory=dict)
    env_passthrough: Annotated[tuple[Pattern, ...], Check(
        "a list of environment variable names or patterns passed on to jobs")] = ()


SETTING_KEYS: Mapping[str, str] = describe(LocalSettings)
"""Every key, with what it expects."""


def parse_config(config: Mapping[str, Any] | None) -> LocalSettings:
    """Validate a destination's ``settings`` table and return the `LocalSettings`.

    Keys set to ``None`` count as not set (their defaults apply).

    Raises:
        ConfigError: (a `ValueError`) with every unknown key and every value of the wrong
            type or out of range; each message names the key, the value and what was
            expected.
    """
    values = {key: value for key, value in (config or {}).items() if value is not None}
    return structure_settings(LocalSettings, values, where=WHERE)
