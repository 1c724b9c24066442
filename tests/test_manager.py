"""The engine: every step of a cycle with the real local connector and real processes."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from engine_site import FASTA, SSN, Site, fasta_job, make_site, run_until

from efi_connector_local import LocalConnector
from efi_job_manager.config import ManagerSettings
from efi_job_manager.connector import (
    BaseConnector,
    JobSpec,
    Resources,
    SchedulerStatus,
    TransientError,
)
from efi_job_manager.events import EventKind
from efi_job_manager.manager import CycleReport, Destination, JobManager
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.status import SchedulerState, Status
from efi_job_manager.transport import CommandTimeout


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """A fresh table, uploads and results on the current backend."""
    yield from make_site(tmp_path, database_url)


def test_a_new_job_runs_to_finished_with_its_results(site: Site) -> None:
    """new → running (submitted) → finished, result columns from stats.json, events fired."""
    site.insert(fasta_job(1))
    manager = site.manager()
    first = manager.run_once()
    assert first.started == (1,)
    assert site.status(1) == "running"
    assert site.raw(1)["schedulerJobId"] is not None
    run_until(manager, lambda: site.status(1) == "finished")
    raw = site.raw(1)
    assert raw["timeCompleted"] is not None
    job_dir = site.results / "1"
    assert (job_dir / "params.json").exists()
    assert (job_dir / "stats.json").exists()
    assert manager.job_dir(1).destination() == "default"
    with make_engine(site.url).connect() as conn:
        table = sa.table("Job", sa.column("id"), sa.column("numImportedIds"),
                         sa.column("numFastaHeaders"))
        row = conn.execute(sa.select(table.c.numImportedIds, table.c.numFastaHeaders)
                           .where(table.c.id == 1)).one()
    assert row.numFastaHeaders == 2
    assert row.numImportedIds == 2
    assert [e.kind for e in site.events] == [EventKind.STARTED, EventKind.FINISHED]


def test_a_jobs_fault_fails_that_job_and_the_others_go_on(site: Site) -> None:
    """Missing input, a path out of the upload dir, an unknown type: each fails with a reason."""
    site.insert(
        fasta_job(1, jobFilename="not-uploaded.fa"),
        fasta_job(2, jobFilename="../../etc/passwd"),
        fasta_job(3, job_type="est_generate_sequence"),
        fasta_job(4),
    )
    manager = site.manager()
    report = manager.run_once()
    reasons = dict(report.failed)
    assert set(reasons) == {1, 2, 3}
    assert "not-uploaded.fa" in reasons[1]
    assert "jobFilename" in reasons[2]
    assert "est_generate_sequence" in reasons[3]
    assert report.started == (4,)
    for job_id in (1, 2, 3):
        assert site.status(job_id) == "failed"
        failure = manager.job_dir(job_id).failure()
        assert failure is not None
        assert failure["reason"] == reasons[job_id]
    run_until(manager, lambda: site.status(4) == "finished")


def test_a_nonzero_pipeline_exit_fails_the_job_with_the_exit_code(site: Site) -> None:
    """The stand-in forced to exit 3: failed, exit code in failure.json."""
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_FAIL="3")
    manager = site.manager(destinations={"default": Destination("default", connector)})
    run_until(manager, lambda: site.status(1) == "failed")
    failure = manager.job_dir(1).failure()
    assert failure is not None
    assert failure["exit_code"] == 3
    assert "EXIT_CODE 3" in failure["reason"]
    assert site.events[-1].kind is EventKind.FAILED


@pytest.mark.parametrize(("content", "expected"), [
    ("{broken", "stats.json"),
    (None, "stats.json"),
    ('{"num_ids": "many"}', "num_ids"),
])
def test_bad_stats_json_fails_the_job_with_a_reason(site: Site, content: str | None,
                                                    expected: str) -> None:
    """Broken, missing or non-numeric stats.json: the job fails, the cycle goes on."""
    script = site.root / "pipeline.py"
    write = f"open('stats.json', 'w').write({content!r})" if content is not None else "pass"
    script.write_text(f"{write}\n")
    site.insert(fasta_job(1))
    manager = site.manager(command=(sys.executable, str(script)))
    run_until(manager, lambda: site.status(1) == "failed")
    failure = manager.job_dir(1).failure()
    assert failure is not None
    assert expected in failure["reason"]


def test_shell_metacharacters_in_a_parameter_are_data(site: Site, tmp_path: Path) -> None:
    """A job name full of shell syntax runs nothing; the SSN title EST quotes loses its quotes."""
    canary = tmp_path / "pwned"
    name = f'x"; touch {canary}; echo $(touch {canary}) `touch {canary}` #'
    parent = site.results / "9"
    parent.mkdir(parents=True)
    for file, text in (("1.out.parquet", "PAR1"), ("all_sequences.fasta", FASTA),
                       ("accession_table.tab", "uniprot_id\n"),
                       ("sequence_metadata.tab", "UniProt_ID\tAttribute\tValue\n")):
        (parent / file).write_text(text)
    row = fasta_job(1, job_type="est_ssn_finalization", parentJob_id=9, alignmentScore=20,
                    jobName=name)
    for column in ("jobFilename", "allByAllBlastEValue", "sequence_version"):
        del row[column]
    site.insert(row)
    manager = site.manager()
    run_until(manager, lambda: site.status(1) == "finished")
    assert not canary.exists()
    params = json.loads((site.results / "1" / "params.json").read_text())
    assert params["job_name"].startswith("x_; touch ")
    assert not set(params["job_name"]) & set("\"`$")


def test_a_job_cancelled_in_the_database_is_cancelled_on_the_cluster_once(site: Site) -> None:
    """The web cancels a running job: the manager kills it, and only once."""
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_DELAY="60")
    manager = site.manager(destinations={"default": Destination("default", connector)})
    assert manager.run_once().started == (1,)
    scheduler_id = str(site.raw(1)["schedulerJobId"])
    run_until(manager, lambda: connector.get_job_status(scheduler_id).state.value == "running",
              timeout=20)
    web = JobRepository(make_engine(site.url))
    assert web.transition(1, Status.RUNNING, Status.CANCELLED)
    web.close()
    report = manager.run_once()
    assert report.cancelled == (1,)
    status = connector.get_job_status(scheduler_id)
    assert status.state.value == "cancelled"
    assert manager.run_once().cancelled == ()
    assert site.status(1) == "cancelled"
    assert [e.kind for e in site.events] == [EventKind.STARTED, EventKind.CANCELLED]


def test_a_restarted_manager_finishes_what_the_first_one_started(site: Site) -> None:
    """Stop a manager mid-run; a new one (new connector instance) collects the job."""
    site.insert(fasta_job(1), fasta_job(2))
    first = site.manager(destinations={
        "default": Destination("default", site.connector(EFI_STANDIN_DELAY="2"))})
    assert first.run_once().started == (1, 2)
    first.close()
    second = site.manager()
    reports = run_until(second, lambda: site.status(1) == site.status(2) == "finished")
    assert sorted(j for r in reports for j in r.finished) == [1, 2]
    assert not any(r.started for r in reports)


def _crash_before_storing_ids(site: Site, connector: BaseConnector,
                              monkeypatch: pytest.MonkeyPatch) -> JobManager:
    """A manager's cycle that submits the new jobs, then dies before storing their ids."""
    crashing = site.manager(destinations={"default": Destination("default", connector)})

    def crash(*_args: object) -> bool:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(crashing.repository, "set_scheduler_ids", crash)
    with pytest.raises(KeyboardInterrupt):
        crashing.run_once()
    return crashing


