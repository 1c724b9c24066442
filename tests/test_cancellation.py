"""A user's cancellation, whenever it comes, stops the job and is never undone.

EFI-Web cancels by setting ``status = 'cancelled'``; it may do so at any moment of the
manager's work. Each case cancels at one moment (never claimed, claimed and being
staged, running, ended but not yet collected) and checks that the row stays
``cancelled``, that nothing of the job still runs, and that it never ran twice. The case of
a crash before the scheduler id was stored is in ``test_manager.py`` and ``test_kill.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_site import Site, fasta_job, make_site, run_until

from efi_connector_local import LocalConnector
from efi_connector_local.records import StateStore
from efi_job_manager.connector import JobSpec
from efi_job_manager.events import EventKind
from efi_job_manager.manager import Destination
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.status import SchedulerState, Status


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    yield from make_site(tmp_path, database_url)


def cancel(site: Site, job_id: int, from_: Status) -> None:
    """What EFI-Web does when the user clicks cancel."""
    web = JobRepository(make_engine(site.url))
    assert web.transition(job_id, from_, Status.CANCELLED)
    web.close()


def submissions(site: Site, name: str, job_id: int) -> list[str]:
    store = StateStore(site.root / f"state-{name}")
    return [entry.name for folder in (store.state_dir / "names").glob(f"efi-{job_id}-*")
            for entry in folder.iterdir()]


def wait_cancelled(connector: LocalConnector, sids: list[str]) -> None:
    deadline = time.monotonic() + 30
    while not all(s.state is SchedulerState.CANCELLED
                  for s in connector.get_job_statuses(sids).values()):
        assert time.monotonic() < deadline, connector.get_job_statuses(sids)
        time.sleep(0.2)


def test_cancelled_before_it_was_claimed_it_is_never_submitted(site: Site) -> None:
    """A new row cancelled is never claimed: no submission, no job directory."""
    site.insert(fasta_job(1), fasta_job(2))
    cancel(site, 1, Status.NEW)
    manager = site.manager()
    run_until(manager, lambda: site.status(2) == "finished")
    assert site.status(1) == "cancelled"
    assert submissions(site, "default", 1) == []
    assert not (site.results / "1").exists()


class CancelledWhileStaging(LocalConnector):
    """The user cancels while the manager stages the job on the cluster."""

    def __init__(self, settings: dict[str, Any], site: Site) -> None:
        super().__init__(settings)
        self.site = site

    def prepare_job_environment(self, spec: JobSpec) -> str:
        cancel(self.site, spec.job_id, Status.RUNNING)
        return super().prepare_job_environment(spec)


def test_cancelled_while_it_was_being_submitted_its_submission_is_cancelled(site: Site) -> None:
    """The id cannot be stored on a cancelled row: the submission just made is cancelled."""
    site.insert(fasta_job(1))
    connector = CancelledWhileStaging({"state_dir": str(site.root / "state-default"),
                                       "env": {"EFI_STANDIN_DELAY": "60"}}, site)
    manager = site.manager(destinations={"default": Destination("default", connector)})
    report = manager.run_once()
    assert report.started == ()
    assert report.lost_races == (1,)
    sids = submissions(site, "default", 1)
    assert len(sids) == 1
    wait_cancelled(connector, sids)
    assert site.status(1) == "cancelled"
    assert site.raw(1)["schedulerJobId"] is None


def test_cancelled_while_running_it_is_killed_and_stays_cancelled(site: Site) -> None:
    """The running job is killed once; later cycles neither fail nor finish it."""
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_DELAY="60")
    manager = site.manager(destinations={"default": Destination("default", connector)})
    assert manager.run_once().started == (1,)
    sid = str(site.raw(1)["schedulerJobId"])
    cancel(site, 1, Status.RUNNING)
    assert manager.run_once().cancelled == (1,)
    wait_cancelled(connector, [sid])
    for _ in range(3):
        manager.run_once()
    assert site.status(1) == "cancelled"
    assert [e.kind for e in site.events] == [EventKind.STARTED, EventKind.CANCELLED]


def test_retried_after_a_cancellation_a_new_cancellation_reaches_the_cluster(
        site: Site) -> None:
    """An operator's retry (from another process) and a second cancel: killed again.

    The manager remembers whose cancellation it sent, so as not to read them every cycle;
    a retried job is a new run, whose cancellation is sent too.
    """
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_DELAY="60")
    manager = site.manager(destinations={"default": Destination("default", connector)})
    assert manager.run_once().started == (1,)
    first = str(site.raw(1)["schedulerJobId"])
    cancel(site, 1, Status.RUNNING)
    assert manager.run_once().cancelled == (1,)
    wait_cancelled(connector, [first])
    manager.run_once()  # its cancellation is now known to be sent
    web = JobRepository(make_engine(site.url))  # `jobs retry` in another process
    assert web.transition(1, Status.CANCELLED, Status.NEW)
    web.close()
    assert manager.run_once().started == (1,)
    second = str(site.raw(1)["schedulerJobId"])
    assert second != first
    cancel(site, 1, Status.RUNNING)
    assert manager.run_once().cancelled == (1,)
    wait_cancelled(connector, [second])


def test_cancelled_after_it_ended_but_before_it_was_collected_stays_cancelled(
        site: Site) -> None:
    """The user's word stands: the results are not collected over a cancellation."""
    site.insert(fasta_job(1))
    connector = site.connector()
    manager = site.manager(destinations={"default": Destination("default", connector)})
    assert manager.run_once().started == (1,)
    sid = str(site.raw(1)["schedulerJobId"])
    deadline = time.monotonic() + 30
    while connector.get_job_status(sid).state is not SchedulerState.COMPLETED:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancel(site, 1, Status.RUNNING)
    for _ in range(3):
        report = manager.run_once()
        assert report.finished == ()
        assert not report.failed
    assert site.status(1) == "cancelled"
    assert site.raw(1)["numImportedIds"] is None
