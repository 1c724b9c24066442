"""The engine's test site: `efi_job_manager.testing.Site` with the real local connector.

Shared by the engine tests (``test_manager.py``, ``test_hostile_rows.py``…): real local
connector, real processes, the stand-in pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from efi_connector_local import LocalConnector
from efi_job_manager.testing import FASTA, SSN, Clock, Site, fasta_job, run_until
from efi_job_manager.testing import make_site as _make_site

__all__ = ["FASTA", "SSN", "Clock", "Site", "fasta_job", "make_site", "run_until"]


def make_site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """Yield a site on a fresh table whose connectors are local ones under ``tmp_path``.

    ``site.connector(name, **env)`` is a `LocalConnector` with its own state folder, a
    2 s kill grace and the stand-in's ``EFI_STANDIN_DELAY=0`` plus ``env``.
    """
    def connector(name: str = "default", **env: str) -> LocalConnector:
        return LocalConnector({"state_dir": str(tmp_path / f"state-{name}"), "kill_grace": 2,
                               "env": {"EFI_STANDIN_DELAY": "0", **env}})

    with _make_site(tmp_path, database_url, connector) as site:
        yield site
