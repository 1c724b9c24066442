"""The slurm connector of efi-job-manager: jobs run on a Slurm cluster.

`SlurmConnector` is registered under the ``efi_job_manager.connectors`` entry point group as
``slurm``. `render_batch_script` and `parse_settings` are the pure pieces it is made of.
"""

from __future__ import annotations

from efi_connector_slurm.config import Profile, SlurmSettings, parse_settings
from efi_connector_slurm.connector import SlurmConnector
from efi_connector_slurm.script import render_batch_script

__all__ = ["Profile", "SlurmConnector", "SlurmSettings", "parse_settings", "render_batch_script"]
