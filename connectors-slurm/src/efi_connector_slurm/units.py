"""Slurm's time limits and memory sizes: read, compare, scale and write them (pure).

``--time`` accepts ``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``,
``days-hours:minutes`` and ``days-hours:minutes:seconds`` (and ``INFINITE``/``UNLIMITED``);
``--mem`` an integer with an optional unit ``K``, ``M`` (the default), ``G`` or ``T``, optionally
followed by ``B`` (``32GB``). Decimals are refused by sbatch (``1.5G``), so here too.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "format_memory",
    "format_time",
    "parse_memory",
    "parse_time",
    "scale_memory",
    "scale_time",
]

_UNLIMITED = frozenset({"INFINITE", "UNLIMITED"})
_MEMORY = re.compile(r"(\d+)\s*([KMGT]?)B?", re.IGNORECASE)
_MEMORY_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_DAYS = re.compile(r"(\d+)-(\d+)(?::(\d+))?(?::(\d+))?")
_CLOCK = re.compile(r"(\d+)(?::(\d+))?(?::(\d+))?")


def parse_time(value: str | int) -> int | None:
    """Return a Slurm time limit in seconds (None for ``INFINITE``/``UNLIMITED``).

    An int is a number of minutes, as for ``--time``.

    Raises:
        ValueError: not a time limit sbatch accepts.
    """
    if isinstance(value, bool):
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


def format_time(seconds: int | None) -> str:
    """Write seconds as ``--time`` reads them: ``D-HH:MM:SS`` or ``HH:MM:SS`` (None: UNLIMITED)."""
    if seconds is None:
        return "UNLIMITED"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def parse_memory(value: str | int) -> int:
    """Return a ``--mem`` size in MiB (rounded up); an int is MiB, as for ``--mem``.

    Raises:
        ValueError: not a size sbatch accepts (``32G``, ``500M``, ``32GB``, ``2048``).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a Slurm memory size: {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"not a Slurm memory size: {value!r}")
        return value
    match = _MEMORY.fullmatch(value.strip())
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"not a Slurm memory size: {value!r}")
    unit = (match.group(2) or "M").upper()
    return math.ceil(int(match.group(1)) * _MEMORY_UNITS[unit])


def format_memory(mib: int) -> str:
    """Write MiB as ``--mem`` reads them: ``NG`` when a whole number of GiB, else ``NM``."""
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def scale_time(value: str, factor: float, maximum: str | None = None) -> str:
    """Multiply a time limit by ``factor`` (rounded up to a minute), capped at ``maximum``.

    An unlimited time stays unlimited.

    Raises:
        ValueError: ``value`` or ``maximum`` is not a time limit.
    """
    seconds = parse_time(value)
    if seconds is None:
        return value
    scaled = math.ceil(seconds * factor / 60) * 60
    cap = parse_time(maximum) if maximum is not None else None
    if cap is not None:
        scaled = min(scaled, max(cap, seconds))
    return format_time(scaled)


def scale_memory(value: str, factor: float, maximum: str | None = None) -> str:
    """Multiply a memory size by ``factor`` (rounded up to a MiB), capped at ``maximum``.

    Raises:
        ValueError: ``value`` or ``maximum`` is not a memory size.
    """
    mib = parse_memory(value)
    scaled = math.ceil(mib * factor)
    if maximum is not None:
        scaled = min(scaled, max(parse_memory(maximum), mib))
    return format_memory(scaled)
