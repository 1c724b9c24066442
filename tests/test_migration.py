"""``config migrate``: a settings module of EFI's first job manager becomes a settings file.

The modules here have the shape of the first manager's ``config/settings.py``
(EnzymeFunctionInitiative/job_manager, 173db83): its names, its kinds of values, its
``'HPC'`` and ``'LOCAL'`` connectors; the values are this test's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from efi_job_manager.cli import main
from efi_job_manager.config import Settings
from efi_job_manager.manager import JobManager
from efi_job_manager.migration import migrate, read_first_manager_settings

HPC = '''\
import os

# --- Execution Environment ---
EXECUTION_CONNECTOR = 'HPC'
DRY_RUN = False

LOGGING = True
LOG_FILE_PATH = "{root}/log/job_manager.log"

DATABASE_URI = "mysql://efi:s3cret-pw@db.example.org/efi_web"

LOCAL_JOB_DIRECTORY = "{root}/results"
LOCAL_INPUT_FILE_SOURCE_DIR = "{root}/uploads"
MAX_NUM_RUNNING_JOB = int(os.environ.get("EFI_MAX", "5"))

HPC_HOSTNAME = "login.cluster.example.org"
HPC_USERNAME = "efi"
HPC_SSH_KEY_PATH = "{root}/id_ed25519"
REMOTE_JOB_DIRECTORY = "/scratch/efi/jobs"
PARTITION = "efi"

REMOTE_NEXTFLOW_PATH = "/opt/nextflow/nextflow"
REMOTE_NEXTFLOW_CONFIG_PATH = "/opt/EST/conf"
REMOTE_NEXTFLOW_PIPELINE_DIR = "/opt/EST/pipelines"

EMAIL_HOST = "smtp.example.org"
EMAIL_PORT = 587
EMAIL_USE_TLS = True
EMAIL_HOST_USER = "efi-mail"
EMAIL_HOST_PASSWORD = "m4il-secret"
EMAIL_SENDER = "noreply@example.org"

NEXTFLOW_PARAMS = {{
    "efi_config": "/opt/EFI/efi.config",
    "efi_db": "efi_202503",
    "fasta_db": "/db/fasta/combined.fasta",
    "duckdb_memory_limit": "8GB",
    "duckdb_threads": 1,
    "num_fasta_shards": 128,
    "num_accession_shards": 16,
    "blast_num_matches": 250,
    "multiplex": False,
    "filter": None,
    "sequence_version": "uniprot",
}}
'''

LOCAL = '''\
EXECUTION_CONNECTOR = 'LOCAL'
DRY_RUN = True
LOGGING = False
LOG_FILE_PATH = "/var/log/job_manager.log"
DATABASE_URI = "sqlite:///jobs.db"
LOCAL_JOB_DIRECTORY = "{root}/results"
LOCAL_INPUT_FILE_SOURCE_DIR = "{root}/uploads"
HPC_HOSTNAME = "unused"
PARTITION = "efi"
REMOTE_NEXTFLOW_PATH = "/opt/nextflow/nextflow"
REMOTE_NEXTFLOW_CONFIG_PATH = "/opt/EST/conf/est/slurm.config"
REMOTE_NEXTFLOW_PIPELINE_DIR = "/opt/EST/pipelines"
API_BASE_URL = "https://api.example.org"
NEXTFLOW_PARAMS = {{"efi_config": "/opt/EFI/efi.config", "fasta_db": "/db/fasta",
                   "efi_db": "efi_202503", "no_such_param": 1}}
'''


def _migrate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[
        int, Path, str]:
    old = tmp_path / "settings.py"
    old.write_text(text.format(root=tmp_path))
    new = tmp_path / "efi-job-manager.toml"
    code = main(["config", "migrate", str(old), "--output", str(new)])
    captured = capsys.readouterr()
    return code, new, captured.out + captured.err


def test_an_hpc_site_becomes_slurm_over_ssh(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """'HPC' is the Slurm connector over SSH with every key it needs; no secret is written."""
    code, new, said = _migrate(tmp_path, HPC, capsys)
    assert code == 0, said
    text = new.read_text()
    assert "s3cret-pw" not in text + said
    assert "m4il-secret" not in text + said
    assert "set EFI_JOB_MANAGER_DATABASE__PASSWORD" in said
    assert "set EFI_JOB_MANAGER_NOTIFY__EMAIL__PASSWORD" in said
    assert "MAX_NUM_RUNNING_JOB is computed (line 14)" in said
    assert "NEXTFLOW_PARAMS.filter left out" in said
    settings = Settings.load(new, environ={
        "EFI_JOB_MANAGER_DATABASE__PASSWORD": "s3cret-pw",
        "EFI_JOB_MANAGER_NOTIFY__EMAIL__PASSWORD": "m4il-secret"})
    default = settings.destinations["default"]
    assert default.connector == "slurm"
    assert dict(default.settings) == {
        "transport": "ssh", "host": "login.cluster.example.org", "user": "efi",
        "identity_file": f"{tmp_path}/id_ed25519", "remote_dir": "/scratch/efi/jobs",
        "partition": "efi"}
    assert settings.database.sqlalchemy_url.drivername == "mysql+pymysql"
    assert settings.database.sqlalchemy_url.password == "s3cret-pw"
    assert settings.manager.results_dir == tmp_path / "results"
    assert settings.log.file == tmp_path / "log" / "job_manager.log"
    assert settings.pipelines.efi_db.default == "efi_202503"
    assert dict(settings.pipelines.params) == {
        "efi_config": "/opt/EFI/efi.config", "fasta_db": "/db/fasta/combined.fasta",
        "duckdb_memory_limit": "8GB", "duckdb_threads": 1, "num_fasta_shards": 128,
        "num_accession_shards": 16, "blast_num_matches": 250, "multiplex": False}
    email = settings.notify.email
    assert email is not None
    assert (email.smtp, email.username, email.starttls) == ("smtp.example.org:587",
                                                            "efi-mail", True)
    # the whole configuration is accepted: the Slurm connector takes its settings
    manager = JobManager.from_settings(settings)
    manager.close()


def test_a_local_site_becomes_slurm_on_this_host(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """'LOCAL' ran sbatch here: the Slurm connector with the local transport, not `local`."""
    code, new, said = _migrate(tmp_path, LOCAL, capsys)
    assert code == 0, said
    settings = Settings.load(new, environ={})
    default = settings.destinations["default"]
    assert (default.connector, dict(default.settings)) == (
        "slurm", {"transport": "local", "partition": "efi"})
    assert settings.manager.dry_run is True
    assert settings.log.file is None
    assert settings.pipelines.config_dir is None  # one file: the conf/ directory is by hand
    for note in ("LOGGING = False", "HPC_HOSTNAME left out",
                 "REMOTE_NEXTFLOW_CONFIG_PATH = '/opt/EST/conf/est/slurm.config' is one config",
                 "the SQLite file 'jobs.db' is relative", "API_BASE_URL: gone",
                 "NEXTFLOW_PARAMS.no_such_param left out"):
        assert note in said, note
    assert "API_BASE_URL" not in "".join(line for line in new.read_text().splitlines()
                                         if not line.startswith("#"))


def test_migrate_never_runs_the_module_nor_overwrites(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A module's code is never run; an existing output file is kept; bad Python is said."""
    marker = tmp_path / "ran"
    found, notes = read_first_manager_settings(
        f"open({str(marker)!r}, 'w').write('x')\nDRY_RUN = __import__('os').getpid()\n"
        "EXECUTION_CONNECTOR = 'HPC'\n")
    assert not marker.exists()
    assert found == {"EXECUTION_CONNECTOR": "HPC"}
    assert notes == ["DRY_RUN is computed (line 2), not a literal: set its new home by hand"]
    assert migrate(found).settings["destinations"]["default"]["settings"] == {
        "transport": "ssh"}
    (tmp_path / "settings.py").write_text("DRY_RUN = (\n")
    assert main(["config", "migrate", str(tmp_path / "settings.py")]) == 1
    assert "not a Python settings module" in capsys.readouterr().err
    (tmp_path / "settings.py").write_text("DRY_RUN = True\n")
    (tmp_path / "out.toml").write_text("keep me\n")
    assert main(["config", "migrate", str(tmp_path / "settings.py"), "-o",
                 str(tmp_path / "out.toml")]) == 1
    assert (tmp_path / "out.toml").read_text() == "keep me\n"
    assert "File exists" in capsys.readouterr().err
