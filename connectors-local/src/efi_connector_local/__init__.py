"""The local connector of efi-job-manager: jobs run as detached process groups on this host.

`LocalConnector` is registered under the ``efi_job_manager.connectors`` entry point
group as ``local``. It is imported lazily, so that the job wrapper
(``python -m efi_connector_local.wrapper``) starts without loading the manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from efi_connector_local.connector import LocalConnector

__all__ = ["LocalConnector"]


def __getattr__(name: str) -> Any:
    """Import `LocalConnector` on first use."""
    if name == "LocalConnector":
        from efi_connector_local.connector import LocalConnector  # noqa: PLC0415

        return LocalConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
