"""Scheduler ids are opaque strings: a connector whose ids are not digits runs jobs end to end.

EFI-Web's ``schedulerJobId`` is an INTEGER. An id that is not digits is kept in the job's
directory and the column holds its negative stand-in; the connector always gets its own id
back (status, cancel, results), also after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from engine_site import Site, fasta_job, make_site, run_until

from efi_connector_local import LocalConnector
from efi_job_manager.connector import JobSpec, SchedulerStatus
from efi_job_manager.events import EventKind
from efi_job_manager.manager import Destination
from efi_job_manager.repository import JobRepository, column_value, make_engine
from efi_job_manager.status import SchedulerState, Status
from efi_job_manager.testing import ConnectorContract

PREFIX = "cloud/job:"


class OpaqueConnector(LocalConnector):
    """The local connector with ids like ``cloud/job:7`` (not digits) and a record of calls."""

    display_name = "opaque"

    def __init__(self, config: Mapping[str, object] | None = None) -> None:
        super().__init__(config)
        self.asked: list[str] = []

    def submit_job(self, spec: JobSpec, params_path: str) -> str:
        return PREFIX + super().submit_job(spec, params_path)

    def get_job_statuses(self, scheduler_ids: Iterable[str]) -> Mapping[str, SchedulerStatus]:
        ids = list(scheduler_ids)
        self.asked += ids
        inner = super().get_job_statuses(i.removeprefix(PREFIX) if i.startswith(PREFIX)
                                         else "not-mine" for i in ids)
        return {i: inner[i.removeprefix(PREFIX) if i.startswith(PREFIX) else "not-mine"]
                for i in ids}

    def get_job_status(self, scheduler_id: str) -> SchedulerStatus:
        return self.get_job_statuses([scheduler_id])[scheduler_id]

    def cancel_jobs(self, scheduler_ids: Iterable[str]) -> None:
        super().cancel_jobs(i.removeprefix(PREFIX) for i in scheduler_ids if i.startswith(PREFIX))

    def find_job(self, spec: JobSpec) -> Sequence[str]:
        return [PREFIX + i for i in super().find_job(spec)]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, f"sqlite:///{tmp_path / 'efi.db'}")


def opaque(site: Site, **env: str) -> OpaqueConnector:
    return OpaqueConnector({"state_dir": str(site.root / "opaque-state"), "kill_grace": 2,
                            "env": {"EFI_STANDIN_DELAY": "0", **env}})


def test_a_job_with_an_opaque_id_runs_to_finished(site: Site) -> None:
    """The column holds the stand-in, the directory the id, the connector is asked by its id."""
    site.insert(fasta_job(1))
    connector = opaque(site)
    manager = site.manager(destinations={"default": Destination("default", connector)})
    assert manager.run_once().started == (1,)
    stored = site.raw(1)["schedulerJobId"]
    note = json.loads((site.results / "1" / ".efi" / "destination.json").read_text())
    assert note["scheduler_id"].startswith(PREFIX)
    assert stored == column_value(1, note["scheduler_id"]) < 0
    run_until(manager, lambda: site.status(1) == "finished")
    assert set(connector.asked) == {note["scheduler_id"]}
    finished = [e for e in site.events if e.kind is EventKind.FINISHED]
    assert [e.scheduler_id for e in finished] == [note["scheduler_id"]]


def test_a_restarted_manager_follows_and_cancels_by_the_opaque_id(site: Site) -> None:
    """A new manager reads the id from the job's directory; the web's cancel reaches the job."""
    site.insert(fasta_job(1))
    first = site.manager(destinations={"default": Destination(
        "default", opaque(site, EFI_STANDIN_DELAY="60"))})
    assert first.run_once().started == (1,)
    first.close()
    connector = opaque(site)
    second = site.manager(destinations={"default": Destination("default", connector)})
    sid = json.loads((site.results / "1" / ".efi" / "destination.json").read_text())[
        "scheduler_id"]
    run_until(second, lambda: connector.get_job_status(sid).state is SchedulerState.RUNNING,
              timeout=20)
    web = JobRepository(make_engine(site.url))
    assert web.transition(1, Status.RUNNING, Status.CANCELLED)
    web.close()
    assert second.run_once().cancelled == (1,)
    run_until(second, lambda: connector.get_job_status(sid).state is SchedulerState.CANCELLED,
              timeout=20)


def test_a_lost_note_makes_the_job_unknown_then_lost_never_another_jobs_status(
        site: Site) -> None:
    """Without its note the id is not guessed: the job is unknown, then failed as LOST."""
    site.insert(fasta_job(1))
    connector = opaque(site, EFI_STANDIN_DELAY="60")
    manager = site.manager(destinations={"default": Destination("default", connector)},
                           lost_grace=120)
    assert manager.run_once().started == (1,)
    sid = json.loads((site.results / "1" / ".efi" / "destination.json").read_text())[
        "scheduler_id"]
    (site.results / "1" / ".efi" / "destination.json").write_text(
        json.dumps({"destination": "default", "scheduler_id": PREFIX + "999"}))
    restarted = site.manager(destinations={"default": Destination("default", connector)},
                             lost_grace=120)
    connector.asked.clear()
    restarted.run_once()
    assert site.status(1) == "running"
    assert connector.asked == []
    site.clock.advance(121)
    report = restarted.run_once()
    assert [job for job, _ in report.failed] == [1]
    assert "missing from its directory" in report.failed[0][1]
    connector.cancel_jobs([sid])


class TestOpaqueConnectorContract(ConnectorContract):
    """The opaque-id connector passes the contract suite (ids are opaque to the contract)."""

    unknown_scheduler_id = PREFIX + "999999"
    job_timeout = 30.0

    @pytest.fixture
    def make_connector(self, tmp_path: Path) -> Callable[[], OpaqueConnector]:
        return lambda: OpaqueConnector({"state_dir": str(tmp_path / "state"), "kill_grace": 2})
