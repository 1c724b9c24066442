"""What a reliability test measured, recorded for the closing table.

Each crash, several-manager, outage and flood test records its numbers with pytest's
``record_property``; ``scripts/reliability_table.py`` reads them back from a JUnit XML
report (``pytest --junitxml=FILE``) and prints the table: test, backend and connector
with submissions, jobs submitted twice, lost, falsely failed and the highest running
count against the limit.
"""

from __future__ import annotations

from collections.abc import Callable

RecordProperty = Callable[[str, object], None]


def record(record_property: RecordProperty, *, backend: str, connector: str, jobs: int,
           submissions: int, twice: int, lost: int, falsely_failed: int,
           max_running: int | None = None, limit: int | None = None) -> None:
    """Record one test's numbers (before it asserts on them, so a failure is recorded too)."""
    values: dict[str, object] = {
        "backend": backend, "connector": connector, "jobs": jobs, "submissions": submissions,
        "twice": twice, "lost": lost, "falsely_failed": falsely_failed}
    if max_running is not None:
        values["max_running"] = max_running
    if limit is not None:
        values["limit"] = limit
    for name, value in values.items():
        record_property(f"reliability.{name}", value)
