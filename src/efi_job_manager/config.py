"""Settings: one TOML file plus ``EFI_JOB_MANAGER_*`` environment variables.

`Settings.load` reads ``efi-job-manager.toml`` (the path given, else the one named by
``EFI_JOB_MANAGER_CONFIG``, else no file: built-in defaults), then applies environment
overrides, then checks everything. The sections::

    [database]      url, password, echo, model, connect_timeout
    [manager]       interval, results_dir, input_dir, max_running_jobs,
                    max_running_jobs_per_user, max_running_jobs_per_pipeline, dry_run,
                    submit_grace, lost_grace, cancel_window, claim_batch, step_timeout,
                    default_destination
    [destinations.<name>]  connector, settings (the connector's own table), max_running_jobs
    [routing]       <job_type> = "<destination name>"
    [pipelines]     nextflow, pipeline_dir, config_dir, command, params, overrides
    [notify.email]  smtp, sender, username, password, starttls, recipients, timeout
    log_level       a top-level key

**Durations** (``interval``, ``*_grace``, ``cancel_window``, ``step_timeout``) are a number
of seconds or a string of number-unit pairs: ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h30m"``,
``"7d"``.

**Destinations**: without a ``[destinations]`` table there is one, ``default``, using the
``local`` connector. A job goes to ``routing[job_type]`` if listed, else to
``manager.default_destination`` (``"default"`` unless set), which must exist.

**Environment overrides**: ``EFI_JOB_MANAGER_<SECTION>__<KEY>`` sets one key; a double
underscore separates levels and names are matched case-insensitively (new keys are lower
case): ``EFI_JOB_MANAGER_DATABASE__PASSWORD``, ``EFI_JOB_MANAGER_MANAGER__INTERVAL=1m``,
``EFI_JOB_MANAGER_DESTINATIONS__DEFAULT__SETTINGS__PARTITION=efi``,
``EFI_JOB_MANAGER_LOG_LEVEL=DEBUG``. Values are converted to the key's type (booleans from
``true/false/1/0/yes/no/on/off``); an empty value sets an optional key to "not set". Inside
free-form tables (a destination's ``settings``, ``pipelines.params``,
``pipelines.overrides``) a value is read as a TOML value when it is one (``42``, ``true``,
``"x"``, ``[1, 2]``) and kept as the verbatim string otherwise. An ``EFI_JOB_MANAGER_*``
variable that names no setting is an error, like an unknown key in the file;
``EFI_JOB_MANAGER_CONFIG`` names the file and is not an override.

**Relative paths** in the file (``results_dir``, ``input_dir``, ``pipeline_dir``,
``config_dir`` and the file of a ``sqlite:///relative.db`` URL) are resolved against the
directory holding the file; relative paths from the environment or the defaults against the
current directory at load time. Paths inside a connector's settings and in pipeline
parameters are passed through untouched.

**Secrets** (``database.password``, ``notify.email.password``, and keys looking like
passwords or tokens in free-form tables) never appear in ``repr``, in error messages or in
`Settings.redacted`; a password written in ``database.url`` is masked the same way, and the
``password`` key wins over it.

**Where the first EFI job manager's settings went** (also `LEGACY_SETTINGS`):

==============================  ==================================================
``DATABASE_URI``                ``database.url`` (password: ``database.password``)
``DRY_RUN``                     ``manager.dry_run``
``EXECUTION_CONNECTOR``         ``destinations.default.connector`` (lower case)
``LOCAL_JOB_DIRECTORY``         ``manager.results_dir``
``LOCAL_INPUT_FILE_SOURCE_DIR`` ``manager.input_dir``
``MAX_NUM_RUNNING_JOB``         ``manager.max_running_jobs``
``SLEEP_INTERVAL``/``INTERVAL`` ``manager.interval``
``LOG_FILE_PATH``               none: the log goes to standard error, level ``log_level``
``REMOTE_JOB_DIRECTORY``        ``destinations.<name>.settings.remote_dir``
``HPC_HOSTNAME``/``SSH_HOST``   ``destinations.<name>.settings.host``
``HPC_USERNAME``/``SSH_USER``   ``destinations.<name>.settings.user``
``HPC_SSH_KEY_PATH``/``SSH_KEY`` ``destinations.<name>.settings.identity_file``
``PARTITION``                   ``destinations.<name>.settings.partition``
``SOURCE_ENV_CMD``              ``destinations.<name>.settings.env_setup``
``REMOTE_NEXTFLOW_PATH``        ``pipelines.nextflow``
``REMOTE_NEXTFLOW_PIPELINE_DIR`` ``pipelines.pipeline_dir``
``REMOTE_NEXTFLOW_CONFIG_PATH`` ``pipelines.config_dir``
``NEXTFLOW_PARAMS``             ``pipelines.params``
``EMAIL_HOST``/``EMAIL_PORT``   ``notify.email.smtp`` (``"host:port"``)
``EMAIL_HOST_USER``             ``notify.email.username``
``EMAIL_HOST_PASSWORD``         ``notify.email.password``
``EMAIL_SENDER``                ``notify.email.sender``
``EMAIL_USE_TLS``               ``notify.email.starttls``
==============================  ==================================================
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
import shlex
import string
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "LEGACY_SETTINGS",
    "ConfigError",
    "DatabaseSettings",
    "DestinationSettings",
    "EmailSettings",
    "ManagerSettings",
    "NotifySettings",
    "PipelineSettings",
    "Settings",
    "parse_duration",
]

ENV_PREFIX: Final = "EFI_JOB_MANAGER_"
"""The prefix of every environment override."""

CONFIG_ENV: Final = "EFI_JOB_MANAGER_CONFIG"
"""The environment variable naming the configuration file."""

_MASK: Final = "***"

LEGACY_SETTINGS: Final[Mapping[str, str]] = {
    "DATABASE_URI": "database.url",
    "DRY_RUN": "manager.dry_run",
    "EXECUTION_CONNECTOR": "destinations.default.connector",
    "LOCAL_JOB_DIRECTORY": "manager.results_dir",
    "LOCAL_INPUT_FILE_SOURCE_DIR": "manager.input_dir",
    "MAX_NUM_RUNNING_JOB": "manager.max_running_jobs",
    "SLEEP_INTERVAL": "manager.interval",
    "INTERVAL": "manager.interval",
    "LOG_FILE_PATH": "log_level",
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
``LOG_FILE_PATH`` has no equivalent: the log goes to standard error at ``log_level``.
"""


