"""Print the reliability table from a JUnit XML report of the test suite.

The crash, several-manager, outage and flood tests record what they measured
(``tests/support/reliability.py``); this groups their records by test, database
backend and connector and prints one Markdown row per group: runs, jobs,
submissions, jobs submitted twice, jobs lost, jobs failed for the site's fault,
and the highest running count sampled against the limit.

    uv run --frozen pytest tests/test_kill.py tests/test_many_managers.py \\
        tests/test_outages.py tests/test_flood.py --junitxml=/tmp/reliability.xml
    uv run --frozen python scripts/reliability_table.py /tmp/reliability.xml
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

PREFIX = "reliability."
SUMMED = ("jobs", "submissions", "twice", "lost", "falsely_failed")


def read_records(report: Path) -> list[tuple[str, dict[str, str], bool]]:
    """Each recorded test case: its test function, its properties, whether it passed."""
    records = []
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 (our own report)
        values = {p.get("name", "")[len(PREFIX):]: p.get("value", "")
                  for p in case.iter("property") if p.get("name", "").startswith(PREFIX)}
        if values:
            test = f"{case.get('classname', '').rpartition('.')[2]}::" \
                   f"{case.get('name', '').partition('[')[0]}"
            passed = case.find("failure") is None and case.find("error") is None
            records.append((test, values, passed))
    return records


def table(records: list[tuple[str, dict[str, str], bool]]) -> str:
    """The Markdown table of ``records``, one row per test, backend and connector."""
    groups: dict[tuple[str, str, str], list[tuple[dict[str, str], bool]]] = defaultdict(list)
    for test, values, passed in records:
        groups[(test, values.get("backend", ""), values.get("connector", ""))].append(
            (values, passed))
    lines = ["| test | backend | connector | runs (passed) | jobs | submissions | twice | lost "
             "| falsely failed | max running / limit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (test, backend, connector), runs in sorted(groups.items()):
        sums = {key: sum(int(v.get(key, 0)) for v, _ in runs) for key in SUMMED}
        running = [int(v["max_running"]) for v, _ in runs if "max_running" in v]
        limits = {v["limit"] for v, _ in runs if "limit" in v}
        against = f"{max(running)} / {', '.join(sorted(limits))}" if running else "n/a"
        passed = sum(ok for _, ok in runs)
        lines.append(f"| {test} | {backend} | {connector} | {len(runs)} ({passed}) "
                     f"| {sums['jobs']} | {sums['submissions']} | {sums['twice']} "
                     f"| {sums['lost']} | {sums['falsely_failed']} | {against} |")
    return "\n".join(lines)


def main() -> None:
    """Print the table of the report named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a pytest --junitxml report")
    print(table(read_records(parser.parse_args().report)))


if __name__ == "__main__":
    main()
