"""A settings module of EFI's first job manager, turned into this manager's TOML file.

The old ``config/settings.py`` is read, never run: only top-level ``NAME = <literal>``
assignments count (`read_first_manager_settings`). `migrate` maps each onto its home here
(`LEGACY_SETTINGS`), says what it dropped and why, and keeps every secret out of the file:
a password becomes the name of the variable to set instead.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import attrs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from efi_job_manager.catalogue.site import site_param_keys
from efi_job_manager.config.legacy import GONE_SETTINGS, LEGACY_SETTINGS
from efi_job_manager.config.reference import toml_document

__all__ = ["Migration", "migrate", "read_first_manager_settings"]

#: ``NEXTFLOW_PARAMS`` keys EST's scripts write for each job (not site values): dropped.
_PER_JOB_PARAMS = {"filter": "EST's scripts write each job's filter from its row",
                   "sequence_version": "each job's sequence_version comes from its row"}
#: Where a password goes instead of the file: the variable that sets it.
_PASSWORD_VARIABLES = {"database": "EFI_JOB_MANAGER_DATABASE__PASSWORD",
                       "email": "EFI_JOB_MANAGER_NOTIFY__EMAIL__PASSWORD"}
#: Drivers the first manager's URLs leave implicit → the one this package's extras install.
_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
            "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


@attrs.frozen
class Migration:
    """The new settings file, and what a person must still do.

    Attributes:
        settings: The TOML document as nested tables (no secret in it).
        notes: What was dropped or changed, and why; each names the old setting.
        secrets: The old secret setting → the variable to set in the service's environment
            instead (``EFI_JOB_MANAGER_DATABASE__PASSWORD``…).
    """

    settings: Mapping[str, Any]
    notes: tuple[str, ...]
    secrets: Mapping[str, str]

    def toml(self, source: str) -> str:
        """The settings file's text: the notes and the variables to set as comments on top."""
        head = [f"# Migrated from {source} (EFI's first job manager) by "
                "efi-job-manager config migrate.", "# Check it: efi-job-manager check --config "
                "<this file>"]
        head += [f"# NOTE: {note}" for note in self.notes]
        head += [f"# SECRET: set {name} in the service's environment ({old}); it is not "
                 "written here" for old, name in sorted(self.secrets.items())]
        return "\n".join([*head, "", *toml_document(self.settings)]).strip() + "\n"


def read_first_manager_settings(text: str, source: str = "<settings>") -> tuple[
        dict[str, Any], list[str]]:
    """The ``NAME = literal`` assignments of a Python settings module, without running it.

    Returns:
        ``NAME → value`` and a note for each upper-case name assigned something that is not
        a literal (it must be set by hand).

    Raises:
        ValueError: ``text`` is not Python.
    """
    try:
        module = ast.parse(text, filename=source)
    except SyntaxError as exc:
        raise ValueError(f"{source}: not a Python settings module: {exc}") from None
    found: dict[str, Any] = {}
    notes: list[str] = []
    for node in module.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if not isinstance(target, ast.Name) or not target.id.isupper():
                continue
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                found.pop(target.id, None)
                notes.append(f"{target.id} is computed (line {node.lineno}), not a literal: "
                             "set its new home by hand")
    return found, notes


