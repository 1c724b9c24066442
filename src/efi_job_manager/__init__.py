"""efi-job-manager: runs EFI-Web's jobs on HPC clusters through pluggable connectors.

The public API is what this module exports; everything else may change.
"""

from importlib.metadata import version as _version

from efi_job_manager.config import ConfigError, Settings
from efi_job_manager.connector import (
    BaseConnector,
    ConnectorError,
    JobSpec,
    PermanentError,
    SchedulerStatus,
    TransientError,
)
from efi_job_manager.discovery import (
    ConnectorLoadError,
    ConnectorNotFound,
    available_connectors,
    load_connector,
)
from efi_job_manager.events import EventKind, JobEvent
from efi_job_manager.manager import CycleReport, Destination, JobManager
from efi_job_manager.repository import JobRepository
from efi_job_manager.status import (
    InvalidTransition,
    SchedulerState,
    Status,
    UnknownStatus,
)

__version__ = _version("efi-job-manager")

__all__ = [
    "BaseConnector",
    "ConfigError",
    "ConnectorError",
    "ConnectorLoadError",
    "ConnectorNotFound",
    "CycleReport",
    "Destination",
    "EventKind",
    "InvalidTransition",
    "JobEvent",
    "JobManager",
    "JobRepository",
    "JobSpec",
    "PermanentError",
    "SchedulerState",
    "SchedulerStatus",
    "Settings",
    "Status",
    "TransientError",
    "UnknownStatus",
    "__version__",
    "available_connectors",
    "load_connector",
]
