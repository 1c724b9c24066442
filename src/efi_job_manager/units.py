"""Time limits, memory sizes and queue names of resource requests: read, write, show (pure).

One set of converters for the core and every connector (`efi_job_manager.toolkit` exports
them), so a size means the same in the site's ``[resources]``, a job directory's note and a
connector's own settings:

* Slurm's ``--time`` forms (`parse_slurm_time`, `format_slurm_time`): ``minutes``,
  ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``, ``days-hours:minutes``,
  ``days-hours:minutes:seconds`` and ``INFINITE``/``UNLIMITED``;
* memory sizes (`parse_memory`, `format_memory`): MiB as an integer, or an integer with a
  unit ``K``, ``M`` (the default), ``G`` or ``T``, optionally followed by ``B`` (``32GB``);
  decimals are refused, as sbatch refuses them (``1.5G``);
* a site's time limits (`parse_time_limit`): a duration (``"2h"``, ``"1h30m"``, seconds) or
  a Slurm time with ``:`` or ``-`` (``"24:00:00"``, ``"1-12"``);
* durations (`parse_duration`): seconds, or ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h30m"``;
* what people read (`format_duration`: ``"2h"``, ``"1h30m"``; `format_memory`: ``"32G"``);
* partition or queue names (`check_queue`).

The settings engine's value kinds built on them (`TimeLimit`, `MemorySize`, `QueueName`,
`Duration`…) are in `efi_job_manager.config.values`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "DURATION_EXPECTED",
    "MEMORY_EXPECTED",
    "QUEUE_EXPECTED",
    "TIME_LIMIT_EXPECTED",
    "check_queue",
    "format_duration",
    "format_memory",
    "format_slurm_time",
    "parse_duration",
    "parse_memory",
    "parse_slurm_time",
    "parse_time_limit",
]

_DURATION_UNITS: Final[Mapping[str, float]] = {
    "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE: Final = re.compile(rf"(?:\s*{_NUMBER}\s*(?:ms|s|m|h|d))+\s*", re.IGNORECASE)
_DURATION_PART_RE: Final = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)", re.IGNORECASE)

DURATION_EXPECTED: Final = 'a duration: seconds, or a string such as "30s", "5m", "1h30m"'
"""What a duration key takes, as messages say it."""


def parse_duration(value: str | int | float) -> float:
    """Turn a duration into seconds.

    Args:
        value: A number of seconds, or a string: a plain number of seconds (``"30"``) or
            number-unit pairs with units ``ms``, ``s``, ``m``, ``h``, ``d``
            (``"500ms"``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1.5h"``, ``"7d"``).

    Returns:
        The duration in seconds, finite and not negative.

    Raises:
        ValueError: The string is not a duration, or the duration is negative or infinite.
        TypeError: ``value`` is neither a string nor a number (booleans are refused).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"expected a number of seconds or a string, got {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        if _DURATION_RE.fullmatch(text):
            seconds = sum(
                float(number) * _DURATION_UNITS[unit.lower()]
                for number, unit in _DURATION_PART_RE.findall(text)
            )
        elif re.fullmatch(rf"[+-]?{_NUMBER}", text):
            seconds = float(text)
        else:
            raise ValueError(f"invalid duration {value!r}: expected {DURATION_EXPECTED}")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: expected a finite, non-negative duration")
    return seconds


TIME_LIMIT_EXPECTED: Final = ('a time limit: a duration such as "2h", "1h30m" or seconds, or '
                              'a Slurm time such as "24:00:00", "1-12:00"')
"""What a time limit takes, as messages say it."""
MEMORY_EXPECTED: Final = 'a memory size: MiB as an integer, or "32G", "500M"…'
"""What a memory size takes, as messages say it."""
QUEUE_EXPECTED: Final = ("a partition or queue name (or a comma list), without spaces, quotes "
                         "or shell characters")
"""What a partition or queue name takes, as messages say it."""

_UNLIMITED = frozenset({"INFINITE", "UNLIMITED"})
_MEMORY = re.compile(r"(\d+)\s*([KMGT]?)B?", re.IGNORECASE)
_MEMORY_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_DAYS = re.compile(r"(\d+)-(\d+)(?::(\d+))?(?::(\d+))?")
_CLOCK = re.compile(r"(\d+)(?::(\d+))?(?::(\d+))?")
_QUEUE_WORD = r"[^\s,'\"\\;|&$`<>()]+"
_QUEUE = re.compile(rf"{_QUEUE_WORD}(?:,{_QUEUE_WORD})*")


def parse_slurm_time(value: str | int) -> int | None:
    """Return a Slurm time limit in seconds (None for ``INFINITE``/``UNLIMITED``).

    An int, or text of digits alone, is a number of minutes, as for ``--time``.

    Raises:
        ValueError: not a time limit sbatch accepts.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"not a Slurm time limit: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"not a Slurm time limit: {value!r}")
        return value * 60
    text = value.strip()
    if text.upper() in _UNLIMITED:
        return None
    match = _DAYS.fullmatch(text)
    if match is not None:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    match = _CLOCK.fullmatch(text)
    if match is not None:
        parts = [int(g) for g in match.groups() if g is not None]
        if len(parts) == 1:  # minutes
            return parts[0] * 60
        if len(parts) == 2:  # minutes:seconds
            return parts[0] * 60 + parts[1]
        return (parts[0] * 60 + parts[1]) * 60 + parts[2]  # hours:minutes:seconds
    raise ValueError(f"not a Slurm time limit: {value!r}")


def format_slurm_time(seconds: float | None) -> str:
    """Write seconds as ``--time`` reads them: ``D-HH:MM:SS`` or ``HH:MM:SS`` (None: UNLIMITED).

    A fraction of a second is rounded up.
    """
    if seconds is None:
        return "UNLIMITED"
    days, rest = divmod(math.ceil(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def parse_time_limit(value: str | int | float) -> float:
    """Return a time limit in seconds, more than zero.

    Args:
        value: A duration (`parse_duration`: seconds as a number or text, ``"2h"``,
            ``"1h30m"``, ``"7d"``), or a Slurm time holding ``:`` or ``-`` (``"24:00:00"``,
            ``"1-12:00"``; see `parse_slurm_time`). Plain digits are seconds here, never
            Slurm's minutes; an unlimited time is refused.

    Raises:
        ValueError: none of these, zero, or unlimited.
        TypeError: neither text nor a number.
    """
    try:
        seconds = parse_duration(value)
    except ValueError:
        text = value.strip() if isinstance(value, str) else ""
        if not (":" in text or "-" in text[1:]):
            raise ValueError(f"invalid time limit {value!r}: expected "
                             f"{TIME_LIMIT_EXPECTED}") from None
        slurm = parse_slurm_time(text)
        if slurm is None:
            raise ValueError(f"invalid time limit {value!r}: unlimited is not taken") from None
        seconds = float(slurm)
    if seconds <= 0:
        raise ValueError(f"invalid time limit {value!r}: expected a time > 0")
    return seconds


def format_duration(seconds: float) -> str:
    """Write seconds for people: ``"2h"``, ``"1h30m"``, ``"1d12h"``, ``"45s"``.

    `parse_duration` reads it back; a fraction of a second is kept (``"1.5s"``).
    """
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_memory(value: str | int) -> int:
    """Return a memory size in MiB (rounded up); an int is MiB, as for ``--mem``.

    Raises:
        ValueError: not a size sbatch accepts (``32G``, ``500M``, ``32GB``, ``2048``).
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"not a memory size: {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"not a memory size: {value!r}")
        return value
    match = _MEMORY.fullmatch(value.strip())
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"not a memory size: {value!r}")
    unit = (match.group(2) or "M").upper()
    return math.ceil(int(match.group(1)) * _MEMORY_UNITS[unit])


def format_memory(mib: int) -> str:
    """Write MiB as ``--mem`` reads them (and people): ``NG`` when whole GiB, else ``NM``."""
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def check_queue(value: str) -> str:
    """Return ``value`` (stripped) if it can be a partition or queue name, or a comma list.

    Refused: empty text, a leading ``-`` (it would read as an option), whitespace, quotes
    and shell characters, so a queue name is safe on a scheduler's command line.

    Raises:
        ValueError: not such a name.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a queue name: {value!r}")
    text = value.strip()
    if not _QUEUE.fullmatch(text) or text.startswith("-"):
        raise ValueError(f"not a queue name: {value!r}: expected {QUEUE_EXPECTED}")
    return text
