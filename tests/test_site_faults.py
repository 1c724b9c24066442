"""A site fault fails no job: jobs stay as they are, the fault is said once, work resumes.

Real faults: a read-only and a full filesystem (tmpfs mounts), an input directory that
is gone (unmounted), a pipeline command that does not exist. Run on SQLite; the
repository's side of each move is the same compare-and-set on every backend.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_site import Site, fasta_job, make_site, run_until

from efi_job_manager.catalogue.jobtypes import JOB_TYPES
from efi_job_manager.cli import main
from efi_job_manager.manager import Destination


@pytest.fixture
def site(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Site]:
    """A fresh SQLite table, uploads and results; the manager's INFO lines captured."""
    caplog.set_level(logging.INFO, logger="efi_job_manager")
    yield from make_site(tmp_path, f"sqlite:///{tmp_path / 'jobs.sqlite'}")


def mount_tmpfs(path: Path, options: str) -> None:
    """Mount a tmpfs at ``path`` (these machines run the tests as root)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True,
                   capture_output=True)


def remount_read_only(path: Path) -> None:
    """Make a mount read-only; retried while a process that just ended still holds a file
    open for writing there (``mount`` then says the mount is busy, exit 32)."""
    deadline = time.monotonic() + 20
    while True:
        done = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True,
                              text=True, check=False)
        if done.returncode == 0:
            return
        assert time.monotonic() < deadline, f"cannot remount {path} read-only: {done.stderr}"
        time.sleep(0.2)


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount at the end of the test."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)


def errors_logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    """How many ERROR lines mention ``text``."""
    return sum(1 for r in caplog.records if r.levelno == logging.ERROR and text in r.message)


def statuses(site: Site, *ids: int) -> list[str]:
    """The status of each job."""
    return [site.status(i) for i in ids]


def test_a_read_only_results_directory_leaves_jobs_new_until_it_is_writable(
        site: Site, mounts: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    """No job is claimed while the results directory is read-only; said once; then all run."""
    mount_tmpfs(site.results, "size=16m,mode=0755")
    mounts.append(site.results)
    remount_read_only(site.results)
    site.insert(*(fasta_job(i) for i in (1, 2, 3)))
    manager = site.manager()
    for _ in range(3):
        report = manager.run_once()
        assert report.started == ()
        assert report.failed == ()
        assert any("not writable" in e for e in report.errors)
    assert statuses(site, 1, 2, 3) == ["new"] * 3
    assert errors_logged(caplog, "results directory") == 1
    subprocess.run(["mount", "-o", "remount,rw", str(site.results)], check=True)
    run_until(manager, lambda: statuses(site, 1, 2, 3) == ["finished"] * 3)
    assert any("fixed:" in r.message for r in caplog.records)


def test_a_full_disk_sends_the_job_back_to_new_and_it_runs_when_there_is_room(
        site: Site, mounts: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    """Staging that runs out of space is the site's fault: the claim is undone, nothing fails."""
    mount_tmpfs(site.results, "size=256k")
    mounts.append(site.results)
    (site.uploads / "big.fasta").write_text(">big\n" + "M" * 400_000 + "\n")
    site.insert(fasta_job(1, jobFilename="big.fasta"))
    manager = site.manager()
    for _ in range(2):
        report = manager.run_once()
        assert report.failed == ()
        assert any("No space left on device" in e for e in report.errors)
        assert site.status(1) == "new"
    assert errors_logged(caplog, "No space left on device") == 1
    subprocess.run(["mount", "-o", "remount,size=16m", str(site.results)], check=True)
    run_until(manager, lambda: site.status(1) == "finished")


def test_a_failure_whose_reason_cannot_be_written_waits_until_it_can(
        site: Site, mounts: list[Path], caplog: pytest.LogCaptureFixture) -> None:
    """The pipeline failed (its fault) but the results directory went read-only: the job
    stays running, and is failed with its reason in failure.json once it can be written."""
    mount_tmpfs(site.results, "size=16m,mode=0755")
    mounts.append(site.results)
    site.insert(fasta_job(1))
    connector = site.connector(EFI_STANDIN_FAIL="3")
    manager = site.manager(destinations={"default": Destination("default", connector)})
    assert manager.run_once().started == (1,)
    sid = str(site.raw(1)["schedulerJobId"])
    deadline = time.monotonic() + 30
    while not connector.get_job_status(sid).state.is_terminal:  # ended, not yet seen
        assert time.monotonic() < deadline
        time.sleep(0.2)
    remount_read_only(site.results)
    for _ in range(2):
        report = manager.run_once()
        assert report.failed == ()
        assert any("cannot write why job 1 failed" in e for e in report.errors)
    assert site.status(1) == "running"
    subprocess.run(["mount", "-o", "remount,rw", str(site.results)], check=True)
    run_until(manager, lambda: site.status(1) == "failed")
    failure = json.loads((site.results / "1" / "failure.json").read_text())
    assert failure["reason"].startswith("EXIT_CODE 3")


