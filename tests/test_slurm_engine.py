"""The whole engine on the real Slurm lab: JobManager + SQLite + SlurmConnector + the stand-in.

The lab of ``tests/slurm/cluster.sh`` must be up; these tests fail, never skip, when it is not.
Local mode submits as root here (the stand-in runs with this virtualenv's Python); ssh mode
logs in as ``efijm``, who cannot execute this virtualenv's interpreter (it links into
``/root/.pyenv``, mode 700), so its jobs run the stand-in with the system ``/usr/bin/python3``
and ``PYTHONPATH`` pointing at this checkout and its site-packages (both world-readable).

Every test uses fresh random job ids, so the scheduler names ``efi-<id>`` are new to the lab.
"""

from __future__ import annotations

import grp
import json
import os
import random
import shutil
import stat
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from another_user import read_as
from reliability import RecordProperty, record
from slurm_lab import ROOT, Lab, lab_environment, new_ids, slurm_jobs, write_token

from efi_connector_slurm import SlurmConnector
from efi_job_manager import retry, testing
from efi_job_manager.catalogue import STANDIN_COMMAND
from efi_job_manager.connector import SchedulerStatus
from efi_job_manager.manager import CycleReport, Destination, JobManager
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.schema import create_tables
from efi_job_manager.status import SchedulerState, Status

#: The stand-in as efijm can run it (see the module docstring).
SSH_STANDIN_COMMAND = (
    "/usr/bin/env", f"PYTHONPATH={ROOT / 'src'}:{sysconfig.get_paths()['purelib']}",
    "/usr/bin/python3", "-m", "efi_job_manager.dev.standin", "{pipeline_name}", "{params_file}",
)


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    return lab_environment()


@attrs.define
class Site(testing.Site):
    """`efi_job_manager.testing.Site` on the lab: Slurm connectors, the lab's commands."""

    lab: Lab = attrs.Factory(lambda: Lab({}))

    @property
    def env(self) -> dict[str, str]:
        """The lab's environment."""
        return self.lab.env

    def cluster(self, *args: str) -> None:
        self.lab.cluster(*args)

    def stopped(self, daemon: str) -> AbstractContextManager[None]:
        """Stop one lab daemon for a ``with`` block; it is started again whatever happens."""
        return self.lab.stopped(daemon)

    def slurm_connector(self, mode: str, *, delay: float = 0, fail: int | None = None,
                        **settings: Any) -> SlurmConnector:
        variables = {"EFI_STANDIN_DELAY": f"{delay:g}"}
        if fail is not None:
            variables["EFI_STANDIN_FAIL"] = str(fail)
        base: dict[str, Any] = {"partition": "efi"}
        if mode == "rest":  # slurmrestd passes no environment but its own: env_setup sets it
            base["env_setup"] = " ".join(f"export {k}={v};" for k, v in variables.items())
        else:
            base["extra_sbatch"] = [
                "--export=ALL," + ",".join(f"{k}={v}" for k, v in variables.items())]
        if mode == "local":
            base["slurm_conf"] = self.env["SLURM_CONF"]
        else:
            remote = Path(self.env["EFI_SLURM_SCRATCH"]) / f"engine-{random.getrandbits(32):x}"
            base.update(transport="ssh", host=self.env["EFI_SLURM_SSH_HOST"],
                        ssh_config=self.env["EFI_SLURM_SSH_CONFIG"], remote_dir=str(remote))
        if mode == "rest":
            base.update(api="rest", rest_url=self.env["EFI_SLURM_REST_URL"],
                        rest_user=self.env["EFI_SLURM_SSH_USER"],
                        rest_token_file=str(self.token_file))
        return SlurmConnector({**base, **settings})

    @property
    def token_file(self) -> Path:
        """This test's file holding a token for the lab's user (``cluster.sh token``)."""
        file = self.root / "slurm-jwt"
        if not file.exists():
            self.renew_token()
        return file

    def renew_token(self) -> None:
        """Write a new token into `token_file` (as an operator renews it in place)."""
        write_token(self.env, self.root / "slurm-jwt")

    def slurm_manager(self, connector: SlurmConnector, mode: str = "local",
                      command: tuple[str, ...] | None = None) -> JobManager:
        return self.manager(
            destinations={"default": Destination("default", connector)},
            command=command or (STANDIN_COMMAND if mode == "local" else SSH_STANDIN_COMMAND))

    def insert_fasta(self, *job_ids: int) -> None:
        self.insert(*(testing.fasta_job(job_id, timeCreated=datetime(2026, 11, 1))
                      for job_id in job_ids))

    def names(self, job_id: int) -> set[str]:
        """Every Slurm job id named for this job (``efi-<job_id>-<claim>``) in squeue or sacct."""
        return set(slurm_jobs(self.env, job_id))


