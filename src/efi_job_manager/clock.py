"""Time as the product writes it into EFI-Web's naive ``DATETIME`` columns."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current UTC time without tzinfo, at whole seconds.

    EFI-Web's time columns are naive ``DATETIME``s; whole seconds keep the
    value identical after a round trip through MariaDB, whose ``DATETIME``
    drops fractions, so a compare-and-set on a time read back still matches.
    """
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
