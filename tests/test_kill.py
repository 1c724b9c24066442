"""A manager killed anywhere loses no job, submits none twice and fails none falsely.

The daemon (``efi-job-manager run``, a real process) is killed with SIGKILL at each
named step of a cycle (``EFI_FAULT_KILL_AT``, see `efi_job_manager.faults.STEPS`) and
at random moments, on every database backend, with the local connector and with the
real Slurm lab (its commands; and, killed right after a submission, its REST daemon with the
files over SSH). Four jobs: two that must finish, one whose upload is missing (its own
fault: it must fail, with that reason) and one the user cancels as soon as it has a
scheduler id (or, if the manager died first, right after). A manager started after
the crash, past the grace periods, must bring every job to that end, with at most one
submission per job and every submission of the cancelled job cancelled.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from engine_site import SSN, Site, fasta_job, make_site, run_until
from reliability import RecordProperty, record
from slurm_lab import ROOT, lab_environment, new_ids, slurm, slurm_jobs, write_token

from efi_connector_local import LocalConnector
from efi_connector_local.records import StateStore
from efi_connector_slurm import SlurmConnector
from efi_job_manager.catalogue import STANDIN_COMMAND
from efi_job_manager.connector import BaseConnector
from efi_job_manager.faults import STEPS
from efi_job_manager.manager import Destination
from efi_job_manager.repository import make_engine

#: Seconds the stand-in runs: the jobs that must finish, and the one the user cancels
#: (long, so that it is still running whenever the cancellation should reach it).
QUICK = 1.0
SLOW = 60.0
#: The steps reached only by a manager that recovers a job an earlier one left behind.
RECOVERY_STEPS = ("taken-over", "adopted")
#: keep_job_files: the connectors' records, by which submissions are counted, stay a day
KEEP = 86400
EXPECTED = {"finishes": "finished", "finishes too": "finished", "no upload": "failed",
            "cancelled": "cancelled"}
#: The stand-in as the lab's user runs it over REST: the system Python with this checkout's
#: sources (this process's interpreter may sit where that user cannot read).
CLUSTER_STANDIN = (
    "/usr/bin/env", f"PYTHONPATH={ROOT / 'src'}:{sysconfig.get_paths()['purelib']}",
    "/usr/bin/python3", "-m", "efi_job_manager.dev.standin", "{pipeline_name}", "{params_file}")


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@attrs.define
class Crash:
    """A site, the cluster its manager submits to, and the four jobs of a crash test."""

    site: Site
    cluster: str
    lab: dict[str, str] | None
    ids: dict[str, int]
    record_property: RecordProperty
    backend: str
    rest: bool = False
    config: Path = attrs.field(init=False)
    token_file: str = ""
    remote_dir: str = ""

    def __attrs_post_init__(self) -> None:
        with zipfile.ZipFile(self.site.uploads / "ssn.zip", "w") as archive:
            archive.writestr("full_ssn.xgmml", SSN)
        values: dict[str, dict[str, Any]] = {
            "no upload": {"jobFilename": "not-uploaded.fa"},
            "cancelled": {"job_type": "est_color_ssn", "jobFilename": "ssn.zip"}}
        self.site.insert(*(  # created in this order, so claimed in this order
            fasta_job(self.ids[role], timeCreated=datetime(2026, 11, 1, 0, 0, n),
                      **values.get(role, {}))
            for n, role in enumerate(EXPECTED)))
        self.config = self.site.root / "efi.toml"
        if self.rest:
            assert self.lab is not None
            self.remote_dir = f"{self.lab['EFI_SLURM_SCRATCH']}/kill-{uuid.uuid4().hex[:8]}"
            self.token_file = str(write_token(self.lab, self.site.root / "slurm-jwt"))
        destinations = "".join(
            f'[destinations.{name}]\nconnector = "{self.cluster}"\n'
            f"keep_job_files = {KEEP}\n"  # submissions are counted from the records
            f"settings = {_toml(self.settings(name, delay))}\n"
            for name, delay in (("default", QUICK), ("slow", SLOW)))
        self.config.write_text(
            f"[database]\nurl = {_toml(self.site.url)}\n"
            f"[manager]\ninterval = 0.5\nresults_dir = {_toml(str(self.site.results))}\n"
            f"input_dir = {_toml(str(self.site.uploads))}\nsubmit_grace = 60\n"
            f"lost_grace = 120\n{destinations}"
            f'[routing]\nest_color_ssn = "slow"\n'
            f"[pipelines]\ncommand = {_toml(self.command)}\n"
            f'params = {{ efi_config = "/opt/efi.config", fasta_db = "/db/uniprot" }}\n'
            f'[pipelines.efi_db]\ndefault = "efi_202406"\n')

    @property
    def command(self) -> tuple[str, ...]:
        """The pipeline command: the stand-in, as the jobs' user can run it."""
        return CLUSTER_STANDIN if self.rest else STANDIN_COMMAND

    def settings(self, destination: str, delay: float) -> dict[str, Any]:
        if self.lab is None:
            return {"state_dir": str(self.site.root / f"state-{destination}"), "kill_grace": 2,
                    "env": {"EFI_STANDIN_DELAY": f"{delay:g}"}}
        if self.rest:  # slurmrestd sends no environment but its own: env_setup sets it
            return {"partition": "efi", "transport": "ssh", "host": self.lab["EFI_SLURM_SSH_HOST"],
                    "ssh_config": self.lab["EFI_SLURM_SSH_CONFIG"],
                    "remote_dir": f"{self.remote_dir}/{destination}", "api": "rest",
                    "rest_url": self.lab["EFI_SLURM_REST_URL"],
                    "rest_user": self.lab["EFI_SLURM_SSH_USER"],
                    "rest_token_file": self.token_file,
                    "env_setup": f"export EFI_STANDIN_DELAY={delay:g}"}
        return {"partition": "efi", "slurm_conf": self.lab["SLURM_CONF"],
                "extra_sbatch": [f"--export=ALL,EFI_STANDIN_DELAY={delay:g}"]}

    def connector(self, destination: str, delay: float) -> BaseConnector:
        settings = self.settings(destination, delay)
        return LocalConnector(settings) if self.lab is None else SlurmConnector(settings)

    def submissions(self, job_id: int) -> dict[str, bool]:
        """Every submission made for ``job_id``: scheduler id → whether it was cancelled."""
        if self.lab is not None:
            return {sid: state.startswith("CANCELLED")
                    for sid, state in slurm_jobs(self.lab, job_id).items()}
        found = {}
        for destination in ("default", "slow"):
            store = StateStore(self.site.root / f"state-{destination}")
            for folder in (store.state_dir / "names").glob(f"efi-{job_id}-*"):
                for entry in folder.iterdir():
                    record = store.read(entry.name)
                    if record is not None and record.launch_error is None:
                        found[f"{destination}:{entry.name}"] = store.is_cancelled(entry.name)
        return found

    def row(self, role: str) -> dict[str, Any]:
        return self.site.raw(self.ids[role])

    def cancel(self, *, statuses: tuple[str, ...]) -> None:
        """Cancel the job the user cancels, as EFI-Web does, if it is in one of ``statuses``."""
        job = sa.table("Job", sa.column("id"), sa.column("status"))
        engine = make_engine(self.site.url)
        with engine.begin() as conn:
            conn.execute(sa.update(job).where(job.c.id == self.ids["cancelled"],
                                              job.c.status.in_(statuses))
                         .values(status="cancelled"))
        engine.dispose()

    def run(self, *, kill_at: str | None = None, kill_after: float | None = None,
            timeout: float = 90.0) -> str:
        """Run the daemon until it is killed: at a step, or by the test after some seconds.

        Returns its standard error. Meanwhile the user cancels their job as soon as it
        has a scheduler id, or as soon as the daemon is dead.
        """
        env = {k: v for k, v in (self.lab or os.environ).items()
               if k != "EFI_FAULT_KILL_AT"}
        if kill_at:
            env["EFI_FAULT_KILL_AT"] = kill_at
        process = subprocess.Popen(
            [sys.executable, "-m", "efi_job_manager.cli", "--config", str(self.config), "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        started = time.monotonic()
        try:
            while process.poll() is None:
                elapsed = time.monotonic() - started
                if kill_after is not None and elapsed >= kill_after:
                    process.kill()
                    break
                assert elapsed < timeout, f"{kill_at} not reached in {timeout} s"
                if self.row("cancelled")["schedulerJobId"] is not None:
                    self.cancel(statuses=("running",))
                time.sleep(0.1)
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
        assert process.returncode == -9, f"exit {process.returncode}:\n{err[-3000:]}"
        if kill_at:
            assert f"EFI_FAULT_KILL_AT: killing myself at {kill_at}" in err
        self.cancel(statuses=("new", "running"))
        return err

    def age_claims(self, seconds: float) -> None:
        """Make every claim whose id was never stored ``seconds`` older (past the grace)."""
        job = sa.table("Job", sa.column("id"), sa.column("timeStarted", sa.DateTime),
                       sa.column("schedulerJobId"))
        engine = make_engine(self.site.url)
        with engine.begin() as conn:
            rows = conn.execute(sa.select(job.c.id, job.c.timeStarted).where(
                job.c.timeStarted.is_not(None), job.c.schedulerJobId.is_(None))).all()
            for job_id, started in rows:
                conn.execute(sa.update(job).where(job.c.id == job_id)
                             .values(timeStarted=started - timedelta(seconds=seconds)))
        engine.dispose()

    def recover_and_check(self) -> None:
        """Start a manager past the grace periods; every job must reach its expected end."""
        manager = self.site.manager(
            command=self.command,
            destinations={
                "default": Destination("default", self.connector("default", QUICK), None, KEEP),
                "slow": Destination("slow", self.connector("slow", SLOW), None, KEEP)},
            routing={"est_color_ssn": "slow"})
        self.site.clock.advance(120)

        def done() -> bool:
            ended = all(self.row(role)["status"] in ("finished", "failed", "cancelled")
                        for role in EXPECTED)
            return ended and all(self.submissions(self.ids["cancelled"]).values())

        run_until(manager, done, timeout=180)
        statuses = {role: self.row(role)["status"] for role in EXPECTED}
        counts = {role: len(self.submissions(self.ids[role])) for role in EXPECTED}
        falsely_failed = sum(statuses[r] == "failed" != EXPECTED[r] for r in EXPECTED)
        record(self.record_property, backend=self.backend, connector=self.cluster,
               jobs=len(EXPECTED), submissions=sum(counts.values()),
               twice=sum(n > 1 for n in counts.values()), falsely_failed=falsely_failed,
               lost=sum(statuses[r] not in (EXPECTED[r], "failed") for r in EXPECTED))
        assert statuses == EXPECTED, "a job was lost or failed for the site's fault"
        failure = self.site.results / str(self.ids["no upload"]) / "failure.json"
        assert "not-uploaded.fa" in json.loads(failure.read_text())["reason"]
        assert counts["finishes"] == counts["finishes too"] == 1, counts
        assert counts["no upload"] == 0, counts
        assert counts["cancelled"] <= 1, counts


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    yield from make_site(tmp_path, database_url)


@pytest.fixture(scope="module")
def lab() -> dict[str, str]:
    return lab_environment()


@pytest.fixture
def slurm_site(tmp_path: Path, database_url: str, lab: dict[str, str]) -> Iterator[Site]:
    """A site whose jobs go to the lab, on every backend."""
    yield from make_site(tmp_path, database_url)


def _crash(site: Site, lab: dict[str, str] | None, record_property: RecordProperty, *,
           rest: bool = False) -> Crash:
    ids = new_ids(4) if lab is not None else [1, 2, 3, 4]
    roles = dict(zip(EXPECTED, ids, strict=True))
    backend = site.url.partition(":")[0].partition("+")[0]
    return Crash(site, "local" if lab is None else "slurm", lab, roles, record_property,
                 {"mysql": "mariadb"}.get(backend, backend), rest=rest)


def _kill_at(crash: Crash, step: str) -> None:
    try:
        if step in RECOVERY_STEPS:  # leave a submission whose id was never stored, past grace
            crash.run(kill_at="submitted")
            crash.age_claims(120)
        crash.run(kill_at=step)
        crash.recover_and_check()
    finally:
        _leave_the_lab_clean(crash)


def _kill_at_random(crash: Crash, seed: int) -> None:
    moments = random.Random(seed).sample([x / 10 for x in range(5, 60)], 4)  # noqa: S311
    try:
        for moment in moments:
            crash.run(kill_after=moment)
            crash.age_claims(120)
        crash.recover_and_check()
    finally:
        _leave_the_lab_clean(crash)


def _leave_the_lab_clean(crash: Crash) -> None:
    if crash.lab is not None:  # nothing of this test may keep running on the lab
        ids = [sid for role in EXPECTED for sid in slurm_jobs(crash.lab, crash.ids[role])]
        slurm(crash.lab, ["scancel", *ids], check=False)
    if crash.remote_dir:
        shutil.rmtree(crash.remote_dir, ignore_errors=True)


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_a_step_with_the_local_connector(
        site: Site, step: str, record_property: RecordProperty) -> None:
    """Every backend, every step: nothing lost, nothing submitted twice or failed falsely."""
    _kill_at(_crash(site, None, record_property), step)


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_a_step_with_slurm(slurm_site: Site, lab: dict[str, str], step: str,
                                     record_property: RecordProperty) -> None:
    """The real Slurm (sbatch, squeue, sacct, scancel), every backend, every step."""
    _kill_at(_crash(slurm_site, lab, record_property), step)


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_again_and_again_at_random_moments(
        site: Site, seed: int, record_property: RecordProperty) -> None:
    """Four kills at random moments in a row, then a recovery: the same guarantees."""
    _kill_at_random(_crash(site, None, record_property), seed)


@pytest.mark.parametrize("step", ["submitted", "adopted"])
def test_killed_right_after_submitting_through_slurmrestd(
        slurm_site: Site, lab: dict[str, str], step: str,
        record_property: RecordProperty) -> None:
    """Slurm's REST daemon (files over SSH), every backend: a submission whose id was never
    stored is adopted by name; the same guarantees."""
    _kill_at(_crash(slurm_site, lab, record_property, rest=True), step)


@pytest.mark.parametrize("cluster", ["local", "slurm", "slurm-rest"])
def test_a_dead_managers_submission_is_adopted_in_the_first_cycle_with_a_line_naming_it(
        tmp_path: Path, cluster: str, record_property: RecordProperty,
        caplog: pytest.LogCaptureFixture) -> None:
    """kill -9 right after a submission: the restarted manager does not wait out
    submit_grace; its first cycle finds the submission by name and adopts it, saying so
    (locally; on Slurm with its commands; through slurmrestd with the files over SSH)."""
    lab = lab_environment() if cluster != "local" else None
    crash = _crash(next(make_site(tmp_path, f"sqlite:///{tmp_path / 'efi.db'}")), lab,
                   record_property, rest=cluster == "slurm-rest")
    try:
        crash.run(kill_at="submitted")
        waiting = [role for role in EXPECTED if crash.row(role)["status"] == "running"
                   and crash.row(role)["schedulerJobId"] is None]
        assert waiting
        manager = crash.site.manager(
            command=crash.command,
            destinations={
                "default": Destination("default", crash.connector("default", QUICK), None,
                                       KEEP),
                "slow": Destination("slow", crash.connector("slow", SLOW), None, KEEP)},
            routing={"est_color_ssn": "slow"})
        with caplog.at_level(logging.INFO, logger="efi_job_manager.manager"):
            report = manager.run_once()  # no clock advanced: inside submit_grace
        adopted = {crash.ids[role] for role in waiting if crash.submissions(crash.ids[role])}
        assert adopted
        assert adopted <= set(report.recovered)
        for job_id in adopted:
            assert any(f"job {job_id}: claimed by" in r.message and "adopted now" in r.message
                       for r in caplog.records), caplog.text
            assert crash.site.raw(job_id)["schedulerJobId"] is not None
    finally:
        _leave_the_lab_clean(crash)
        crash.site.close()


def test_killed_again_and_again_at_random_moments_with_slurm(
        slurm_site: Site, lab: dict[str, str], record_property: RecordProperty) -> None:
    """The same on the real Slurm, every backend."""
    _kill_at_random(_crash(slurm_site, lab, record_property), 3)
