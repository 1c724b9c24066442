"""A cycle's new jobs go to each destination in one staging call and one submission call.

Each job keeps its own outcome: refused (failed), maybe submitted (left to recovery, which
looks it up by name), not tried (straight back to ``new``), or submitted (its id stored with
compare-and-set). Real local connector, real processes, the stand-in pipeline.
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from engine_site import SSN, Site, fasta_job, make_site

from efi_connector_local import LocalConnector
from efi_job_manager.connector import JobOutcome, JobSpec, PermanentError, TransientError
from efi_job_manager.jobfiles import atomic_write_text, one_sync
from efi_job_manager.manager import Destination
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.status import Status


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """A fresh table, uploads and results on the current backend."""
    yield from make_site(tmp_path, database_url)


class Recording(LocalConnector):
    """The local connector, counting its batch calls; ``verdicts`` overrides some outcomes.

    A verdict is ``"refuse"`` (a PermanentError), ``"lost"`` (submitted, but the reply lost:
    an attempted error) or ``"skip"`` (not tried).
    """

    def __init__(self, config: dict[str, object], verdicts: dict[int, str] | None = None,
                 ) -> None:
        super().__init__(config)
        self.calls: list[tuple[str, list[int], str]] = []  # (call, jobs, thread)
        self.verdicts = dict(verdicts or {})

    def prepare_jobs(self, specs: Sequence[JobSpec]) -> list[JobOutcome]:
        self.calls.append(("prepare", [s.job_id for s in specs],
                           threading.current_thread().name))
        return super().prepare_jobs(specs)

    def submit_jobs(self, jobs: Sequence[tuple[JobSpec, str]]) -> list[JobOutcome]:
        self.calls.append(("submit", [s.job_id for s, _ in jobs],
                           threading.current_thread().name))
        outcomes = []
        for spec, path in jobs:
            verdict = self.verdicts.pop(spec.job_id, None)
            if verdict == "refuse":
                outcomes.append(JobOutcome(spec.job_id, error=PermanentError("Invalid qos")))
            elif verdict == "skip":
                outcomes.append(JobOutcome.not_attempted(spec.job_id, TransientError("busy")))
            else:
                submitted = self.submit_job(spec, path)
                outcomes.append(JobOutcome(spec.job_id, submitted) if verdict != "lost" else
                                JobOutcome(spec.job_id, error=TransientError("reply lost")))
        return outcomes


def _recording(site: Site, name: str, verdicts: dict[int, str] | None = None) -> Recording:
    return Recording({"state_dir": str(site.root / f"state-{name}"), "kill_grace": 2,
                      "env": {"EFI_STANDIN_DELAY": "0"}}, verdicts)


def test_a_cycle_stages_and_submits_each_destinations_jobs_in_one_call(site: Site) -> None:
    """Seven jobs, two destinations: two calls each (prepare, submit), every job submitted."""
    with zipfile.ZipFile(site.uploads / "ssn.zip", "w") as archive:
        archive.writestr("full_ssn.xgmml", SSN)
    site.insert(*(fasta_job(i) for i in range(1, 6)),
                *(fasta_job(i, job_type="est_color_ssn", jobFilename="ssn.zip")
                  for i in range(6, 8)))
    left, right = _recording(site, "left"), _recording(site, "right")
    manager = site.manager(destinations={"default": Destination("default", left),
                                         "other": Destination("other", right)},
                           routing={"est_color_ssn": "other"})
    report = manager.run_once()
    assert sorted(report.started) == list(range(1, 8))
    assert [c[:2] for c in left.calls] == [("prepare", [1, 2, 3, 4, 5]),
                                           ("submit", [1, 2, 3, 4, 5])]
    assert [c[:2] for c in right.calls] == [("prepare", [6, 7]), ("submit", [6, 7])]
    assert [c[2] for c in left.calls + right.calls] == [threading.main_thread().name] * 4
    ids = [site.raw(i)["schedulerJobId"] for i in range(1, 8)]
    assert None not in ids
    assert (len(set(ids[:5])), len(set(ids[5:]))) == (5, 2)


def test_many_jobs_are_staged_here_while_the_previous_chunk_is_submitted(site: Site) -> None:
    """40 jobs: four chunks of ten, each one prepare and one submit call in the worker thread,
    made only after the chunk's directories were written; every job submitted once."""
    site.insert(*(fasta_job(i) for i in range(1, 41)))
    connector = _recording(site, "default")
    staged_when_called: list[int] = []
    original = connector.prepare_jobs

    def prepare(specs: Sequence[JobSpec]) -> list[JobOutcome]:
        staged_when_called.append(sum((site.results / str(i) / "params.json").exists()
                                      for i in range(1, 41)))
        return original(specs)

    connector.prepare_jobs = prepare  # type: ignore[method-assign]
    manager = site.manager(destinations={"default": Destination("default", connector)},
                           claim_batch=40, max_running_jobs=40)
    report = manager.run_once()
    assert sorted(report.started) == list(range(1, 41))
    assert [(op, ids) for op, ids, _ in connector.calls] == [
        (op, list(range(first, first + 10))) for first in (1, 11, 21, 31)
        for op in ("prepare", "submit")]
    assert {thread for _, _, thread in connector.calls} == {"efi-submit_0"}
    # each chunk is on disk before its call, the next one is written while it runs
    assert all(count >= 10 * (n + 1) for n, count in enumerate(staged_when_called))
    assert len({site.raw(i)["schedulerJobId"] for i in range(1, 41)}) == 40