def test_a_crash_right_after_submitting_adopts_the_job_instead_of_resubmitting(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between sbatch and storing the id: recovery finds the job by name."""
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_DELAY="1")
    crashing = _crash_before_storing_ids(site, connector, monkeypatch)
    assert site.status(1) == "running"
    assert site.raw(1)["schedulerJobId"] is None
    claimed = site.raw(1)["timeStarted"]
    submitted = submissions(crashing, connector, 1)
    assert len(submitted) == 1

    # keep_job_files: the connector's records, by which submissions are counted, stay
    restarted = site.manager(destinations={"default": Destination("default", connector, None,
                                                                  3600)})
    assert restarted.run_once().recovered == ()  # inside the grace period: left alone
    site.clock.advance(120)
    report = restarted.run_once()
    assert report.recovered == (1,)
    assert str(site.raw(1)["schedulerJobId"]) == submitted[0]
    # the row keeps its claim's start, not the adoption's (120 s later)
    assert abs(site.raw(1)["timeStarted"] - claimed) <= timedelta(seconds=2)
    run_until(restarted, lambda: site.status(1) == "finished")
    assert submissions(restarted, connector, 1) == submitted
    # the start lost with the crash is announced once, by the adoption
    assert [(e.kind, e.scheduler_id) for e in site.events if e.job_id == 1] == [
        (EventKind.STARTED, submitted[0]), (EventKind.FINISHED, submitted[0])]


def test_a_destination_that_times_out_is_asked_once_per_cycle(
        site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Two jobs to recover, the scheduler does not answer: one lookup waits its timeout,
    the other job is not looked up in that cycle (one line says so); the next cycle,
    with the scheduler back, recovers both."""
    site.insert(fasta_job(1), fasta_job(2))
    connector = site.connector(EFI_STANDIN_DELAY="1")
    _crash_before_storing_ids(site, connector, monkeypatch)
    restarted = site.manager(destinations={"default": Destination("default", connector, None,
                                                                  3600)})
    site.clock.advance(120)
    asked: list[int] = []
    find = connector.find_job

    def no_answer(spec: JobSpec) -> list[str]:
        asked.append(spec.job_id)
        raise CommandTimeout(["squeue"], 60.0, "local")

    monkeypatch.setattr(connector, "find_job", no_answer)
    with caplog.at_level(logging.WARNING, logger="efi_job_manager.manager"):
        report = restarted.run_once()
    assert asked == [1]
    assert report.recovered == ()
    assert sum("did not answer" in r.message for r in caplog.records) == 1
    monkeypatch.setattr(connector, "find_job", find)
    site.clock.advance(120)  # the failed take-over moved the claim time: past the grace again
    assert set(restarted.run_once().recovered) == {1, 2}


def submissions(manager: JobManager, connector: LocalConnector, job_id: int) -> list[str]:
    """The connector's submissions of a job's current claim, found by name."""
    job = manager.repository.get(job_id)
    assert job is not None
    claim = manager.job_dir(job_id).claim_of(job.uuid)
    assert claim is not None
    return list(connector.find_job(manager._spec(job, claim=claim)))


def test_a_reused_id_starts_afresh_and_never_adopts_the_earlier_rows_job(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """EFI-Web deleted row 1 and inserted another row 1: the new job runs in a directory
    of its own (the old one is kept aside) and recovery never adopts the old submission."""
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_DELAY="1")
    crashing = _crash_before_storing_ids(site, connector, monkeypatch)
    old = submissions(crashing, connector, 1)
    assert len(old) == 1
    (site.results / "1" / "stats.json").write_text('{"num_ids": 999}')
    engine = make_engine(site.url)
    table = sa.table("Job", sa.column("id"))
    with engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.id == 1))
    engine.dispose()
    site.insert(fasta_job(1, uuid="u-reused", status="running",
                          timeStarted=datetime(2026, 11, 1)))
    restarted = site.manager(destinations={"default": Destination("default", connector)})
    site.clock.advance(120)
    report = restarted.run_once()
    assert report.recovered == (1,)
    assert str(site.raw(1)["schedulerJobId"]) not in old
    run_until(restarted, lambda: site.status(1) == "finished")
    assert site.raw(1)["numImportedIds"] != 999
    superseded = list((site.results / ".superseded").iterdir())
    assert len(superseded) == 1
    assert (superseded[0] / "stats.json").read_text() == '{"num_ids": 999}'


