"""The Slurm connector passes the connector contract suite on the lab: locally, over SSH, and
through Slurm's REST daemon (files over SSH)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from efi_connector_slurm import SlurmConnector
from efi_job_manager.testing import ConnectorContract

if TYPE_CHECKING:
    from conftest import Slurm


class _SlurmContract(ConnectorContract):
    mode = ""

    @pytest.fixture
    def make_connector(self, slurm: Slurm) -> Iterator[Callable[[], SlurmConnector]]:
        settings = slurm.settings(self.mode, partition="efi")
        yield lambda: SlurmConnector(settings)
        remote = settings.get("remote_dir")
        if remote and Path(remote).is_relative_to(slurm.lab.scratch):
            shutil.rmtree(remote, ignore_errors=True)


class TestSlurmContractLocal(_SlurmContract):
    """Every contract test, with Slurm's commands run on this host."""

    mode = "local"


class TestSlurmContractSsh(_SlurmContract):
    """Every contract test, with Slurm's commands and the files going over SSH."""

    mode = "ssh"


class TestSlurmContractRest(_SlurmContract):
    """Every contract test, with Slurm reached through slurmrestd and the files over SSH."""

    mode = "rest"
