"""The efi-job-manager command: what it prints and its exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import golden_cases
import pytest
import sqlalchemy as sa

from efi_job_manager.catalogue import STANDIN_COMMAND
from efi_job_manager.cli import main
from efi_job_manager.cli.parser import package_version
from efi_job_manager.clock import utcnow
from efi_job_manager.jobdir import JobDirectory
from efi_job_manager.repository import JobRepository, make_engine

FASTA = ">sp|P0A9Q7|ADHE_ECOLI\nMAVTNVAELNALVERVKKAQ\n"
GOLDEN = Path(__file__).parent / "golden" / "params"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration on a fresh SQLite file, the local connector and the stand-in."""
    monkeypatch.delenv("EFI_JOB_MANAGER_CONFIG", raising=False)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "uploads" / "seqs.fasta").write_text(FASTA)
    command = ", ".join(f'"{p}"' for p in STANDIN_COMMAND)
    path = tmp_path / "efi.toml"
    path.write_text(f"""\
[database]
url = "sqlite:///{tmp_path / 'jobs.sqlite'}"
password = "s3cret-db-password"
[manager]
results_dir = "results"
input_dir = "uploads"
[destinations.default]
connector = "local"
settings = {{ state_dir = "{tmp_path / 'state'}" }}
[pipelines]
command = [{command}]
params = {{ efi_config = "/opt/efi.config", fasta_db = "/db/uniprot" }}
[pipelines.efi_db]
default = "efi_202406"
""")
    return path


def insert(config: Path, **values: object) -> None:
    repo = JobRepository(make_engine(f"sqlite:///{config.parent / 'jobs.sqlite'}"))
    row: dict[str, object] = {"id": 1, "uuid": "u1", "status": "new", "isPublic": False,
                              "job_type": "est_generate_fasta", "jobFilename": "seqs.fasta",
                              "allByAllBlastEValue": 5, "user_id": 3}
    row.update(values)
    repo.insert([row])
    repo.close()


