"""``efi-job-manager demo``: the whole product on the embedded default, on a fresh machine.

Makes a working directory with a SQLite database, an upload directory with
small real inputs and a configuration file (SQLite + the local connector +
the stand-in pipeline), inserts EFI jobs of several types (one with a missing
input file), runs the manager until every job has ended, and prints a table.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from efi_job_manager.catalogue import STANDIN_COMMAND
from efi_job_manager.clock import utcnow
from efi_job_manager.config import Settings
from efi_job_manager.discovery import connector_class
from efi_job_manager.manager import JobManager
from efi_job_manager.models import updatable_columns
from efi_job_manager.repository import make_engine
from efi_job_manager.schema import create_tables

__all__ = ["run_demo"]

_MARKER = ".efi-demo"

_FASTA = """>sp|P0A9Q7|ADHE_ECOLI Aldehyde-alcohol dehydrogenase
MAVTNVAELNALVERVKKAQREYASFTQEQVDKIFRAAALAAADARIPLAKMAVAESGMG
>sp|P0A9Q8|ADHE_ECO57 Aldehyde-alcohol dehydrogenase
MAVTNVAELNALVERVKKAQREYASFTQEQVDKIFRAAALAAADARIPLAKMAVAESGMG
>tr|A0A0H3JEF8|A0A0H3JEF8_STAAM Enolase
MPIITDVYAREVLDSRGNPTVEVEVLTESGAFGRALVPSGASTGEHEAVELRDGDKSRYL
"""
_ACCESSIONS = "P0A9Q7\nP0A9Q8\nA0A0H3JEF8\nQ9Y6K9\n"
_NODES = ("P0A9Q7", "P0A9Q8", "P0A9Q9", "A0A0H3JEF8", "A0A0H3JEF9", "Q9Y6K9")
_EDGES = (("P0A9Q7", "P0A9Q8"), ("P0A9Q8", "P0A9Q9"), ("A0A0H3JEF8", "A0A0H3JEF9"))


def _xgmml() -> str:
    nodes = "".join(f'  <node id="{n}" label="{n}"/>\n' for n in _NODES)
    edges = "".join(f'  <edge id="e{i}" source="{a}" target="{b}"/>\n'
                    for i, (a, b) in enumerate(_EDGES))
    return ('<?xml version="1.0"?>\n<graph label="demo SSN" '
            f'xmlns="http://www.cs.rpi.edu/XGMML">\n{nodes}{edges}</graph>\n')


def _prepare_directory(root: Path) -> None:
    if root.exists():
        if not (root / _MARKER).exists():
            raise FileExistsError(f"{root} exists and was not made by the demo; "
                                  "choose another --dir")
        shutil.rmtree(root)
    uploads = root / "uploads"
    uploads.mkdir(parents=True)
    (root / "results").mkdir(exist_ok=True)
    (root / _MARKER).write_text("made by efi-job-manager demo\n")
    (uploads / "sequences.fasta").write_text(_FASTA)
    (uploads / "accessions.txt").write_text(_ACCESSIONS)
    (uploads / "network.xgmml").write_text(_xgmml())
    with zipfile.ZipFile(uploads / "network.xgmml.zip", "w") as archive:
        archive.writestr("demo_full_ssn.xgmml", _xgmml())


def _write_config(root: Path, delay: float) -> Path:
    command = ", ".join(f'"{part}"' for part in STANDIN_COMMAND)
    path = root / "efi-job-manager.toml"
    path.write_text(f"""\
# Made by `efi-job-manager demo`: SQLite + the local connector + the stand-in pipeline.
# Run it again with: efi-job-manager --config {path} run
log_level = "WARNING"

[database]
url = "sqlite:///{root / 'efi-jobs.sqlite'}"

[manager]
interval = "1s"
results_dir = "{root / 'results'}"
input_dir = "{root / 'uploads'}"
max_running_jobs = 4

[destinations.default]
connector = "local"
[destinations.default.settings]
state_dir = "{root / 'local-state'}"
env = {{ EFI_STANDIN_DELAY = "{delay}" }}

[pipelines]
command = [{command}]
params = {{ efi_config = "/opt/EFI/efi.config", fasta_db = "/db/blast/uniprot" }}

