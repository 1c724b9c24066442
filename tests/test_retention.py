"""What ended jobs leave where they ran: released at once, or kept and cleaned later.

With the local connector (its records in ``state_dir``); the Slurm connector's
``remote_dir/<id>`` is tested on the lab in ``test_slurm_engine.py``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from engine_site import Site, fasta_job, make_site, run_until

from efi_connector_local import LocalConnector
from efi_job_manager.manager import Destination, JobManager
from efi_job_manager.repository import make_engine


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, f"sqlite:///{tmp_path / 'efi.db'}")


def _manager(site: Site, connector: LocalConnector, keep: float = 0.0) -> JobManager:
    return site.manager(destinations={"default": Destination("default", connector, None, keep)})


def test_a_finished_or_failed_jobs_records_go_as_soon_as_it_ended(site: Site) -> None:
    connector = site.connector()
    assert isinstance(connector, LocalConnector)
    manager = _manager(site, connector)
    site.insert(fasta_job(1), fasta_job(2), fasta_job(3))
    run_until(manager, lambda: {site.status(j) for j in (1, 2, 3)} == {"running"}, timeout=20)
    assert connector.leftover_jobs() == [1, 2, 3]  # running: kept
    run_until(manager, lambda: {site.status(j) for j in (1, 2, 3)} == {"finished"})
    assert connector.leftover_jobs() == []
    assert (site.results / "1" / "stats.json").is_file()  # the manager's files stay


def test_kept_files_are_cleaned_once_keep_job_files_has_passed(site: Site) -> None:
    connector = site.connector()
    assert isinstance(connector, LocalConnector)
    manager = _manager(site, connector, keep=3600)
    site.insert(fasta_job(1), fasta_job(2))
    run_until(manager, lambda: site.status(1) == site.status(2) == "finished")
    assert connector.leftover_jobs() == [1, 2]
    with make_engine(site.url).begin() as conn:  # EFI-Web deleted row 2: nobody needs its files
        conn.execute(sa.text('DELETE FROM "Job" WHERE id = 2'))
    report, = manager.clean()
    assert (report.removed, report.kept) == ((2,), (1,))
    site.clock.advance(3601)
    report, = manager.clean(dry_run=True)
    assert report.removed == (1,)
    assert connector.leftover_jobs() == [1]  # a dry run removes nothing
    report, = manager.clean()
    assert (report.removed, report.kept, report.error) == ((1,), (), None)
    assert connector.leftover_jobs() == []


def test_a_running_jobs_records_are_never_cleaned(site: Site) -> None:
    connector = site.connector(EFI_STANDIN_DELAY="30")
    assert isinstance(connector, LocalConnector)
    manager = _manager(site, connector)
    site.insert(fasta_job(1))
    manager.run_once()
    assert site.status(1) == "running"
    site.clock.advance(10 * 86400)
    report, = manager.clean()
    assert (report.removed, report.kept) == ((), (1,))
    connector.release_job(1)  # even asked directly: the wrapper runs, its record stays
    assert connector.leftover_jobs() == [1]
    connector.cancel_jobs([str(site.raw(1)["schedulerJobId"])])


def test_a_killed_writers_temporary_files_are_removed_when_the_job_ends(site: Site) -> None:
    """``.params.json.<hex>.tmp`` left by a kill -9 goes when the job ends; a fresh one (a
    write in progress) and a link of that name stay."""
    manager = _manager(site, site.connector(EFI_STANDIN_DELAY="1"))  # type: ignore[arg-type]
    site.insert(fasta_job(1))
    manager.run_once()
    job_dir = site.results / "1"
    stale = job_dir / ".params.json.0123456789ab.tmp"
    stale_note = job_dir / ".efi" / ".claim.json.ba9876543210.tmp"
    fresh = job_dir / ".stats.json.aaaaaaaaaaaa.tmp"
    link = job_dir / ".x.json.bbbbbbbbbbbb.tmp"
    for path in (stale, stale_note, fresh):
        path.write_text("{")
    link.symlink_to(stale_note)
    for path in (stale, stale_note):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    run_until(manager, lambda: site.status(1) == "finished")
    assert not stale.exists()
    assert not stale_note.exists()
    assert fresh.exists()
    assert link.is_symlink()


def test_the_daemon_cleans_what_a_keeping_destination_kept(site: Site) -> None:
    """``run`` sweeps, at its first cycle and then hourly, what ended jobs left on a
    destination that keeps files, once its ``keep_job_files`` has passed."""
    connector = site.connector()
    assert isinstance(connector, LocalConnector)
    manager = _manager(site, connector, keep=3600)
    site.insert(fasta_job(1))
    run_until(manager, lambda: site.status(1) == "finished")
    assert connector.leftover_jobs() == [1]
    site.clock.advance(3601)
    stop = threading.Event()
    manager.run_forever(stop, on_cycle=lambda _report: stop.set())
    assert connector.leftover_jobs() == []
