"""Everything a connector needs from efi-job-manager, and nothing of the manager.

A connector package imports from here only: the contract (`BaseConnector`,
`JobSpec` with its `Resources`, `SchedulerStatus`, the errors), the converters of resource
values (`parse_slurm_time`, `parse_memory`, `format_memory`…), the environment a pipeline may see
(`pipeline_environment`), the transports (`LocalTransport`, `SshTransport`), the
job-file helpers (`atomic_write_text`, `one_sync`, `relocate_params`, `connector_folder`),
retrying (`retry_call` with the `SCHEDULER` and `TRANSPORT` policies) and the settings
engine (`structure_settings` reads a destination's ``settings`` table into the
connector's attrs class, reporting every problem at once in a `ConfigError`; value kinds
such as `Duration` and rules `Check`, `Convert`). Importing it loads neither SQLAlchemy
nor the manager. The manual is ``docs/connectors.md``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from efi_job_manager.config.engine import describe, documented_default, structure_settings
    from efi_job_manager.config.errors import ConfigError, Invalid
    from efi_job_manager.config.values import (
        Check,
        Convert,
        Count,
        Duration,
        MemorySize,
        PositiveDuration,
        PositiveNumber,
        QueueName,
        Secret,
        Text,
        TimeLimit,
        at_least,
        duration,
        parse_duration,
    )
    from efi_job_manager.connector import (
        PIPELINE_PASSTHROUGH,
        BaseConnector,
        ConnectorError,
        JobOutcome,
        JobSpec,
        PermanentError,
        Resources,
        SchedulerStatus,
        TransientError,
        pipeline_environment,
    )
    from efi_job_manager.jobfiles import (
        atomic_write_text,
        connector_folder,
        one_sync,
        relocate_params,
    )
    from efi_job_manager.retry import SCHEDULER, TRANSPORT, RetryPolicy, retry_call
    from efi_job_manager.status import SchedulerState
    from efi_job_manager.transport import (
        CommandFailed,
        CommandResult,
        CommandTimeout,
        ConnectionFailed,
        HostKeyError,
        LocalTransport,
        SshTransport,
        Transport,
    )
    from efi_job_manager.units import (
        check_queue,
        format_duration,
        format_memory,
        format_slurm_time,
        parse_memory,
        parse_slurm_time,
        parse_time_limit,
    )

__all__ = [
    "PIPELINE_PASSTHROUGH",
    "SCHEDULER",
    "TRANSPORT",
    "BaseConnector",
    "Check",
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "ConfigError",
    "ConnectionFailed",
    "ConnectorError",
    "Convert",
    "Count",
    "Duration",
    "HostKeyError",
    "Invalid",
    "JobOutcome",
    "JobSpec",
    "LocalTransport",
    "MemorySize",
    "PermanentError",
    "PositiveDuration",
    "PositiveNumber",
    "QueueName",
    "Resources",
    "RetryPolicy",
    "SchedulerState",
    "SchedulerStatus",
    "Secret",
    "SshTransport",
    "Text",
    "TimeLimit",
    "TransientError",
    "Transport",
    "at_least",
    "atomic_write_text",
    "check_queue",
    "connector_folder",
    "describe",
    "documented_default",
    "duration",
    "format_duration",
    "format_memory",
    "format_slurm_time",
    "one_sync",
    "parse_duration",
    "parse_memory",
    "parse_slurm_time",
    "parse_time_limit",
    "pipeline_environment",
    "relocate_params",
    "retry_call",
    "structure_settings",
]

_HOMES: dict[str, str] = {
    "at_least": "efi_job_manager.config.values",
    "atomic_write_text": "efi_job_manager.jobfiles",
    "BaseConnector": "efi_job_manager.connector",
    "Check": "efi_job_manager.config.values",
    "check_queue": "efi_job_manager.units",
    "CommandFailed": "efi_job_manager.transport",
    "CommandResult": "efi_job_manager.transport",
    "CommandTimeout": "efi_job_manager.transport",
    "ConfigError": "efi_job_manager.config.errors",
    "ConnectionFailed": "efi_job_manager.transport",
    "connector_folder": "efi_job_manager.jobfiles",
    "ConnectorError": "efi_job_manager.connector",
    "Convert": "efi_job_manager.config.values",
    "Count": "efi_job_manager.config.values",
    "describe": "efi_job_manager.config.engine",
    "documented_default": "efi_job_manager.config.engine",
    "Duration": "efi_job_manager.config.values",
    "duration": "efi_job_manager.config.values",
    "format_duration": "efi_job_manager.units",
    "format_memory": "efi_job_manager.units",
    "format_slurm_time": "efi_job_manager.units",
    "HostKeyError": "efi_job_manager.transport",
    "Invalid": "efi_job_manager.config.errors",
    "JobOutcome": "efi_job_manager.connector",
    "JobSpec": "efi_job_manager.connector",
    "LocalTransport": "efi_job_manager.transport",
    "MemorySize": "efi_job_manager.config.values",
    "one_sync": "efi_job_manager.jobfiles",
    "parse_duration": "efi_job_manager.config.values",
    "parse_memory": "efi_job_manager.units",
    "parse_slurm_time": "efi_job_manager.units",
    "parse_time_limit": "efi_job_manager.units",
    "PermanentError": "efi_job_manager.connector",
    "pipeline_environment": "efi_job_manager.connector",
    "PIPELINE_PASSTHROUGH": "efi_job_manager.connector",
    "PositiveDuration": "efi_job_manager.config.values",
    "PositiveNumber": "efi_job_manager.config.values",
    "QueueName": "efi_job_manager.config.values",
    "relocate_params": "efi_job_manager.jobfiles",
    "Resources": "efi_job_manager.connector",
    "retry_call": "efi_job_manager.retry",
    "RetryPolicy": "efi_job_manager.retry",
    "SCHEDULER": "efi_job_manager.retry",
    "SchedulerState": "efi_job_manager.status",
    "SchedulerStatus": "efi_job_manager.connector",
    "Secret": "efi_job_manager.config.values",
    "SshTransport": "efi_job_manager.transport",
    "structure_settings": "efi_job_manager.config.engine",
    "Text": "efi_job_manager.config.values",
    "TimeLimit": "efi_job_manager.config.values",
    "TransientError": "efi_job_manager.connector",
    "TRANSPORT": "efi_job_manager.retry",
    "Transport": "efi_job_manager.transport",
}


def __getattr__(name: str) -> Any:
    """Import a name from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'efi_job_manager.toolkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, as ``dir()`` lists them."""
    return sorted({*globals(), *_HOMES})
