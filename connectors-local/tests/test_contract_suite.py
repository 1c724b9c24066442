"""The local connector passes the connector contract suite of efi_job_manager.testing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from efi_connector_local import LocalConnector
from efi_job_manager.testing import ConnectorContract


class TestLocalConnectorContract(ConnectorContract):
    """Every contract test, on jobs run as local processes."""

    job_timeout = 30.0

    @pytest.fixture
    def make_connector(self, tmp_path: Path) -> Callable[[], LocalConnector]:
        return lambda: LocalConnector({"state_dir": str(tmp_path / "state"), "kill_grace": 2})