[pipelines.efi_db]
default = "efi_202406"
template = "efi_{{efi_db_version}}"
""")
    return path


def _rows() -> list[dict[str, Any]]:
    start = utcnow() - timedelta(minutes=10)
    jobs: list[tuple[str, dict[str, Any]]] = [
        ("est_generate_fasta", {"jobName": "Enolases from FASTA",
                                "jobFilename": "sequences.fasta", "allByAllBlastEValue": 5,
                                "sequence_version": "uniprot"}),
        ("est_generate_families", {"jobName": "PF07476", "families": "PF07476",
                                   "fraction": 1, "excludeFragments": True,
                                   "allByAllBlastEValue": 5, "sequence_version": "uniref90"}),
        ("est_generate_accession", {"jobName": "four accessions",
                                    "jobFilename": "accessions.txt",
                                    "allByAllBlastEValue": 5}),
        ("est_color_ssn", {"jobName": "colour my SSN", "jobFilename": "network.xgmml.zip"}),
        ("gnt_gnn", {"jobName": "GNN", "jobFilename": "network.xgmml.zip",
                     "neighborhood_size": 10, "cooccurrence": 0.2}),
        ("taxonomy_fasta", {"jobName": "taxonomy", "jobFilename": "sequences.fasta"}),
        ("est_generate_blast", {"jobName": "query that was never uploaded",
                                "jobFilename": "missing-query.fa", "allByAllBlastEValue": 5,
                                "blastEValue": 5, "maxBlastSequences": 1000,
                                "sequenceDatabase": "uniprot"}),
    ]
    return [
        {"id": i, "uuid": f"00000000-0000-4000-8000-{i:012d}", "user_id": 1 + i % 2,
         "status": "new", "job_type": job_type, "isPublic": False,
         "timeCreated": start + timedelta(seconds=i), "efi_db_version": "2025_04", **values}
        for i, (job_type, values) in enumerate(jobs, start=1)
    ]


def _table(manager: JobManager) -> list[list[str]]:
    lines = [["job", "type", "status", "directory / reason", "result columns"]]
    for job in sorted(manager.repository.jobs(limit=100), key=lambda j: j.id):
        results = ", ".join(
            f"{name}={getattr(job, name)}" for name in updatable_columns(type(job))
            if getattr(job, name) is not None)
        jd = manager.job_dir(job.id)
        failure = jd.failure() if job.status == "failed" else None
        where = str(failure.get("reason")) if failure else str(jd.path)
        lines.append([str(job.id), job.job_type, job.status, where, results or "-"])
    return lines


def _print_table(lines: list[list[str]]) -> None:
    widths = [min(max(len(row[i]) for row in lines), 100) for i in range(len(lines[0]) - 1)]
    for n, row in enumerate(lines):
        cells = [cell.ljust(width)[:width] if len(cell) > width else cell.ljust(width)
                 for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))
        if n == 0:
            print("  ".join("-" * w for w in [*widths, 20]))


def run_demo(root: Path, *, delay: float = 1.0, timeout: float = 120.0) -> int:
    """Run the demo in ``root`` and return the exit code (0 when it ends as expected)."""
    root = root.absolute()
    connector_class("local")  # before making anything: the local connector must be installed
    _prepare_directory(root)
    config = _write_config(root, delay)
    settings = Settings.load(config, environ={})
    logging.getLogger().setLevel(settings.log_level)
    engine = make_engine(settings.database.sqlalchemy_url)
    create_tables(engine)
    engine.dispose()
    manager = JobManager.from_settings(settings)
    rows = _rows()
    manager.repository.insert(rows)
    print(f"demo: {len(rows)} EFI jobs in {settings.database.masked_url}; config {config}")
    print(f"demo: running the manager (local connector, stand-in pipeline, {delay:g} s a job)")
    deadline = time.monotonic() + timeout
    try:
        while True:
            report = manager.run_once()
            for job_id in report.started:
                print(f"  job {job_id}: started")
            for job_id in report.finished:
                print(f"  job {job_id}: finished")
            for job_id, reason in report.failed:
                print(f"  job {job_id}: failed: {reason}")
            counts = manager.repository.counts_by_status()
            if not counts.get("new") and not counts.get("running"):
                break
            if time.monotonic() > deadline:
                print(f"demo: gave up after {timeout:g} s: {counts}", file=sys.stderr)
                return 1
            time.sleep(0.3)
        print()
        _print_table(_table(manager))
        counts = manager.repository.counts_by_status()
    finally:
        manager.close()
    print(f"\ndemo: {counts.get('finished', 0)} finished, {counts.get('failed', 0)} failed; "
          f"results under {settings.manager.results_dir}")
    expected = {"finished": len(rows) - 1, "failed": 1}
    return 0 if counts == expected else 1
