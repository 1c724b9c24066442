"""What an operator sees of a running site: `status`, the metrics endpoint, held-back reasons.

The main test runs the real daemon (``efi-job-manager run``) on SQLite with the local
connector and the stand-in pipeline, reads ``status --json`` and scrapes ``/metrics`` while
it runs, and checks both against the Job table.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from engine_site import Site, fasta_job, make_site, run_until
from observing import free_port, scrape
from sqlalchemy import insert

from efi_job_manager.catalogue.site import STANDIN_COMMAND
from efi_job_manager.cli import main
from efi_job_manager.discovery import package_version
from efi_job_manager.manager import Destination
from efi_job_manager.manager.presence import PRESENCE_DIR, ManagerPresence, read_presences
from efi_job_manager.metrics import FailureCause
from efi_job_manager.models import Job
from efi_job_manager.repository import make_engine
from efi_job_manager.schema import create_tables

pytestmark = pytest.mark.slow


def _write_site(tmp_path: Path, *, delay: float, port: int | None = None,
                extra: str = "") -> Path:
    """A site on SQLite: the local connector, the stand-in pipeline, one job per user."""
    (tmp_path / "results").mkdir()
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "seqs.fasta").write_text(">a\nMKV\n>b\nMKL\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    create_tables(engine)
    engine.dispose()
    command = ", ".join(json.dumps(part) for part in STANDIN_COMMAND)
    metrics = f"[metrics]\nport = {port}\n" if port is not None else ""
    config = tmp_path / "site.toml"
    config.write_text(f"""\
