"""Finding connectors: entry points in the ``efi_job_manager.connectors`` group, via stevedore.

A site adds a cluster by installing a distribution that registers a
`BaseConnector` subclass under this group; nothing in the core changes. A
connector that fails to import is reported with its error and does not hide
the others; a class that is not a `BaseConnector` is refused. `load_connectors`
builds every destination's connector and reports the settings they refuse as
problems of the configuration file, all at once.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from stevedore import DriverManager, ExtensionManager
from stevedore.exception import NoMatches

from efi_job_manager.config.errors import ConfigError, Problem
from efi_job_manager.connector import BaseConnector

if TYPE_CHECKING:
    from efi_job_manager.config import Settings

__all__ = [
    "NAMESPACE",
    "ConnectorInfo",
    "ConnectorLoadError",
    "ConnectorNotFound",
    "available_connectors",
    "load_connector",
    "load_connectors",
    "package_version",
]

log = logging.getLogger(__name__)

#: The entry point group connectors register under.
NAMESPACE = "efi_job_manager.connectors"


def package_version() -> str:
    """The installed efi-job-manager's version (``unknown`` when run from a bare tree)."""
    try:
        return importlib.metadata.version("efi-job-manager")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


#: The connectors this project ships, by entry point name → their distribution.
_SHIPPED = {"local": "efi-connector-local", "slurm": "efi-connector-slurm"}


class ConnectorNotFound(LookupError):
    """No connector is installed under the name asked for."""

    def __init__(self, name: str, installed: Mapping[str, ConnectorInfo]) -> None:
        self.name = name
        self.installed = dict(installed)
        usable = sorted(n for n, i in installed.items() if i.error is None)
        broken = sorted(n for n, i in installed.items() if i.error is not None)
        text = f"no connector named {name!r} is installed"
        text += f"; installed: {', '.join(usable)}" if usable else "; none is installed"
        if broken:
            text += f"; broken: {', '.join(broken)}"
        if name in _SHIPPED:
            text += (f"; install it: pip install {_SHIPPED[name]} (or "
                     f"'efi-job-manager[{name}]')")
        text += f" (connectors register under the entry point group {NAMESPACE!r})"
        super().__init__(text)


class ConnectorLoadError(ImportError):
    """A connector is registered but cannot be used: it fails to import, or is not a connector."""


@attrs.frozen
class ConnectorInfo:
    """One registered connector.

    Attributes:
        name: The entry point name (what ``connector = "…"`` in the config names).
        target: The entry point's ``module:attribute``.
        distribution: The distribution that registered it, with its version, if known.
        cls: The loaded class, when it loads and is a `BaseConnector`.
        error: Why it cannot be used, when it cannot.
    """

    name: str
    target: str
    distribution: str | None
    cls: type[BaseConnector] | None = None
    error: str | None = None


def _distributions() -> dict[str, str]:
    """``entry point name → "distribution version"`` (stevedore's cached entry points lack it)."""
    found: dict[str, str] = {}
    for entry_point in importlib.metadata.entry_points(group=NAMESPACE):
        dist = entry_point.dist
        if dist is not None and entry_point.name not in found:
            found[entry_point.name] = f"{dist.name} {dist.version}"
    return found


def _check_class(name: str, target: str, plugin: object) -> type[BaseConnector]:
    if not (isinstance(plugin, type) and issubclass(plugin, BaseConnector)):
        raise ConnectorLoadError(
            f"connector {name!r} ({target}) is not a subclass of "
            f"efi_job_manager.BaseConnector: {plugin!r}")
    return plugin


