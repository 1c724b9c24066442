"""Finding connectors through real entry points: a good one, a broken one, a non-connector."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from stevedore import ExtensionManager

from efi_job_manager.connector import BaseConnector
from efi_job_manager.discovery import (
    ConnectorLoadError,
    ConnectorNotFound,
    available_connectors,
    load_connector,
)

PLUGIN_MODULE = '''
from pathlib import Path
from efi_job_manager.connector import BaseConnector, SchedulerStatus
from efi_job_manager.status import SchedulerState


class GoodConnector(BaseConnector):
    def prepare_job_environment(self, spec):
        return str(spec.job_dir / "params.json")

    def submit_job(self, spec, params_path):
        return "1"

    def get_job_statuses(self, scheduler_ids):
        return {sid: SchedulerStatus(SchedulerState.COMPLETED, raw="done") for sid in scheduler_ids}

    def retrieve_job_results(self, spec):
        return spec.job_dir


class NotAConnector:
    def __init__(self, config):
        self.config = config
'''


@pytest.fixture
def test_plugins(tmp_path: Path) -> Iterator[Path]:
    """Install a distribution with three entry points by putting its dist-info on sys.path."""
    site = tmp_path / "site"
    package = site / "efi_test_plugins"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    dist_info = site / "efi_test_plugins-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: efi-test-plugins\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(textwrap.dedent("""\
        [efi_job_manager.connectors]
        testgood = efi_test_plugins:GoodConnector
        testbroken = efi_test_plugins.no_such_module:Connector
        testnotconnector = efi_test_plugins:NotAConnector
        """))
    sys.path.insert(0, str(site))
    ExtensionManager.ENTRY_POINT_CACHE.clear()  # stevedore caches entry points per group
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        ExtensionManager.ENTRY_POINT_CACHE.clear()
        for name in [m for m in sys.modules if m.startswith("efi_test_plugins")]:
            del sys.modules[name]


def test_the_shipped_connectors_are_found() -> None:
    """The local and slurm distributions installed in this environment register themselves."""
    installed = available_connectors()
    assert {"local", "slurm"} <= set(installed)
    assert installed["local"].distribution is not None
    assert installed["local"].distribution.startswith("efi-connector-local")


@pytest.mark.usefixtures("test_plugins")
def test_a_good_connector_loads_with_its_config() -> None:
    """load_connector builds the class registered under the name with the config section."""
    connector = load_connector("testgood", {"partition": "efi"})
    assert isinstance(connector, BaseConnector)
    assert type(connector).__name__ == "GoodConnector"
    assert connector.config == {"partition": "efi"}


@pytest.mark.usefixtures("test_plugins")
def test_a_broken_connector_is_reported_and_does_not_hide_the_others() -> None:
    """A connector that fails to import has its error listed; the rest still load."""
    installed = available_connectors()
    broken = installed["testbroken"]
    assert broken.cls is None
    assert broken.error is not None
    assert "no_such_module" in broken.error
    assert installed["testgood"].cls is not None
    with pytest.raises(ConnectorLoadError, match=r"testbroken.*no_such_module"):
        load_connector("testbroken")


@pytest.mark.usefixtures("test_plugins")
def test_a_class_that_is_not_a_connector_is_refused() -> None:
    """An entry point naming something that is not a BaseConnector is refused with a reason."""
    installed = available_connectors()
    assert installed["testnotconnector"].cls is None
    expected = r"not a subclass of efi_job_manager\.BaseConnector"
    with pytest.raises(ConnectorLoadError, match=expected):
        load_connector("testnotconnector")


@pytest.mark.usefixtures("test_plugins")
def test_a_missing_name_lists_what_is_installed(caplog: pytest.LogCaptureFixture) -> None:
    """Asking for a connector nobody installed names the usable and the broken ones.

    Only our message says so: no warning of stevedore's comes before it.
    """
    with pytest.raises(ConnectorNotFound) as info:
        load_connector("pbs")
    assert not [r for r in caplog.records if r.name.startswith("stevedore")]
    message = str(info.value)
    assert "'pbs'" in message
    assert "testgood" in message
    broken = message.split("broken: ")[1]
    assert "testbroken" in broken
    assert "testnotconnector" in broken


def test_a_shipped_connector_that_is_not_installed_names_its_distribution() -> None:
    """With the core alone, asking for slurm says which distribution to install."""
    message = str(ConnectorNotFound("slurm", {}))
    assert message.startswith("no connector named 'slurm' is installed; none is installed; "
                              "install it: pip install efi-connector-slurm (or "
                              "'efi-job-manager[slurm]')")
    assert "pip install" not in str(ConnectorNotFound("pbs", {}))
