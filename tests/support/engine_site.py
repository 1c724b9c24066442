"""The engine's test site: a results and an upload directory, a database, managers on them.

Shared by the engine tests (``test_manager.py``, ``test_hostile_rows.py``…): real local
connector, real processes, the stand-in pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from efi_connector_local import LocalConnector
from efi_job_manager.events import JobEvent
from efi_job_manager.manager import CycleReport, Destination, JobManager
from efi_job_manager.pipelines import STANDIN_COMMAND, Catalogue, EfiDatabases
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.schema import create_tables

SSN = ('<?xml version="1.0"?>\n<graph label="x" xmlns="http://www.cs.rpi.edu/XGMML">\n'
       '<node id="P0A9Q7" label="P0A9Q7"/>\n<node id="P0A9Q8" label="P0A9Q8"/>\n'
       '<edge id="e0" source="P0A9Q7" target="P0A9Q8"/>\n</graph>\n')
FASTA = ">sp|P0A9Q7|ADHE_ECOLI\nMAVTNVAELNALVERVKKAQ\n>sp|P0A9Q8|ADHE_ECO57\nMAVTNVAELNAL\n"


class Clock:
    """Real time that a test can push forward (for grace periods)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return (datetime.now() + self.offset).replace(microsecond=0)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@attrs.define
class Site:
    """A results dir, an upload dir, a database and a way to build managers on them."""

    root: Path
    url: str
    clock: Clock
    events: list[JobEvent] = attrs.Factory(list)
    managers: list[JobManager] = attrs.Factory(list)

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def connector(self, name: str = "default", **env: str) -> LocalConnector:
        return LocalConnector({"state_dir": str(self.root / f"state-{name}"), "kill_grace": 2,
                               "env": {"EFI_STANDIN_DELAY": "0", **env}})

    def manager(self, *, command: tuple[str, ...] | None = None,
                destinations: dict[str, Destination] | None = None,
                pipeline_dir: Path | None = None, config_dir: Path | None = None,
                params: dict[str, Any] | None = None, **kwargs: Any) -> JobManager:
        repo = JobRepository(make_engine(self.url), clock=self.clock)
        catalogue = Catalogue.from_settings(
            pipeline_dir=pipeline_dir, config_dir=config_dir,
            command=command or STANDIN_COMMAND,
            params=params or {"efi_config": "/opt/efi.config", "fasta_db": "/db/uniprot"},
            overrides={}, efi_db=EfiDatabases(default="efi_202406"))
        manager = JobManager(
            repo, destinations or {"default": Destination("default", self.connector())},
            catalogue, results_dir=self.results, input_dir=self.uploads, clock=self.clock,
            **{"submit_grace": 60, "lost_grace": 120, **kwargs})
        manager.events.subscribe(self.events.append)
        self.managers.append(manager)
        return manager

    def insert(self, *rows: dict[str, Any]) -> None:
        repo = JobRepository(make_engine(self.url))
        repo.insert(rows)
        repo.close()

    def status(self, job_id: int) -> str:
        repo = JobRepository(make_engine(self.url))
        raw = repo.get_raw(job_id)
        repo.close()
        assert raw is not None
        return str(raw["status"])

    def raw(self, job_id: int) -> dict[str, Any]:
        repo = JobRepository(make_engine(self.url))
        raw = repo.get_raw(job_id)
        repo.close()
        assert raw is not None
        return dict(raw)


def make_site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """Yield a site on a fresh table; close its managers afterwards."""
    engine = make_engine(database_url)
    create_tables(engine)
    engine.dispose()
    s = Site(tmp_path, database_url, Clock())
    s.uploads.mkdir()
    s.results.mkdir()
    (s.uploads / "seqs.fasta").write_text(FASTA)
    (s.uploads / "ids.txt").write_text("P0A9Q7\nP0A9Q8\n")
    yield s
    for manager in s.managers:
        manager.close()


def fasta_job(job_id: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": job_id, "uuid": f"u-{job_id}", "status": "new", "job_type": "est_generate_fasta",
        "isPublic": False, "user_id": 1, "jobFilename": "seqs.fasta",
        "allByAllBlastEValue": 5, "sequence_version": "uniprot",
        "timeCreated": datetime(2026, 11, 1) + timedelta(seconds=job_id)}
    row.update(values)
    return row


def run_until(manager: JobManager, done: Callable[[], bool], timeout: float = 60.0,
              ) -> list[CycleReport]:
    reports = []
    deadline = time.monotonic() + timeout
    while True:
        reports.append(manager.run_once())
        if done():
            return reports
        assert time.monotonic() < deadline, f"not done after {timeout} s: {reports[-3:]}"
        time.sleep(0.2)
