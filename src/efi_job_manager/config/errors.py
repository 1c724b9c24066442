"""What a configuration error is made of: `Problem`s, gathered in one `ConfigError`.

A `Problem` keeps its parts (where, dotted key, value, what was expected) rather than a
finished sentence, so the core can place a connector's problems under the destination's
key in the file (`Problem.within`) and every message keeps one shape::

    efi-job-manager.toml: manager.max_running_jobs = "ten": expected an integer >= 1
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

import attrs

__all__ = ["ConfigError", "Invalid", "KeyPath", "Problem", "dotted"]

KeyPath = tuple[str | int, ...]
"""A key's place: table keys, and list indices as integers (``("extra_sbatch", 0)``)."""

_BARE: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

_NO_VALUE: Final[Any] = object()


def dotted(key: Iterable[str | int]) -> str:
    """Return a key path as written in messages: ``a.b."odd key"[0]``."""
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if part and set(part) <= _BARE else json.dumps(part, ensure_ascii=False)
        text += f".{name}" if text else name
    return text


@attrs.frozen
class Problem:
    """One wrong setting: where it came from, its key, and what is wrong with it.

    Attributes:
        key: The key's path (``("manager", "interval")``); ``()`` for the whole source.
        kind: ``invalid`` (a wrong value), ``missing`` (a required key), ``unknown`` (a key
            that names nothing) or ``note`` (any other sentence, in `text`).
        where: The file or environment variable it came from; ``None`` if not known yet.
        value: The offending value as shown (JSON, secrets already ``***``).
        expected: What the key takes.
        known: For ``unknown``: the keys that exist there.
        hint: For ``unknown``: a hint that replaces "did you mean …".
        noun: For ``unknown``: what the key is (``key``, ``job type``).
        text: For ``note``: the sentence.
    """

    key: KeyPath
    kind: Literal["invalid", "missing", "unknown", "note"]
    where: str | None = None
    value: str = ""
    expected: str = ""
    known: tuple[str, ...] = ()
    hint: str | None = None
    noun: str = "key"
    text: str = ""

    @classmethod
    def note(cls, text: str, key: KeyPath = (), where: str | None = None) -> Problem:
        """A problem told in a sentence of its own (about ``key``, if given)."""
        return cls(key, "note", where, text=text)

    def within(self, where: str, prefix: Sequence[str | int] = ()) -> Problem:
        """This problem placed under ``prefix`` in ``where`` (a file or variable)."""
        return attrs.evolve(self, key=(*prefix, *self.key), where=where)

    @property
    def message(self) -> str:
        """The problem as one line: ``<where>: <key> …``."""
        key = dotted(self.key)
        if self.kind == "invalid":
            body = f"{key} = " if key else ""
            body += f"{self.value}: expected {self.expected}"
        elif self.kind == "missing":
            body = f"{key} is required but missing"
            body += f": expected {self.expected}" if self.expected else ""
        elif self.kind == "unknown":
            body = f"unknown {self.noun} {key}{self._hint()}; known {self.noun}s: "
            body += ", ".join(sorted(self.known)) or "none"
        else:
            body = f"{key}: {self.text}" if key else self.text
        return f"{self.where}: {body}" if self.where else body

    def _hint(self) -> str:
        if self.hint is not None:
            return f" ({self.hint})"
        name = self.key[-1] if self.key else ""
        close = difflib.get_close_matches(str(name), self.known, n=1)
        return f" (did you mean {dotted((*self.key[:-1], close[0]))}?)" if close else ""


class ConfigError(ValueError):
    """The configuration is wrong: every problem found, one message a line.

    Each message names where the value came from (the file's path or the environment
    variable), the dotted key, the offending value (``***`` for secrets) and what was
    expected, e.g. ``efi-job-manager.toml: manager.max_running_jobs = "ten": expected an
    integer >= 1``.

    Attributes:
        problems: The problems, in the order they were found.
    """

    def __init__(self, *problems: Problem | str) -> None:
        self.problems: tuple[Problem, ...] = tuple(
            p if isinstance(p, Problem) else Problem.note(p) for p in problems)
        super().__init__("\n".join(self.messages))

    @property
    def messages(self) -> list[str]:
        """One line per problem."""
        return [problem.message for problem in self.problems]


class Invalid(ValueError):
    """A value a settings type refuses (raised by value rules and settings classes' checks).

    The engine turns it into a `Problem` at the key being read, or at ``key`` below it when
    given (a check across keys names the key it blames).

    Args:
        expected: What the key takes.
        value: The offending value; leave it out for a required key that is missing.
        key: The key (below the one being read) this is about.
        shown: How to show the value instead of as JSON (a masked URL, ``***``).
    """

    def __init__(self, expected: str, value: Any = _NO_VALUE, *, key: str | int | None = None,
                 shown: str | None = None) -> None:
        self.expected = expected
        self.value = value
        self.key = key
        self.shown = shown
        super().__init__(f"expected {expected}")

    @property
    def missing(self) -> bool:
        """Whether the key has no value at all."""
        return self.value is _NO_VALUE