def test_a_job_cancelled_after_a_crash_before_its_id_was_stored_is_cancelled_there(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Submitted, the id never stored (a crash), then cancelled in the database: the
    submission is found by its claim's name and cancelled."""
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_DELAY="60")
    crashing = _crash_before_storing_ids(site, connector, monkeypatch)
    (sid,) = submissions(crashing, connector, 1)
    assert connector.get_job_status(sid).state is not SchedulerState.CANCELLED
    repo = JobRepository(make_engine(site.url))
    assert repo.transition(1, Status.RUNNING, Status.CANCELLED)
    repo.close()
    restarted = site.manager(destinations={"default": Destination("default", connector)})
    report = restarted.run_once()
    assert report.cancelled == (1,)
    deadline = time.monotonic() + 30
    while connector.get_job_status(sid).state is not SchedulerState.CANCELLED:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert restarted.run_once().cancelled == ()  # sent once


def test_a_crash_before_submitting_submits_the_job_again(site: Site) -> None:
    """Claimed but never submitted: after the grace period it is staged and submitted."""
    site.insert(fasta_job(1))
    manager = site.manager()
    manager.repository.claim_new(1)
    site.clock.advance(120)
    report = manager.run_once()
    assert report.recovered == (1,)
    assert site.raw(1)["schedulerJobId"] is not None
    run_until(manager, lambda: site.status(1) == "finished")