def test_each_job_of_a_batch_keeps_its_own_outcome(site: Site) -> None:
    """Refused → failed; reply lost → running, adopted by name later; not tried → new."""
    site.insert(*(fasta_job(i) for i in range(1, 5)))
    connector = _recording(site, "default", {2: "refuse", 3: "lost", 4: "skip"})
    manager = site.manager(destinations={"default": Destination("default", connector)})
    report = manager.run_once()
    assert report.started == (1,)
    assert [job for job, _ in report.failed] == [2]
    assert "submission refused: Invalid qos" in report.failed[0][1]
    assert (site.status(3), site.raw(3)["schedulerJobId"]) == ("running", None)
    assert site.status(4) == "new"
    assert len(report.errors) == 1
    assert "reply lost" in report.errors[0]
    # job 3 was submitted: after the grace period recovery finds it by name and adopts it
    later = site.manager(destinations={"default": Destination("default", connector)})
    site.clock.advance(400)
    report = later.run_once()
    assert 3 in report.recovered
    assert 4 in report.started
    assert site.raw(3)["schedulerJobId"] is not None


def test_a_failing_staging_call_puts_every_job_back(site: Site) -> None:
    """prepare_jobs raising: nothing was submitted, so every job is new again; one error."""

    class Broken(LocalConnector):
        def prepare_jobs(self, specs: Sequence[JobSpec]) -> list[JobOutcome]:
            raise TransientError("scratch is not mounted")

    site.insert(*(fasta_job(i) for i in range(1, 4)))
    broken = Broken({"state_dir": str(site.root / "broken")})
    report = site.manager(destinations={"default": Destination("default", broken)}).run_once()
    assert [site.status(i) for i in (1, 2, 3)] == ["new", "new", "new"]
    assert report.errors == ("staging jobs on default: scratch is not mounted",)
    assert site.manager().run_once().started == (1, 2, 3)


def test_a_job_the_connector_says_nothing_about_is_left_to_recovery(site: Site) -> None:
    """An outcome missing from the answer may hide a submission: recovered, not put back."""

    class Forgetful(LocalConnector):
        def submit_jobs(self, jobs: Sequence[tuple[JobSpec, str]]) -> list[JobOutcome]:
            return super().submit_jobs(jobs)[:1]

    site.insert(fasta_job(1), fasta_job(2))
    forgetful = Forgetful({"state_dir": str(site.root / "forgetful")})
    report = site.manager(destinations={"default": Destination("default", forgetful)}).run_once()
    assert report.started == (1,)
    assert (site.status(2), site.raw(2)["schedulerJobId"]) == ("running", None)
    assert "said nothing about job 2" in report.errors[0]


def test_a_batch_store_that_loses_a_race_cancels_only_that_submission(site: Site) -> None:
    """The web cancels job 2 between submission and the store: its scheduler job is cancelled."""
    site.insert(fasta_job(1), fasta_job(2))
    connector = site.connector(EFI_STANDIN_DELAY="60")
    manager = site.manager(destinations={"default": Destination("default", connector)})
    store = manager.repository.set_scheduler_ids

    def web_cancels_first(ids: dict[int, str]) -> set[int]:
        web = JobRepository(make_engine(site.url))
        assert web.transition(2, Status.RUNNING, Status.CANCELLED)
        web.close()
        return store(ids)

    manager.repository.set_scheduler_ids = web_cancels_first  # type: ignore[method-assign]
    report = manager.run_once()
    assert report.started == (1,)
    assert report.lost_races == (2,)
    statuses = connector.get_job_statuses(["1", "2"])
    assert statuses["1"].state.name in ("QUEUED", "RUNNING")
    assert statuses["2"].state.name == "CANCELLED"
    connector.cancel_jobs(["1"])


def test_durable_writes_inside_one_sync_are_synced_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside `one_sync` no write is fsynced; the outermost block's end syncs once."""
    calls: list[str] = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync"))
    monkeypatch.setattr(os, "sync", lambda: calls.append("sync"))
    atomic_write_text(tmp_path / "a", "1")
    assert calls == ["fsync"]
    calls.clear()
    with one_sync():
        for name in "bcd":
            atomic_write_text(tmp_path / name, name)
        with one_sync():
            atomic_write_text(tmp_path / "e", "e")
        assert calls == []
    assert calls == ["sync"]
    calls.clear()
    with one_sync():
        atomic_write_text(tmp_path / "f", "f", durable=False)
    assert calls == []  # nothing durable was written: no sync
    assert (tmp_path / "d").read_text() == "d"
