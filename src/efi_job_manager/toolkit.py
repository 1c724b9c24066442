"""Everything a connector needs from efi-job-manager, and nothing of the manager.

A connector package imports from here only: the contract (`BaseConnector`,
`JobSpec` with its `Resources`, `SchedulerStatus`, the errors), the converters of resource
values (`parse_slurm_time`, `parse_memory`, `format_memory`…), the environment a pipeline may see
(`pipeline_environment`), the transports (`LocalTransport`, `SshTransport`), the
job-file helpers (`atomic_write_text`, `relocate_params`, `connector_folder`),
retrying (`retry_call` with the `SCHEDULER` and `TRANSPORT` policies) and the settings
engine (`structure_settings` reads a destination's ``settings`` table into the
connector's attrs class, reporting every problem at once in a `ConfigError`; value kinds
such as `Duration` and rules `Check`, `Convert`). Importing it loads neither SQLAlchemy
nor the manager. The manual is ``docs/connectors.md``.
"""

from efi_job_manager.config.engine import describe, structure_settings
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
    JobSpec,
    PermanentError,
    Resources,
    SchedulerStatus,
    TransientError,
    pipeline_environment,
)
from efi_job_manager.jobfiles import atomic_write_text, connector_folder, relocate_params
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
    "duration",
    "format_duration",
    "format_memory",
    "format_slurm_time",
    "parse_duration",
    "parse_memory",
    "parse_slurm_time",
    "parse_time_limit",
    "pipeline_environment",
    "relocate_params",
    "retry_call",
    "structure_settings",
]