class FlakyConnector(LocalConnector):
    """A local connector whose scheduler is down while ``down`` is set."""

    down = True

    def get_job_statuses(self, scheduler_ids: Any) -> dict[str, SchedulerStatus]:
        if self.down:
            raise TransientError("slurm_load_jobs error: Unable to contact slurm controller")
        return dict(super().get_job_statuses(scheduler_ids))


def test_a_scheduler_outage_fails_no_job(site: Site) -> None:
    """Status calls failing: the cycle reports the error, the job stays running, then finishes."""
    site.insert(fasta_job(1))
    connector = FlakyConnector({"state_dir": str(site.root / "flaky")})
    manager = site.manager(destinations={"default": Destination("default", connector)})
    manager.run_once()
    time.sleep(1.5)
    for _ in range(3):
        report = manager.run_once()
        assert report.errors
        assert "Unable to contact slurm controller" in report.errors[0]
        assert site.status(1) == "running"
    connector.down = False
    run_until(manager, lambda: site.status(1) == "finished")


def test_a_database_outage_fails_nothing_and_does_not_raise(site: Site, tmp_path: Path) -> None:
    """A database that cannot be reached makes the cycle report an error, not crash."""
    manager = site.manager()
    manager.repository = JobRepository(
        make_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db", connect_timeout=1))
    report = manager.run_once()
    assert report.errors
    assert "database unavailable" in report.errors[0]


def test_an_outage_is_retried_at_least_every_interval(site: Site, tmp_path: Path) -> None:
    """While the database is down the loop backs off, but never waits longer than an interval."""
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= 8

    manager = site.manager(interval=7.0, wait=wait)
    manager.repository = JobRepository(
        make_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db", connect_timeout=1))
    manager.run_forever()
    assert len(waits) == 8
    assert waits[0] < 7.0
    assert max(waits) == 7.0


def test_capacity_limits_the_number_of_running_jobs(site: Site) -> None:
    """max_running_jobs and the per-user limit hold back new jobs, oldest first."""
    site.insert(*(fasta_job(i, user_id=1 if i <= 3 else 2) for i in range(1, 6)))
    manager = site.manager(max_running_jobs=3, max_running_jobs_per_user=2)
    manager.destinations["default"] = Destination("default", site.connector(
        EFI_STANDIN_DELAY="30"))
    report = manager.run_once()
    assert report.started == (1, 2, 4)
    assert manager.run_once().started == ()
    assert site.status(3) == site.status(5) == "new"


def test_routing_keeps_a_job_on_the_destination_it_was_submitted_to(site: Site) -> None:
    """A job routed to 'other' is polled there even after the routing changes."""
    site.insert(fasta_job(1))
    other = site.connector("other", EFI_STANDIN_DELAY="1")
    destinations = {"default": Destination("default", site.connector()),
                    "other": Destination("other", other)}
    first = site.manager(destinations=destinations,
                         routing={"est_generate_fasta": "other"})
    assert first.run_once().started == (1,)
    assert first.job_dir(1).destination() == "other"
    second = site.manager(destinations={  # "other" keeps its records: they show where it ran
        "default": Destination("default", site.connector()),
        "other": Destination("other", site.connector("other"), None, 3600)})
    run_until(second, lambda: site.status(1) == "finished")
    assert submissions(second, other, 1) != []


def _snapshot(site: Site) -> tuple[list[tuple[Any, ...]], list[tuple[str, int]]]:
    with make_engine(site.url).connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.text('SELECT * FROM "Job" ORDER BY id')
                                               if "mysql" not in site.url else
                                               sa.text("SELECT * FROM Job ORDER BY id"))]
    files = sorted((str(p.relative_to(site.root)), p.stat().st_mtime_ns)
                   for p in site.root.rglob("*") if "state-" not in str(p))
    return rows, files


