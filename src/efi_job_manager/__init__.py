"""efi-job-manager: runs EFI-Web's jobs on HPC clusters through pluggable connectors.

The public API is what this module exports; everything else may change. Names are
imported when first used, so ``from efi_job_manager import BaseConnector`` (what a
connector needs) loads neither SQLAlchemy nor the manager.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from efi_job_manager.config import ConfigError, Settings
    from efi_job_manager.connector import (
        BaseConnector,
        ConnectorError,
        JobOutcome,
        JobSpec,
        PermanentError,
        Resources,
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
    from efi_job_manager.manager.overview import Overview
    from efi_job_manager.metrics import FailureCause, ManagerMetrics
    from efi_job_manager.repository import JobRepository
    from efi_job_manager.status import (
        InvalidTransition,
        SchedulerState,
        Status,
        UnknownStatus,
    )

__version__ = _version("efi-job-manager")

#: Each public name and the module that defines it.
_HOMES: dict[str, str] = {
    "ConfigError": "config", "Settings": "config",
    "BaseConnector": "connector", "ConnectorError": "connector", "JobSpec": "connector",
    "JobOutcome": "connector",
    "PermanentError": "connector", "Resources": "connector", "SchedulerStatus": "connector",
    "TransientError": "connector",
    "ConnectorLoadError": "discovery", "ConnectorNotFound": "discovery",
    "available_connectors": "discovery", "load_connector": "discovery",
    "EventKind": "events", "JobEvent": "events",
    "CycleReport": "manager", "Destination": "manager", "JobManager": "manager",
    "Overview": "manager.overview", "FailureCause": "metrics", "ManagerMetrics": "metrics",
    "JobRepository": "repository",
    "InvalidTransition": "status", "SchedulerState": "status", "Status": "status",
    "UnknownStatus": "status",
}

__all__ = [
    "BaseConnector",
    "ConfigError",
    "ConnectorError",
    "ConnectorLoadError",
    "ConnectorNotFound",
    "CycleReport",
    "Destination",
    "EventKind",
    "FailureCause",
    "InvalidTransition",
    "JobEvent",
    "JobManager",
    "JobOutcome",
    "JobRepository",
    "JobSpec",
    "ManagerMetrics",
    "Overview",
    "PermanentError",
    "Resources",
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


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'efi_job_manager' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"efi_job_manager.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, as ``dir()`` lists them."""
    return sorted({*globals(), *_HOMES})
