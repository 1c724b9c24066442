"""The pipeline catalogue: what runs for each job, with which ``params.json`` and files.

`Catalogue.prepare` turns one row into a `PreparedJob`: the job type's EST
script call (`efi_job_manager.catalogue.jobtypes`) rendered into the exact params file EST's
own script would write, the files to stage (the upload under ``input/``, parent
job files under ``parent/``, a taxonomy filter file), and the command line. It
raises `JobInputError` (the job's fault; the message names the column) and
nothing else for bad row data. `Catalogue.from_settings` raises `CatalogueError`
at start-up for a bad ``[pipelines]`` configuration (checked in
`efi_job_manager.catalogue.site`). The operator's manual for
``[pipelines]``: ``docs/operator.md``; every key and where it comes from:
``docs/est-params.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy import inspect

from efi_job_manager.catalogue.estcalls import EstArgumentError, EstCall
from efi_job_manager.catalogue.filters import PREDEFINED_TAXONOMY_FILTERS, predefined_names
from efi_job_manager.catalogue.jobtypes import JOB_TYPES, Context, JobType, SiteValues
from efi_job_manager.catalogue.rowvalues import JobInputError, RowReader
from efi_job_manager.catalogue.site import (
    DEFAULT_COMMAND,
    PARAMS_FILE,
    STANDIN_COMMAND,
    CatalogueError,
    EfiDatabases,
    Override,
    SiteSettings,
    check_command,
    check_override,
    check_site_params,
)
from efi_job_manager.catalogue.staging import stage_parent, stage_upload
from efi_job_manager.models import JOB_CLASSES, Job, column_meta

__all__ = [
    "DEFAULT_COMMAND",
    "STANDIN_COMMAND",
    "Catalogue",
    "CatalogueError",
    "EfiDatabases",
    "JobInputError",
    "PreparedJob",
    "SiteNeeds",
]


@attrs.frozen
class PreparedJob:
    """Everything needed to stage and launch one job.

    Attributes:
        params: The exact ``params.json`` content (see `params_json`).
        inputs: Relative path inside the job directory → source file, already
            checked to lie inside the input or results directory.
        extra_files: Small text files to write at the top of the job directory.
        command: The argument list, run in the job directory (empty when no pipeline runs).
        pipeline: The pipeline's short name (``est``…).
        runs_pipeline: False when the job needs no pipeline run.
        est_call: The call of EST's own parameter script that writes the same
            parameters (None when no pipeline runs).
        est_params: What that call makes EST's script write; ``params`` is this plus
            the site's additions and overrides (empty when no pipeline runs).

    """

    params: Mapping[str, Any]
    inputs: Mapping[str, Path]
    extra_files: Mapping[str, str]
    command: tuple[str, ...]
    pipeline: str
    runs_pipeline: bool
    est_call: EstCall | None = None
    est_params: Mapping[str, Any] = attrs.field(factory=dict)

    def params_json(self) -> str:
        """Return the text of ``params.json`` (indented, sorted keys, trailing newline)."""
        return json.dumps(self.params, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@attrs.frozen
class SiteNeeds:
    """What a destination must have for its job types' pipelines to run (``check``).

    Attributes:
        executables: Commands: a bare name is looked up on the jobs' ``PATH``.
        paths: Files and folders that must exist.
        probes: Commands that must run and exit 0 there (each program's version).
    """

    executables: tuple[str, ...]
    paths: tuple[str, ...]
    probes: tuple[tuple[str, ...], ...] = ()


class Catalogue:
    """The job types with the site's settings: turns rows into prepared jobs.

    Build it with `from_settings` (or `default` for the stand-in); then call
    `prepare` for each job.
    """

    def __init__(self, types: Mapping[str, JobType], overrides: Mapping[str, Override],
                 classes: Mapping[str, type[Job]], site: SiteSettings) -> None:
        """Keep checked settings; use `from_settings` rather than this constructor."""
        self._types = dict(types)
        self._overrides = dict(overrides)
        self._classes = dict(classes)
        self._site = site

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def default(cls) -> Catalogue:
        """Return the catalogue that runs the stand-in pipeline, with placeholder site paths."""
        return cls.from_settings(
            pipeline_dir=None, config_dir=None, command=STANDIN_COMMAND,
            params={"efi_config": "/standin/efi.config", "fasta_db": "/standin/uniprot"},
            overrides={}, efi_db=EfiDatabases(default="efi_standin",
                                              template="efi_{efi_db_version}"))

    @classmethod
    def from_settings(cls, *, nextflow: str = "nextflow", pipeline_dir: Path | None,
                      config_dir: Path | None, command: Sequence[str] | None,
                      params: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]],
                      efi_db: EfiDatabases,
                      predefined_taxonomy_filters: Sequence[str] | None = None,
                      job_classes: Mapping[str, type[Job]] = JOB_CLASSES,
                      version_args: Sequence[str] | None = None) -> Catalogue:
        """Build the catalogue from the ``[pipelines]`` settings.

        Args:
            nextflow: The Nextflow executable (``{nextflow}``).
            pipeline_dir: EST's ``pipelines/`` directory; workflows are relative to it.
            config_dir: EST's ``conf/`` directory; ``-c`` configs are relative to it.
            command: The command template (None: EST's own run template).
            params: Site values (``efi_config``, ``fasta_db``…), keyed as in the params file.
            overrides: ``job_type → {script, config, pipeline_name, params, results, remove}``.
            efi_db: How a row's ``efi_db_version`` picks the EFI database.
            predefined_taxonomy_filters: Names of EST's predefined taxonomy filters.
            job_classes: The model's classes per job type.
            version_args: What makes the command's program print its version (``check``);
                None: ``-version`` for EST's template, ``--version`` for a command.

        Raises:
            CatalogueError: an unknown job type, placeholder, key or value.

        """
        template = check_command(command, pipeline_dir, config_dir)
        types = {name: t for name, t in JOB_TYPES.items() if name in job_classes}
        checked: dict[str, Override] = {}
        for job_type, override in overrides.items():
            if job_type not in types:
                raise CatalogueError(f"pipelines.overrides.{job_type}: unknown job type "
                                     f"(known: {', '.join(sorted(types))})")
            checked[job_type] = check_override(job_type, override, job_classes[job_type])
        site_params = check_site_params(params, types)
        efi_db.check()
        try:
            names = predefined_names(
                list(predefined_taxonomy_filters or PREDEFINED_TAXONOMY_FILTERS),
                "pipelines.predefined_taxonomy_filters")
        except ValueError as exc:
            raise CatalogueError(str(exc)) from None
        if version_args is None:
            version_args = ("-version",) if command is None else ("--version",)
        site = SiteSettings(nextflow=nextflow, pipeline_dir=pipeline_dir, config_dir=config_dir,
                     command=template, params=site_params, efi_db=efi_db,
                     predefined_filters=names, version_args=tuple(version_args))
        return cls(types, checked, job_classes, site)

    # -- queries ---------------------------------------------------------------------------

    def job_types(self) -> tuple[str, ...]:
        """Return the job types the catalogue knows, sorted."""
        return tuple(sorted(self._types))

    def job_type(self, job_type: str) -> JobType:
        """Return how a job type runs (KeyError if unknown)."""
        return self._types[job_type]

    def pipeline_name(self, job_type: str) -> str:
        """Return the short pipeline name of a job type (the job type itself if unknown)."""
        jt = self._types.get(job_type)
        if jt is None:
            return job_type
        return self._overrides.get(job_type, Override()).pipeline or jt.pipeline

    def site_needs(self, job_types: Iterable[str]) -> SiteNeeds:
        """What the pipelines of ``job_types`` need where they run (for ``check``).

        The command's program; with EST's pipelines (``pipeline_dir`` set) also each
        workflow and Nextflow config, the ``efi_config`` file and the folder of every
        other absolute path among the site's params (``fasta_db`` names a BLAST
        database by its prefix, not a file).
        """
        site = self._site
        executables: dict[str, None] = {}
        paths: dict[str, None] = {}
        for job_type in sorted(set(job_types) & set(self._types)):
            jt = self._types[job_type]
            if jt.build is None:
                continue
            override = self._overrides.get(job_type, Override())
            workflow, config = override.workflow or jt.workflow, override.config or jt.config
            command = self._command(workflow, config, override.pipeline or jt.pipeline,
                                    Path())
            executables[command[0]] = None
            if site.pipeline_dir is not None:
                paths[str(site.pipeline_dir / workflow)] = None
            if site.config_dir is not None:
                paths[str(site.config_dir / config)] = None
        if site.pipeline_dir is not None and executables:
            for key, value in sorted(site.params.items()):
                for item in value.values() if isinstance(value, Mapping) else [value]:
                    if isinstance(item, str) and item.startswith("/"):
                        paths[item if key == "efi_config" else str(Path(item).parent)] = None
        probes = tuple((program, *site.version_args) for program in executables
                       ) if site.version_args else ()
        return SiteNeeds(tuple(executables), tuple(paths), probes)

    def result_columns(self, job_type: str) -> Mapping[str, str]:
        """Return ``stats.json key → column`` for a job type (empty if unknown)."""
        cls = self._classes.get(job_type)
        if cls is None:
            return {}
        mapping: dict[str, str] = {}
        for column in inspect(cls).columns:
            meta = column_meta(column)
            if meta.updatable and meta.result_key:
                mapping[meta.result_key] = column.name
        for key, col in self._overrides.get(job_type, Override()).results.items():
            if col:
                mapping[key] = col
            else:
                mapping.pop(key, None)
        return mapping

    # -- preparing a job -------------------------------------------------------------------

    def prepare(self, job: Job, *, job_dir: Path, input_dir: Path,
                results_dir: Path) -> PreparedJob:
        """Turn one row into the params, files and command of its run.

        Args:
            job: The row (any mapped job class).
            job_dir: The job's directory (made absolute; paths in params point into it).
            input_dir: The directory of uploads; nothing outside it is read.
            results_dir: The central results directory (parent jobs' outputs).

        Raises:
            JobInputError: the row's data cannot make a valid run; the message
                names the column.

        """
        jt = self._types.get(job.job_type)
        if jt is None:
            raise JobInputError(f"job_type = {job.job_type!r}: no pipeline for this job type",
                                column="job_type")
        override = self._overrides.get(jt.job_type, Override())
        row = RowReader(_row_values(job), jt.job_type)
        job_dir = job_dir.absolute()
        inputs: dict[str, Path] = {}
        upload = stage_upload(jt, row, job_dir, input_dir, inputs)
        pipeline = override.pipeline or jt.pipeline
        if jt.build is None:
            return PreparedJob(params={}, inputs=inputs, extra_files={}, command=(),
                               pipeline=pipeline, runs_pipeline=False)
        parent = stage_parent(jt, row, job_dir=job_dir, results_dir=results_dir, inputs=inputs)
        config = override.config or jt.config
        site = self._site
        values = SiteValues(
            params=site.params, efi_db=site.efi_db.resolve(row),
            nextflow_config=str(site.config_dir / config) if site.config_dir else config,
            predefined_filters=site.predefined_filters)
        ctx = Context(row=row, job_dir=str(job_dir), upload=upload, parent=parent, site=values)
        call = jt.build(ctx)
        try:
            est_params = call.render()
        except EstArgumentError as exc:
            raise JobInputError(f"EST's script would refuse this job: {exc}") from None
        params = dict(est_params)
        for key in sorted(jt.additions):
            if key in site.params and key not in params:
                params[key] = site.params[key]
        params.update(ctx.additions)
        params.update(override.params)
        for key in override.remove:
            params.pop(key, None)
        command = self._command(override.workflow or jt.workflow, config, pipeline, job_dir)
        return PreparedJob(params=dict(sorted(params.items())), inputs=inputs,
                           extra_files=ctx.extra_files, command=command, pipeline=pipeline,
                           runs_pipeline=True, est_call=call, est_params=est_params)

    def _command(self, workflow: str, config: str, pipeline: str,
                 job_dir: Path) -> tuple[str, ...]:
        site = self._site
        values = {
            "nextflow": site.nextflow,
            "config": str(site.config_dir / config) if site.config_dir else "",
            "pipeline": str(site.pipeline_dir / workflow) if site.pipeline_dir else "",
            "pipeline_name": pipeline,
            "params_file": PARAMS_FILE,
            "job_dir": str(job_dir),
        }
        return tuple(arg.format(**values) for arg in site.command)


# -- the row and its files --------------------------------------------------------------------


def _row_values(job: Job) -> dict[str, Any]:
    mapper = inspect(type(job))
    return {attr.columns[0].name: getattr(job, attr.key) for attr in mapper.column_attrs}