def test_dry_run_reads_and_reports_but_changes_nothing(site: Site) -> None:
    """A dry run prints the command per job and leaves the database and the files as they were."""
    site.insert(fasta_job(1), fasta_job(2, jobFilename="missing.fa"))
    manager = site.manager(dry_run=True)
    before = _snapshot(site)
    report = manager.run_once()
    after = _snapshot(site)
    assert before == after
    actions = {a.job_id: a for a in report.planned}
    assert actions[1].action == "submit"
    assert "efi_job_manager.dev.standin" in actions[1].command
    assert actions[2].action == "fail"
    assert "missing.fa" in actions[2].detail
    assert not site.events


def test_run_forever_stops_when_asked_from_another_thread(site: Site) -> None:
    """stop() is idempotent and makes run_forever return after the current step."""
    site.insert(fasta_job(1))
    manager = site.manager(interval=0.05)
    cycles: list[CycleReport] = []

    def on_cycle(report: CycleReport) -> None:
        cycles.append(report)
        if site.status(1) == "finished":
            manager.stop()
            manager.stop()

    thread = threading.Thread(target=manager.run_forever, kwargs={"on_cycle": on_cycle})
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert site.status(1) == "finished"
    assert manager.stopping


def test_run_forever_waits_with_the_injected_wait(site: Site) -> None:
    """The loop sleeps through the injected wait, so tests need not wait for real."""
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return len(waits) >= 3

    manager = site.manager(interval=30, wait=wait)
    manager.run_forever()
    assert waits == [30, 30, 30]


def test_a_stop_event_passed_in_stops_the_loop(site: Site) -> None:
    """run_forever(stop=event) returns once the event is set."""
    stop = threading.Event()
    manager = site.manager(interval=0.01)
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    manager.run_forever(stop)
    assert stop.is_set()