def _no_default_connector(name: str, **options: Any) -> SlurmConnector:
    raise AssertionError("build Slurm connectors with site.slurm_connector(mode)")


def _site_at(root: Path, lab_env: dict[str, str]) -> Iterator[Site]:
    url = f"sqlite:///{root / 'efi.db'}"
    engine = make_engine(url)
    create_tables(engine)
    engine.dispose()
    s = Site(root, url, _no_default_connector, lab=Lab(lab_env))
    s.uploads.mkdir()
    s.results.mkdir(exist_ok=True)
    (s.uploads / "seqs.fasta").write_text(testing.FASTA)
    yield s
    ids = []
    for manager in s.managers:
        ids += [str(job.schedulerJobId) for job in manager.repository.running_jobs()
                if job.schedulerJobId]
        remote = [d.connector.settings.remote_dir for d in manager.destinations.values()
                  if isinstance(d.connector, SlurmConnector)]
        manager.close()
        for directory in remote:
            if directory and Path(directory).is_relative_to(s.env["EFI_SLURM_SCRATCH"]):
                shutil.rmtree(directory, ignore_errors=True)
    if ids:
        s.lab.run(["scancel", *ids], check=False)


@pytest.fixture
def site(tmp_path: Path, lab_env: dict[str, str]) -> Iterator[Site]:
    yield from _site_at(tmp_path, lab_env)


