"""`Settings`: one TOML file plus ``EFI_JOB_MANAGER_*`` variables, read by the engine.

`Settings.load` reads the file, lays the environment over it (`environment.overlay`), builds
the sections with `structure_settings`, then checks what spans sections (destinations named
by ``[routing]`` and ``manager.default_destination`` exist). Every problem is reported at
once; the names of ``[routing]`` and ``[resources]`` are checked against the catalogue's job
types and pipelines when the manager is built (`unknown_job_types`, `unknown_resource_names`).
The manual for operators is ``docs/operator.md``; every key: ``docs/settings.md``.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final

import attrs

from efi_job_manager.config.database import DatabaseSettings
from efi_job_manager.config.engine import NOT_A_SETTING, structure_settings
from efi_job_manager.config.environment import CONFIG_ENV, env_hint, overlay
from efi_job_manager.config.errors import ConfigError, KeyPath, Problem
from efi_job_manager.config.legacy import legacy_hint
from efi_job_manager.config.masking import redact, show
from efi_job_manager.config.sections import (
    DestinationSettings,
    LogSettings,
    ManagerSettings,
    MetricsSettings,
    NotifySettings,
    PipelineSettings,
    ResourceProfiles,
    ResourceSettings,
)
from efi_job_manager.config.values import Convert, Text

__all__ = ["Settings"]

_LOG_LEVELS: Final = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.strip().upper() not in _LOG_LEVELS:
        raise ValueError(value)
    return value.strip().upper()


LogLevel = Annotated[str, Convert(f"a log level ({', '.join(_LOG_LEVELS)})", _log_level)]


def _default_destinations() -> dict[str, DestinationSettings]:
    return {"default": DestinationSettings(connector="local")}


@attrs.frozen
class _Sources:
    """Where each key came from: the file (or mapping), or an environment variable."""

    where: str = "<mapping>"
    env: Mapping[KeyPath, str] = attrs.field(factory=dict)

    def variable(self, key: KeyPath) -> str | None:
        for end in range(len(key), 0, -1):
            name = self.env.get(key[:end])
            if name is not None:
                return name
        return None

    def of(self, key: KeyPath) -> str:
        return self.variable(key) or self.where


def _hint(key: KeyPath, known: Sequence[str], variable: str | None) -> str | None:
    if variable is not None:
        return env_hint(key, known, variable)
    if len(key) == 3 and key[0] == "resources" and key[2] == "partition":
        return "the partition is queue here"
    return legacy_hint(str(key[0])) if len(key) == 1 else None


@attrs.frozen
class Settings:
    """All settings of a job manager; build it with `load` or `from_mapping`.

    Attributes:
        database: Where EFI-Web's ``Job`` table lives.
        manager: How the manager's loop behaves: its interval, directories, limits and
            grace periods.
        destinations: The clusters or partitions jobs can go to, by name. Without a
            ``[destinations]`` table there is one, ``default``, with the ``local`` connector.
            A job keeps the destination it was submitted to (recorded in its directory) even
            if ``[routing]`` changes later.
        routing: Job type → the name of the destination its jobs go to; every other job type
            goes to ``manager.default_destination``. Each name must be a configured
            destination, each job type one the manager knows ("did you mean" otherwise).
        pipelines: How pipelines are run: Nextflow, EST's directories, the command and the
            site's parameters.
        notify: Notifications of job transitions.
        resources: What jobs ask their scheduler for, in profiles by name: ``default``
            (every job), a pipeline's short name (``est``, ``generatessn``, ``gnt``…, or the
            ``pipeline_name`` of an override) or a job type; any other name is an error
            ("did you mean").
        log_level: The log level, a `logging` level name (upper case).
        log: Where and how the log is written: its format and an optional rotating file.
        metrics: The optional Prometheus endpoint of ``run``.
        config_file: The file these settings were read from, absolute; ``None`` if none.
    """

    database: DatabaseSettings = attrs.field(factory=DatabaseSettings)
    manager: ManagerSettings = attrs.field(factory=ManagerSettings)
    destinations: Mapping[str, DestinationSettings] = attrs.field(factory=_default_destinations)
    routing: Mapping[str, Text] = attrs.field(factory=dict)
    pipelines: PipelineSettings = attrs.field(factory=PipelineSettings)
    notify: NotifySettings = attrs.field(factory=NotifySettings)
    resources: Mapping[str, ResourceSettings] = attrs.field(factory=dict)
    log_level: LogLevel = "INFO"
    log: LogSettings = attrs.field(factory=LogSettings)
    metrics: MetricsSettings = attrs.field(factory=MetricsSettings)
    config_file: Path | None = attrs.field(default=None, metadata=NOT_A_SETTING)
    _sources: _Sources = attrs.field(factory=_Sources, eq=False, repr=False,
                                     metadata=NOT_A_SETTING)

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
            ConfigError: The file is missing, unreadable or not TOML, or values are wrong
                (each one named).
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
            ConfigError: Values are wrong (each one named).
        """
        env = os.environ if environ is None else environ
        base = Path(os.path.abspath(base_dir if base_dir is not None else os.curdir))
        return cls._build(data, environ=env, source=source, base_dir=base, file=None)

    @classmethod
    def _build(cls, data: Mapping[str, Any], *, environ: Mapping[str, str], source: str,
               base_dir: Path, file: Path | None) -> Settings:
        raw: dict[str, Any] = copy.deepcopy(dict(data))
        if "destinations" not in raw:
            raw["destinations"] = {"default": {"connector": "local"}}
        env_sources, problems = overlay(raw, environ)
        sources = _Sources(source, env_sources)
        settings: Settings | None = None
        try:
            settings = structure_settings(cls, raw, where=source, sources=env_sources,
                                          base_dir=base_dir, hint=_hint)
        except ConfigError as error:
            problems.extend(error.problems)
        problems.extend(_destination_names(raw, sources))
        if problems or settings is None:
            raise ConfigError(*problems)
        cwd = Path(os.path.abspath(os.curdir))
        manager = attrs.evolve(
            settings.manager,
            results_dir=Path(os.path.abspath(cwd / settings.manager.results_dir)),
            input_dir=Path(os.path.abspath(cwd / settings.manager.input_dir)))
        return attrs.evolve(settings, manager=manager, config_file=file, sources=sources)

    def destination_for(self, job_type: str) -> str:
        """The name of the destination a job of this type goes to.

        Args:
            job_type: The job's ``job_type``.

        Returns:
            ``routing[job_type]`` if listed, else ``manager.default_destination``.
        """
        return self.routing.get(job_type, self.manager.default_destination)

    def source_of(self, key: Sequence[str | int]) -> str:
        """The file (or mapping name) or environment variable that set ``key``."""
        return self._sources.of(tuple(key))

    def problems_in(self, key: Sequence[str | int], error: BaseException) -> list[Problem]:
        """A part's error (a connector's, built from ``key``'s table) as problems of this file.

        A `ConfigError`'s problems are placed under ``key`` (``destinations.<name>.settings``)
        and named with the file or variable that set them; any other error is one problem
        about ``key``, told in the error's own words.
        """
        if isinstance(error, ConfigError):
            return [p.within(self.source_of((*key, *p.key)), key) for p in error.problems]
        text = str(error) or type(error).__name__
        return [Problem.note(text, tuple(key), self.source_of(key))]

    def unknown_job_types(self, known: Iterable[str]) -> list[Problem]:
        """The ``[routing]`` keys that are no job type in ``known``, with "did you mean"."""
        names = tuple(sorted(known))
        return [Problem(("routing", job_type), "unknown", self.source_of(("routing", job_type)),
                        known=names, noun="job type")
                for job_type in self.routing if job_type not in names]

    def unknown_resource_names(self, job_types: Iterable[str],
                               pipelines: Iterable[str]) -> list[Problem]:
        """The ``[resources]`` names that name no profile, with "did you mean".

        A name is ``default``, a pipeline short name in ``pipelines`` or a job type in
        ``job_types``.
        """
        names = tuple(sorted({"default", *pipelines, *job_types}))
        return [Problem(("resources", name), "unknown", self.source_of(("resources", name)),
                        known=names, noun="resource profile")
                for name in self.resources if name not in names]

    @property
    def resource_profiles(self) -> ResourceProfiles:
        """``[resources]`` as the profiles a job's resources are built from."""
        return ResourceProfiles.from_settings(self.resources)

    def redacted(self) -> dict[str, Any]:
        """A plain dictionary of every setting, for printing (``efi-job-manager check``).

        Secrets are replaced by ``***``, the database URL is `DatabaseSettings.masked_url`,
        paths are strings and tuples are lists.

        Returns:
            Nested dictionaries mirroring the TOML file's shape.
        """
        out: dict[str, Any] = redact(self)
        out["database"]["url"] = self.database.masked_url
        return out


