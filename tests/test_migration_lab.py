"""A site of EFI's first job manager, migrated, runs on the real Slurm lab and can be watched.

What a newcomer does: ``config migrate`` the old ``config/settings.py`` (``'HPC'`` over SSH,
or ``'LOCAL'``: sbatch on this host), add what the old file never held (the stand-in
pipeline instead of Nextflow, which cannot run here; the lab's ssh port and known_hosts;
the metrics port), start ``run``, and see the job finish in ``status``, the JSON log and
the metrics endpoint.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from observing import free_port, scrape
from slurm_lab import lab_environment
from sqlalchemy import insert

from efi_job_manager.catalogue.site import STANDIN_COMMAND
from efi_job_manager.cli import main
from efi_job_manager.config.reference import toml_document
from efi_job_manager.models import Job
from efi_job_manager.repository import make_engine
from efi_job_manager.schema import create_tables
from efi_job_manager.testing import FASTA, fasta_job

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: The stand-in as the lab's ssh user runs it (the checkout and this virtualenv's packages).
SSH_STANDIN_COMMAND = [
    "/usr/bin/env", f"PYTHONPATH={ROOT / 'src'}:{sysconfig.get_paths()['purelib']}",
    "/usr/bin/python3", "-m", "efi_job_manager.dev.standin", "{pipeline_name}", "{params_file}",
]

OLD_SETTINGS = '''\
EXECUTION_CONNECTOR = {kind!r}
DRY_RUN = False
LOGGING = True
LOG_FILE_PATH = "{root}/job_manager.log"
DATABASE_URI = "sqlite:///{root}/jobs.db"
LOCAL_JOB_DIRECTORY = "{root}/results"
LOCAL_INPUT_FILE_SOURCE_DIR = "{root}/uploads"
HPC_HOSTNAME = "127.0.0.1"
HPC_USERNAME = "{user}"
HPC_SSH_KEY_PATH = "{key}"
REMOTE_JOB_DIRECTORY = "{remote}"
PARTITION = "efi"
REMOTE_NEXTFLOW_PATH = "nextflow"
NEXTFLOW_PARAMS = {{"efi_config": "/opt/efi.config", "fasta_db": "/db/uniprot",
                   "efi_db": "efi_202406", "filter": None}}
'''


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    return lab_environment()


@pytest.fixture
def remote(lab_env: dict[str, str]) -> Iterator[Path]:
    path = Path(lab_env["EFI_SLURM_SCRATCH"]) / f"migrated-{random.getrandbits(32):x}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("kind", ["HPC", "LOCAL"])
def test_a_migrated_first_manager_site_runs_a_job_and_is_seen(
        tmp_path: Path, lab_env: dict[str, str], remote: Path, kind: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """HPC → slurm over ssh, LOCAL → slurm here: a job finishes; status, logs and metrics say so."""
    lab = Path(lab_env["EFI_SLURM_LAB"])
    (tmp_path / "results").mkdir()
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "seqs.fasta").write_text(FASTA)
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    create_tables(engine)
    with engine.begin() as conn:
        conn.execute(insert(Job.__table__), [fasta_job(1, timeCreated=datetime.utcnow())])
    engine.dispose()
    old = tmp_path / "settings.py"
    old.write_text(OLD_SETTINGS.format(kind=kind, root=tmp_path, remote=remote,
                                       user=lab_env["EFI_SLURM_SSH_USER"],
                                       key=lab / "ssh" / "id_ed25519"))
    new = tmp_path / "efi-job-manager.toml"
    assert main(["config", "migrate", str(old), "-o", str(new)]) == 0
    said = capsys.readouterr().err
    assert "NEXTFLOW_PARAMS.filter left out" in said

    # what the old file never held: the stand-in for Nextflow, the lab's own ssh details
    settings: dict[str, Any] = tomllib.loads(new.read_text())
    destination = settings["destinations"]["default"]["settings"]
    assert destination["transport"] == ("ssh" if kind == "HPC" else "local")
    destination["extra_sbatch"] = ["--export=ALL,EFI_STANDIN_DELAY=1"]
    if kind == "HPC":
        destination["port"] = int(lab_env["EFI_SLURM_SSH_PORT"])
        destination["known_hosts"] = str(lab / "ssh" / "known_hosts")
        command = SSH_STANDIN_COMMAND
    else:
        destination["slurm_conf"] = lab_env["SLURM_CONF"]
        command = list(STANDIN_COMMAND)
    settings["pipelines"]["command"] = command
    port = free_port()
    settings["metrics"] = {"port": port}
    settings["log"] = {**settings.get("log", {}), "format": "json"}
    settings["manager"]["interval"] = "1s"
    new.write_text("\n".join(toml_document(settings)) + "\n")
    assert main(["check", "--config", str(new)]) == 0, capsys.readouterr()

    process = subprocess.Popen([sys.executable, "-m", "efi_job_manager.cli", "run",
                                "--config", str(new)], stderr=subprocess.DEVNULL,
                               env=lab_env)
    try:
        _wait_finished(new, capsys)
        scraped = scrape(port)
        code, status = _status(new, capsys)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    assert code == 0
    assert [(m["pid"], m["state"]) for m in status["managers"]] == [(process.pid, "running")]
    assert {(c["status"], c["pipeline"]): c["count"] for c in status["jobs"]} == {
        ("finished", "est"): 1}
    assert scraped["efi_job_manager_jobs_finished_total", (("pipeline", "est"),)] == 1
    assert scraped["efi_job_manager_submissions_total",
                   (("destination", "default"), ("pipeline", "est"))] == 1
    records = [json.loads(line) for line in (tmp_path / "job_manager.log").read_text()
               .splitlines()]
    assert any(r.get("job_id") == 1 and "finished" in r["message"] for r in records)


def _status(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["status", "--config", str(config), "--json"])
    return code, json.loads(capsys.readouterr().out)


def _wait_finished(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, status = _status(config, capsys)
        if any(c["status"] == "finished" for c in status["jobs"]):
            return
        if any(c["status"] == "failed" for c in status["jobs"]):
            raise AssertionError(f"the job failed: {status}")
        time.sleep(1)
    raise AssertionError("the job did not finish within 120 s")
