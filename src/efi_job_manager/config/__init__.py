"""Settings: the manager's file and variables, and the engine that reads every settings.

The engine reads the manager's TOML file with its ``EFI_JOB_MANAGER_*`` variables, and
every connector's settings.
`Settings.load` gives the manager's settings (the manual: ``docs/operator.md``; every key:
``docs/settings.md``); a connector declares its own settings as an attrs class and reads
them with `structure_settings` (through `efi_job_manager.toolkit`; the manual:
``docs/connectors.md``). The modules, one idea each:

* `errors` — `Problem`, `ConfigError` (every problem at once), `Invalid`;
* `values` — the kinds of values (durations, paths, secrets, lists) and rules;
* `engine` — the cattrs converter and `structure_settings`;
* `masking` — secrets kept out of messages and printed settings;
* `environment` — the ``EFI_JOB_MANAGER_*`` overlay; `legacy` — `LEGACY_SETTINGS`;
* `database`, `sections`, `settings` — the manager's own settings classes;
* `reference` — every key of a settings class, its default and meaning (``docs/settings.md``).

Names are imported when first used, so the engine loads without SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from efi_job_manager.config.database import DatabaseSettings
    from efi_job_manager.config.engine import structure_settings
    from efi_job_manager.config.environment import CONFIG_ENV, ENV_PREFIX
    from efi_job_manager.config.errors import ConfigError, Invalid, Problem
    from efi_job_manager.config.legacy import LEGACY_SETTINGS
    from efi_job_manager.config.sections import (
        DestinationSettings,
        EfiDbSettings,
        EmailSettings,
        LogSettings,
        ManagerSettings,
        MetricsSettings,
        NotifySettings,
        PipelineSettings,
        ResourceProfiles,
        ResourceSettings,
    )
    from efi_job_manager.config.settings import Settings
    from efi_job_manager.config.values import parse_duration

#: Each public name and the module of this package that defines it.
_HOMES: dict[str, str] = {
    "CONFIG_ENV": "environment", "ENV_PREFIX": "environment",
    "LEGACY_SETTINGS": "legacy",
    "ConfigError": "errors", "Invalid": "errors", "Problem": "errors",
    "DatabaseSettings": "database",
    "DestinationSettings": "sections", "EfiDbSettings": "sections",
    "EmailSettings": "sections", "LogSettings": "sections", "ManagerSettings": "sections",
    "MetricsSettings": "sections", "NotifySettings": "sections",
    "PipelineSettings": "sections", "ResourceProfiles": "sections",
    "ResourceSettings": "sections",
    "Settings": "settings",
    "parse_duration": "values",
    "structure_settings": "engine",
}

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "LEGACY_SETTINGS",
    "ConfigError",
    "DatabaseSettings",
    "DestinationSettings",
    "EfiDbSettings",
    "EmailSettings",
    "Invalid",
    "LogSettings",
    "ManagerSettings",
    "MetricsSettings",
    "NotifySettings",
    "PipelineSettings",
    "Problem",
    "ResourceProfiles",
    "ResourceSettings",
    "Settings",
    "parse_duration",
    "structure_settings",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'efi_job_manager.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"efi_job_manager.config.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, as ``dir()`` lists them."""
    return sorted({*globals(), *_HOMES})
