"""``efi-job-manager config migrate``: a settings file from EFI's first job manager's."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import attrs

from efi_job_manager.config import ConfigError, Settings
from efi_job_manager.migration import migrate, read_first_manager_settings

__all__ = ["config_migrate"]


def config_migrate(old: Path, output: Path | None) -> int:
    """Write the settings file of a first-manager settings module; say what is left to do.

    The file goes to ``output`` (never over an existing file) or standard output; the
    notes, the variables to set for secrets and what still keeps it from loading go to
    standard error. Exit 0 when the new file loads as settings, 1 when it still needs a hand.
    """
    found, unread = read_first_manager_settings(old.read_text(encoding="utf-8"), str(old))
    migration = migrate(found)
    migration = attrs.evolve(migration, notes=(*unread, *migration.notes))
    text = migration.toml(str(old))
    if output is None:
        print(text, end="")
    else:
        with open(output, "x", encoding="utf-8") as stream:
            stream.write(text)
        print(f"wrote {output}", file=sys.stderr)
    for note in migration.notes:
        print(f"note: {note}", file=sys.stderr)
    for setting, variable in sorted(migration.secrets.items()):
        print(f"secret: set {variable} in the service's environment ({setting})",
              file=sys.stderr)
    try:
        Settings.from_mapping(tomllib.loads(text), environ={},
                              base_dir=(output or Path("settings.toml")).absolute().parent)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"still to do: {line}", file=sys.stderr)
        return 1
    return 0