def cli(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


@pytest.mark.parametrize("command", [
    [], ["run"], ["check"], ["connectors"], ["init-db"], ["jobs"], ["jobs", "list"],
    ["jobs", "show"], ["jobs", "cancel"], ["jobs", "retry"], ["jobs", "params"], ["demo"],
    ["config"], ["config", "show"]])
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """--help on every command prints usage and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: efi-job-manager" in capsys.readouterr().out


def test_init_db_creates_the_table_once(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """init-db makes the table, then refuses to touch it: exit 1 with one line."""
    assert cli(config, "init-db") == 0
    assert cli(config, "init-db") == 1
    err = capsys.readouterr().err
    assert "already exists" in err
    assert "Traceback" not in err
    assert "s3cret-db-password" not in err


def test_a_configuration_error_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong type in the file names the key and exits 2 without a traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[manager]\nmax_running_jobs = "ten"\n')
    assert main(["--config", str(bad), "check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "manager.max_running_jobs" in err[0]


def test_an_unknown_connector_is_exit_2_and_names_the_installed_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A destination naming a connector nobody installed says which ones are installed."""
    path = tmp_path / "c.toml"
    path.write_text('[destinations.default]\nconnector = "pbs"\n'
                    '[pipelines]\ncommand = ["true"]\n'
                    'params = { efi_config = "/x", fasta_db = "/x" }\n'
                    '[pipelines.efi_db]\ndefault = "efi_202406"\n')
    assert main(["--config", str(path), "run", "--once"]) == 2
    err = capsys.readouterr().err
    assert "'pbs'" in err
    assert "local" in err


def test_check_reports_the_table_and_the_destinations(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check refuses a database file that is not there (never creating one), reports a
    missing table, passes after init-db; the password never shows."""
    database = config.parent / "jobs.sqlite"
    assert cli(config, "check") == 2
    assert f"database.url: the SQLite database {database} does not exist" in \
        capsys.readouterr().err
    assert not database.exists()
    database.touch()
    assert cli(config, "check") == 1
    assert "the Job table does not exist" in capsys.readouterr().out
    database.unlink()
    assert cli(config, "init-db") == 0
    assert cli(config, "check") == 0
    out = capsys.readouterr().out
    assert "destination default (local): ok" in out
    assert "s3cret-db-password" not in out


def test_run_once_submits_and_jobs_show_lists_it(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run --once starts a new job; jobs list and show describe it."""
    assert cli(config, "init-db") == 0
    insert(config)
    assert cli(config, "run", "--once") == 0
    assert "started [1]" in capsys.readouterr().out
    assert cli(config, "jobs", "list", "--status", "running") == 0
    assert "est_generate_fasta" in capsys.readouterr().out
    assert cli(config, "jobs", "show", "1") == 0
    out = capsys.readouterr().out
    assert "destination     default" in out
    assert cli(config, "jobs", "show", "99") == 1


def test_a_failed_jobs_reason_names_its_stderr_and_jobs_show_prints_the_tail(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The pipeline exits 3 with a message on stderr: the reason points at the file and
    ``jobs show`` prints its last lines; ``clean`` then finds nothing left (released)."""
    text = config.read_text().replace(
        "settings = {", 'settings = { env = { EFI_STANDIN_FAIL = "3" }, ', 1)
    config.write_text(text)
    assert cli(config, "init-db") == 0
    insert(config)
    deadline = time.monotonic() + 30
    while cli(config, "run", "--once") == 0 and time.monotonic() < deadline:
        with make_engine(f"sqlite:///{config.parent / 'jobs.sqlite'}").connect() as conn:
            if conn.execute(sa.text('SELECT status FROM "Job" WHERE id = 1')).scalar() == "failed":
                break
        time.sleep(0.2)
    capsys.readouterr()
    assert cli(config, "jobs", "show", "1") == 0
    out = capsys.readouterr().out
    assert "EXIT_CODE 3; see stderr.log, stdout.log in the job's directory" in out
    assert "--- last" in out
    assert "lines of stderr.log" in out
    assert "terminated with an error exit status (3)" in out
    # the job's records went when it failed, or (its wrapper still exiting then) go now
    assert cli(config, "clean") == 0
    assert "; kept 0 (running, or within keep_job_files)" in capsys.readouterr().out
    assert cli(config, "clean") == 0
    assert "removed the files of 0 ended job(s); kept 0" in capsys.readouterr().out


def test_jobs_cancel_and_retry_follow_the_state_machine(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """cancel works on new jobs, retry on cancelled ones; the wrong status is exit 1."""
    assert cli(config, "init-db") == 0
    insert(config)
    assert cli(config, "jobs", "retry", "1") == 1
    assert cli(config, "jobs", "cancel", "1") == 0
    assert cli(config, "jobs", "cancel", "1") == 1
    assert cli(config, "jobs", "retry", "1") == 0
    assert "job 1 is new again" in capsys.readouterr().out


def test_jobs_params_prints_params_and_command(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """jobs params shows what the job would get, without submitting it."""
    assert cli(config, "init-db") == 0
    insert(config)
    assert cli(config, "jobs", "params", "1") == 0
    out = capsys.readouterr().out
    assert '"import_mode": "fasta"' in out
    assert "efi_job_manager.dev.standin" in out
    assert cli(config, "jobs", "list", "--status", "new") == 0
    assert "est_generate_fasta" in capsys.readouterr().out


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def test_jobs_params_diff_against_a_file_est_wrote(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--diff reads a params file EST's own script wrote elsewhere: equal is exit 0; a value
    of another JSON type, a missing key and an extra one are each named, exit 1."""
    uploads, results = golden_cases.make_site(tmp_path)
    config = tmp_path / "golden.toml"
    config.write_text("\n".join(f"[{section}]\n" + "\n".join(
        f"{key} = {_toml(value)}" for key, value in values.items()) for section, values in {
        "database": {"url": f"sqlite:///{tmp_path / 'jobs.sqlite'}"},
        "manager": {"results_dir": str(results), "input_dir": str(uploads)},
        "destinations.default": {"connector": "local",
                                 "settings": {"state_dir": str(tmp_path / "state")}},
        "pipelines": {"pipeline_dir": golden_cases.PIPELINE_DIR,
                      "config_dir": golden_cases.CONFIG_DIR,
                      "params": golden_cases.SITE_PARAMS},
        "pipelines.efi_db": golden_cases.EFI_DB}.items()) + "\n")
    name = "est_ssn_finalization-realistic"
    job_type, row = golden_cases.CASES[name]
    assert cli(config, "init-db") == 0
    repo = JobRepository(make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}"))
    repo.insert([{"uuid": "u", "status": "new", "isPublic": False, "job_type": job_type, **row}])
    repo.close()
    est_file = GOLDEN / f"{name}.json"
    written = json.loads(est_file.read_text().replace("{job_dir}", "/elsewhere/est-run"))
    file = tmp_path / "params.yml"
    file.write_text(json.dumps(written))
    assert cli(config, "jobs", "params", str(row["id"]), "--diff", str(file)) == 0
    out = capsys.readouterr().out
    assert "est: bin/create_generatessn_nextflow_params.py manual --output-dir" in out
    assert "what EST's script writes for this job" in out
    assert "added by this site: compute_ssn_nc_factor = true" in out
    assert "ignored (EST's run-script keys): nextflow_config, template" in out
    written["min_length"] = 150
    del written["db_version"]
    written["color_ssn"] = True
    file.write_text(json.dumps(written))
    assert cli(config, "jobs", "params", str(row["id"]), "--diff", str(file)) == 1
    out = capsys.readouterr().out
    assert 'min_length: job "150", file 150' in out
    assert "missing from the file: db_version = 100" in out
    assert "only in the file: color_ssn = true" in out


def test_dry_run_prints_the_command_and_submits_nothing(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run --dry-run prints what it would do and leaves the job new."""
    assert cli(config, "init-db") == 0
    insert(config)
    assert cli(config, "run", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "job 1: would submit on default" in out
    assert "efi_job_manager.dev.standin" in out
    assert cli(config, "jobs", "list", "--status", "new") == 0
    assert "est_generate_fasta" in capsys.readouterr().out


def test_connectors_lists_the_installed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    """connectors shows local and slurm with their distributions."""
    code = main(["connectors"])
    out = capsys.readouterr().out
    assert "efi-connector-local" in out
    assert code in (0, 1)
    assert ("BROKEN" in out) == (code == 1)


def test_the_demo_runs_to_its_table(tmp_path: Path) -> None:
    """The README's first command: every good job finishes, the broken one fails with why."""
    result = subprocess.run(
        [sys.executable, "-m", "efi_job_manager.cli", "demo", "--dir", str(tmp_path / "d"),
         "--delay", "0"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "6 finished, 1 failed" in result.stdout
    assert "missing-query.fa" in result.stdout
    assert "est_generate_families" in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_finishes_the_step_and_exits_cleanly(config: Path, signum: int) -> None:
    """The daemon exits 0 soon after SIGTERM, SIGHUP or SIGINT, with a log line saying why."""
    assert cli(config, "init-db") == 0
    insert(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "efi_job_manager.cli", "--config", str(config), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if list((config.parent / "results").glob("1/params.json")):
                break
            time.sleep(0.1)
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err[-2000:]
    assert f"received {signal.Signals(signum).name}" in err
    assert "manager stopped" in err


# -- operator commands: --version, options after the command, jobs list, config show, retry

def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version: the distribution's version, exit 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"efi-job-manager {package_version()}"
    assert package_version()[0].isdigit()


def test_global_options_may_follow_the_command(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--config after the command is the same as before it."""
    assert main(["init-db", "--config", str(config)]) == 0
    assert main(["jobs", "list", "--config", str(config)]) == 0
    assert "(no jobs)" in capsys.readouterr().out


def _failed(config: Path, job_id: int, reason: str, *, job_type: str = "est_generate_fasta",
            ended: datetime | None = None, destination: str = "default") -> None:
    insert(config, id=job_id, uuid=f"u{job_id}", status="failed", job_type=job_type,
           timeCreated=utcnow() - timedelta(hours=3), timeCompleted=ended or utcnow(),
           schedulerJobId=4711)
    (config.parent / "results" / str(job_id)).mkdir()
    jd = JobDirectory(config.parent / "results", job_id)
    jd.record_destination(destination, "4711")
    jd.record_failure(reason, utcnow())


def test_jobs_list_has_a_header_every_job_type_and_json(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Header, user, destination, scheduler id and age; an unknown job type is listed too."""
    assert cli(config, "init-db") == 0
    _failed(config, 1, "EXIT_CODE 3")
    insert(config, id=2, uuid="u2", job_type="est_generate_fastaa", user_id=9)
    capsys.readouterr()
    assert cli(config, "jobs", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "JOB", "TYPE", "STATUS", "USER", "DESTINATION",
                                "SCHEDULER", "ID", "AGE"]
    assert lines[1].split()[:5] == ["2", "est_generate_fastaa", "(unknown", "type)", "new"]
    assert lines[2].split() == ["1", "est_generate_fasta", "failed", "3", "default", "4711",
                                "3h"]
    assert cli(config, "jobs", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["known_type"], r["user_id"]) for r in rows] == [(2, False, 9),
                                                                        (1, True, 3)]
    assert rows[1]["destination"] == "default"
    assert rows[1]["completed"].endswith("Z")


def test_config_show_prints_the_effective_settings_with_secrets_masked(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defaults included, the password never shown, as TOML or JSON."""
    assert cli(config, "config", "show") == 0
    out = capsys.readouterr().out
    assert "s3cret-db-password" not in out
    assert 'password = "***"' in out
    assert "[manager]" in out
    assert "claim_batch = 50" in out  # a default the file does not set
    assert "config_file" not in out  # printed as a file that loads back
    assert cli(config, "config", "show", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["database"]["password"] == "***"
    assert shown["manager"]["max_running_jobs"] == 100


def test_bulk_retry_by_reason_and_time_counts_first_and_retries_only_those(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run counts and changes nothing; then exactly the matching jobs are new again."""
    assert cli(config, "init-db") == 0
    now = utcnow()
    _failed(config, 1, "the results directory: disk full", ended=now - timedelta(minutes=30))
    _failed(config, 2, "Disk full on /scratch", ended=now - timedelta(minutes=10))
    _failed(config, 3, "EXIT_CODE 3", ended=now - timedelta(minutes=10))
    _failed(config, 4, "disk full", ended=now - timedelta(days=2))
    _failed(config, 5, "disk full", ended=now - timedelta(minutes=5), destination="bigmem")
    capsys.readouterr()
    assert cli(config, "jobs", "retry", "--reason", "DISK FULL", "--since", "1h",
               "--destination", "default", "--dry-run") == 0
    assert capsys.readouterr().out.strip() == "would retry 2 jobs: 1, 2"
    assert cli(config, "jobs", "list", "--status", "new", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli(config, "jobs", "retry", "--reason", "disk full", "--since", "1h",
               "--destination", "default") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "retrying 2 jobs: 1, 2"
    assert cli(config, "jobs", "list", "--status", "new", "--json") == 0
    assert sorted(r["id"] for r in json.loads(capsys.readouterr().out)) == [1, 2]


def test_retry_of_an_unknown_job_type_says_why_and_goes_on(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No raw LookupError: one line for the job the manager cannot retry, the others retried."""
    assert cli(config, "init-db") == 0
    _failed(config, 1, "EXIT_CODE 3", job_type="est_generate_fastaa")
    _failed(config, 2, "EXIT_CODE 3")
    capsys.readouterr()
    assert cli(config, "jobs", "retry", "1", "2") == 1
    out = capsys.readouterr().out
    assert ("job 1 cannot be retried: its job_type 'est_generate_fastaa' is not one this "
            "manager knows") in out
    assert "job 2 is new again" in out
    assert cli(config, "jobs", "retry", "1", "--status", "failed") == 1
    assert "give job ids or filters" in capsys.readouterr().err


def test_dry_run_in_the_configuration_keeps_the_daemon_running(config: Path) -> None:
    """manager.dry_run (the old DRY_RUN): cycle after cycle, each plan logged, nothing done."""
    assert cli(config, "init-db") == 0
    insert(config)
    env = {**os.environ, "EFI_JOB_MANAGER_MANAGER__DRY_RUN": "true",
           "EFI_JOB_MANAGER_MANAGER__INTERVAL": "500ms"}
    process = subprocess.Popen(
        [sys.executable, "-m", "efi_job_manager.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(4)
        assert process.poll() is None, "the daemon stopped after its first dry cycle"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err[-2000:]
    assert err.count("dry run: job 1: would submit on default") >= 2, err[-2000:]
    repo = JobRepository(make_engine(f"sqlite:///{config.parent / 'jobs.sqlite'}"))
    raw = repo.get_raw(1)
    repo.close()
    assert raw is not None
    assert raw["status"] == "new"
    assert not (config.parent / "results" / "1").exists()


def test_a_missing_database_driver_names_what_to_install(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No ModuleNotFoundError: one line naming the driver and the pip command, exit 2."""
    text = config.read_text().replace(f"sqlite:///{config.parent / 'jobs.sqlite'}",
                                      "postgresql+psycopg2://efi@127.0.0.1/efi_test")
    config.write_text(text)
    assert cli(config, "check") == 2
    err = capsys.readouterr().err
    assert (f"efi-job-manager: {config}: database.url: the database driver psycopg2 is not "
            "installed: pip install psycopg2, or write postgresql+psycopg:// and pip install "
            "'efi-job-manager[postgresql]'") in err
    assert "Traceback" not in err


def test_log_format_json_gives_one_object_a_line_with_the_job(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run --once --log-format json: every stderr line is JSON; the submission names job 1."""
    assert cli(config, "init-db") == 0
    insert(config)
    capsys.readouterr()
    assert cli(config, "run", "--once", "--log-format", "json") == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    submitted = [d for d in lines if "submitted to default" in d["message"]]
    assert len(submitted) == 1
    assert (submitted[0]["job_id"], submitted[0]["destination"]) == (1, "default")
    assert all(d["time"].endswith("Z") for d in lines)
