"""The ``EFI_JOB_MANAGER_*`` overlay: environment variables over the file's table.

``EFI_JOB_MANAGER_<SECTION>__<KEY>`` sets one key: a double underscore separates levels,
names match existing keys ignoring case (new keys are lower case). The value is kept as
`FromEnv` text; the engine reads it as the key's type, and remembers which variable set
which key so that messages name the variable instead of the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from efi_job_manager.config.errors import KeyPath, Problem, dotted
from efi_job_manager.config.values import FromEnv

__all__ = ["CONFIG_ENV", "ENV_PREFIX", "env_hint", "overlay"]

ENV_PREFIX: Final = "EFI_JOB_MANAGER_"
"""The prefix of every environment override."""

CONFIG_ENV: Final = "EFI_JOB_MANAGER_CONFIG"
"""The environment variable naming the configuration file."""


def _match_key(node: Mapping[str, Any], key: str) -> str:
    """The existing key of ``node`` equal to ``key`` ignoring case, else ``key``."""
    if key in node:
        return key
    return next((existing for existing in node if existing.lower() == key), key)


def overlay(
    raw: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[KeyPath, str], list[Problem]]:
    """Put every ``EFI_JOB_MANAGER_*`` variable's value into ``raw`` (changed in place).

    Returns:
        Key path → the variable that set it; and the variables that cannot be placed.
    """
    sources: dict[KeyPath, str] = {}
    problems: list[Problem] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        parts = [part.lower() for part in name[len(ENV_PREFIX):].split("__")]
        if not all(parts):
            problems.append(Problem.note(
                f"malformed name: expected {ENV_PREFIX}<SECTION>__<KEY>, levels separated by "
                "a double underscore", where=name))
            continue
        node = raw
        path: list[str] = []
        for part in parts[:-1]:
            key = _match_key(node, part)
            path.append(key)
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                problems.append(Problem.note(
                    f"{dotted(path)} is not a table, so it has no key {parts[-1]}", where=name))
                break
            node = child
        else:
            key = _match_key(node, parts[-1])
            node[key] = FromEnv(environ[name])
            sources[(*path, key)] = name
    return sources, problems


def env_hint(key: KeyPath, known: Sequence[str], variable: str | None) -> str | None:
    """The hint for a top-level key set by a variable with one underscore too few."""
    if variable is None or len(key) != 1:
        return None
    name = str(key[0])
    hint = None
    for section in known:
        if name.startswith(section + "_"):
            right = f"{ENV_PREFIX}{section.upper()}__{name[len(section) + 1:].upper()}"
            hint = f"separate levels with a double underscore: {right}"
    return hint
