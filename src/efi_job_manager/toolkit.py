"""Everything a connector needs from efi-job-manager, and nothing of the manager.

A connector package imports from here only: the contract (`BaseConnector`,
`JobSpec`, `SchedulerStatus`, the errors), the environment a pipeline may see
(`pipeline_environment`), the transports (`LocalTransport`, `SshTransport`), the
job-file helpers (`atomic_write_text`, `relocate_params`, `connector_folder`) and
retrying (`retry_call` with the `SCHEDULER` and `TRANSPORT` policies). Importing it
loads neither SQLAlchemy nor the manager. The manual is ``docs/connectors.md``.
"""

from efi_job_manager.connector import (
    PIPELINE_PASSTHROUGH,
    BaseConnector,
    ConnectorError,
    JobSpec,
    PermanentError,
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

__all__ = [
    "PIPELINE_PASSTHROUGH",
    "SCHEDULER",
    "TRANSPORT",
    "BaseConnector",
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "ConnectionFailed",
    "ConnectorError",
    "HostKeyError",
    "JobSpec",
    "LocalTransport",
    "PermanentError",
    "RetryPolicy",
    "SchedulerState",
    "SchedulerStatus",
    "SshTransport",
    "TransientError",
    "Transport",
    "atomic_write_text",
    "connector_folder",
    "pipeline_environment",
    "relocate_params",
    "retry_call",
]
