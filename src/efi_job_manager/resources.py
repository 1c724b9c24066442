"""`Resources`: what a job asks the scheduler for (time, memory, CPUs, queue), typed.

Part of the connector contract (`efi_job_manager.connector` and the toolkit export it): a
`JobSpec` carries one, built by the manager from the site's ``[resources]`` profiles and a
retry's overrides; `BaseConnector.retry_resources` returns one. It is written to a job's
directory as JSON (`Resources.to_json`) and read back, older versions' Slurm strings too
(`Resources.from_json`). The converters of its values are in `efi_job_manager.units`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from efi_job_manager.units import (
    check_queue,
    format_duration,
    format_memory,
    parse_memory,
    parse_slurm_time,
)

__all__ = ["Resources"]

log = logging.getLogger(__name__)


def _seconds(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"time: expected a finite number of seconds > 0, got {value!r}")
    return float(value)


def _whole(name: str) -> Any:
    def check(_: Any, __: Any, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{name}: expected a whole number >= 1, got {value!r}")

    return check


def _queue(value: str | None) -> str | None:
    return None if value is None else check_queue(value)


@attrs.frozen
class Resources:
    """What a job asks the scheduler for; a field that is None is not asked for here.

    The manager builds a job's resources from the site's ``[resources]`` profiles
    (``default``, then the pipeline's, then the job type's) and the overrides a retry
    recorded (`overlay`); a connector turns the set fields into its scheduler's options over
    its own defaults. Values are checked when made (`ValueError`).

    Attributes:
        time: The time limit in seconds (> 0).
        memory: The memory in MiB (>= 1).
        cpus: CPUs per task (>= 1).
        queue: The partition or queue (or a comma list, where the scheduler takes one).
    """

    time: float | None = attrs.field(default=None, converter=_seconds)
    memory: int | None = attrs.field(default=None, validator=_whole("memory"))
    cpus: int | None = attrs.field(default=None, validator=_whole("cpus"))
    queue: str | None = attrs.field(default=None, converter=_queue)

    #: The field names, in order.
    NAMES: ClassVar[tuple[str, ...]] = ("time", "memory", "cpus", "queue")

    def overlay(self, other: Resources | None) -> Resources:
        """These resources with ``other``'s set fields winning (``other`` is the higher layer)."""
        if other is None:
            return self
        changes: dict[str, Any] = other.values()
        return attrs.evolve(self, **changes)

    def values(self) -> dict[str, float | int | str]:
        """The set fields by name (those that are not None)."""
        return {name: value for name in self.NAMES
                if (value := getattr(self, name)) is not None}

    @property
    def empty(self) -> bool:
        """Whether no field is set."""
        return not self.values()

    def show(self, name: str) -> str | None:
        """One field for people (``"2h"``, ``"32G"``, ``"4"``, ``"efi"``); None if not set."""
        value = getattr(self, name)
        if value is None:
            return None
        if name == "time":
            return format_duration(value)
        if name == "memory":
            return format_memory(value)
        return str(value)

    def describe(self) -> dict[str, str]:
        """The set fields for people, by name (`show`)."""
        return {name: text for name in self.NAMES if (text := self.show(name)) is not None}

    def __str__(self) -> str:
        """The set fields for people: ``time 2h, memory 32G`` (``none`` if none)."""
        return ", ".join(f"{k} {v}" for k, v in self.describe().items()) or "none"

    def to_json(self) -> dict[str, float | int | str]:
        """The set fields as a JSON object: seconds, MiB, a count, a name."""
        out = self.values()
        if self.time is not None and self.time.is_integer():
            out["time"] = int(self.time)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resources:
        """Read `to_json`'s object, or an older version's note of Slurm strings.

        Numbers are seconds (``time``), MiB (``memory``) and a count (``cpus``). Text is
        read as older versions wrote it, in Slurm's forms: ``{"time": "01:00:00",
        "memory": "80M"}`` (a time of digits alone is minutes); ``partition`` is
        ``queue``. Other keys (``account``, ``qos``) are left out with a warning.

        Raises:
            ValueError: a value is none of these.
        """
        values: dict[str, Any] = {}
        for key, raw in data.items():
            name = "queue" if key == "partition" else str(key)
            if name not in cls.NAMES:
                log.warning("resources: %r is no resource (%s); left out", key,
                            ", ".join(cls.NAMES))
                continue
            value = raw
            if isinstance(raw, str) and name == "time":
                value = parse_slurm_time(raw)
            elif isinstance(raw, str) and name == "memory":
                value = parse_memory(raw)
            elif isinstance(raw, str) and name == "cpus":
                if not raw.strip().isdigit():
                    raise ValueError(f"cpus: expected a whole number >= 1, got {raw!r}")
                value = int(raw)
            values[name] = value
        return cls(**values)
