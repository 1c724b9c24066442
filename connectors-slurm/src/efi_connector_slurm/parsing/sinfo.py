"""Reading what ``sinfo -h -o %P`` prints: the cluster's partitions."""

from __future__ import annotations

__all__ = ["parse_partitions"]


def parse_partitions(stdout: str) -> list[str]:
    """Read ``sinfo -h -o %P``: the partition names, without the default one's ``*`` mark."""
    names: dict[str, None] = {}
    for line in stdout.splitlines():
        name = line.strip().rstrip("*")
        if name:
            names[name] = None
    return list(names)
