"""The catalogue's ``[pipelines]`` settings, checked at start-up.

The command template and its placeholders, the site's params, each job type's
override, and `EfiDatabases` (a row's ``efi_db_version`` → EST's ``--efi-db``). A
bad value raises `CatalogueError` naming the key. The operator's manual for
``[pipelines]``: ``docs/operator.md``; every key and where it comes from:
``docs/est-params.md``.
"""

from __future__ import annotations

import math
import re
import string
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
from sqlalchemy import inspect

from efi_job_manager.catalogue.jobtypes import JOB_TYPES, JobType
from efi_job_manager.catalogue.rowvalues import JobInputError, RowReader, fail, to_str
from efi_job_manager.models import Job, column_meta

__all__ = [
    "DEFAULT_COMMAND",
    "PARAMS_FILE",
    "PLACEHOLDERS",
    "STANDIN_COMMAND",
    "CatalogueError",
    "EfiDatabases",
    "Override",
    "SiteSettings",
    "check_command",
    "check_override",
    "check_site_params",
]


class CatalogueError(ValueError):
    """A bad site configuration of the catalogue, found at start-up (the message names the key)."""


#: EST's own run template (``bin/templates/run_nextflow_*.sh.jinja``) as an argument list.
DEFAULT_COMMAND: Final[tuple[str, ...]] = (
    "{nextflow}", "-c", "{config}", "run", "{pipeline}", "-params-file", "{params_file}",
    "-w", "work", "-ansi-log", "false", "-offline",
    "-with-report", "report.html", "-with-timeline", "timeline.html",
)

#: The command that runs the project's stand-in pipeline instead of EST.
STANDIN_COMMAND: Final[tuple[str, ...]] = (
    sys.executable, "-m", "efi_job_manager.dev.standin", "{pipeline_name}", "{params_file}",
)

#: The placeholders a command template may use.
PLACEHOLDERS: Final = frozenset(
    {"nextflow", "config", "pipeline", "pipeline_name", "params_file", "job_dir"})
#: The params file's name in the job directory (``{params_file}``).
PARAMS_FILE: Final = "params.json"

#: Site parameters that are values of EST script options (the rest are additions).
_SITE_OPTION_KEYS: Final = frozenset({
    "efi_config", "fasta_db", "blast_evalue", "multiplex", "duckdb_memory_limit",
    "duckdb_threads", "num_fasta_shards", "num_accession_shards", "blast_num_matches",
    "import_blast_fasta_db", "sb_search_refdb", "metagenome_db_dir", "shortbred_src_dir",
})
#: Site parameters that may be a table ``database name → path`` picked by a column.
_SITE_TABLES: Final = frozenset({"import_blast_fasta_db", "sb_search_refdb"})
_REQUIRED_SITE: Final = ("efi_config", "fasta_db")
_VERSION_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Characters of a database name EST passes unquoted to its command lines.
_DB_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_./-]{1,255}$")


@attrs.frozen
class EfiDatabases:
    """Which EFI database (EST's ``efi_db``) a job uses, from its ``efi_db_version``.

    Attributes:
        default: The database for a row without a version.
        template: A name made from the version (``efi_{efi_db_version}``).
        versions: Version → database, checked before the template.

    """

    default: str | None = None
    template: str | None = None
    versions: Mapping[str, str] = attrs.field(factory=dict)

    def check(self) -> None:
        """Refuse a mapping that names no database or makes unsafe names (`CatalogueError`)."""
        if self.default is None and self.template is None and not self.versions:
            raise CatalogueError("pipelines.efi_db: set default (the EFI database, e.g. "
                                 "\"efi_202406\"), template or versions")
        for where, name in (("default", self.default),
                            *((f"versions.{k}", v) for k, v in self.versions.items())):
            if name is not None and not _DB_NAME_RE.match(name):
                raise CatalogueError(f"pipelines.efi_db.{where}: {name!r} is not a database "
                                     f"name or path")
        if self.template is not None:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None}
            if fields != {"efi_db_version"}:
                raise CatalogueError(f"pipelines.efi_db.template: {self.template!r} must use "
                                     f"{{efi_db_version}} and no other placeholder")

    def resolve(self, row: RowReader) -> str:
        """Return the database of a row (`JobInputError` naming ``efi_db_version``)."""
        version = row.get("efi_db_version", to_str)
        if version is None:
            if self.default is None:
                raise JobInputError("efi_db_version is empty and this site has no default EFI "
                                    "database (pipelines.efi_db.default)",
                                    column="efi_db_version")
            return self.default
        version = version.strip()
        if not _VERSION_RE.match(version):
            raise fail("efi_db_version", version, "not a database version label (letters, "
                                                  "digits, . _ -)")
        if version in self.versions:
            return self.versions[version]
        if self.template is not None:
            name = self.template.format(efi_db_version=version)
            if _DB_NAME_RE.match(name):
                return name
        known = ", ".join(sorted(self.versions)) or "none listed"
        raise fail("efi_db_version", version, f"not an EFI database this site has (known: "
                                              f"{known})")


@attrs.frozen
class Override:
    """A job type's checked ``[pipelines.overrides.<job_type>]`` (unset: the job type's own)."""

    workflow: str | None = None
    config: str | None = None
    pipeline: str | None = None
    params: Mapping[str, Any] = attrs.field(factory=dict)
    remove: tuple[str, ...] = ()
    results: Mapping[str, str] = attrs.field(factory=dict)


_OVERRIDE_KEYS: Final = frozenset({"script", "config", "pipeline_name", "params", "results",
                                   "remove"})


