"""Slurm's time limits and memory sizes: the core's converters, and scaling them (pure).

Reading and writing them is the core's (`efi_job_manager.toolkit`), one set of converters for
the site's ``[resources]``, the job directory's notes and these settings: ``--time`` takes
``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``,
``days-hours:minutes`` and ``days-hours:minutes:seconds`` (and ``INFINITE``/``UNLIMITED``);
``--mem`` an integer with an optional unit ``K``, ``M`` (the default), ``G`` or ``T``, optionally
followed by ``B`` (``32GB``). Decimals are refused by sbatch (``1.5G``), so here too. What is
the connector's own is how a retry grows them (`scale_seconds`, `scale_mib`).
"""

from __future__ import annotations

import math

from efi_job_manager.toolkit import format_memory, parse_memory
from efi_job_manager.toolkit import format_slurm_time as format_time
from efi_job_manager.toolkit import parse_slurm_time as parse_time

__all__ = [
    "format_memory",
    "format_time",
    "parse_memory",
    "parse_time",
    "scale_memory",
    "scale_mib",
    "scale_seconds",
    "scale_time",
]


def scale_seconds(seconds: float, factor: float, maximum: float | None = None) -> float:
    """Multiply a time limit in seconds by ``factor`` (rounded up to a minute), capped.

    A cap (``maximum``, seconds; None for none) below ``seconds`` never lowers it.
    """
    scaled = float(math.ceil(seconds * factor / 60) * 60)
    if maximum is not None:
        scaled = min(scaled, max(maximum, seconds))
    return scaled


def scale_mib(mib: int, factor: float, maximum: int | None = None) -> int:
    """Multiply a memory size in MiB by ``factor`` (rounded up to a MiB), capped.

    A cap (``maximum``, MiB; None for none) below ``mib`` never lowers it.
    """
    scaled = math.ceil(mib * factor)
    if maximum is not None:
        scaled = min(scaled, max(maximum, mib))
    return scaled


def scale_time(value: str, factor: float, maximum: str | None = None) -> str:
    """`scale_seconds` on ``--time`` text: an unlimited time stays unlimited.

    Raises:
        ValueError: ``value`` or ``maximum`` is not a time limit.
    """
    seconds = parse_time(value)
    if seconds is None:
        return value
    cap = parse_time(maximum) if maximum is not None else None
    return format_time(scale_seconds(seconds, factor, cap))


def scale_memory(value: str, factor: float, maximum: str | None = None) -> str:
    """`scale_mib` on ``--mem`` text.

    Raises:
        ValueError: ``value`` or ``maximum`` is not a memory size.
    """
    cap = parse_memory(maximum) if maximum is not None else None
    return format_memory(scale_mib(parse_memory(value), factor, cap))
