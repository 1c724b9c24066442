"""The local connector's settings: its section of the manager's configuration, checked.

Every key is optional; an unknown key or a value of the wrong type is a `ValueError`
that names the key, the value and what was expected. The manual of each key is
`efi_connector_local.connector.LocalConnector` and ``connectors-local/README.md``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = ["CONFIG_KEYS", "LocalSettings", "default_state_dir", "parse_config"]

#: Each setting the connector takes → what its value must be (said in error messages).
CONFIG_KEYS = {
    "state_dir": "a path (string)",
    "kill_grace": "a number of seconds >= 0",
    "python": "a path or command name of a Python interpreter (string)",
    "env": "a table of environment variable names to string values",
    "env_passthrough": "a list of environment variable names or patterns passed on to jobs",
}


def default_state_dir() -> Path:
    """Return ``$XDG_STATE_HOME/efi-connector-local``, or ``~/.local/state/efi-connector-local``.

    ``XDG_STATE_HOME`` is used only when it is set to an absolute path, as the XDG
    specification asks.
    """
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "efi-connector-local"


@attrs.frozen
class LocalSettings:
    """The checked settings of one `LocalConnector`, defaults filled in (see `parse_config`)."""

    state_dir: Path
    kill_grace: float
    python: str
    env: Mapping[str, str]
    env_passthrough: tuple[str, ...]


def _bad(key: str, value: object) -> ValueError:
    return ValueError(
        f"invalid local connector setting {key!r}: {value!r} (expected {CONFIG_KEYS[key]})"
    )


def parse_config(config: Mapping[str, Any]) -> LocalSettings:
    """Check a connector's configuration and fill in the defaults.

    Raises:
        ValueError: a key is unknown or a value has the wrong type; the message names
            the key, the value and what was expected.
    """
    unknown = sorted(str(k) for k in config if k not in CONFIG_KEYS)
    if unknown:
        raise ValueError(
            f"unknown local connector setting(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(CONFIG_KEYS))})"
        )

    state_dir = config.get("state_dir")
    if state_dir is None:
        state_path = default_state_dir()
    elif isinstance(state_dir, str | os.PathLike) and os.fspath(state_dir):
        state_path = Path(state_dir).expanduser()
    else:
        raise _bad("state_dir", state_dir)

    grace = config.get("kill_grace", 5)
    if isinstance(grace, bool) or not isinstance(grace, int | float):
        raise _bad("kill_grace", grace)
    if not math.isfinite(grace) or grace < 0:
        raise _bad("kill_grace", grace)

    python = config.get("python", sys.executable)
    if not isinstance(python, str | os.PathLike) or not os.fspath(python):
        raise _bad("python", python)

    env = config.get("env", {})
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str)
        and k
        and "=" not in k
        and "\0" not in k
        and isinstance(v, str)
        and "\0" not in v
        for k, v in env.items()
    ):
        raise _bad("env", env)

    passthrough = config.get("env_passthrough", [])
    if isinstance(passthrough, str) or not isinstance(passthrough, list | tuple) or not all(
        isinstance(p, str) and p for p in passthrough
    ):
        raise _bad("env_passthrough", passthrough)

    return LocalSettings(
        state_dir=state_path, kill_grace=float(grace), python=os.fspath(python), env=dict(env),
        env_passthrough=tuple(passthrough),
    )