def _destination_names(raw: Mapping[str, Any], sources: _Sources) -> list[Problem]:
    """The checks across sections: ``[routing]`` and the default destination must exist."""
    destinations = raw.get("destinations")
    if not isinstance(destinations, Mapping):
        return []
    names = ", ".join(sorted(map(str, destinations))) or "none"
    configured = f"the name of a configured destination ({names})"
    problems: list[Problem] = []
    manager = raw.get("manager")
    key = ("manager", "default_destination")
    default = manager.get(key[1], "default") if isinstance(manager, Mapping) else "default"
    if isinstance(default, str) and default.strip() and default not in destinations:
        if sources.variable(key) or default != "default":
            problems.append(Problem(key, "invalid", sources.of(key), value=show(default),
                                    expected=configured))
        else:
            problems.append(Problem.note(
                f'no destination named "default": add [destinations.default] or set '
                f"manager.default_destination to one of: {names}",
                where=sources.of(("destinations",))))
    routing = raw.get("routing")
    for job_type, name in routing.items() if isinstance(routing, Mapping) else ():
        if isinstance(name, str) and name.strip() and name not in destinations:
            at = ("routing", str(job_type))
            problems.append(Problem(at, "invalid", sources.of(at), value=show(name),
                                    expected=configured))
    return problems
