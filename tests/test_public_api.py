"""The public API, used the way an EFI tool that embeds the manager uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    assert sorted(efi_job_manager._HOMES) == names
    assert set(names) <= set(dir(efi_job_manager))
    with pytest.raises(AttributeError, match="no attribute 'JobManagr'"):
        _ = efi_job_manager.JobManagr  # type: ignore[attr-defined]


@pytest.mark.parametrize("statement", [
    "import efi_job_manager",
    "from efi_job_manager import BaseConnector, JobSpec, SchedulerStatus, TransientError",
    "import efi_job_manager.connector",
    "import efi_job_manager.transport",
    "import efi_job_manager.toolkit",
    "import efi_connector_local.connector",
    "import efi_connector_slurm.connector",
])
def test_what_a_connector_imports_loads_no_database_layer(statement: str) -> None:
    """The toolkit, and both shipped connectors, import without SQLAlchemy or the manager."""
    code = (f"{statement}\nimport sys\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'"
            " or m in ('efi_job_manager.manager', 'efi_job_manager.repository')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout[:500]


def test_embedding_runs_a_cycle_from_settings(tmp_path: Path) -> None:
    """JobManager.from_settings(Settings...) gives a manager whose cycle reports what changed."""
    (tmp_path / "jobs.sqlite").touch()  # an empty database: the table is not there yet
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


def test_the_shipped_connectors_import_only_the_toolkit() -> None:
    """A connector package uses the public toolkit, never the manager's own modules."""
    root = Path(__file__).resolve().parents[1]
    for source in [*root.glob("connectors-*/src/**/*.py")]:
        for line in source.read_text().splitlines():
            if line.startswith(("from efi_job_manager", "import efi_job_manager")):
                assert line.startswith("from efi_job_manager.toolkit import"), (source, line)
