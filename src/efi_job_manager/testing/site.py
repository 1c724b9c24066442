"""A throwaway EFI site for tests: a results and an upload directory, a database, managers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from efi_job_manager.catalogue import STANDIN_COMMAND, Catalogue, EfiDatabases
from efi_job_manager.connector import BaseConnector
from efi_job_manager.events import JobEvent
from efi_job_manager.manager import CycleReport, Destination, JobManager
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.schema import create_tables
from efi_job_manager.testing.clock import Clock

__all__ = ["FASTA", "SSN", "Site", "fasta_job", "make_site", "run_until"]

#: Two UniProt sequences, the upload of `fasta_job`.
FASTA = ">sp|P0A9Q7|ADHE_ECOLI\nMAVTNVAELNALVERVKKAQ\n>sp|P0A9Q8|ADHE_ECO57\nMAVTNVAELNAL\n"
#: A two-node XGMML network, the upload of SSN-based jobs (colour, neighbourhood…).
SSN = ('<?xml version="1.0"?>\n<graph label="x" xmlns="http://www.cs.rpi.edu/XGMML">\n'
       '<node id="P0A9Q7" label="P0A9Q7"/>\n<node id="P0A9Q8" label="P0A9Q8"/>\n'
       '<edge id="e0" source="P0A9Q7" target="P0A9Q8"/>\n</graph>\n')
#: Site parameters the stand-in pipeline needs (EST's ``efi_config`` and ``fasta_db``).
SITE_PARAMS: Mapping[str, Any] = {"efi_config": "/opt/efi.config", "fasta_db": "/db/uniprot"}


@attrs.define
class Site:
    """A results dir, an upload dir, a database with EFI-Web's ``Job`` table, and managers.

    ``make_connector(name, **options)`` builds the connector of a destination (`connector`
    calls it); `manager` wires the default destination to ``connector("default")`` unless
    ``destinations`` are given. Every manager built here
    runs the stand-in pipeline by default and reports its events to `events`.
    """

    root: Path
    url: str
    make_connector: Callable[..., BaseConnector]
    clock: Clock = attrs.Factory(Clock)
    command: Sequence[str] = STANDIN_COMMAND
    events: list[JobEvent] = attrs.Factory(list)
    managers: list[JobManager] = attrs.Factory(list)

    @property
    def results(self) -> Path:
        """The central results directory (``<root>/results``)."""
        return self.root / "results"

    @property
    def uploads(self) -> Path:
        """The directory of users' uploads (``<root>/uploads``)."""
        return self.root / "uploads"

    def connector(self, name: str = "default", **options: Any) -> BaseConnector:
        """Return a new connector for the destination ``name`` (``options`` to the factory)."""
        return self.make_connector(name, **options)

    def manager(self, *, command: Sequence[str] | None = None,
                destinations: Mapping[str, Destination] | None = None,
                pipeline_dir: Path | None = None, config_dir: Path | None = None,
                params: Mapping[str, Any] | None = None, **kwargs: Any) -> JobManager:
        """Return a new manager on this site (``kwargs`` go to `JobManager`)."""
        repo = JobRepository(make_engine(self.url), clock=self.clock)
        catalogue = Catalogue.from_settings(
            pipeline_dir=pipeline_dir, config_dir=config_dir,
            command=command or self.command, params=params or SITE_PARAMS,
            overrides={}, efi_db=EfiDatabases(default="efi_202406"))
        if destinations is None:
            destinations = {"default": Destination("default", self.connector())}
        manager = JobManager(
            repo, dict(destinations), catalogue, results_dir=self.results,
            input_dir=self.uploads, clock=self.clock,
            **{"submit_grace": 60, "lost_grace": 120, **kwargs})
        manager.events.subscribe(self.events.append)
        self.managers.append(manager)
        return manager

    def insert(self, *rows: Mapping[str, Any]) -> None:
        """Insert rows into the ``Job`` table as EFI-Web would."""
        repo = JobRepository(make_engine(self.url))
        try:
            repo.insert(rows)
        finally:
            repo.close()

    def raw(self, job_id: int) -> dict[str, Any]:
        """Return the row ``job_id`` as stored, column by column."""
        repo = JobRepository(make_engine(self.url))
        try:
            raw = repo.get_raw(job_id)
        finally:
            repo.close()
        if raw is None:
            raise LookupError(f"no job {job_id} in {self.url}")
        return dict(raw)

    def status(self, job_id: int) -> str:
        """Return the row's ``status`` string."""
        return str(self.raw(job_id)["status"])

    def close(self) -> None:
        """Close every manager built here."""
        for manager in self.managers:
            manager.close()


@contextmanager
def make_site(root: Path, url: str,
              make_connector: Callable[..., BaseConnector], **kwargs: Any) -> Iterator[Site]:
    """Create the ``Job`` table at ``url`` and the directories under ``root``; yield the site.

    The uploads hold ``seqs.fasta`` (`FASTA`) and ``ids.txt``.
    ``kwargs`` go to `Site` (``clock``, ``command``). The site's managers are closed on exit.
    """
    engine = make_engine(url)
    try:
        create_tables(engine)
    finally:
        engine.dispose()
    site = Site(root, url, make_connector, **kwargs)
    site.uploads.mkdir(parents=True, exist_ok=True)
    site.results.mkdir(parents=True, exist_ok=True)
    (site.uploads / "seqs.fasta").write_text(FASTA)
    (site.uploads / "ids.txt").write_text("P0A9Q7\nP0A9Q8\n")
    try:
        yield site
    finally:
        site.close()


def fasta_job(job_id: int, **values: Any) -> dict[str, Any]:
    """Return a ``Job`` row of an ``est_generate_fasta`` job on ``seqs.fasta`` (``values`` win)."""
    row: dict[str, Any] = {
        "id": job_id, "uuid": f"u-{job_id}", "status": "new", "job_type": "est_generate_fasta",
        "isPublic": False, "user_id": 1, "jobFilename": "seqs.fasta",
        "allByAllBlastEValue": 5, "sequence_version": "uniprot",
        "timeCreated": datetime(2026, 11, 1) + timedelta(seconds=job_id)}
    row.update(values)
    return row


def run_until(manager: JobManager, done: Callable[[], bool], timeout: float = 60.0,
              pause: float = 0.2) -> list[CycleReport]:
    """Run cycles until ``done()``; fail (AssertionError) after ``timeout`` seconds."""
    reports = []
    deadline = time.monotonic() + timeout
    while True:
        reports.append(manager.run_once())
        if done():
            return reports
        if time.monotonic() >= deadline:
            raise AssertionError(f"not done after {timeout} s: {reports[-3:]}")
        time.sleep(pause)