@pytest.fixture
def open_site(lab_env: dict[str, str]) -> Iterator[Site]:
    """A site in a directory every user may enter (pytest's tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="efi-engine-"))
    root.chmod(0o755)
    try:
        yield from _site_at(root, lab_env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_until(manager: JobManager, done: Callable[[], bool], timeout: float = 90.0,
              ) -> list[CycleReport]:
    return testing.run_until(manager, done, timeout, pause=0.3)


def wait_state(connector: SlurmConnector, scheduler_id: str, state: SchedulerState,
               timeout: float = 60.0) -> SchedulerStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = connector.get_job_status(scheduler_id)
        if status.state is state:
            return status
        assert time.monotonic() < deadline, f"job {scheduler_id}: still {status}"
        time.sleep(0.3)


def result_columns(site: Site, job_id: int) -> tuple[Any, Any]:
    with make_engine(site.url).connect() as conn:
        table = sa.table("Job", sa.column("id"), sa.column("numImportedIds"),
                         sa.column("numFastaHeaders"))
        row = conn.execute(sa.select(table.c.numImportedIds, table.c.numFastaHeaders)
                           .where(table.c.id == job_id)).one()
    return row.numImportedIds, row.numFastaHeaders


@pytest.mark.parametrize("mode", ["local", "ssh"])
def test_a_job_runs_on_slurm_to_finished_with_its_results(site: Site, mode: str) -> None:
    (job_id,) = new_ids()
    site.insert_fasta(job_id)
    manager = site.slurm_manager(site.slurm_connector(mode), mode)
    assert manager.run_once().started == (job_id,)
    scheduler_id = str(site.raw(job_id)["schedulerJobId"])
    assert site.names(job_id) == {scheduler_id}
    run_until(manager, lambda: site.status(job_id) == "finished")
    assert result_columns(site, job_id) == (2, 2)
    job_dir = site.results / str(job_id)
    assert (job_dir / "stats.json").exists()
    assert (job_dir / f"slurm-{scheduler_id}.out").exists()
    assert json.loads((job_dir / "params.json").read_text())["final_output_dir"] == str(job_dir)


def test_the_web_server_reads_every_result_and_reason_that_came_back_from_the_cluster(
        open_site: Site) -> None:
    """Over SSH the files are written on the cluster by efijm (rsync as root would keep its
    uid) and the manager runs with umask 077: with ``results_group``/``results_mode`` every
    file of a finished and of a failed job is the manager's, in the web server's group, and
    ``nobody`` in that group reads each one (outside it, none)."""
    site = open_site
    finished, failed = new_ids(2)
    gid = grp.getgrnam("nogroup").gr_gid
    old_umask = os.umask(0o077)
    try:
        for job_id, fail in ((finished, None), (failed, 3)):
            site.insert_fasta(job_id)
            manager = site.manager(destinations={"default": Destination(
                "default", site.slurm_connector("ssh", fail=fail))},
                command=SSH_STANDIN_COMMAND, results_group="nogroup", results_mode=0o640)
            run_until(manager, lambda j=job_id: site.status(j) in ("finished", "failed"))
    finally:
        os.umask(old_umask)
    assert (site.status(finished), site.status(failed)) == ("finished", "failed")
    site.results.chmod(0o755)  # the operator's, once
    for job_id in (finished, failed):
        job_dir = site.results / str(job_id)
        entries = [job_dir, *job_dir.rglob("*")]
        assert any(p.name.startswith("slurm-") for p in entries)  # written on the cluster
        for path in entries:
            info = path.lstat()
            assert (info.st_uid, info.st_gid) == (os.getuid(), gid), path
            if stat.S_ISREG(info.st_mode):
                assert read_as("nogroup", path).returncode == 0, path
                assert read_as("daemon", path).returncode != 0, path
    reason = site.results / str(failed) / "failure.json"
    assert read_as("nogroup", reason).returncode == 0
    assert "see slurm-" in json.loads(reason.read_text())["reason"]


def test_the_clusters_remote_dir_keeps_only_what_the_retention_policy_keeps(
        site: Site) -> None:
    """Twenty jobs over SSH: once each ended and its results came back, ``remote_dir/<id>``
    (with the pipeline's work files) is gone. Directories an older version left are removed
    by ``clean`` when their rows are final, kept while a row is still running."""
    ids = new_ids(22)
    jobs, (old_finished, old_running) = ids[:20], ids[20:]
    connector = site.slurm_connector("ssh")
    remote = connector.settings.remote_dir
    assert remote is not None
    site.insert_fasta(*jobs)
    site.insert(testing.fasta_job(old_finished, status="finished",
                                  timeCompleted=datetime(2026, 1, 1)),
                # running, its scheduler id unknown to Slurm: within lost_grace it stays so
                testing.fasta_job(old_running, status="running", schedulerJobId=99999999,
                                  timeStarted=site.clock()))
    for job_id in (old_finished, old_running):  # as an older version left them, as efijm
        connector.transport.run(["mkdir", "-p", f"{remote}/{job_id}/work/ab"], check=True)
    manager = site.slurm_manager(connector, "ssh")
    run_until(manager, lambda: all(site.status(j) == "finished" for j in jobs))
    assert all((site.results / str(j) / "stats.json").is_file() for j in jobs)
    assert connector.leftover_jobs() == sorted([old_finished, old_running])
    report, = manager.clean()
    assert (report.removed, report.kept, report.error) == ((old_finished,), (old_running,), None)
    listed = connector.transport.run(["ls", "-A", remote], check=True).stdout.split()
    assert listed == [str(old_running)]


def test_a_pipeline_exiting_3_fails_the_job_with_the_exit_code(site: Site) -> None:
    (job_id,) = new_ids()
    site.insert_fasta(job_id)
    manager = site.slurm_manager(site.slurm_connector("local", fail=3))
    run_until(manager, lambda: site.status(job_id) == "failed")
    failure = manager.job_dir(job_id).failure()
    assert failure is not None
    assert failure["exit_code"] == 3
    assert failure["scheduler_reason"] == "EXIT_CODE 3"
    assert "EXIT_CODE 3" in failure["reason"]
    assert failure["scheduler_id"] == str(site.raw(job_id)["schedulerJobId"])


def test_out_of_memory_then_retried_with_more_memory_finishes(site: Site) -> None:
    """Killed over --mem=40M (reason OUT_OF_MEMORY); ``retry`` asks the connector, which
    triples the memory; the next submission gets --mem=120M and finishes."""
    (job_id,) = new_ids()
    site.insert_fasta(job_id)
    allocate_then_standin = (
        "/bin/sh", "-c",
        "/usr/bin/python3 -c 'import time; b = b\"x\" * (60 << 20); time.sleep(3)' && "
        'exec "$0" -m efi_job_manager.dev.standin "$1" "$2"',
        sys.executable, "{pipeline_name}", "{params_file}",
    )
    connector = site.slurm_connector("local", memory="40M", retry_memory_factor=3)
    manager = site.slurm_manager(connector, command=allocate_then_standin)
    run_until(manager, lambda: site.status(job_id) == "failed")
    failure = manager.job_dir(job_id).failure()
    assert failure is not None
    assert failure["scheduler_reason"] == "OUT_OF_MEMORY"
    assert manager.retry(job_id) == {"memory": ("40M", "120M")}  # what the failed run used
    run_until(manager, lambda: site.status(job_id) == "finished")
    script = (site.results / str(job_id) / "efi-job.sbatch").read_text()
    assert "#SBATCH --mem=120M\n" in script
    assert len(site.names(job_id)) == 2
    assert result_columns(site, job_id) == (2, 2)


def test_a_job_cancelled_in_the_database_is_scancelled(site: Site) -> None:
    (job_id,) = new_ids()
    site.insert_fasta(job_id)
    connector = site.slurm_connector("local", delay=120)
    manager = site.slurm_manager(connector)
    assert manager.run_once().started == (job_id,)
    scheduler_id = str(site.raw(job_id)["schedulerJobId"])
    wait_state(connector, scheduler_id, SchedulerState.RUNNING)
    web = JobRepository(make_engine(site.url))
    assert web.transition(job_id, Status.RUNNING, Status.CANCELLED)
    web.close()
    assert manager.run_once().cancelled == (job_id,)
    status = wait_state(connector, scheduler_id, SchedulerState.CANCELLED)
    assert "CANCELLED" in status.raw
    assert manager.run_once().cancelled == ()
    assert site.status(job_id) == "cancelled"


@pytest.mark.parametrize("mode", ["local", "rest"])
def test_slurmctld_stopped_mid_cycle_changes_no_job_and_the_next_cycles_catch_up(
        site: Site, record_property: RecordProperty, mode: str) -> None:
    """slurmctld goes down between a cycle's start and its status call: the running job stays
    running (accounting still answers), the new one is claimed but not submitted and not
    failed; after the restart the running one finishes and the other is recovered and runs.
    The same over slurmrestd."""
    first, second = new_ids(2)
    site.insert_fasta(first)
    # long enough that the first job cannot end during the two cycles of the outage
    connector = site.slurm_connector(mode, delay=12)
    manager = site.slurm_manager(connector, mode)
    assert manager.run_once().started == (first,)
    wait_state(connector, str(site.raw(first)["schedulerJobId"]), SchedulerState.RUNNING)
    site.insert_fasta(second)
    real = connector.get_job_statuses
    calls = []

    def outage_now(ids: Any) -> Mapping[str, SchedulerStatus]:
        if not calls:
            site.cluster("stop", "slurmctld")
        calls.append(ids)
        return real(ids)

    connector.get_job_statuses = outage_now  # type: ignore[method-assign]
    try:
        with retry.testing(attempts=1):
            report = manager.run_once()
            assert (report.finished, report.failed, report.started) == ((), (), ())
            assert report.errors  # the submission of the second job
            assert site.status(first) == site.status(second) == "running"
            assert site.raw(second)["schedulerJobId"] is None
            report = manager.run_once()
            assert (report.finished, report.failed, report.started) == ((), (), ())
    finally:
        site.cluster("start", "slurmctld")
    site.clock.advance(120)  # past submit_grace: the second job is recovered
    reports = run_until(manager, lambda: site.status(first) == site.status(second) == "finished")
    counts = [len(site.names(job_id)) for job_id in (first, second)]
    record(record_property, backend="sqlite",
           connector="slurm" if mode == "local" else "slurm-rest", jobs=2,
           submissions=sum(counts), twice=sum(n > 1 for n in counts), lost=0,
           falsely_failed=sum(site.status(j) == "failed" for j in (first, second)))
    assert second in {j for r in reports for j in r.recovered}
    assert counts == [1, 1]


def test_sshd_stopped_changes_no_job_and_the_next_cycles_catch_up(site: Site) -> None:
    """The login node unreachable: nothing changes state, no new job is claimed for it;
    once sshd is back the running job finishes and the new one runs."""
    first, second = new_ids(2)
    site.insert_fasta(first)
    connector = site.slurm_connector("ssh", delay=3)
    manager = site.slurm_manager(connector, "ssh")
    assert manager.run_once().started == (first,)
    site.insert_fasta(second)
    with site.stopped("sshd"):
        connector.close()  # the open master connection would outlive the listener
        with retry.testing(attempts=1):
            for _ in range(2):
                report = manager.run_once()
                assert (report.finished, report.failed, report.started) == ((), (), ())
                assert report.errors
        # the status call failed, so no new job is claimed for that destination
        assert (site.status(first), site.status(second)) == ("running", "new")
    run_until(manager, lambda: site.status(first) == site.status(second) == "finished")
    assert result_columns(site, second) == (2, 2)


def test_slurmrestd_stopped_changes_no_job_and_the_next_cycles_catch_up(site: Site) -> None:
    """Slurm's REST daemon down: nothing changes state, no job fails, no new job is submitted;
    once it is back the running job finishes and the new one runs."""
    first, second = new_ids(2)
    site.insert_fasta(first)
    manager = site.slurm_manager(site.slurm_connector("rest", delay=3), "rest")
    assert manager.run_once().started == (first,)
    site.insert_fasta(second)
    with site.stopped("slurmrestd-jwt"), retry.testing(attempts=1):
        for _ in range(2):
            report = manager.run_once()
            assert (report.finished, report.failed, report.started) == ((), (), ())
            assert any("slurmrestd" in error for error in report.errors), report.errors
        assert (site.status(first), site.status(second)) == ("running", "new")
    run_until(manager, lambda: site.status(first) == site.status(second) == "finished")
    assert result_columns(site, second) == (2, 2)
    assert [len(site.names(job_id)) for job_id in (first, second)] == [1, 1]


def test_a_refused_token_fails_no_job_and_a_renewed_one_resumes(site: Site) -> None:
    """A wrong or expired token (slurmrestd answers 500, not 401) is the site's fault: the
    cycle says so without showing the token, no job is submitted or failed; once the operator
    renews the file in place, the next cycles run the jobs."""
    first, second = new_ids(2)
    site.insert_fasta(first)
    manager = site.slurm_manager(site.slurm_connector("rest", delay=1), "rest")
    assert manager.run_once().started == (first,)
    site.insert_fasta(second)
    good = site.token_file.read_text()
    refused = good.replace("SLURM_JWT=", "SLURM_JWT=x")
    site.token_file.write_text(refused)
    with retry.testing(attempts=1):
        for _ in range(2):
            report = manager.run_once()
            assert (report.finished, report.failed, report.started) == ((), (), ())
            assert report.errors
    assert all(refused.strip() not in error and good.strip() not in error
               for error in report.errors)
    assert any("token" in error for error in report.errors), report.errors
    assert (site.status(first), site.status(second)) == ("running", "new")
    assert site.names(second) == set()
    site.renew_token()
    run_until(manager, lambda: site.status(first) == site.status(second) == "finished")
    assert [len(site.names(job_id)) for job_id in (first, second)] == [1, 1]


def test_a_manager_killed_right_after_sbatch_adopts_the_job_instead_of_resubmitting(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    (job_id,) = new_ids()
    site.insert_fasta(job_id)
    crashing = site.slurm_manager(site.slurm_connector("local", delay=2))

    def crash(*_args: object) -> bool:
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(crashing.repository, "set_scheduler_ids", crash)
    with pytest.raises(KeyboardInterrupt):
        crashing.run_once()
    assert site.status(job_id) == "running"
    assert site.raw(job_id)["schedulerJobId"] is None
    submitted = site.names(job_id)
    assert len(submitted) == 1

    restarted = site.slurm_manager(site.slurm_connector("local", delay=2))
    assert restarted.run_once().recovered == ()  # inside the grace period: left alone
    site.clock.advance(120)
    assert restarted.run_once().recovered == (job_id,)
    assert {str(site.raw(job_id)["schedulerJobId"])} == submitted
    run_until(restarted, lambda: site.status(job_id) == "finished")
    assert site.names(job_id) == submitted


def test_a_slurm_job_never_gets_the_managers_secrets(site: Site,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """sbatch exports its environment to the job: the manager's secrets are not in it."""
    monkeypatch.setenv("EFI_JOB_MANAGER_DATABASE__PASSWORD", "db-s3cret-1")
    monkeypatch.setenv("PGPASSWORD", "pg-s3cret-3")
    (job_id,) = new_ids()
    site.insert_fasta(job_id)
    manager = site.slurm_manager(site.slurm_connector("local"), "local", command=(
        "sh", "-c", "env > job-env.txt && echo '{{\"num_ids\": 1}}' > stats.json"))
    run_until(manager, lambda: site.status(job_id) == "finished")
    seen = (site.results / str(job_id) / "job-env.txt").read_text()
    assert "SLURM_JOB_ID=" in seen
    assert "s3cret" not in seen
    assert "EFI_JOB_MANAGER_" not in seen


@pytest.mark.parametrize("mode", ["local", "ssh"])
def test_check_site_finds_missing_executables_and_paths_where_sbatch_runs(
        site: Site, mode: str) -> None:
    """Through the transport (ssh: as efijm on the lab), names arrive whole, quotes and all."""
    scratch = Path(site.env["EFI_SLURM_SCRATCH"]) / f"check-{random.getrandbits(32):x}"
    odd = scratch / "a dir with 'quotes' and $HOME"
    odd.mkdir(parents=True)
    for folder in (scratch, odd):
        folder.chmod(0o755)
    plain = scratch / "not-executable"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    connector = site.slurm_connector(mode)
    try:
        problems = connector.check_site(
            ["sbatch", "no-such-program-42", "/bin/sh", str(plain)],
            ["/etc", str(odd), str(odd / "missing; rm -rf x"), "/no/such/efi.config"])
    finally:
        shutil.rmtree(scratch)
    where = connector.transport.description
    assert problems == [
        f"no-such-program-42: not an executable on {where} (after env_setup)",
        f"{plain}: not an executable on {where} (after env_setup)",
        f"{odd / 'missing; rm -rf x'}: does not exist on {where}",
        f"/no/such/efi.config: does not exist on {where}",
    ]