def available_connectors() -> dict[str, ConnectorInfo]:
    """Return every registered connector, usable or not, by name.

    Never raises for a broken connector: its `ConnectorInfo.error` says what is wrong.
    """
    failures: dict[str, str] = {}

    def on_failure(_manager: Any, entry_point: Any, exc: BaseException) -> None:
        failures[entry_point.name] = f"{type(exc).__name__}: {exc}"
        log.warning("connector %r (%s) cannot be loaded: %s: %s",
                    entry_point.name, entry_point.value, type(exc).__name__, exc)

    manager = ExtensionManager(NAMESPACE, invoke_on_load=False,
                               on_load_failure_callback=on_failure)
    dists = _distributions()
    found: dict[str, ConnectorInfo] = {}
    for ext in manager.extensions:
        target = ext.entry_point.value
        try:
            cls = _check_class(ext.name, target, ext.plugin)
        except ConnectorLoadError as exc:
            found[ext.name] = ConnectorInfo(ext.name, target, dists.get(ext.name),
                                            error=str(exc))
        else:
            found[ext.name] = ConnectorInfo(ext.name, target, dists.get(ext.name),
                                            cls=cls)
    for entry_point in manager.list_entry_points():
        if entry_point.name in failures and entry_point.name not in found:
            found[entry_point.name] = ConnectorInfo(
                entry_point.name, entry_point.value, dists.get(entry_point.name),
                error=failures[entry_point.name])
    return dict(sorted(found.items()))


def connector_class(name: str) -> type[BaseConnector]:
    """Return the class registered as ``name``, importing only that connector.

    Raises:
        ConnectorNotFound: nothing is registered under ``name``.
        ConnectorLoadError: it is registered but fails to import or is not a connector.
    """
    def reraise(_manager: Any, _entry_point: Any, exc: BaseException) -> None:
        raise exc

    # looked up first: stevedore would log a warning of its own before NoMatches
    if not importlib.metadata.entry_points(group=NAMESPACE, name=name):
        raise ConnectorNotFound(name, available_connectors())
    try:
        driver = DriverManager(NAMESPACE, name, invoke_on_load=False,
                               on_load_failure_callback=reraise)
    except NoMatches:
        raise ConnectorNotFound(name, available_connectors()) from None
    except Exception as exc:
        raise ConnectorLoadError(
            f"connector {name!r} cannot be used: {type(exc).__name__}: {exc}") from exc
    return _check_class(name, driver.extensions[0].entry_point.value, driver.driver)


def load_connector(name: str, config: Mapping[str, Any] | None = None) -> BaseConnector:
    """Build the connector registered as ``name`` with its configuration section.

    Raises:
        ConnectorNotFound: nothing is registered under ``name`` (the message lists what is).
        ConnectorLoadError: it is registered but fails to import or is not a connector.
        Exception: whatever the connector's constructor raises for a bad configuration.
    """
    return connector_class(name)(dict(config or {}))


def load_connectors(settings: Settings,
                    problems: Sequence[Problem] = ()) -> dict[str, BaseConnector]:
    """Build the connector of every destination of ``settings``, by destination name.

    A connector that refuses its settings — a `ConfigError`, or the `ValueError` or
    `TypeError` a third-party constructor raises — gives problems named with the file (or
    variable) and the full key, ``destinations.<name>.settings.<key>``; the problems of
    every destination are reported together, after ``problems`` found before.

    A destination naming a connector nobody installed, or one that cannot be imported or is
    no connector, is one more problem (``destinations.<name>.connector``).

    Raises:
        ConfigError: every problem, when there is one (the connectors built are closed).
    """
    found = list(problems)
    connectors: dict[str, BaseConnector] = {}
    try:
        for name, destination in settings.destinations.items():
            try:
                connectors[name] = load_connector(destination.connector, destination.settings)
            except (ValueError, TypeError) as exc:
                found.extend(settings.problems_in(("destinations", name, "settings"), exc))
            except (ConnectorNotFound, ConnectorLoadError) as exc:
                key = ("destinations", name, "connector")
                found.append(Problem.note(str(exc), key, settings.source_of(key)))
        if found:
            raise ConfigError(*found)
    except BaseException:
        for connector in connectors.values():
            connector.close()
        raise
    return connectors