@attrs.frozen
class SiteSettings:
    """The catalogue's checked site settings: Nextflow, EST's folders, the command, params."""

    nextflow: str
    pipeline_dir: Path | None
    config_dir: Path | None
    command: tuple[str, ...]
    params: Mapping[str, Any]
    efi_db: EfiDatabases
    predefined_filters: tuple[str, ...]
    version_args: tuple[str, ...] = ()


def check_command(command: Sequence[str] | None, pipeline_dir: Path | None,
                  config_dir: Path | None) -> tuple[str, ...]:
    """Return the checked command template (`CatalogueError` naming the argument)."""
    if command is None:
        if pipeline_dir is None:
            raise CatalogueError("pipelines.pipeline_dir is required unless pipelines.command "
                                 "is set")
        template = DEFAULT_COMMAND
        if config_dir is None:  # leave out the "-c {config}" pair
            template = (DEFAULT_COMMAND[0], *DEFAULT_COMMAND[3:])
    else:
        if isinstance(command, str) or not command:
            raise CatalogueError("pipelines.command: expected a non-empty list of arguments")
        template = tuple(command)
    used: set[str] = set()
    for i, arg in enumerate(template):
        if not isinstance(arg, str):
            raise CatalogueError(f"pipelines.command[{i}]: expected a string")
        used |= _placeholders(arg, f"pipelines.command[{i}]")
    if "pipeline" in used and pipeline_dir is None:
        raise CatalogueError("pipelines.command uses {pipeline} but pipelines.pipeline_dir is "
                             "not set")
    if "config" in used and config_dir is None:
        raise CatalogueError("pipelines.command uses {config} but pipelines.config_dir is not set")
    return template


def _placeholders(template: str, where: str) -> set[str]:
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise CatalogueError(f"{where}: {template!r}: {exc}") from None
    for _text, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            raise CatalogueError(
                f"{where}: {template!r}: unknown placeholder {{{field}}} "
                f"(known: {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))})")
        names.add(field)
    return names


def site_param_keys() -> frozenset[str]:
    """The keys ``[pipelines] params`` may hold: site values some EST script or pipeline takes."""
    return _SITE_OPTION_KEYS.union(*(t.additions for t in JOB_TYPES.values()))


def check_site_params(params: Mapping[str, Any], types: Mapping[str, JobType]) -> dict[str, Any]:
    """Return the checked ``[pipelines] params`` (`CatalogueError` naming the key)."""
    if "efi_db" in params:
        raise CatalogueError("pipelines.params.efi_db: the EFI database is set by "
                             "pipelines.efi_db (default, template, versions)")
    known = _SITE_OPTION_KEYS.union(*(t.additions for t in types.values()))
    out: dict[str, Any] = _json_value(dict(params), "pipelines.params")
    for key, value in out.items():
        if key not in known:
            raise CatalogueError(f"pipelines.params.{key}: no EST script or pipeline takes it "
                                 f"(known: {', '.join(sorted(known))}); set it for one job "
                                 f"type with pipelines.overrides.<job_type>.params")
        if isinstance(value, dict) and (key not in _SITE_TABLES or not all(
                isinstance(v, str) for v in value.values())):
            raise CatalogueError(f"pipelines.params.{key}: expected a value"
                                 + (" or a table of paths" if key in _SITE_TABLES else ""))
    for key in _REQUIRED_SITE:
        if not isinstance(out.get(key), str) or not out[key]:
            raise CatalogueError(f"pipelines.params.{key}: required (EST's scripts need it)")
    return out


def _json_value(value: Any, where: str) -> Any:
    """Check that a configured value can go into params.json; return a plain copy."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CatalogueError(f"{where}: {value!r} is not a finite number")
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CatalogueError(f"{where}: {value!r} ({type(value).__name__}) cannot go into params.json")


def check_override(job_type: str, override: Any, cls: type[Job]) -> Override:
    """Return one job type's checked override (`CatalogueError` naming the key)."""
    where = f"pipelines.overrides.{job_type}"
    if not isinstance(override, Mapping):
        raise CatalogueError(f"{where}: expected a table")
    unknown = set(override) - _OVERRIDE_KEYS
    if unknown:
        hint = (" (columns are EST script arguments now: see docs/est-params.md)"
                if "columns" in unknown else "")
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(_OVERRIDE_KEYS))}){hint}")
    texts: dict[str, str] = {}
    for key in ("script", "config", "pipeline_name"):
        if key in override:
            if not isinstance(override[key], str) or not override[key].strip():
                raise CatalogueError(f"{where}.{key}: expected a non-empty string")
            texts[key] = override[key]
    params = override.get("params", {})
    if not isinstance(params, Mapping):
        raise CatalogueError(f"{where}.params: expected a table of key = value")
    remove = override.get("remove", ())
    if not isinstance(remove, list | tuple) or not all(isinstance(r, str) for r in remove):
        raise CatalogueError(f"{where}.remove: expected a list of parameter names")
    results = override.get("results", {})
    if not isinstance(results, Mapping):
        raise CatalogueError(f"{where}.results: expected a table of stats_key = \"column\"")
    columns = {c.name: c for c in inspect(cls).columns}
    for stats_key, col in results.items():
        if not isinstance(col, str):
            raise CatalogueError(f"{where}.results.{stats_key}: expected a column name or \"\"")
        if col and (col not in columns or not column_meta(columns[col]).updatable):
            raise CatalogueError(f"{where}.results.{stats_key}: {col!r} is not a column a "
                                 f"result may write")
    return Override(workflow=texts.get("script"), config=texts.get("config"),
                     pipeline=texts.get("pipeline_name"),
                     params=_json_value(dict(params), f"{where}.params"), remove=tuple(remove),
                     results={str(k): v for k, v in results.items()})