class ConfigError(ValueError):
    """The configuration is wrong.

    The message names where the value came from (the file's path or the environment
    variable), the dotted key, the offending value (``***`` for secrets) and what was
    expected, e.g. ``efi-job-manager.toml: manager.max_running_jobs = "ten": expected an
    integer >= 1``.
    """


# --------------------------------------------------------------------------- durations

_DURATION_UNITS: Final[Mapping[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE: Final = re.compile(rf"(?:\s*{_NUMBER}\s*(?:ms|s|m|h|d))+\s*", re.IGNORECASE)
_DURATION_PART_RE: Final = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)", re.IGNORECASE)
_DURATION_EXPECTED: Final = 'a duration: seconds, or a string such as "30s", "5m", "1h30m"'


def parse_duration(value: str | int | float) -> float:
    """Turn a duration into seconds.

    Args:
        value: A number of seconds, or a string: a plain number of seconds (``"30"``) or
            number-unit pairs with units ``ms``, ``s``, ``m``, ``h``, ``d``
            (``"500ms"``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1.5h"``, ``"7d"``).

    Returns:
        The duration in seconds, finite and not negative.

    Raises:
        ValueError: The string is not a duration, or the duration is negative or infinite.
        TypeError: ``value`` is neither a string nor a number (booleans are refused).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"expected a number of seconds or a string, got {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        if _DURATION_RE.fullmatch(text):
            seconds = sum(
                float(number) * _DURATION_UNITS[unit.lower()]
                for number, unit in _DURATION_PART_RE.findall(text)
            )
        elif re.fullmatch(rf"[+-]?{_NUMBER}", text):
            seconds = float(text)
        else:
            raise ValueError(f"invalid duration {value!r}: expected {_DURATION_EXPECTED}")
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: expected a finite, non-negative duration")
    return seconds


# --------------------------------------------------------------------------- secrets

_SECRET_KEY_RE: Final = re.compile(
    r"pass(?:word|wd|phrase)|secret|token|credential|api[_-]?key|private[_-]?key",
    re.IGNORECASE,
)
# the password runs to the last "@" of the authority: an unencoded "@" inside it stays masked
_URL_CREDENTIALS_RE: Final = re.compile(
    r"(?P<head>[A-Za-z][\w+.-]*://[^/:@\s]*):[^/\s]*@(?=[^@/\s]*(?:[/?#]|\s|$))")
_URL_AUTHORITY_RE: Final = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*://)(?P<authority>[^/]*)")


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY_RE.search(key) is not None


def _encode_url_password(text: str) -> str:
    """Percent-encode a password holding ``@`` (``user:p@ss@host``), which URLs cannot hold."""
    match = _URL_AUTHORITY_RE.match(text)
    if match is None or match["authority"].count("@") < 2:
        return text
    credentials, _, host = match["authority"].rpartition("@")
    user, sep, password = credentials.partition(":")
    encoded = f"{user}{sep}{urllib.parse.quote(password, safe='')}@{host}"
    return f"{match['scheme']}{encoded}{text[match.end():]}"


def _mask_url_text(text: str) -> str:
    """Mask a password written inside a URL-like string (``scheme://user:pw@host``)."""
    return _URL_CREDENTIALS_RE.sub(rf"\g<head>:{_MASK}@", text)


def _redact(value: Any) -> Any:
    """A plain, printable copy of ``value`` with secrets replaced by ``***``."""
    if attrs.has(type(value)):
        out: dict[str, Any] = {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if field.metadata.get("secret"):
                out[field.name] = None if item is None else _MASK
            else:
                out[field.name] = _redact(item)
        return out
    if isinstance(value, Mapping):
        return {
            str(key): (_MASK if _is_secret_key(key) and item is not None else _redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return _mask_url_text(value)
    return value


def _redacted_repr(value: Any) -> str:
    return repr(_redact(value))


def _url_repr(value: str) -> str:
    return repr(_mask_url_text(value))


# --------------------------------------------------------------------------- value types


@attrs.frozen
class DatabaseSettings:
    """Where EFI-Web's ``Job`` table lives (``[database]``).

    Attributes:
        url: An SQLAlchemy URL, ``dialect+driver://user@host/dbname``.
        password: The database password, merged into `url` (wins over one written in it).
            Best given as ``EFI_JOB_MANAGER_DATABASE__PASSWORD``. Never printed.
        echo: Log every SQL statement (SQLAlchemy's ``echo``).
        model: Dotted path of a module with a site's own model classes, imported before
            the job types are mapped (a documented hook); ``None`` for the built-in ones.
        connect_timeout: Seconds to wait for a connection.
    """

    url: str = attrs.field(default="sqlite:///efi-jobs.sqlite", repr=_url_repr)
    password: str | None = attrs.field(default=None, repr=False, metadata={"secret": True})
    echo: bool = False
    model: str | None = None
    connect_timeout: float = 10.0

    @property
    def sqlalchemy_url(self) -> URL:
        """The URL to create an engine with, `password` merged in (SQLite has none)."""
        url = make_url(self.url)
        if self.password is not None and url.get_backend_name() != "sqlite":
            url = url.set(password=self.password)
        return url

    @property
    def masked_url(self) -> str:
        """The URL for printing, with the password (if any) shown as ``***``."""
        return self.sqlalchemy_url.render_as_string(hide_password=True)


@attrs.frozen
class ManagerSettings:
    """How the manager's loop behaves (``[manager]``). Durations are in seconds.

    Attributes:
        interval: Seconds between two cycles.
        results_dir: The central directory EFI-Web serves results from; each job gets
            ``<results_dir>/<job id>``.
        input_dir: Where uploaded input files are; nothing outside it is ever read.
        max_running_jobs: At most this many jobs running at once, over all destinations.
        max_running_jobs_per_user: At most this many running jobs per user (``None``: no
            limit).
        max_running_jobs_per_pipeline: Pipeline name → at most this many running jobs.
        dry_run: Log what would be done; submit nothing, change nothing.
        submit_grace: A running job with no scheduler id older than this is recovered.
        lost_grace: A job the scheduler no longer knows is declared lost after this.
        cancel_window: How long a cancellation keeps being sent to the scheduler.
        claim_batch: At most this many new jobs are claimed in one cycle.
        step_timeout: Seconds a step of a cycle may take up jobs before the rest wait.
        default_destination: The destination of job types not listed in ``[routing]``.
    """

    interval: float = 30.0
    results_dir: Path = Path("results")
    input_dir: Path = Path("uploads")
    max_running_jobs: int = 100
    max_running_jobs_per_user: int | None = None
    max_running_jobs_per_pipeline: Mapping[str, int] = attrs.field(factory=dict)
    dry_run: bool = False
    submit_grace: float = 300.0
    lost_grace: float = 600.0
    cancel_window: float = 7 * 86400.0
    claim_batch: int = 50
    step_timeout: float = 600.0
    default_destination: str = "default"


@attrs.frozen
class DestinationSettings:
    """One cluster or partition jobs can go to (``[destinations.<name>]``).

    Attributes:
        connector: The connector's entry point name in ``efi_job_manager.connectors``
            (``"slurm"``, ``"local"``…).
        settings: The connector's own table, passed through untouched; treat as read-only.
        max_running_jobs: At most this many jobs running here (``None``: only the global
            limit).
    """

    connector: str
    settings: Mapping[str, Any] = attrs.field(factory=dict, repr=_redacted_repr)
    max_running_jobs: int | None = None


@attrs.frozen
class EfiDbSettings:
    """Which EFI database a job uses, from its ``efi_db_version`` (``[pipelines.efi_db]``).

    Attributes:
        default: The database for rows without a version (EST's ``--efi-db``).
        template: A name built from the version: ``"efi_{efi_db_version}"``.
        versions: Version label → database name or path, checked before the template.
    """

    default: str | None = None
    template: str | None = None
    versions: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class PipelineSettings:
    """How pipelines are run (``[pipelines]``).

    Attributes:
        nextflow: The Nextflow executable where jobs run.
        pipeline_dir: The EST repository's ``pipelines/`` directory.
        config_dir: The EST repository's ``conf/`` directory.
        command: The command template as an argument list with ``{placeholders}``
            (``["nextflow", "-c", "{config}", "run", "{pipeline}", "-params-file",
            "params.json"]``); ``None`` for the built-in default.
        params: Site values for EST's scripts and pipelines (``efi_config``, ``fasta_db``…).
        overrides: Job type → catalogue overrides, validated by the pipeline catalogue.
        efi_db: How a row's ``efi_db_version`` picks the EFI database.
        predefined_taxonomy_filters: Names of EST's predefined taxonomy filters (None:
            the names EST ships).
    """

    nextflow: str = "nextflow"
    pipeline_dir: Path | None = None
    config_dir: Path | None = None
    command: tuple[str, ...] | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict, repr=_redacted_repr)
    overrides: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, repr=_redacted_repr)
    efi_db: EfiDbSettings = attrs.field(factory=EfiDbSettings)
    predefined_taxonomy_filters: tuple[str, ...] | None = None


@attrs.frozen
class EmailSettings:
    """Sending email on job transitions (``[notify.email]``).

    Attributes:
        smtp: The SMTP server as ``"host:port"``.
        sender: The ``From`` address.
        username: The SMTP login, if the server needs one.
        password: The SMTP password. Never printed.
        starttls: Upgrade the connection with STARTTLS.
        recipients: Addresses that receive every notification, besides the job's owner.
        timeout: Seconds to wait for the server.
    """

    smtp: str
    sender: str
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False, metadata={"secret": True})
    starttls: bool = False
    recipients: tuple[str, ...] = ()
    timeout: float = 10.0

    @property
    def host(self) -> str:
        """The SMTP server's host name (brackets of an IPv6 address removed)."""
        return self.smtp.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The SMTP server's port."""
        return int(self.smtp.rpartition(":")[2])


@attrs.frozen
class NotifySettings:
    """Notifications (``[notify]``).

    Attributes:
        email: Email settings; ``None`` sends no email.
    """

    email: EmailSettings | None = None


def _default_destinations() -> dict[str, DestinationSettings]:
    return {"default": DestinationSettings(connector="local")}


@attrs.frozen
class Settings:
    """All settings of a job manager; build it with `load` or `from_mapping`.

    Attributes:
        database: ``[database]``.
        manager: ``[manager]``.
        destinations: ``[destinations.<name>]`` by name; at least the default destination.
        routing: Job type → destination name, for job types not sent to the default one.
        pipelines: ``[pipelines]``.
        notify: ``[notify]``.
        log_level: A `logging` level name (``DEBUG``, ``INFO``…), upper case.
        config_file: The file these settings were read from, absolute; ``None`` if none.
    """

    database: DatabaseSettings = attrs.field(factory=DatabaseSettings)
    manager: ManagerSettings = attrs.field(factory=ManagerSettings)
    destinations: Mapping[str, DestinationSettings] = attrs.field(factory=_default_destinations)
    routing: Mapping[str, str] = attrs.field(factory=dict)
    pipelines: PipelineSettings = attrs.field(factory=PipelineSettings)
    notify: NotifySettings = attrs.field(factory=NotifySettings)
    log_level: str = "INFO"
    config_file: Path | None = None

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Read the settings from a TOML file and the environment.

        Args:
            path: The TOML file. ``None``: the file named by ``EFI_JOB_MANAGER_CONFIG``
                if set (and not empty), else no file (built-in defaults).
            environ: The environment to read ``EFI_JOB_MANAGER_*`` variables from;
                ``None`` for `os.environ`, ``{}`` to ignore the environment.

        Returns:
            The checked settings.

        Raises:
            ConfigError: The file is missing, unreadable or not TOML, or a value is wrong.
        """
        env = os.environ if environ is None else environ
        named_by: str | None = None
        if path is None and env.get(CONFIG_ENV):
            path, named_by = env[CONFIG_ENV], CONFIG_ENV
        if path is None:
            return cls.from_mapping({}, environ=env, source="<defaults>")
        source = os.fspath(path)
        where = f"{named_by}: {source}" if named_by else source
        try:
            with open(path, "rb") as stream:
                data = tomllib.load(stream)
        except FileNotFoundError:
            raise ConfigError(f"{where}: configuration file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{where}: is a directory, not a configuration file") from None
        except OSError as error:
            raise ConfigError(f"{where}: cannot read: {error.strerror or error}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source}: invalid TOML: {error}") from None
        file = Path(os.path.abspath(path))
        return cls._build(data, environ=env, source=source, base_dir=file.parent, file=file)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        environ: Mapping[str, str] | None = None,
        source: str = "<mapping>",
        base_dir: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """Build the settings from a mapping shaped like the TOML file.

        Args:
            data: The parsed file (``{"database": {"url": ...}, ...}``); not modified.
            environ: As for `load`: ``None`` for `os.environ`, ``{}`` to ignore it.
            source: How error messages name ``data``.
            base_dir: What relative paths in ``data`` are relative to; ``None`` for the
                current directory.

        Returns:
            The checked settings.

        Raises:
            ConfigError: A value is wrong.
        """
        env = os.environ if environ is None else environ
        base = Path(os.path.abspath(base_dir if base_dir is not None else os.curdir))
        return cls._build(data, environ=env, source=source, base_dir=base, file=None)

    @classmethod
    def _build(
        cls,
        data: Mapping[str, Any],
        *,
        environ: Mapping[str, str],
        source: str,
        base_dir: Path,
        file: Path | None,
    ) -> Settings:
        raw: dict[str, Any] = copy.deepcopy(dict(data))
        if "destinations" not in raw:
            raw["destinations"] = {"default": {"connector": "local"}}
        loader = _Loader(source=source, base_dir=base_dir, cwd=Path(os.path.abspath(os.curdir)))
        loader.merge_environment(raw, environ)
        values = loader.section((), raw, _TOP_FIELDS)
        settings = cls(**values, config_file=file)
        return loader.finish(settings)

    def destination_for(self, job_type: str) -> str:
        """The name of the destination a job of this type goes to.

        Args:
            job_type: The job's ``job_type``.

        Returns:
            ``routing[job_type]`` if listed, else ``manager.default_destination``.
        """
        return self.routing.get(job_type, self.manager.default_destination)

    def redacted(self) -> dict[str, Any]:
        """A plain dictionary of every setting, for printing (``efi-job-manager check``).

        Secrets are replaced by ``***``, the database URL is `DatabaseSettings.masked_url`,
        paths are strings and tuples are lists.

        Returns:
            Nested dictionaries mirroring the TOML file's shape.
        """
        out: dict[str, Any] = _redact(self)
        out["database"]["url"] = self.database.masked_url
        return out


# --------------------------------------------------------------------------- loading

_KeyPath = tuple[str, ...]
_Conv = Callable[["_Loader", _KeyPath, Any], Any]
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]+")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_LOG_LEVELS: Final = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")
_MODULE_RE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def _dotted(path: Iterable[str]) -> str:
    return ".".join(key if _BARE_KEY_RE.fullmatch(key) else json.dumps(key) for key in path)


def _show(path: _KeyPath, value: Any) -> str:
    if path and _is_secret_key(path[-1]):
        return _MASK
    return json.dumps(_redact(value), ensure_ascii=False, default=str)


def _parse_env_value(text: str) -> Any:
    """A TOML value if ``text`` is one (``42``, ``true``, ``"x"``), else ``text`` itself."""
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return parsed["v"] if parsed.keys() == {"v"} else text


@attrs.define
class _Loader:
    """Converts the raw mapping, knowing where each value came from."""

    source: str
    base_dir: Path
    cwd: Path
    env_sources: dict[_KeyPath, str] = attrs.Factory(dict)

    # -- where values come from

    def merge_environment(self, raw: dict[str, Any], environ: Mapping[str, str]) -> None:
        for name in sorted(environ):
            if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
                continue
            parts = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
            if not all(parts):
                raise ConfigError(
                    f"{name}: malformed name: expected {ENV_PREFIX}<SECTION>__<KEY>, "
                    "levels separated by a double underscore"
                )
            node = raw
            path: list[str] = []
            for part in parts[:-1]:
                key = _match_key(node, part)
                path.append(key)
                child = node.setdefault(key, {})
                if not isinstance(child, dict):
                    raise ConfigError(
                        f"{name}: {_dotted(path)} is not a table, so it has no key {parts[-1]}"
                    )
                node = child
            key = _match_key(node, parts[-1])
            node[key] = environ[name]
            self.env_sources[(*path, key)] = name

    def env_name(self, path: _KeyPath) -> str | None:
        for end in range(len(path), 0, -1):
            name = self.env_sources.get(path[:end])
            if name is not None:
                return name
        return None

    def from_env(self, path: _KeyPath) -> bool:
        return self.env_name(path) is not None

    # -- errors

    def error(self, path: _KeyPath, message: str) -> ConfigError:
        return ConfigError(f"{self.env_name(path) or self.source}: {message}")

    def invalid(self, path: _KeyPath, value: Any, expected: str) -> ConfigError:
        return self.error(path, f"{_dotted(path)} = {_show(path, value)}: expected {expected}")

    def unknown(self, path: _KeyPath, known: Iterable[str]) -> ConfigError:
        key, parent = path[-1], path[:-1]
        known = sorted(known)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {_dotted((*parent, close[0]))}?)" if close else ""
        env_name = self.env_name(path)
        if env_name is not None:
            for section in known:
                if not parent and key.startswith(section + "_"):
                    right = f"{ENV_PREFIX}{section.upper()}__{key[len(section) + 1 :].upper()}"
                    hint = f" (separate levels with a double underscore: {right})"
        elif not parent and key.upper() in LEGACY_SETTINGS:
            home = LEGACY_SETTINGS[key.upper()]
            hint = f" ({key.upper()} of the first EFI job manager is {home} here)"
        return self.error(
            path, f"unknown key {_dotted(path)}{hint}; known keys: {', '.join(known)}"
        )

    # -- structure

    def table(self, path: _KeyPath, value: Any) -> dict[str, Any]:
        if isinstance(value, str) and self.from_env(path):
            value = _parse_env_value(value)
        if not isinstance(value, dict):
            raise self.invalid(path, value, "a table")
        return value

    def section(
        self,
        path: _KeyPath,
        value: Any,
        fields: Mapping[str, _Conv],
        required: Iterable[str] = (),
    ) -> dict[str, Any]:
        data = self.table(path, value)
        out: dict[str, Any] = {}
        for key, item in data.items():
            conv = fields.get(key)
            if conv is None:
                raise self.unknown((*path, key), fields)
            out[key] = conv(self, (*path, key), item)
        for key in required:
            if key not in out:
                raise self.error(path, f"{_dotted((*path, key))} is required but missing")
        return out

    def freeform(self, path: _KeyPath, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self.freeform((*path, key), item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.freeform(path, item) for item in value]
        if isinstance(value, str) and path in self.env_sources:
            return _parse_env_value(value)
        return value

    def path(self, path: _KeyPath, value: Path) -> Path:
        base = self.cwd if self.from_env(path) else self.base_dir
        return Path(os.path.abspath(base / value.expanduser()))

    # -- checks across sections

    def finish(self, settings: Settings) -> Settings:
        manager = settings.manager
        manager = attrs.evolve(
            manager,
            results_dir=Path(os.path.abspath(self.cwd / manager.results_dir)),
            input_dir=Path(os.path.abspath(self.cwd / manager.input_dir)),
        )
        names = sorted(settings.destinations)
        configured = f"the name of a configured destination ({', '.join(names) or 'none'})"
        default = manager.default_destination
        if default not in settings.destinations:
            where = ("manager", "default_destination")
            if self.from_env(where) or default != "default":
                raise self.invalid(where, default, configured)
            raise self.error(
                ("destinations",),
                'no destination named "default": add [destinations.default] or set '
                f"manager.default_destination to one of: {', '.join(names) or 'none'}",
            )
        for job_type, name in settings.routing.items():
            if name not in settings.destinations:
                raise self.invalid(("routing", job_type), name, configured)
        return attrs.evolve(settings, manager=manager)


def _match_key(node: Mapping[str, Any], key: str) -> str:
    """The existing key of ``node`` equal to ``key`` ignoring case, else ``key``."""
    if key in node:
        return key
    return next((existing for existing in node if existing.lower() == key), key)


# -- converters: (loader, key path, raw value) -> value, raising ConfigError


def _integer(minimum: int) -> _Conv:
    expected = f"an integer >= {minimum}"

    def conv(ld: _Loader, path: _KeyPath, value: Any) -> int:
        number = value
        if isinstance(value, str) and ld.from_env(path):
            try:
                number = int(value.strip())
            except ValueError:
                raise ld.invalid(path, value, expected) from None
        if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
            raise ld.invalid(path, value, expected)
        return number

    return conv


def _positive_number(ld: _Loader, path: _KeyPath, value: Any) -> float:
    expected = "a number > 0"
    number = value
    if isinstance(value, str) and ld.from_env(path):
        try:
            number = float(value.strip())
        except ValueError:
            raise ld.invalid(path, value, expected) from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ld.invalid(path, value, expected)
    if not math.isfinite(number) or number <= 0:
        raise ld.invalid(path, value, expected)
    return float(number)


def _boolean(ld: _Loader, path: _KeyPath, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and ld.from_env(path):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ld.invalid(path, value, "a boolean (true/false, yes/no, 1/0, on/off)")
    raise ld.invalid(path, value, "a boolean (true or false)")


def _string(ld: _Loader, path: _KeyPath, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ld.invalid(path, value, "a non-empty string")
    return value


def _secret(ld: _Loader, path: _KeyPath, value: Any) -> str:
    if not isinstance(value, str):
        raise ld.invalid(path, value, "a string")
    return value


def _optional(conv: _Conv) -> _Conv:
    def optional(ld: _Loader, path: _KeyPath, value: Any) -> Any:
        if value == "" and ld.from_env(path):
            return None
        return conv(ld, path, value)

    return optional


def _duration(*, positive: bool, minimum: float = 0.0) -> _Conv:
    def conv(ld: _Loader, path: _KeyPath, value: Any) -> float:
        try:
            seconds = parse_duration(value)
        except (TypeError, ValueError):
            raise ld.invalid(path, value, _DURATION_EXPECTED) from None
        if positive and seconds <= 0:
            raise ld.invalid(path, value, "a duration > 0")
        if seconds < minimum:
            raise ld.invalid(path, value, f"a duration of at least {minimum:g} s (a shorter "
                                          f"one takes a slow start for a lost job)")
        return seconds

    return conv


def _path(ld: _Loader, path: _KeyPath, value: Any) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ld.invalid(path, value, "a path (a non-empty string)")
    return ld.path(path, Path(value))


def _string_list(split: Callable[[str], list[str]]) -> _Conv:
    expected = "a list of non-empty strings"

    def conv(ld: _Loader, path: _KeyPath, value: Any) -> tuple[str, ...]:
        items = value
        if isinstance(value, str) and ld.from_env(path):
            parsed = _parse_env_value(value)
            items = parsed if isinstance(parsed, list) else split(value)
        if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
            raise ld.invalid(path, value, expected)
        return tuple(items)

    return conv


def _comma_split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _command(ld: _Loader, path: _KeyPath, value: Any) -> tuple[str, ...]:
    command: tuple[str, ...] = _string_list(shlex.split)(ld, path, value)
    if not command:
        raise ld.invalid(path, value, "a non-empty list of strings (the command's arguments)")
    return command


def _table_of(conv: _Conv) -> _Conv:
    def table(ld: _Loader, path: _KeyPath, value: Any) -> dict[str, Any]:
        data = ld.table(path, value)
        return {key: conv(ld, (*path, key), item) for key, item in data.items()}

    return table


def _freeform(ld: _Loader, path: _KeyPath, value: Any) -> dict[str, Any]:
    result: dict[str, Any] = ld.freeform(path, ld.table(path, value))
    return result


def _overrides(ld: _Loader, path: _KeyPath, value: Any) -> dict[str, Any]:
    return {
        job_type: _freeform(ld, (*path, job_type), item)
        for job_type, item in ld.table(path, value).items()
    }


def _database_url(ld: _Loader, path: _KeyPath, value: Any) -> str:
    expected = "an SQLAlchemy database URL (dialect+driver://user@host/dbname)"
    if not isinstance(value, str):
        raise ld.invalid(path, value, expected)
    try:
        url = make_url(_encode_url_password(value))
    except (ArgumentError, ValueError):
        raise ld.invalid(path, _mask_url_text(value), expected) from None
    database = url.database
    if (
        url.get_backend_name() == "sqlite"
        and database
        and database != ":memory:"
        and not database.startswith("file:")
        and not os.path.isabs(database)
        and not ld.from_env(path)
    ):
        resolved = ld.path(path, Path(database))
        return url.set(database=str(resolved)).render_as_string(hide_password=False)
    return _encode_url_password(value)


def _module_name(ld: _Loader, path: _KeyPath, value: Any) -> str:
    if not isinstance(value, str) or not _MODULE_RE.fullmatch(value):
        raise ld.invalid(path, value, "a dotted module path (mysite.efi_models)")
    return value


def _log_level(ld: _Loader, path: _KeyPath, value: Any) -> str:
    if not isinstance(value, str) or value.strip().upper() not in _LOG_LEVELS:
        raise ld.invalid(path, value, f"a log level ({', '.join(_LOG_LEVELS)})")
    return value.strip().upper()


def _smtp(ld: _Loader, path: _KeyPath, value: Any) -> str:
    expected = 'the SMTP server as "host:port"'
    if not isinstance(value, str):
        raise ld.invalid(path, value, expected)
    host, _, port = value.strip().rpartition(":")
    if not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ld.invalid(path, value, expected)
    return value.strip()


_DATABASE_FIELDS: Final[Mapping[str, _Conv]] = {
    "url": _database_url,
    "password": _optional(_secret),
    "echo": _boolean,
    "model": _optional(_module_name),
    "connect_timeout": _positive_number,
}

_MANAGER_FIELDS: Final[Mapping[str, _Conv]] = {
    "interval": _duration(positive=True),
    "results_dir": _path,
    "input_dir": _path,
    "max_running_jobs": _integer(1),
    "max_running_jobs_per_user": _optional(_integer(1)),
    "max_running_jobs_per_pipeline": _table_of(_integer(1)),
    "dry_run": _boolean,
    "submit_grace": _duration(positive=False, minimum=60.0),
    "lost_grace": _duration(positive=False, minimum=60.0),
    "cancel_window": _duration(positive=False),
    "claim_batch": _integer(1),
    "step_timeout": _duration(positive=True),
    "default_destination": _string,
}

_DESTINATION_FIELDS: Final[Mapping[str, _Conv]] = {
    "connector": _string,
    "settings": _freeform,
    "max_running_jobs": _optional(_integer(1)),
}

def _efi_db_template(ld: _Loader, path: _KeyPath, value: Any) -> str:
    text = _string(ld, path, value)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError:
        fields = set()
    if fields != {"efi_db_version"}:
        raise ld.invalid(path, value, 'a name with {efi_db_version} ("efi_{efi_db_version}")')
    return text


_EFI_DB_FIELDS: Final[Mapping[str, _Conv]] = {
    "default": _optional(_string),
    "template": _optional(_efi_db_template),
    "versions": _table_of(_string),
}


def _efi_db(ld: _Loader, path: _KeyPath, value: Any) -> EfiDbSettings:
    return EfiDbSettings(**ld.section(path, value, _EFI_DB_FIELDS))


_PIPELINE_FIELDS: Final[Mapping[str, _Conv]] = {
    "nextflow": _string,
    "pipeline_dir": _optional(_path),
    "config_dir": _optional(_path),
    "command": _optional(_command),
    "params": _freeform,
    "overrides": _overrides,
    "efi_db": _efi_db,
    "predefined_taxonomy_filters": _optional(_string_list(_comma_split)),
}

_EMAIL_FIELDS: Final[Mapping[str, _Conv]] = {
    "smtp": _smtp,
    "sender": _string,
    "username": _optional(_string),
    "password": _optional(_secret),
    "starttls": _boolean,
    "recipients": _string_list(_comma_split),
    "timeout": _positive_number,
}


def _database(ld: _Loader, path: _KeyPath, value: Any) -> DatabaseSettings:
    return DatabaseSettings(**ld.section(path, value, _DATABASE_FIELDS))


def _manager(ld: _Loader, path: _KeyPath, value: Any) -> ManagerSettings:
    return ManagerSettings(**ld.section(path, value, _MANAGER_FIELDS))


def _destinations(ld: _Loader, path: _KeyPath, value: Any) -> dict[str, DestinationSettings]:
    return {
        name: DestinationSettings(
            **ld.section((*path, name), item, _DESTINATION_FIELDS, required=("connector",))
        )
        for name, item in ld.table(path, value).items()
    }


def _pipelines(ld: _Loader, path: _KeyPath, value: Any) -> PipelineSettings:
    return PipelineSettings(**ld.section(path, value, _PIPELINE_FIELDS))


def _email(ld: _Loader, path: _KeyPath, value: Any) -> EmailSettings:
    return EmailSettings(**ld.section(path, value, _EMAIL_FIELDS, required=("smtp", "sender")))


def _notify(ld: _Loader, path: _KeyPath, value: Any) -> NotifySettings:
    return NotifySettings(**ld.section(path, value, {"email": _email}))


_TOP_FIELDS: Final[Mapping[str, _Conv]] = {
    "database": _database,
    "manager": _manager,
    "destinations": _destinations,
    "routing": _table_of(_string),
    "pipelines": _pipelines,
    "notify": _notify,
    "log_level": _log_level,
}