def migrate(old: Mapping[str, Any]) -> Migration:
    """Map the first manager's settings onto a settings file of this manager."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    secrets: dict[str, str] = {}

    def put(dotted: str, value: Any) -> None:
        *path, key = dotted.split(".")
        table = out
        for part in path:
            table = table.setdefault(part, {})
        table[key] = value

    _database(old, put, notes, secrets)
    _destination(old, put, notes)
    for name, key in (("LOCAL_JOB_DIRECTORY", "manager.results_dir"),
                      ("LOCAL_INPUT_FILE_SOURCE_DIR", "manager.input_dir"),
                      ("MAX_NUM_RUNNING_JOB", "manager.max_running_jobs"),
                      ("SLEEP_INTERVAL", "manager.interval"), ("INTERVAL", "manager.interval"),
                      ("DRY_RUN", "manager.dry_run"),
                      ("REMOTE_NEXTFLOW_PATH", "pipelines.nextflow"),
                      ("REMOTE_NEXTFLOW_PIPELINE_DIR", "pipelines.pipeline_dir"),
                      ("REMOTE_NEXTFLOW_PIPELINE", "pipelines.pipeline_dir")):
        if old.get(name) is not None:
            put(key, old[name])
    config = old.get("REMOTE_NEXTFLOW_CONFIG_PATH")
    if isinstance(config, str) and config.endswith(".config"):
        notes.append(f"REMOTE_NEXTFLOW_CONFIG_PATH = {config!r} is one config file; "
                     "pipelines.config_dir is EST's conf/ directory (each pipeline's config "
                     "is picked from it): set it by hand")
    elif config is not None:
        put("pipelines.config_dir", config)
    if old.get("LOGGING") is False:
        notes.append("LOGGING = False: the log is always written (standard error); no "
                     "log.file is set")
    elif old.get("LOG_FILE_PATH"):
        put("log.file", old["LOG_FILE_PATH"])
    _params(old, put, notes)
    _email(old, put, notes, secrets)
    gone = sorted(name for name in old if name in GONE_SETTINGS and name != "LOGGING")
    notes += [f"{name}: {GONE_SETTINGS[name]}" for name in gone]
    unknown = sorted(n for n in old if n not in LEGACY_SETTINGS and n not in GONE_SETTINGS)
    if unknown:
        notes.append(f"not settings of the first job manager, left out: {', '.join(unknown)}")
    return Migration(out, tuple(notes), secrets)


def _database(old: Mapping[str, Any], put: Any, notes: list[str],
              secrets: dict[str, str]) -> None:
    uri = old.get("DATABASE_URI")
    if not isinstance(uri, str):
        return
    try:
        url = make_url(uri)
    except ArgumentError:
        notes.append("DATABASE_URI is not a database URL: set database.url by hand")
        return
    if url.password is not None:
        url = URL.create(url.drivername, url.username, None, url.host, url.port, url.database,
                         url.query)  # URL.set(password=None) would keep it
        secrets["the password of DATABASE_URI"] = _PASSWORD_VARIABLES["database"]
    driver = _DRIVERS.get(url.drivername)
    if driver is not None:
        notes.append(f"DATABASE_URI: {url.drivername}:// is {driver}:// here (the driver "
                     "the [postgresql] or [mysql] extra installs)")
        url = url.set(drivername=driver)
    if url.get_backend_name() == "sqlite" and url.database and not url.database.startswith("/"):
        notes.append(f"DATABASE_URI: the SQLite file {url.database!r} is relative: here it is "
                     "relative to this file's folder; write its absolute path")
    put("database.url", url.render_as_string(hide_password=False))


def _destination(old: Mapping[str, Any], put: Any, notes: list[str]) -> None:
    kind = str(old.get("EXECUTION_CONNECTOR", "")).upper()
    if kind not in ("HPC", "LOCAL"):
        if kind:
            notes.append(f"EXECUTION_CONNECTOR = {kind!r} is neither 'HPC' nor 'LOCAL': "
                         "set [destinations.default] by hand")
        return
    put("destinations.default.connector", "slurm")
    settings: dict[str, Any] = {"transport": "ssh" if kind == "HPC" else "local"}
    keys = [("PARTITION", "partition"), ("SOURCE_ENV_CMD", "env_setup")]
    if kind == "HPC":
        keys += [("HPC_HOSTNAME", "host"), ("SSH_HOST", "host"), ("HPC_USERNAME", "user"),
                 ("SSH_USER", "user"), ("HPC_SSH_KEY_PATH", "identity_file"),
                 ("SSH_KEY", "identity_file"), ("REMOTE_JOB_DIRECTORY", "remote_dir")]
    else:
        ignored = [n for n in ("HPC_HOSTNAME", "HPC_USERNAME", "HPC_SSH_KEY_PATH",
                               "REMOTE_JOB_DIRECTORY") if n in old]
        if ignored:
            notes.append(f"EXECUTION_CONNECTOR = 'LOCAL': {', '.join(ignored)} left out "
                         "(sbatch runs on this host, on a file system shared with the cluster)")
    for name, key in keys:
        if old.get(name) is not None:
            settings[key] = old[name]
    put("destinations.default.settings", settings)


def _params(old: Mapping[str, Any], put: Any, notes: list[str]) -> None:
    params = old.get("NEXTFLOW_PARAMS", old.get("PARAMS_DICT"))
    if not isinstance(params, Mapping):
        return
    known = site_param_keys()
    kept: dict[str, Any] = {}
    for key, value in params.items():
        if key == "efi_db":
            put("pipelines.efi_db.default", value)
            notes.append("NEXTFLOW_PARAMS.efi_db is pipelines.efi_db.default: rows with an "
                         "efi_db_version get theirs through pipelines.efi_db.template/versions")
        elif key in _PER_JOB_PARAMS:
            notes.append(f"NEXTFLOW_PARAMS.{key} left out: {_PER_JOB_PARAMS[key]}")
        elif key not in known:
            notes.append(f"NEXTFLOW_PARAMS.{key} left out: no EST script or pipeline takes it "
                         "as a site value")
        elif value is not None:
            kept[key] = value
    put("pipelines.params", kept)


def _email(old: Mapping[str, Any], put: Any, notes: list[str],
           secrets: dict[str, str]) -> None:
    host = old.get("EMAIL_HOST")
    if not host:
        return
    if not old.get("EMAIL_SENDER"):
        notes.append("EMAIL_HOST without EMAIL_SENDER: set notify.email.sender by hand")
        return
    put("notify.email.smtp", f"{host}:{old.get('EMAIL_PORT') or 25}")
    put("notify.email.sender", old["EMAIL_SENDER"])
    if old.get("EMAIL_HOST_USER"):
        put("notify.email.username", old["EMAIL_HOST_USER"])
    if old.get("EMAIL_USE_TLS") is not None:
        put("notify.email.starttls", bool(old["EMAIL_USE_TLS"]))
    if old.get("EMAIL_HOST_PASSWORD"):
        secrets["EMAIL_HOST_PASSWORD"] = _PASSWORD_VARIABLES["email"]