def test_a_missing_input_directory_is_not_a_missing_upload(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """An unmounted input directory fails no job; the jobs run once it is back."""
    site.insert(fasta_job(1), fasta_job(2))
    manager = site.manager()
    moved = site.root / "uploads.unmounted"
    site.uploads.rename(moved)
    for _ in range(2):
        report = manager.run_once()
        assert report.failed == ()
        assert report.started == ()
        assert any("input directory" in e for e in report.errors)
    assert statuses(site, 1, 2) == ["new", "new"]
    assert errors_logged(caplog, "input directory") == 1
    moved.rename(site.uploads)
    run_until(manager, lambda: statuses(site, 1, 2) == ["finished", "finished"])


def test_a_pipeline_command_that_cannot_be_run_holds_the_destination_back(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """Exit 127 is the site's: the job goes back to new, the destination pauses, then resumes.

    The command is found where `check_site` looks (``sh``) but what it runs is not (as on
    a compute node that lacks what the login node has).
    """
    nextflow = site.root / "bin" / "nextflow"
    site.insert(fasta_job(1), fasta_job(2))
    manager = site.manager(command=("sh", "-c", 'exec "$0" "$@"', str(nextflow), "-m",
                                    "efi_job_manager.dev.standin", "{pipeline_name}",
                                    "{params_file}"))
    run_until(manager, lambda: statuses(site, 1, 2) == ["new", "new"]
              and any("could not be run" in r.message for r in caplog.records))
    assert not any(e.kind.value == "failed" for e in site.events)
    report = manager.run_once()
    assert report.started == ()  # paused
    nextflow.parent.mkdir()
    nextflow.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    nextflow.chmod(0o755)
    site.clock.advance(3600)
    run_until(manager, lambda: statuses(site, 1, 2) == ["finished", "finished"])
    assert errors_logged(caplog, "could not be run") == 1
    assert any("fixed: destination default" in r.message for r in caplog.records)


def test_a_missing_pipeline_file_holds_the_destination_back_before_any_claim(
        site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """A workflow of EST missing where jobs run: no job is claimed or failed; once it is
    there (and the pause has run out) the jobs run."""
    est = site.root / "EST"
    for folder in ("pipelines", "conf"):
        (est / folder).mkdir(parents=True)
    site.insert(fasta_job(1), fasta_job(2))
    manager = site.manager(command=("sh", "-c", 'test -f "$0" && exec "$1" "$2" "$3" "$4" "$5"',
                                    "{pipeline}", sys.executable, "-m",
                                    "efi_job_manager.dev.standin", "{pipeline_name}",
                                    "{params_file}"),
                           pipeline_dir=est / "pipelines", config_dir=est / "conf",
                           params={"efi_config": str(site.uploads / "ids.txt"),
                                   "fasta_db": str(site.uploads / "uniprot")})
    for _ in range(3):
        report = manager.run_once()
        assert (report.started, report.failed) == ((), ())
    assert [site.raw(i)["timeStarted"] for i in (1, 2)] == [None, None]  # never claimed
    assert errors_logged(caplog, "its pipeline cannot run there") == 1
    for workflow in {t.workflow for t in JOB_TYPES.values() if t.build is not None}:
        (est / "pipelines" / workflow).parent.mkdir(parents=True, exist_ok=True)
        (est / "pipelines" / workflow).write_text("// EST\n")
    (est / "conf" / "slurm.config").write_text("// EST\n")
    site.clock.advance(3600)
    run_until(manager, lambda: statuses(site, 1, 2) == ["finished", "finished"])
    assert errors_logged(caplog, "its pipeline cannot run there") == 1
    assert any("fixed: destination default (local): its pipeline" in r.message
               for r in caplog.records)


def test_check_reports_missing_and_unwritable_directories(
        tmp_path: Path, mounts: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    """check probes the results and input directories and exits 1 when one is unusable."""
    config = tmp_path / "efi.toml"
    config.write_text(f"""\
[database]
url = "sqlite:///{tmp_path / 'jobs.sqlite'}"
[manager]
results_dir = "{tmp_path / 'results'}"
input_dir = "{tmp_path / 'uploads'}"
[destinations.default]
connector = "local"
settings = {{ state_dir = "{tmp_path / 'state'}" }}
[pipelines]
command = ["true"]
params = {{ efi_config = "/x", fasta_db = "/x" }}
[pipelines.efi_db]
default = "efi_202406"
""")
    assert main(["--config", str(config), "init-db"]) == 0
    assert main(["--config", str(config), "check"]) == 1
    out = capsys.readouterr().out
    assert f"the results directory {tmp_path / 'results'} does not exist" in out
    assert f"the input directory {tmp_path / 'uploads'} does not exist" in out
    (tmp_path / "uploads").mkdir()
    mount_tmpfs(tmp_path / "results", "size=1m,ro")
    mounts.append(tmp_path / "results")
    assert main(["--config", str(config), "check"]) == 1
    assert "is not writable: Read-only file system" in capsys.readouterr().out
    subprocess.run(["umount", str(tmp_path / "results")], check=True)
    mounts.clear()
    assert main(["--config", str(config), "check"]) == 0
    assert shutil.which("mount")
