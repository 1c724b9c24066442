"""``efi-job-manager check``: the pipeline's executables and paths, odd rows, the mail server.

Real files, a real SMTP server (aiosmtpd) and a closed port; the Slurm side of the
executable check is in ``test_slurm_engine.py``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from efi_job_manager.catalogue import STANDIN_COMMAND
from efi_job_manager.cli import main
from efi_job_manager.repository import JobRepository, make_engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sink:
    """An SMTP handler that accepts and drops everything."""

    async def handle_DATA(self, *args: object) -> str:
        return "250 OK"


@pytest.fixture
def smtp_port() -> Iterator[int]:
    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def write_config(root: Path, pipelines: str, extra: str = "", manager: str = "") -> Path:
    for name in ("results", "uploads"):
        (root / name).mkdir(exist_ok=True)
    path = root / "efi.toml"
    path.write_text(f"""\
[database]
url = "sqlite:///{root / 'jobs.sqlite'}"
[manager]
results_dir = "{root / 'results'}"
input_dir = "{root / 'uploads'}"
{manager}
[destinations.default]
connector = "local"
settings = {{ state_dir = "{root / 'state'}" }}
[pipelines]
{pipelines}
[pipelines.efi_db]
default = "efi_202406"
{extra}""")
    assert main(["--config", str(path), "init-db"]) == 0
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--config", str(path), "check"])
    return code, capsys.readouterr().out


STANDIN = ("command = [" + ", ".join(f'"{p}"' for p in STANDIN_COMMAND) + "]\n"
           'params = { efi_config = "/opt/efi.config", fasta_db = "/db/uniprot" }')


def test_the_stand_in_site_checks_ok(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The stand-in's interpreter is found; the EFI data is not needed without EST's pipelines."""
    code, out = check(write_config(tmp_path, STANDIN), capsys)
    assert code == 0, out
    assert "destination default (local): ok (1 executables and paths for" in out
    # before it, the way in the connector's settings chose (BaseConnector.describe)
    assert re.search(r"destination default \(local\): jobs run on this machine, in their "
                     r"job directories; records in /\S+\n.*destination default \(local\): ok",
                     out, re.DOTALL), out


def test_missing_nextflow_pipelines_configs_and_data_are_each_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """EST's layout with pieces missing: one line for each, and exit 1; then all ok."""
    est = tmp_path / "EST"
    (est / "pipelines" / "est").mkdir(parents=True)
    (est / "pipelines" / "est" / "est.nf").write_text("// EST\n")
    (est / "conf").mkdir()
    data = tmp_path / "efi-data"
    path = write_config(tmp_path, f"""\
nextflow = "nextflow-not-installed"
pipeline_dir = "{est / 'pipelines'}"
config_dir = "{est / 'conf'}"
params = {{ efi_config = "{data / 'efi.config'}", fasta_db = "{data / 'blast' / 'uniprot'}" }}""")
    code, out = check(path, capsys)
    assert code == 1
    assert "! nextflow-not-installed: not found on the jobs' PATH" in out
    assert f"! {est / 'conf' / 'slurm.config'}: does not exist" in out
    assert f"! {est / 'pipelines' / 'gnd' / 'gnd.nf'}: does not exist" in out
    assert f"{est / 'pipelines' / 'est' / 'est.nf'}: does not exist" not in out
    assert f"! {data / 'efi.config'}: does not exist" in out
    assert f"! {data / 'blast'}: does not exist" in out  # a BLAST database is a prefix
    workflows = [Path(line.split("! ")[1].split(": does not exist")[0])
                 for line in out.splitlines() if str(est / "pipelines") in line]
    assert len(workflows) == 10  # every workflow the job types run but est.nf
    for workflow in workflows:
        workflow.parent.mkdir(parents=True, exist_ok=True)
        workflow.write_text("//\n")
    (est / "conf" / "slurm.config").write_text("//\n")
    (data / "blast").mkdir(parents=True)
    (data / "efi.config").write_text("[database]\n")
    nextflow = tmp_path / "bin" / "nextflow-not-installed"
    nextflow.parent.mkdir()
    # what Nextflow's launcher says without Java: it is there, and cannot run
    nextflow.write_text('#!/bin/sh\necho "ERROR: Cannot find Java or it\'s not executable" >&2'
                        '\nexit 1\n')
    nextflow.chmod(0o755)
    path.write_text(path.read_text().replace('"nextflow-not-installed"', f'"{nextflow}"'))
    code, out = check(path, capsys)
    assert code == 1, out
    assert (f"! the pipeline's program cannot run: {nextflow} -version exited 1: ERROR: "
            "Cannot find Java or it's not executable") in out
    nextflow.write_text('#!/bin/sh\n[ "$1" = -version ] && echo "nextflow version 24.04.4"\n')
    code, out = check(path, capsys)
    assert code == 0, out
    assert f"`{nextflow} -version` runs" in out


def test_rows_with_unknown_statuses_and_job_types_are_named_by_id(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check names the rows no cycle will run, exits 1, and changes none of them."""
    path = write_config(tmp_path, STANDIN)
    repo = JobRepository(make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}"))
    base = {"isPublic": False, "user_id": 1, "jobFilename": "x.fa"}
    repo.insert([{"id": 7, "uuid": "a", "status": "paused", "job_type": "est_generate_fasta",
                  **base},
                 {"id": 8, "uuid": "b", "status": "new", "job_type": "est_generate_fastaa",
                  **base},
                 {"id": 9, "uuid": "c", "status": "new", "job_type": "est_generate_fastaa",
                  **base}])
    code, out = check(path, capsys)
    assert code == 1
    assert "! status 'paused' is not one this manager knows (left alone): rows 7" in out
    assert "! new rows of job type 'est_generate_fastaa'" in out
    assert "rows 8, 9" in out
    assert [repo.get_raw(i)["status"] for i in (7, 8, 9)] == ["paused", "new", "new"]  # type: ignore[index]
    repo.close()


def test_the_mail_server_is_checked_when_notifications_are_on(
        tmp_path: Path, smtp_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    """A server that answers is ok; a closed port is a problem (exit 1) naming the server."""
    mail = '[notify.email]\nsmtp = "127.0.0.1:{port}"\nsender = "efi@example.org"\n'
    path = write_config(tmp_path, STANDIN, mail.format(port=smtp_port))
    code, out = check(path, capsys)
    assert code == 0, out
    assert f"mail server: 127.0.0.1:{smtp_port}: ok" in out
    closed = free_port()
    path.write_text(path.read_text().replace(str(smtp_port), str(closed)))
    code, out = check(path, capsys)
    assert code == 1
    assert f"! mail server 127.0.0.1:{closed}: ConnectionRefusedError" in out


def test_the_web_servers_group_and_mode_are_tried_on_a_probe(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(write_config(tmp_path, STANDIN, manager='results_group = "nogroup"\n'
                                   'results_mode = "0640"'), capsys)
    assert code == 0, out
    assert "job files: group nogroup, mode 0640: ok" in out
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.startswith(".efi-probe")]