log_level = "INFO"
{extra}
[database]
url = "sqlite:///{tmp_path / 'jobs.sqlite'}"
[manager]
interval = "1s"
results_dir = "{tmp_path / 'results'}"
input_dir = "{tmp_path / 'uploads'}"
max_running_jobs = 10
max_running_jobs_per_user = 1
heartbeat = "1s"
[destinations.default]
connector = "local"
settings = {{ state_dir = "{tmp_path / 'state'}", env = {{ EFI_STANDIN_DELAY = "{delay}" }} }}
[pipelines]
command = [{command}]
params = {{ efi_config = "/opt/efi.config", fasta_db = "/db/uniprot" }}
[pipelines.efi_db]
default = "efi_202406"
{metrics}""")
    return config


def _insert(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    with engine.begin() as conn:
        conn.execute(insert(Job.__table__), rows)  # type: ignore[arg-type]
    engine.dispose()


def _statuses(tmp_path: Path) -> dict[int, str]:
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    with engine.connect() as conn:
        rows = dict(conn.exec_driver_sql("SELECT id, status FROM Job").all())
    engine.dispose()
    return rows


def _status_json(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = main(["status", "--config", str(config), "--json"])
    return code, json.loads(capsys.readouterr().out)


def _wait(what: str, done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(config: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "efi_job_manager.cli", "run", "--config", str(config),
             "--log-format", "json"],
            stderr=open(tmp_path / "daemon.log", "w"), text=True)  # noqa: SIM115
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_status_and_metrics_follow_a_real_run(
        tmp_path: Path, daemon: Callable[[Path], subprocess.Popen[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    """status and /metrics agree with the Job table while the daemon runs, and after it stops.

    Five jobs of two users with one running job per user: two run, three wait held back by
    ``max_running_jobs_per_user``; all five end finished, one user's after another.
    """
    port = free_port()
    config = _write_site(tmp_path, delay=3, port=port)
    now = datetime.utcnow()
    _insert(tmp_path, [fasta_job(i, user_id=1 if i <= 3 else 2,
                                 timeCreated=now - timedelta(minutes=10 - i))
                       for i in range(1, 6)])
    process = daemon(config)
    _wait("two jobs running", lambda: sorted(_statuses(tmp_path).values()).count("running") == 2)
    _wait("a heartbeat after the submissions",
          lambda: any(p.cycles >= 2 for p in read_presences(tmp_path / "results",
                                                            datetime.utcnow())))

    _check_status_while_two_run(tmp_path, config, process, capsys)
    scraped = scrape(port)
    labels = (("destination", "default"), ("pipeline", "est"))
    assert scraped[("efi_job_manager_submissions_total", labels)] == 2
    assert scraped[("efi_job_manager_jobs", (("destination", "default"), ("pipeline", "est"),
                                             ("status", "running")))] == 2
    assert scraped[("efi_job_manager_cycles_total", ())] >= 2
    # the two jobs claimed in one cycle were submitted with one connector call
    assert scraped[("efi_job_manager_scheduler_command_seconds_count",
                    (("destination", "default"), ("operation", "submit")))] == 1
    assert scraped[("efi_job_manager_oldest_waiting_job_age_seconds", ())] >= 60
    assert time.time() - scraped[("efi_job_manager_last_cycle_timestamp_seconds", ())] < 30
    versions = [labels for name, labels in scraped if name == "efi_job_manager_info"]
    assert versions == [(("version", package_version()),)]

    _wait("all five finished", lambda: set(_statuses(tmp_path).values()) == {"finished"}, 120)
    _wait("the metrics counted them", lambda: scrape(port).get(
        ("efi_job_manager_jobs_finished_total", (("pipeline", "est"),))) == 5)
    scraped = scrape(port)
    assert scraped[("efi_job_manager_submissions_total", labels)] == 5
    assert scraped[("efi_job_manager_queue_wait_seconds_count", (("pipeline", "est"),))] == 5
    # every job waited over 5 minutes: timeCreated is 5 to 9 minutes ago
    assert scraped[("efi_job_manager_queue_wait_seconds_bucket",
                    (("le", "300.0"), ("pipeline", "est")))] == 0
    failures = [v for (name, _), v in scraped.items()
                if name == "efi_job_manager_job_failures_total"]
    assert len(failures) >= len(FailureCause)  # each cause of each pipeline, from 0 on
    assert set(failures) == {0.0}

    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    code, status = _status_json(config, capsys)
    assert code == 1  # no manager runs
    assert [m["state"] for m in status["managers"]] == ["stopped"]
    lines = (tmp_path / "daemon.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(r["time"].endswith("Z") for r in records)
    assert any(r.get("job_id") == 1 and "submitted" in r["message"] for r in records)


def _check_status_while_two_run(tmp_path: Path, config: Path, process: subprocess.Popen[str],
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, status = _status_json(config, capsys)
    assert code == 0
    jobs = {(c["status"], c["pipeline"], c["destination"]): c["count"] for c in status["jobs"]}
    running = [i for i, s in _statuses(tmp_path).items() if s == "running"]
    assert jobs.get(("running", "est", "default"), 0) == len(running) == 2
    assert jobs.get(("new", "est", "default"), 0) == 3
    held = {h["job_id"]: h for h in status["held_back"]}
    assert set(held) == set(range(1, 6)) - set(running)
    assert {h["limit"] for h in held.values()} == {"max_running_jobs_per_user"}
    assert held[min(held)]["detail"] in ("user 1 has 1 of 1 running", "user 2 has 1 of 1 running")
    assert status["oldest_waiting"]["job_id"] == min(held)
    assert status["oldest_waiting"]["age_seconds"] >= 60
    [manager] = status["managers"]
    assert (manager["pid"], manager["state"]) == (process.pid, "running")
    assert manager["cycles"] >= 2
    assert manager["errors"] == []
    assert main(["status", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "held back by a limit: 3 jobs" in text
    assert f"max_running_jobs_per_user: 3 jobs ({', '.join(map(str, sorted(held)))})" in text
    assert f"{process.pid}  running" in text


def test_the_metrics_port_in_use_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run says which address it cannot serve the metrics on, and exits 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _write_site(tmp_path, delay=0, port=port)
        assert main(["run", "--config", str(config)]) == 1
    assert f"metrics: cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from make_site(tmp_path, f"sqlite:///{tmp_path / 'efi.db'}")


def _failures(site_manager: Any) -> dict[str, float]:
    registry = site_manager.metrics.registry
    return {cause: registry.get_sample_value("efi_job_manager_job_failures_total",
                                             {"pipeline": "est", "cause": cause}) or 0.0
            for cause in ("input", "pipeline", "unknown_type")}


def test_failures_are_counted_by_cause(site: Site) -> None:
    """A missing upload counts as input, an exit 3 as pipeline, an unknown type by itself."""
    manager = site.manager()
    site.insert(fasta_job(1, jobFilename="missing.fa"), fasta_job(2))
    run_until(manager, lambda: site.status(1) == "failed" and site.status(2) == "finished")
    assert _failures(manager) == {"input": 1.0, "pipeline": 0.0, "unknown_type": 0.0}
    failing = site.manager(destinations={
        "default": Destination("default", site.connector(EFI_STANDIN_FAIL="3"))})
    site.insert(fasta_job(3))
    run_until(failing, lambda: site.status(3) == "failed")
    assert _failures(failing)["pipeline"] == 1.0
    registry = failing.metrics.registry
    assert registry.get_sample_value("efi_job_manager_scheduler_command_seconds_count",
                                     {"destination": "default", "operation": "status"}) >= 1


def test_dry_run_says_which_limit_holds_a_job_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run --dry-run: the oldest job would be submitted, the user's next is held back, by name."""
    config = _write_site(tmp_path, delay=0)
    _insert(tmp_path, [fasta_job(1), fasta_job(2), fasta_job(3, user_id=2)])
    assert main(["run", "--config", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "job 1: would submit on default" in out
    assert "job 2: held back (max_running_jobs_per_user: user 1 has 1 of 1 running)" in out
    assert "job 3: would submit on default" in out
    assert _statuses(tmp_path) == {1: "new", 2: "new", 3: "new"}  # nothing claimed
    assert not (tmp_path / "results" / PRESENCE_DIR).exists()  # a dry run writes nothing


def test_heartbeats_say_running_silent_or_stopped(tmp_path: Path) -> None:
    """A manager with no cycle for three intervals is silent; stray files are skipped."""
    folder = tmp_path / PRESENCE_DIR
    folder.mkdir()
    now = datetime(2026, 12, 1, 12, 0, 0)
    alive = ManagerPresence("web1", 10, "0.1.0", now - timedelta(hours=1), 30.0, cycles=5,
                            last_cycle=now - timedelta(seconds=20), last_cycle_seconds=0.5)
    hung = ManagerPresence("web2", 11, "0.1.0", now - timedelta(hours=1), 30.0, cycles=5,
                           last_cycle=now - timedelta(minutes=5), last_cycle_seconds=0.5)
    gone = ManagerPresence("web3", 12, "0.1.0", now - timedelta(days=9), 30.0, cycles=5,
                           last_cycle=now - timedelta(days=8))
    for presence in (alive, hung, gone):
        (folder / f"{presence.host}.json").write_text(json.dumps(presence.to_json()))
    (folder / "garbage.json").write_text("{not json")
    (folder / "elsewhere.json").symlink_to(folder / "web1.json")
    found = read_presences(tmp_path, now)
    assert [(p.host, p.state(now)) for p in found] == [("web1", "running"), ("web2", "silent")]
    assert found[0] == alive  # read back as written


def test_a_log_file_is_written_and_rotated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    """[log] file gets the same lines as standard error, in [log] format, rotated by size."""
    log_file = tmp_path / "manager.log"
    config = _write_site(tmp_path, delay=0, extra=f"""\
[log]
format = "json"
file = "{log_file}"
max_size = 1
backups = 2
""")
    _insert(tmp_path, [fasta_job(1)])
    assert main(["run", "--config", str(config), "--once"]) == 0
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(r.get("job_id") == 1 and "submitted" in r["message"] for r in records)
    assert all(r["time"].endswith("Z") for r in records)
    err = capsys.readouterr().err.splitlines()
    assert err
    assert all(json.loads(line) for line in err)  # standard error: JSON too
    logging.getLogger("efi_job_manager.test").info("x" * 600_000)
    logging.getLogger("efi_job_manager.test").info("y" * 600_000)
    assert (tmp_path / "manager.log.1").exists()
    assert log_file.stat().st_size < 1 << 20
    blocked = tmp_path / "blocked"
    blocked.mkdir(mode=0o500)
    config.write_text(config.read_text().replace(str(log_file), str(blocked / "x" / "m.log")))
    assert main(["run", "--config", str(config), "--once"]) == 2
    assert "log.file: cannot write" in capsys.readouterr().err
    os.chmod(blocked, 0o700)


def test_what_a_row_holds_never_becomes_a_metric_label(site: Site) -> None:
    """Odd statuses and job types count as ``unknown``: rows cannot multiply the series."""
    manager = site.manager()
    site.insert(fasta_job(1), *(fasta_job(i, job_type=f"est_generate_pdb{i}")
                                for i in range(2, 6)),
                *(fasta_job(i, status=f"paused-{i}") for i in range(6, 9)))
    run_until(manager, lambda: site.status(1) == "finished"
              and all(site.status(i) == "failed" for i in range(2, 6)))
    manager.metrics.serve("127.0.0.1", 0)
    try:
        manager.run_once()
        scraped = scrape(manager.metrics.port or 0)
    finally:
        manager.metrics.close()
    labels = {dict(labels).get(key) for (_, labels) in scraped
              for key in ("pipeline", "status") if key in dict(labels)}
    assert labels <= {"est", "generatessn", "colorssn", "gnt", "gnd", "taxonomy",
                      "neighborhoodconnectivity", "convergenceratio", "clusteranalysis",
                      "cgfpidentify", "cgfpquantify", "unknown", "new", "running",
                      "finished", "failed", "cancelled", "archived"} | {
                          manager.pipeline_label(t) for t in manager.catalogue.job_types()}
    jobs = {labels: v for (name, labels), v in scraped.items() if name == "efi_job_manager_jobs"}
    assert jobs[(("destination", "default"), ("pipeline", "unknown"), ("status", "failed"))] == 4
    assert jobs[(("destination", "default"), ("pipeline", "est"), ("status", "unknown"))] == 3
    assert scraped[("efi_job_manager_job_failures_total",
                    (("cause", "unknown_type"), ("pipeline", "unknown")))] == 4


def test_cron_runs_share_one_heartbeat_that_stays_running(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run --once, as cron runs it: one file per host, never marked stopped; status sees it."""
    config = _write_site(tmp_path, delay=0)
    for _ in range(3):
        assert main(["run", "--config", str(config), "--once"]) == 0
    files = sorted(p.name for p in (tmp_path / "results" / PRESENCE_DIR).iterdir())
    assert files == [f"{socket.gethostname()}-once.json"]
    capsys.readouterr()
    code, status = _status_json(config, capsys)
    assert code == 0
    assert [(m["state"], m["stopped"]) for m in status["managers"]] == [("running", None)]
