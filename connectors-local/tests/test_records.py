"""The state directory: id allocation, the index by name, records of interrupted submissions."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from efi_connector_local import LocalConnector
from efi_connector_local.files import run_dir_for, utc_now
from efi_connector_local.records import JobRecord, StateStore
from efi_job_manager.connector import JobSpec
from efi_job_manager.status import SchedulerState


def test_ids_increase_across_store_instances(tmp_path: Path) -> None:
    """Each allocation returns a larger digit string, also from a new store instance."""
    first = StateStore(tmp_path).allocate_id()
    second = StateStore(tmp_path).allocate_id()

    assert first.isdigit()
    assert int(second) > int(first)


def test_ids_are_unique_between_processes(tmp_path: Path) -> None:
    """Processes allocating at the same time never get the same id (the counter is locked)."""
    code = (
        "import sys; from pathlib import Path\n"
        "from efi_connector_local.records import StateStore\n"
        "s = StateStore(Path(sys.argv[1]))\n"
        "print(' '.join(s.allocate_id() for _ in range(50)))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    ids = [sid for p in procs for sid in p.communicate(timeout=60)[0].decode().split()]

    assert len(ids) == 200
    assert sorted(map(int, ids)) == list(range(1, 201))


def test_lost_counter_resumes_after_largest_record(tmp_path: Path) -> None:
    """If the counter file is lost, ids continue after the largest recorded one."""
    store = StateStore(tmp_path)
    for _ in range(3):
        sid = store.allocate_id()
        store.write(JobRecord(sid, "efi-1", tmp_path, tmp_path, utc_now()))
    (tmp_path / "counter").unlink()

    assert store.allocate_id() == "4"


def test_record_round_trips(tmp_path: Path) -> None:
    """A record reads back as it was written; unknown or malformed ids read as None."""
    store = StateStore(tmp_path)
    record = JobRecord("12", "efi-3", tmp_path / "job", tmp_path / "run", utc_now())
    store.write(record)

    assert store.read("12") == record
    assert store.read("13") is None
    assert store.read("../12") is None


def test_odd_names_are_indexed_safely(tmp_path: Path) -> None:
    """Names with path separators are indexed under an encoded file name, not a path."""
    store = StateStore(tmp_path)
    store.ensure()
    store.add_name("../evil/name", "1")
    store.add_name("%2e", "2")

    assert store.ids_for_name("../evil/name") == ["1"]
    assert store.ids_for_name("%2e") == ["2"]
    assert not (tmp_path / "evil").exists()


def _interrupted_submission(tmp_path: Path, age: timedelta) -> tuple[LocalConnector, JobSpec]:
    """A record and name written ``age`` ago, as by a manager killed before the process
    started."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    spec = JobSpec(job_id=3, job_type="t", job_dir=job_dir, command=("true",))
    store = StateStore(tmp_path / "state")
    sid = store.allocate_id()
    store.write(JobRecord(sid, spec.name, job_dir, run_dir_for(job_dir, sid), utc_now() - age))
    store.add_name(spec.name, sid)
    return LocalConnector({"state_dir": str(tmp_path / "state")}), spec


def test_fresh_interrupted_submission_is_starting(tmp_path: Path) -> None:
    """A record without a process, just written, is QUEUED (starting) and can be found."""
    connector, spec = _interrupted_submission(tmp_path, timedelta(0))

    assert connector.get_job_status("1").state is SchedulerState.QUEUED
    assert list(connector.find_job(spec)) == ["1"]


def test_old_interrupted_submission_is_lost_and_not_found(tmp_path: Path) -> None:
    """A record whose process never started is FAILED (LOST) and find_job leaves it out,
    so the manager submits the job again."""
    connector, spec = _interrupted_submission(tmp_path, timedelta(minutes=5))

    status = connector.get_job_status("1")
    assert status.state is SchedulerState.FAILED
    assert status.reason is not None
    assert status.reason.startswith("LOST")
    assert list(connector.find_job(spec)) == []
