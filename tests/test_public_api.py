"""The public API, used the way an EFI tool that embeds the manager uses it."""

from __future__ import annotations

from pathlib import Path

import efi_job_manager
from efi_job_manager import JobManager, Settings, Status


def test_every_public_name_is_importable_and_documented() -> None:
    """__all__ is sorted, every name exists and has a docstring."""
    names = [n for n in efi_job_manager.__all__ if n != "__version__"]
    assert names == sorted(names)
    for name in names:
        obj = getattr(efi_job_manager, name)
        assert obj.__doc__, name
    assert efi_job_manager.__version__ == "0.1.0"


def test_embedding_runs_a_cycle_from_settings(tmp_path: Path) -> None:
    """JobManager.from_settings(Settings...) gives a manager whose cycle reports what changed."""
    settings = Settings.from_mapping({
        "database": {"url": f"sqlite:///{tmp_path / 'jobs.sqlite'}"},
        "manager": {"results_dir": str(tmp_path / "results"),
                    "input_dir": str(tmp_path / "uploads")},
        "destinations": {"default": {"connector": "local",
                                     "settings": {"state_dir": str(tmp_path / "state")}}},
        "pipelines": {"command": ["true"],
                      "params": {"efi_config": "/opt/efi.config", "fasta_db": "/db/uniprot"},
                      "efi_db": {"default": "efi_202406"}},
    }, environ={})
    manager = JobManager.from_settings(settings)
    try:
        assert not manager.repository.table_exists()
        report = manager.run_once()
        assert report.errors
        assert not report.changed
        assert Status("new") is Status.NEW
    finally:
        manager.close()
