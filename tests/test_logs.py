"""Log lines: UTC times, text or JSON, the job each line is about, a heartbeat, the right level."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_site import Site, fasta_job, make_site

from efi_job_manager.logs import about_job, configure_logging


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, f"sqlite:///{tmp_path / 'efi.db'}")


def test_text_lines_say_utc_and_the_job(restore_logging: None) -> None:
    """``…Z`` times; inside about_job every line, a connector's too, names job and destination."""
    out = io.StringIO()
    configure_logging(logging.INFO, "text", out)
    logging.getLogger("efi_job_manager.manager").info("outside")
    with about_job(7, "hpc"):
        logging.getLogger("efi_connector_slurm.connector").info("sbatch said %s", "42")
    first, second = out.getvalue().splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO "
                        r"efi_job_manager\.manager: outside", first)
    assert second.endswith("INFO efi_connector_slurm.connector: [job 7 on hpc] sbatch said 42")


def test_json_lines_carry_the_job_as_fields(restore_logging: None) -> None:
    """One object a line: time, level, logger, message, job_id, destination."""
    out = io.StringIO()
    configure_logging(logging.INFO, "json", out)
    with about_job(8, None):
        logging.getLogger("efi_job_manager.manager").warning("job %s failed: %s", 8, "x")
    (line,) = out.getvalue().splitlines()
    data = json.loads(line)
    assert data["job_id"] == 8
    assert "destination" not in data
    assert (data["level"], data["logger"], data["message"]) == (
        "WARNING", "efi_job_manager.manager", "job 8 failed: x")
    assert data["time"].endswith("Z")


def test_an_idle_daemon_says_it_is_alive(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """While cycles change nothing, one INFO line per heartbeat with what waits and runs."""
    cycles = iter(range(4))
    manager = site.manager(heartbeat=0.001, interval=0.01,
                           wait=lambda _seconds: next(cycles, None) is None)
    caplog.set_level(logging.INFO, logger="efi_job_manager.manager")
    manager.run_forever()
    alive = [r.message for r in caplog.records if r.message.startswith("alive:")]
    assert len(alive) >= 3
    assert alive[0] == ("alive: 0 new jobs waiting, 0 running, 0 errors this cycle; next cycle "
                        "in 0.01 s")


def test_a_jobs_own_failure_is_a_warning_not_an_error(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """A missing upload fails the job at WARNING (ERROR is for faults of the site)."""
    site.insert(fasta_job(1, jobFilename="missing.fasta"))
    caplog.set_level(logging.INFO)
    report = site.manager().run_once()
    assert [job for job, _ in report.failed] == [1]
    failed = [r for r in caplog.records if "failed:" in r.message]
    assert failed
    assert {r.levelno for r in failed} == {logging.WARNING}
    assert all(getattr(r, "job_id", None) == 1 for r in failed)
