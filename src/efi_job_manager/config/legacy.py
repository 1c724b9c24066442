"""Where the settings of EFI's first job manager went (`LEGACY_SETTINGS`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["EXECUTION_CONNECTORS", "GONE_SETTINGS", "LEGACY_SETTINGS", "legacy_hint"]

LEGACY_SETTINGS: Final[Mapping[str, str]] = {
    "DATABASE_URI": "database.url",
    "DRY_RUN": "manager.dry_run",
    "EXECUTION_CONNECTOR": "destinations.default.connector",
    "LOCAL_JOB_DIRECTORY": "manager.results_dir",
    "LOCAL_INPUT_FILE_SOURCE_DIR": "manager.input_dir",
    "MAX_NUM_RUNNING_JOB": "manager.max_running_jobs",
    "SLEEP_INTERVAL": "manager.interval",
    "INTERVAL": "manager.interval",
    "LOG_FILE_PATH": "log.file",
    "REMOTE_JOB_DIRECTORY": "destinations.<name>.settings.remote_dir",
    "HPC_HOSTNAME": "destinations.<name>.settings.host",
    "SSH_HOST": "destinations.<name>.settings.host",
    "HPC_USERNAME": "destinations.<name>.settings.user",
    "SSH_USER": "destinations.<name>.settings.user",
    "HPC_SSH_KEY_PATH": "destinations.<name>.settings.identity_file",
    "SSH_KEY": "destinations.<name>.settings.identity_file",
    "PARTITION": "destinations.<name>.settings.partition",
    "SOURCE_ENV_CMD": "destinations.<name>.settings.env_setup",
    "REMOTE_NEXTFLOW_PATH": "pipelines.nextflow",
    "REMOTE_NEXTFLOW_PIPELINE_DIR": "pipelines.pipeline_dir",
    "REMOTE_NEXTFLOW_PIPELINE": "pipelines.pipeline_dir",
    "REMOTE_NEXTFLOW_CONFIG_PATH": "pipelines.config_dir",
    "NEXTFLOW_PARAMS": "pipelines.params",
    "PARAMS_DICT": "pipelines.params",
    "EMAIL_HOST": "notify.email.smtp",
    "EMAIL_PORT": "notify.email.smtp",
    "EMAIL_HOST_USER": "notify.email.username",
    "EMAIL_HOST_PASSWORD": "notify.email.password",
    "EMAIL_SENDER": "notify.email.sender",
    "EMAIL_USE_TLS": "notify.email.starttls",
}
"""Each setting of EFI's first job manager (``config/settings.py``) → its dotted key here.

``<name>`` is the destination the old single cluster becomes, usually ``default``.
"""


_API_GONE = ("gone: the first job manager's API connector was a sketch for an HTTP API that "
             "was never specified; a site with such an API publishes a connector package "
             "(docs/connectors.md)")

GONE_SETTINGS: Final[Mapping[str, str]] = {
    "LOGGING": "gone: the log is always written (standard error, and log.file if set); "
               "log_level sets how much",
    **{name: _API_GONE for name in (
        "API_BASE_URL", "API_UPLOAD_HOOK", "API_DOWNLOAD_HOOK", "API_LS_HOOK",
        "API_SUBMIT_HOOK", "API_CHECK_STATUS_HOOK", "API_HEADER")},
}
"""Settings of EFI's first job manager that have no home here, each with why."""


#: What the first job manager's ``EXECUTION_CONNECTOR`` values are here.
EXECUTION_CONNECTORS: Final[Mapping[str, str]] = {
    "HPC": 'destinations.default with connector = "slurm" and settings.transport = "ssh", '
           "host, user, identity_file and remote_dir",
    "LOCAL": 'destinations.default with connector = "slurm" and settings.transport = "local" '
             "(sbatch on this host; the local connector runs jobs without Slurm)",
}


def legacy_hint(key: str) -> str | None:
    """The hint for a top-level key that is a setting of the first job manager, if it is one."""
    if key.upper() == "EXECUTION_CONNECTOR":
        return ("EXECUTION_CONNECTOR of the first EFI job manager: 'HPC' is "
                f"{EXECUTION_CONNECTORS['HPC']}; 'LOCAL' is {EXECUTION_CONNECTORS['LOCAL']}")
    gone = GONE_SETTINGS.get(key.upper())
    if gone is not None:
        return f"{key.upper()} of the first EFI job manager is {gone}"
    home = LEGACY_SETTINGS.get(key.upper())
    if home is None:
        return None
    return f"{key.upper()} of the first EFI job manager is {home} here"