def _live_processes_in(directory: Path) -> list[str]:
    """Pids of live (not zombie) processes whose working directory is ``directory``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd == str(directory) and state != "Z":
            found.append(proc.name)
    return found


def test_no_process_is_left_after_a_cancelled_job(site: Site) -> None:
    """Cancelling kills the whole process group of the job."""
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_DELAY="60")
    manager = site.manager(destinations={"default": Destination("default", connector)})
    manager.run_once()
    job_dir = (site.results / "1").resolve()
    run_until(manager, lambda: bool(_live_processes_in(job_dir)), timeout=20)
    web = JobRepository(make_engine(site.url))
    web.transition(1, Status.RUNNING, Status.CANCELLED)
    web.close()
    assert manager.run_once().cancelled == (1,)
    assert _live_processes_in(job_dir) == []


class BuggyConnector(LocalConnector):
    """A connector with a bug: it raises something that is not a ConnectorError."""

    def submit_job(self, spec: Any, params_path: str) -> str:
        raise OSError("disk quota exceeded on the login node")


def test_a_connector_bug_does_not_escape_the_cycle(site: Site) -> None:
    """An unexpected exception from a connector is reported; no job is failed or lost.

    The destination is then left alone for the rest of the cycle: the second job is not
    claimed only to wait for recovery.
    """
    site.insert(fasta_job(1), fasta_job(2))
    connector = BuggyConnector({"state_dir": str(site.root / "buggy")})
    manager = site.manager(destinations={"default": Destination("default", connector)})
    report = manager.run_once()
    assert len(report.errors) == 1
    assert "disk quota exceeded" in report.errors[0]
    assert (site.status(1), site.status(2)) == ("running", "new")
    assert not report.failed
    healthy = site.manager()
    site.clock.advance(120)
    report = healthy.run_once()
    assert report.recovered == (1,)
    assert report.started == (1, 2)  # a resubmission is a start too


def test_a_retried_job_starts_without_the_previous_runs_notes(site: Site) -> None:
    """failed → new → running: the old failure.json and unknown marker are gone."""
    site.insert(fasta_job(1))
    manager = site.manager()
    jd = manager.job_dir(1)
    jd.record_failure("LOST: earlier run", site.clock())
    jd.unknown_since(site.clock() - timedelta(days=1))
    assert manager.run_once().started == (1,)
    assert jd.failure() is None
    now = site.clock()
    assert jd.unknown_since(now) == now
    run_until(manager, lambda: site.status(1) == "finished")


class GrowingConnector(LocalConnector):
    """Has a time limit of 1 h of its own, asks for twice the time after a failure, and
    remembers what each submission asked for."""

    submitted: list[Resources]

    def resources_for(self, spec: JobSpec) -> Resources:
        return Resources(time=3600).overlay(spec.resources)

    def retry_resources(self, spec: JobSpec, failure: Any) -> Resources | None:
        used = self.resources_for(spec).time or 0
        return Resources(time=2 * used) if "EXIT_CODE" in failure["reason"] else None

    def submit_job(self, spec: JobSpec, params_path: str) -> str:
        self.submitted.append(spec.resources)
        return super().submit_job(spec, params_path)


def test_retry_asks_the_connector_for_more_resources(site: Site) -> None:
    """A failed job retried gets what its connector proposes, recorded for its next run; the
    change is told from what the failed run used (the connector's own default first)."""
    site.insert(fasta_job(1))
    connector = GrowingConnector({"state_dir": str(site.root / "growing"),
                                  "env": {"EFI_STANDIN_FAIL": "3"}})
    connector.submitted = []
    manager = site.manager(destinations={"default": Destination("default", connector)},
                           resources={"est": Resources(memory=512)})
    run_until(manager, lambda: site.status(1) == "failed")
    assert manager.retry(1) == {"time": ("1h", "2h")}
    assert site.status(1) == "new"
    assert json.loads((site.results / "1" / ".efi" / "resources.json").read_text()) == {
        "time": 7200}
    run_until(manager, lambda: site.status(1) == "failed")
    assert manager.retry(1) == {"time": ("2h", "4h")}
    assert connector.submitted == [Resources(memory=512), Resources(time=7200, memory=512)]
    with pytest.raises(ValueError, match="cannot go from 'new' to 'new'"):
        manager.retry(1)


def test_per_pipeline_and_per_destination_limits_hold_back_new_jobs(site: Site) -> None:
    """A pipeline limit and a destination's own limit are both respected, oldest first."""
    ssn = site.uploads / "ssn.zip"
    with zipfile.ZipFile(ssn, "w") as archive:
        archive.writestr("full_ssn.xgmml", SSN)
    site.insert(fasta_job(1), fasta_job(2),
                *(fasta_job(i, job_type="est_color_ssn", jobFilename="ssn.zip")
                  for i in (3, 4, 5)))
    slow = {"EFI_STANDIN_DELAY": "30"}
    manager = site.manager(
        destinations={"default": Destination("default", site.connector(**slow)),
                      "colour": Destination("colour", site.connector("colour", **slow),
                                            max_running_jobs=2)},
        routing={"est_color_ssn": "colour"},
        max_running_jobs_per_pipeline={"est": 1})
    report = manager.run_once()
    assert report.started == (1, 3, 4)
    assert manager.run_once().started == ()
    assert [site.status(i) for i in (2, 5)] == ["new", "new"]



class SlowRetrieval(LocalConnector):
    """A local connector whose retrievals take 100 s by the manager's clock; job 1's takes
    200 s and fails (a stale NFS handle), every time."""

    def __init__(self, settings: dict[str, Any], clock: Any) -> None:
        super().__init__(settings)
        self.clock = clock
        self.retrieved: list[int] = []

    def retrieve_job_results(self, spec: Any) -> Path:
        self.retrieved.append(spec.job_id)
        self.clock.advance(200 if spec.job_id == 1 else 100)
        if spec.job_id == 1:
            raise OSError(116, "Stale file handle")
        return super().retrieve_job_results(spec)


def test_a_step_that_runs_over_its_time_leaves_the_rest_to_the_next_cycle(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """A poll step past step_timeout stops; the next poll begins with the jobs it missed.

    Job 1's retrieval takes the whole budget and fails every time: without resuming where
    the last poll stopped, jobs 2 and 3 would never be reached. The start step has a
    budget of its own: job 4 starts in the cycle whose poll ran over.
    """
    site.insert(*(fasta_job(i) for i in (1, 2, 3)))
    connector = SlowRetrieval({"state_dir": str(site.root / "slow"),
                               "env": {"EFI_STANDIN_DELAY": "0"}}, site.clock)
    manager = site.manager(destinations={"default": Destination("default", connector)},
                           step_timeout=150)
    assert manager.run_once().started == (1, 2, 3)
    ids = [str(site.raw(i)["schedulerJobId"]) for i in (1, 2, 3)]
    deadline = time.monotonic() + 60
    while not all(s.state.is_terminal for s in connector.get_job_statuses(ids).values()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    site.insert(fasta_job(4))
    first = manager.run_once()
    assert (first.finished, first.started, connector.retrieved) == ((), (4,), [1])
    assert sum("ran over its 150 s" in r.message for r in caplog.records) == 1
    second = manager.run_once()
    assert second.finished == (2, 3)
    assert connector.retrieved == [1, 2, 3]
    assert site.status(1) == "running"


def test_the_manager_takes_its_settings_object_and_overrides_by_field(site: Site) -> None:
    """JobManager(settings) runs with ManagerSettings; a keyword overrides one field by name."""
    settings = ManagerSettings(results_dir=site.results, input_dir=site.uploads,
                               max_running_jobs=1)
    manager = JobManager(JobRepository(make_engine(site.url)),
                         {"default": Destination("default", site.connector())},
                         site.manager().catalogue, settings, claim_batch=7)
    try:
        assert manager.settings == attrs.evolve(settings, claim_batch=7)
        assert manager.results_dir == site.results
        site.insert(fasta_job(1), fasta_job(2))
        assert manager.run_once().started == (1,)  # the settings' limit of one running job
    finally:
        manager.close()
    with pytest.raises(TypeError, match=r"not a manager setting: max_jobs \(known: .*"
                                        r"max_running_jobs"):
        JobManager(JobRepository(make_engine(site.url)),
                   {"default": Destination("default", site.connector())},
                   site.manager().catalogue, settings, max_jobs=3)
    with pytest.raises(TypeError, match="needs results_dir and input_dir"):
        JobManager(JobRepository(make_engine(site.url)),
                   {"default": Destination("default", site.connector())},
                   site.manager().catalogue)
