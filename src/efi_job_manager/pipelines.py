"""The pipeline catalogue: which EST pipeline runs each job type, and with which parameters.

One `Entry` per ``job_type`` says, declaratively:

* which Nextflow script runs (relative to the site's pipeline directory, e.g.
  ``est/est.nf``), which Nextflow config is added with ``-c`` (relative to the
  site's config directory, e.g. ``est/slurm.config``) and the pipeline's short
  name (``est``, ``generatessn``…, used to pick resource profiles);
* how each column of the row becomes a parameter (`Param`: key and conversion),
  which columns become entries of EST's ``filter`` list (`FilterRule`), which
  values are fixed (``import_mode``, ``multiplex: false``…), which site-wide
  parameters the pipeline reads (``efi_config``, ``fasta_db``, ``duckdb_temp_dir``…);
* which uploaded file becomes ``input_file`` or ``ssn_input`` (`Upload`) and
  which outputs of a parent job it reads (`Parent`).

`Catalogue.prepare` turns one row into a `PreparedJob`: the exact ``params.json``,
the files to stage, small files to write and the command line. It raises
`JobInputError` (the job's fault, the message names the column) and nothing else
for bad row data. `Catalogue.from_settings` raises `CatalogueError` at start-up for
a bad site configuration.

Decisions the manager relies on:

Paths in params
    EST's ``bin/create_*_nextflow_params.py`` scripts write absolute paths, so
    does the catalogue: every path that points into the job (``final_output_dir``,
    ``input_file``, ``ssn_input``, the parent files, the ``user-filter=`` file) is
    ``<job_dir>/…`` with ``job_dir`` made absolute. A connector that runs the job
    somewhere else (a ``remote_dir`` on a cluster) rewrites that prefix with
    `relocate_params`; the prefix occurs only at the start of a string value or
    right after the ``=`` of a filter entry, so the rewrite is exact. Site paths
    (``efi_config``, ``fasta_db``…) are the cluster's own and are never rewritten.

Staging
    `PreparedJob.inputs` maps a relative POSIX path inside the job directory to
    the file to copy there (hard-link when on the same filesystem: parent files
    such as ``1.out.parquet`` can be large). The upload goes to
    ``input/<sanitised base name>`` and parent-job files to ``parent/<name>`` so
    they can never collide with what the pipeline writes into the job directory;
    the manager creates those sub-directories. `PreparedJob.extra_files` are small
    text files written at the top of the job directory (``taxonomy_filter.json``).

Parent jobs
    ``est_ssn_finalization`` reads the generate job's ``1.out.parquet``,
    ``all_sequences.fasta``, ``accession_table.tab`` and ``sequence_metadata.tab``
    from ``<results_dir>/<parentJob_id>/``; ``cgfp_quantify`` stages the identify
    job's files into ``parent/`` and passes that directory as ``identify_dir``
    and ``parent/marker_ssn.xgmml`` as ``ssn_input``. A missing parent directory
    or file is a `JobInputError` naming ``parentJob_id``.

``gnt_view_diagram``
    needs no pipeline run (`PreparedJob.runs_pipeline` is false, the command is
    empty, ``params`` is empty): the uploaded diagram file is staged like any
    upload and the manager marks the job finished without a scheduler.

Site parameters
    ``[pipelines] params`` (the old ``NEXTFLOW_PARAMS``) go only to the pipelines
    that read them (`Entry.site_params`), so each ``params.json`` holds only keys
    its pipeline knows; a key no pipeline reads is a `CatalogueError` at start-up
    (a typo, most likely; a site passes an extra key to one job type with
    ``[pipelines.overrides.<job_type>] params``). ``import_blast_fasta_db`` and
    ``sb_search_refdb`` may be tables ``database name → path``: the row's
    ``sequenceDatabase`` / ``referenceDatabase`` picks the path. Precedence, lowest
    first: site parameters, fixed values, the row's columns, staged file paths,
    override ``params``; override ``remove`` is applied last. ``efi_db`` is the
    row's ``efi_db_version`` when set, else the site's ``efi_db``.

Command
    The default argument list is EST's own run template, built from placeholders
    ``{nextflow}``, ``{config}``, ``{pipeline}``, ``{pipeline_name}``,
    ``{params_file}`` and ``{job_dir}`` that are filled from configuration and
    catalogue values only, never from row data. Without a config directory the
    ``-c {config}`` pair is left out (Nextflow then reads only its usual config
    files); ``-C`` (which replaces every other config) is never used. Without a
    command and without ``pipeline_dir`` there is nothing to run: `from_settings`
    refuses (a site without EST sets ``command`` to `STANDIN_COMMAND`'s form;
    `Catalogue.default` does so).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Final

import attrs
from sqlalchemy import Boolean, Float, Integer, inspect
from sqlalchemy.sql.schema import Column

from efi_job_manager.models import JOB_CLASSES, Job, column_meta

__all__ = [
    "DEFAULT_COMMAND",
    "STANDIN_COMMAND",
    "Catalogue",
    "CatalogueError",
    "Entry",
    "FilterRule",
    "JobInputError",
    "Param",
    "Parent",
    "ParentFile",
    "PreparedJob",
    "Upload",
    "relocate_params",
]


class JobInputError(ValueError):
    """The job cannot run because of its own data; the message names the column.

    Attributes:
        column: The column at fault, when there is one.

    """

    def __init__(self, message: str, *, column: str | None = None) -> None:
        """Keep the message and the column it names."""
        super().__init__(message)
        self.column = column


class CatalogueError(ValueError):
    """A bad site configuration of the catalogue, found at start-up (the message names the key)."""


# -- the declarative vocabulary ----------------------------------------------------------------

#: Conversions a `Param` may name (see `Catalogue` for what each does).
CONVERSIONS: Final = frozenset({
    "auto", "str", "int", "float", "bool", "evalue", "families", "sequence_version",
    "domain_region", "percent_to_fraction", "str_list", "number_list", "search_method",
    "site_path",
})

#: Filter kinds a `FilterRule` may name, with EST's spelling in the ``filter`` list.
FILTER_KINDS: Final = frozenset({
    "fragments", "fraction", "family", "taxonomy", "min_seq_length", "max_seq_length",
})


@attrs.frozen
class Param:
    """How one or more columns become one pipeline parameter.

    Attributes:
        key: The parameter's name in ``params.json``.
        columns: The columns read, first non-empty value wins.
        convert: The conversion (one of `CONVERSIONS`).
        required: A missing value is a `JobInputError` naming the first column.
        minimum: Smallest allowed value (numbers, after conversion).
        maximum: Largest allowed value (numbers, after conversion).
        fallback: For ``site_path``: the site parameter used when the column's
            value cannot be resolved (``import_blast_fasta_db`` falls back to
            ``fasta_db`` as in EST's ``create_est``).
        when: A flag column: the parameter is written only when that flag is true
            (``domain_region`` only with ``domain``, as ``create_est`` does).

    """

    key: str
    columns: tuple[str, ...]
    convert: str = "auto"
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    fallback: str | None = None
    when: str | None = None


@attrs.frozen
class FilterRule:
    """A column that adds an entry to EST's ``filter`` list.

    Attributes:
        kind: ``fragments`` (a true flag adds ``fragments``), ``fraction``
            (``fraction=N`` for N > 1), ``family`` (``family=PF…,IPR…``),
            ``taxonomy`` (``user-filter=<job_dir>/taxonomy_filter.json`` and that
            file), ``min_seq_length`` / ``max_seq_length`` (``…=N``).
        column: The column read.

    """

    kind: str
    column: str


@attrs.frozen
class Upload:
    """The uploaded file a job reads.

    Attributes:
        key: The parameter that receives its path (``input_file``, ``ssn_input``),
            or None when the file is only staged.
        column: The column holding the stored upload name (relative to the input dir).
        required: A job without the file cannot run.

    """

    key: str | None
    column: str = "jobFilename"
    required: bool = True


@attrs.frozen
class ParentFile:
    """One output of the parent job that a job reads.

    Attributes:
        name: The file's name in the parent's result directory (staged as ``parent/<name>``).
        key: The parameter that receives its path, if any.
        required: A parent without the file is a `JobInputError`.

    """

    name: str
    key: str | None = None
    required: bool = True


@attrs.frozen
class Parent:
    """The parent job's outputs a job reads from ``<results_dir>/<parentJob_id>/``.

    Attributes:
        files: The files staged into ``parent/``.
        dir_key: A parameter that receives the path of the staged ``parent/`` directory.
        column: The column holding the parent's id.

    """

    files: tuple[ParentFile, ...]
    dir_key: str | None = None
    column: str = "parentJob_id"


@attrs.frozen
class Entry:
    """The catalogue's entry for one job type.

    Attributes:
        job_type: The ``job_type`` string.
        pipeline: The short pipeline name (``est``, ``generatessn``…).
        script: The Nextflow script, relative to the pipeline directory.
        config: The Nextflow config added with ``-c``, relative to the config directory.
        runs_pipeline: False for a job type that needs no pipeline run.
        fixed: Parameters with fixed values (``import_mode``, ``multiplex``…).
        params: Column-fed parameters.
        filters: Column-fed entries of the ``filter`` list, in order.
        upload: The uploaded input file, if any.
        parent: The parent job's outputs, if any.
        site_params: Site-wide parameters (``[pipelines] params``) this pipeline reads.
        requires_if: ``(flag column, columns)``: when the flag is true the columns are required.
        unused: Parameter columns deliberately not passed, with the reason.
        remove: Parameter keys removed after everything else (site overrides).
        extra_params: Parameters added or replaced last (site overrides).
        result_overrides: ``stats.json`` key → column changes (site overrides; ``""`` drops).

    """

    job_type: str
    pipeline: str
    script: str
    config: str
    runs_pipeline: bool = True
    fixed: Mapping[str, Any] = attrs.field(factory=dict)
    params: tuple[Param, ...] = ()
    filters: tuple[FilterRule, ...] = ()
    upload: Upload | None = None
    parent: Parent | None = None
    site_params: frozenset[str] = frozenset()
    requires_if: tuple[tuple[str, tuple[str, ...]], ...] = ()
    unused: Mapping[str, str] = attrs.field(factory=dict)
    remove: tuple[str, ...] = ()
    extra_params: Mapping[str, Any] = attrs.field(factory=dict)
    result_overrides: Mapping[str, str] = attrs.field(factory=dict)

    def columns_used(self) -> set[str]:
        """Return every column this entry reads."""
        used = {c for p in self.params for c in p.columns} | {f.column for f in self.filters}
        used |= {p.when for p in self.params if p.when}
        if self.upload is not None:
            used.add(self.upload.column)
        if self.parent is not None:
            used.add(self.parent.column)
        for flag, cols in self.requires_if:
            used.add(flag)
            used.update(cols)
        return used


@attrs.frozen
class PreparedJob:
    """Everything needed to stage and launch one job.

    Attributes:
        params: The exact ``params.json`` content (keys sorted; see `params_json`).
        inputs: Relative path inside the job directory → source file, already
            checked to lie inside the input or results directory.
        extra_files: Small text files to write at the top of the job directory.
        command: The argument list, run in the job directory (empty when no pipeline runs).
        pipeline: The pipeline's short name (``est``…).
        runs_pipeline: False when the job needs no pipeline run.

    """

    params: Mapping[str, Any]
    inputs: Mapping[str, Path]
    extra_files: Mapping[str, str]
    command: tuple[str, ...]
    pipeline: str
    runs_pipeline: bool

    def params_json(self) -> str:
        """Return the text of ``params.json`` (indented, sorted keys, trailing newline)."""
        return json.dumps(self.params, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


#: EST's own run template (``bin/templates/run_nextflow_*.sh.jinja``) as an argument list.
DEFAULT_COMMAND: Final[tuple[str, ...]] = (
    "{nextflow}", "-c", "{config}", "run", "{pipeline}", "-params-file", "{params_file}",
    "-w", "work", "-ansi-log", "false", "-offline",
    "-with-report", "report.html", "-with-timeline", "timeline.html",
)

#: The command that runs the project's stand-in pipeline instead of EST.
STANDIN_COMMAND: Final[tuple[str, ...]] = (
    sys.executable, "-m", "efi_job_manager.standin", "{pipeline_name}", "{params_file}",
)

PLACEHOLDERS: Final = frozenset(
    {"nextflow", "config", "pipeline", "pipeline_name", "params_file", "job_dir"})
PARAMS_FILE: Final = "params.json"
TAXONOMY_FILTER_FILE: Final = "taxonomy_filter.json"
INPUT_SUBDIR: Final = "input"
PARENT_SUBDIR: Final = "parent"

# -- the shipped entries ---------------------------------------------------------------------

_COMMON = frozenset({"efi_config", "efi_db"})
_ALL_BY_ALL = frozenset({
    "duckdb_memory_limit", "duckdb_threads", "duckdb_temp_dir", "num_fasta_shards",
    "blast_num_matches", "compute_local_storage", "memory_cpu_ratio", "blastp_threads",
    "blastp_memory_limit", "cdhit_threads", "cdhit_memory_limit",
})
_IMPORT = frozenset({
    "fasta_db", "num_accession_shards", "uniprot_db_size", "uniref90_db_size",
    "uniref50_db_size", "sequence_version",
})
_SITE_EST = _COMMON | _ALL_BY_ALL | _IMPORT | {"sort_seq_by_length", "blast_evalue"}
_SITE_EST_BLAST = _SITE_EST | {
    "import_blast_fasta_db", "import_blast_num_matches", "import_blast_evalue",
}
_SITE_GENERATESSN = _COMMON | {
    "duckdb_memory_limit", "duckdb_threads", "duckdb_temp_dir", "maxfull", "db_version",
    "make_repnodes", "repnode_pct", "max_ssn_edges", "compute_ssn_nc_factor", "color_ssn",
}
_SITE_COLORSSN = _COMMON | {"fasta_db"}
_SITE_NC = _COMMON
_SITE_CONVRATIO = _COMMON | _ALL_BY_ALL | {"fasta_db", "blast_evalue"}
_SITE_CLUSTER = _COMMON | {"fasta_db", "muscle_version", "max_msa_sequences", "min_msa_sequences"}
_SITE_GNT = _COMMON | {"fasta_db"}
_SITE_GND = _COMMON | {
    "fasta_db", "import_blast_fasta_db", "import_blast_num_matches", "import_blast_evalue",
    "nb_size", "sequence_version",
}
_SITE_TAXONOMY = _COMMON | {"fasta_db", "sequence_version"}
_SITE_CGFP_IDENTIFY = _COMMON | {
    "fasta_db", "sb_search_refdb", "sb_identify_threads", "sb_cons_thresh",
    "sb_diamond_sensitivity", "sb_identify_method", "sb_cdhit_sid",
}
_SITE_CGFP_QUANTIFY = _COMMON | {
    "metagenome_db_dir", "shortbred_src_dir", "sb_quantify_threads", "sb_identify_method",
}

#: Site parameters that may be a mapping ``column value → path`` (resolved per job).
_SITE_PATH_MAPPINGS = frozenset({"import_blast_fasta_db", "sb_search_refdb"})


def _p(key: str, *columns: str, convert: str = "auto", required: bool = False,
       minimum: float | None = None, maximum: float | None = None,
       fallback: str | None = None, when: str | None = None) -> Param:
    return Param(key, tuple(columns), convert, required, minimum, maximum, fallback, when)


_EVALUE_ALL = _p("blast_evalue", "allByAllBlastEValue", convert="evalue")
_SEQVER = _p("sequence_version", "sequence_version", convert="sequence_version")
_FAMILIES = _p("families", "families", convert="families")
_FRACTION = FilterRule("fraction", "fraction")
_FRAGMENTS = FilterRule("fragments", "excludeFragments")
_TAXONOMY = FilterRule("taxonomy", "taxSearch")
_FAMILY_FILTER = FilterRule("family", "filterByFamilies")
_BLAST_IMPORT = (
    _p("import_blast_evalue", "blastEValue", convert="evalue"),
    _p("import_blast_num_matches", "maxBlastSequences", convert="int", minimum=1),
    _p("import_blast_fasta_db", "sequenceDatabase", convert="site_path", fallback="fasta_db"),
)
_DOMAIN = (
    _p("domain", "domain", convert="bool"),
    _p("domain_region", "domainRegion", convert="domain_region", when="domain"),
)
_NB_SIZE = _p("nb_size", "neighborhoodSize", convert="int", minimum=1, maximum=20)
_JOB_NAME = _p("job_name", "jobName", convert="str")
_DISPLAY_ONLY = "the name the user uploaded; shown by EFI-Web, not read by EST"
_TAX_LABEL = "the taxonomy filter's label; written as the name inside taxonomy_filter.json"
_EST_FIXED = {"multiplex": False}


def _est(job_type: str, import_mode: str, **kwargs: Any) -> Entry:
    site = _SITE_EST_BLAST if import_mode == "blast" else _SITE_EST
    return Entry(job_type=job_type, pipeline="est", script="est/est.nf",
                 config="est/slurm.config", fixed={"import_mode": import_mode, **_EST_FIXED},
                 site_params=site, **kwargs)


def _gnd(job_type: str, import_mode: str, **kwargs: Any) -> Entry:
    return Entry(job_type=job_type, pipeline="gnd", script="gnd/gnd.nf",
                 config="gnd/slurm.config", fixed={"import_mode": import_mode},
                 site_params=_SITE_GND, **kwargs)


def _taxonomy(job_type: str, import_mode: str, **kwargs: Any) -> Entry:
    return Entry(job_type=job_type, pipeline="taxonomy", script="taxonomy/taxonomy.nf",
                 config="taxonomy/slurm.config", fixed={"import_mode": import_mode},
                 site_params=_SITE_TAXONOMY, **kwargs)


def _default_entries() -> tuple[Entry, ...]:
    est_common = (_EVALUE_ALL, _SEQVER, _FAMILIES)
    return (
        _est("est_generate_blast", "blast",
             params=(*est_common, *_BLAST_IMPORT),
             filters=(_FRAGMENTS, _FRACTION, _TAXONOMY),
             upload=Upload("input_file"),
             unused={"uploadedFilename": _DISPLAY_ONLY, "taxSearchName": _TAX_LABEL,
                     "jobName": "create_est writes no job name"}),
        _est("est_generate_families", "family",
             params=(_EVALUE_ALL, _SEQVER, _p("families", "families", convert="families",
                                               required=True), *_DOMAIN),
             filters=(_FRAGMENTS, _FRACTION, _TAXONOMY),
             unused={"taxSearchName": _TAX_LABEL, "jobName": "create_est writes no job name"}),
        _est("est_generate_fasta", "fasta",
             params=est_common,
             filters=(_FRACTION,),
             upload=Upload("input_file"),
             unused={"uploadedFilename": _DISPLAY_ONLY,
                     "jobName": "create_est writes no job name"}),
        _est("est_generate_accession", "accessions",
             params=(*est_common, *_DOMAIN,
                     _p("domain_family", "domainFamily", convert="families", when="domain")),
             filters=(_FRAGMENTS, _FRACTION, _FAMILY_FILTER, _TAXONOMY),
             upload=Upload("input_file"),
             unused={"uploadedFilename": _DISPLAY_ONLY, "taxSearchName": _TAX_LABEL,
                     "jobName": "create_est writes no job name"}),
        Entry(job_type="est_ssn_finalization", pipeline="generatessn",
              script="generatessn/generatessn.nf", config="generatessn/slurm.config",
              fixed={"threshold_metric": "alignment_score"},
              params=(
                  _p("threshold_min_val", "alignmentScore", convert="float", required=True,
                     minimum=0),
                  _p("min_length", "minLength", convert="int", minimum=0),
                  _p("max_length", "maxLength", convert="int", minimum=1),
                  _p("compute_ssn_nc_factor", "computeNeighborhoodConnectivity", convert="bool"),
                  _JOB_NAME,
                  _p("ssn_name", "jobName", convert="str"),
              ),
              filters=(_FRAGMENTS, _TAXONOMY),
              parent=Parent(files=(
                  ParentFile("1.out.parquet", "blast_parquet"),
                  ParentFile("all_sequences.fasta", "fasta_file"),
                  ParentFile("accession_table.tab", "source_ids_file"),
                  ParentFile("sequence_metadata.tab", "seq_meta_file"),
              )),
              site_params=_SITE_GENERATESSN,
              unused={"taxSearchName": _TAX_LABEL}),
        Entry(job_type="est_color_ssn", pipeline="colorssn", script="colorssn/colorssn.nf",
              config="colorssn/slurm.config", params=(_JOB_NAME,),
              upload=Upload("ssn_input"), site_params=_SITE_COLORSSN,
              unused={"uploadedFilename": _DISPLAY_ONLY}),
        Entry(job_type="est_neighborhood_connectivity", pipeline="neighborhoodconnectivity",
              script="neighborhoodconnectivity/neighborhoodconnectivity.nf",
              config="neighborhoodconnectivity/slurm.config", params=(_JOB_NAME,),
              upload=Upload("ssn_input"), site_params=_SITE_NC,
              unused={"uploadedFilename": _DISPLAY_ONLY}),
        Entry(job_type="est_convergence_ratio", pipeline="convergenceratio",
              script="convergenceratio/convergenceratio.nf",
              config="convergenceratio/slurm.config",
              params=(_p("blast_evalue", "alignmentScore", convert="evalue"), _JOB_NAME),
              upload=Upload("ssn_input"), site_params=_SITE_CONVRATIO,
              unused={"uploadedFilename": _DISPLAY_ONLY}),
        Entry(job_type="est_cluster_analysis", pipeline="clusteranalysis",
              script="clusteranalysis/clusteranalysis.nf", config="clusteranalysis/slurm.config",
              params=(
                  _p("min_msa_sequences", "minNumSequences", convert="int", minimum=1),
                  _p("max_msa_sequences", "maxNumSequences", convert="int", minimum=1),
                  _p("make_weblogos", "makeWeblogo", convert="bool"),
                  _p("make_hmms", "makeHmms", convert="bool"),
                  _p("make_length_histograms", "makeLengthHistograms", convert="bool"),
                  _p("compute_conserved_residues", "computeConsensusResidues", convert="bool"),
                  _p("conserved_residues", "consensusResidues", convert="str_list"),
                  _p("pid_thresholds", "pidThresholds", convert="number_list", minimum=0,
                     maximum=100),
                  _JOB_NAME,
              ),
              requires_if=(("computeConsensusResidues", ("consensusResidues", "pidThresholds")),),
              upload=Upload("ssn_input"), site_params=_SITE_CLUSTER,
              unused={"uploadedFilename": _DISPLAY_ONLY}),
        Entry(job_type="gnt_gnn", pipeline="gnt", script="gnt/gnt.nf", config="gnt/slurm.config",
              params=(
                  _p("nb_size", "neighborhood_size", "neighborhoodSize", convert="int",
                     required=True, minimum=1, maximum=20),
                  _p("cooc_threshold", "cooccurrence", convert="float", required=True,
                     minimum=0, maximum=1),
                  _JOB_NAME,
              ),
              upload=Upload("ssn_input"), site_params=_SITE_GNT,
              unused={"uploadedFilename": _DISPLAY_ONLY}),
        _gnd("gnt_diagram_blast", "blast",
             params=(_NB_SIZE, *_BLAST_IMPORT, _JOB_NAME), upload=Upload("input_file"),
             unused={"uploadedFilename": _DISPLAY_ONLY,
                     "excludeFragments": "gnd.nf has no sequence filter"}),
        _gnd("gnt_diagram_fasta", "fasta",
             params=(_NB_SIZE, _JOB_NAME), upload=Upload("input_file"),
             unused={"uploadedFilename": _DISPLAY_ONLY}),
        _gnd("gnt_diagram_sequence_id", "accessions",
             params=(_NB_SIZE, _JOB_NAME), upload=Upload("input_file"),
             unused={"uploadedFilename": _DISPLAY_ONLY,
                     "excludeFragments": "gnd.nf has no sequence filter",
                     "blastEValue": "BLAST import only", "maxBlastSequences": "BLAST import only",
                     "sequenceDatabase": "BLAST import only"}),
        Entry(job_type="gnt_view_diagram", pipeline="gnd", script="", config="",
              runs_pipeline=False, upload=Upload(None),
              unused={"uploadedFilename": _DISPLAY_ONLY,
                      "jobName": "no pipeline runs", "efi_db_version": "no pipeline runs"}),
        Entry(job_type="cgfp_identify", pipeline="cgfpidentify", script="cgfp/cgfpidentify.nf",
              config="cgfp/slurm.config",
              params=(
                  _p("sb_search_refdb", "referenceDatabase", convert="site_path", required=True),
                  _p("sb_cdhit_sid", "cdhitSequenceIdentity", convert="percent_to_fraction",
                     minimum=0, maximum=1),
                  _p("sb_identify_method", "searchType", convert="search_method"),
                  _JOB_NAME,
              ),
              upload=Upload("ssn_input"), site_params=_SITE_CGFP_IDENTIFY,
              unused={"uploadedFilename": _DISPLAY_ONLY,
                      "minLength": "cgfpidentify.nf has no length parameter",
                      "maxLength": "cgfpidentify.nf has no length parameter"}),
        Entry(job_type="cgfp_quantify", pipeline="cgfpquantify", script="cgfp/cgfpquantify.nf",
              config="cgfp/slurm.config",
              params=(
                  _p("metagenome_ids", "metagenomes", convert="str_list", required=True),
                  _p("sb_identify_method", "searchType", convert="search_method"),
                  _JOB_NAME,
              ),
              parent=Parent(dir_key="identify_dir", files=(
                  ParentFile("marker_ssn.xgmml", "ssn_input"),
                  ParentFile("markers.faa"),
                  ParentFile("cdhit.tab"),
                  ParentFile("stats.json", required=False),
                  ParentFile("cluster_id_map.txt", required=False),
                  ParentFile("seqid_source_map.txt", required=False),
              )),
              site_params=_SITE_CGFP_QUANTIFY),
        _taxonomy("taxonomy_accession", "accessions",
                  params=(_SEQVER,), filters=(_FRAGMENTS, _FAMILY_FILTER, _TAXONOMY),
                  upload=Upload("input_file"),
                  unused={"uploadedFilename": _DISPLAY_ONLY, "taxSearchName": _TAX_LABEL,
                          "jobName": "create_taxonomy writes no job name"}),
        _taxonomy("taxonomy_families", "family",
                  params=(_p("families", "filterByFamilies", convert="families",
                             required=True),),
                  filters=(_FRAGMENTS, _TAXONOMY, FilterRule("min_seq_length", "minLength"),
                           FilterRule("max_seq_length", "maxLength")),
                  unused={"taxSearchName": _TAX_LABEL,
                          "jobName": "create_taxonomy writes no job name"}),
        _taxonomy("taxonomy_fasta", "fasta",
                  filters=(_FRAGMENTS,), upload=Upload("input_file"),
                  unused={"uploadedFilename": _DISPLAY_ONLY,
                          "jobName": "create_taxonomy writes no job name"}),
    )


# -- conversions --------------------------------------------------------------------------------

_FAMILY_RE = re.compile(r"^(PF\d{5}|IPR\d{6}|CL\d{4})$")
_SEQUENCE_VERSIONS = {"uniprot": "uniprot", "uniref90": "uniref90", "uniref50": "uniref50",
                      "uniref 90": "uniref90", "uniref 50": "uniref50"}
_DOMAIN_REGIONS = {"domain": "domain", "central": "domain", "n-terminal": "n-terminal",
                   "nterminal": "n-terminal", "n_terminal": "n-terminal",
                   "c-terminal": "c-terminal", "cterminal": "c-terminal",
                   "c_terminal": "c-terminal"}
_SEARCH_METHODS = frozenset({"blast", "diamond"})
_TAX_RANKS = frozenset({"superkingdom", "domain", "kingdom", "phylum", "class", "order",
                        "family", "genus", "species"})
# EST interpolates taxonomy values into SQL inside single quotes: allow no quote, no backslash.
_TAX_VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()/+\[\]-]{0,199}$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _fail(column: str, value: object, why: str) -> JobInputError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return JobInputError(f"{column} = {shown}: {why}", column=column)


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _to_int(column: str, value: object) -> int:
    if isinstance(value, bool):
        raise _fail(column, value, "expected a whole number, not a flag")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isfinite(f) and f.is_integer():
            return int(f)
        raise _fail(column, value, "expected a whole number")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise _fail(column, value, "expected a whole number")


def _to_float(column: str, value: object) -> float:
    if isinstance(value, bool):
        raise _fail(column, value, "expected a number, not a flag")
    try:
        if isinstance(value, numbers.Real):
            f = float(value)
        elif isinstance(value, str):
            f = float(value.strip())
        else:
            raise _fail(column, value, "expected a number")
    except (TypeError, ValueError, OverflowError):
        raise _fail(column, value, "expected a number") from None
    if not math.isfinite(f):
        raise _fail(column, value, "expected a finite number")
    return f


def _to_bool(column: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0"}:
        return value.strip().lower() in {"true", "1"}
    raise _fail(column, value, "expected true or false")


def _to_str(column: str, value: object) -> str:
    if isinstance(value, str):
        if "\x00" in value:
            raise _fail(column, value, "contains a NUL byte")
        return value
    if isinstance(value, bool):
        raise _fail(column, value, "expected text, not a flag")
    if isinstance(value, numbers.Real):
        return str(value)
    raise _fail(column, value, "expected text")


def _families(column: str, value: object) -> str:
    text = _to_str(column, value)
    fams = [f.strip().upper() for f in re.split(r"[,;\s]+", text) if f.strip()]
    if not fams:
        raise _fail(column, value, "no family given")
    bad = [f for f in fams if not _FAMILY_RE.match(f)]
    if bad:
        raise _fail(column, value, f"not a Pfam (PF#####), InterPro (IPR######) or Pfam clan "
                                   f"(CL####) accession: {', '.join(bad)}")
    return ",".join(dict.fromkeys(fams))


def _choice(column: str, value: object, table: Mapping[str, str], what: str) -> str:
    text = _to_str(column, value).strip().lower()
    if text not in table:
        known = ", ".join(sorted(set(table.values())))
        raise _fail(column, value, f"not a {what} (one of {known})")
    return table[text]


def _evalue(column: str, value: object) -> str:
    exponent = _to_int(column, value)
    if exponent < 0:
        raise _fail(column, value, "an e-value exponent must be 0 or more (5 means 1e-5)")
    return f"1e-{exponent}"


def _str_list(column: str, value: object) -> list[str]:
    text = _to_str(column, value)
    items = [i.strip() for i in re.split(r"[,;\s]+", text) if i.strip()]
    if not items:
        raise _fail(column, value, "an empty list")
    return items


def _number_list(column: str, value: object) -> list[float]:
    return [_to_float(column, item) for item in _str_list(column, value)]


# -- taxonomy filter ---------------------------------------------------------------------------


def _taxonomy_filter(column: str, value: object, label: object) -> str:
    """Return the JSON text of EST's user taxonomy filter for a ``taxSearch`` value.

    Accepts EFI-Web's ``rank:value;rank:value`` form, or the JSON EST reads
    (an object with ``conditions``, or a list whose first element is one).
    """
    text = _to_str(column, value).strip()
    if text.startswith(("[", "{")):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(column, value, f"invalid JSON taxonomy filter: {exc.msg}") from None
        obj = parsed[0] if isinstance(parsed, list) and parsed else parsed
        if not isinstance(obj, dict) or not isinstance(obj.get("conditions"), list):
            raise _fail(column, value, "a JSON taxonomy filter needs a list of conditions")
        operator: object = obj.get("operator", "OR")
        if operator not in ("AND", "OR"):
            raise _fail(column, value, "operator must be AND or OR")
        raw_conditions: list[tuple[object, object, object, object]] = [
            (c.get("field"), c.get("value"), c.get("negate"), c.get("exact"))
            if isinstance(c, dict) else (None, None, None, None)
            for c in obj["conditions"]
        ]
    else:
        operator = "OR"
        raw_conditions = []
        for part in (p.strip() for p in text.split(";")):
            if not part:
                continue
            rank, sep, name = part.partition(":")
            if not sep:
                raise _fail(column, value, f"expected rank:value pairs separated by ';', "
                                           f"got {part!r}")
            raw_conditions.append((rank.strip(), name.strip(), None, None))
    if not raw_conditions:
        raise _fail(column, value, "no taxonomy condition given")
    conditions: list[dict[str, str]] = []
    for field, taxon, negate, exact in raw_conditions:
        if not isinstance(field, str) or field.strip().lower() not in _TAX_RANKS:
            raise _fail(column, value, f"unknown taxonomic rank {field!r} "
                                       f"(one of {', '.join(sorted(_TAX_RANKS))})")
        if not isinstance(taxon, str) or not _TAX_VALUE_RE.match(taxon):
            raise _fail(column, value, f"taxon {taxon!r} may hold letters, digits, spaces "
                                       f"and . _ ( ) / + [ ] - only")
        cond = {"field": field.strip().lower(), "value": taxon}
        for name, flag in (("negate", negate), ("exact", exact)):
            if flag is None:
                continue
            if isinstance(flag, bool) or flag in ("true", "false"):
                cond[name] = str(flag).lower()
            else:
                raise _fail(column, value, f"{name} must be true or false")
        conditions.append(cond)
    entry: dict[str, Any] = {"conditions": conditions, "operator": operator}
    if isinstance(label, str) and label.strip():
        entry["name"] = label.strip()
    return json.dumps([entry], indent=2, ensure_ascii=False) + "\n"


# -- files ----------------------------------------------------------------------------------------


def _safe_name(name: str) -> str:
    cleaned = _UNSAFE_NAME.sub("_", name).lstrip(".")
    return cleaned[:200] or "input"


def _resolve_upload(column: str, value: object, input_dir: Path) -> Path:
    """Return the uploaded file a row names, strictly inside ``input_dir``."""
    if _is_empty(value):
        raise _fail(column, value, "no uploaded file: the job needs one")
    if not isinstance(value, str):
        raise _fail(column, value, "expected a file name")
    if "\x00" in value:
        raise _fail(column, value, "contains a NUL byte")
    if value.startswith(("/", "\\")) or os.path.isabs(value) or PurePosixPath(value).is_absolute():
        raise _fail(column, value, "an absolute path; uploads are named relative to the input "
                                   "directory")
    if ".." in re.split(r"[\\/]", value):
        raise _fail(column, value, "contains '..'")
    base = input_dir.resolve()
    try:
        target = (base / value).resolve()
    except (OSError, RuntimeError) as exc:
        raise _fail(column, value, f"cannot be resolved: {exc}") from None
    if not target.is_relative_to(base) or target == base:
        raise _fail(column, value, "leaves the input directory (a symbolic link?)")
    if not target.is_file():
        raise _fail(column, value, "no such uploaded file in the input directory")
    return target


def relocate_params(params: Mapping[str, Any], job_dir: Path | str,
                    new_dir: Path | str) -> dict[str, Any]:
    """Return ``params`` with the job directory prefix rewritten for another location.

    For a connector that runs the job in another directory (a cluster's scratch
    space): every string that is ``job_dir`` or starts with ``job_dir/``, also
    after the ``=`` of a ``filter`` entry, gets ``new_dir`` instead.

    Args:
        params: The prepared parameters.
        job_dir: The job directory the parameters were prepared for.
        new_dir: The directory the job will run in.

    """
    old = str(job_dir).rstrip("/") or "/"
    new = str(new_dir).rstrip("/") or "/"

    def fix(text: str) -> str:
        if text == old or text.startswith(old + "/"):
            return new + text[len(old):]
        name, sep, rest = text.partition("=")
        if sep and (rest == old or rest.startswith(old + "/")):
            return f"{name}={new}{rest[len(old):]}"
        return text

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return fix(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return {k: walk(v) for k, v in params.items()}


# -- the catalogue --------------------------------------------------------------------------------


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


_OVERRIDE_KEYS = frozenset({"script", "config", "pipeline_name", "params", "columns", "results",
                            "remove"})


def _column_types(cls: type[Job]) -> dict[str, Column[Any]]:
    return {c.name: c for c in inspect(cls).columns if isinstance(c, Column)}


def _auto_convert(column: Column[Any]) -> str:
    if isinstance(column.type, Boolean):
        return "bool"
    if isinstance(column.type, Integer):
        return "int"
    if isinstance(column.type, Float):
        return "float"
    return "str"


def _apply_override(entry: Entry, override: Mapping[str, Any], cls: type[Job]) -> Entry:
    where = f"pipelines.overrides.{entry.job_type}"
    unknown = set(override) - _OVERRIDE_KEYS
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(_OVERRIDE_KEYS))})")
    changes: dict[str, Any] = {}
    for key, field in (("script", "script"), ("config", "config"), ("pipeline_name", "pipeline")):
        if key in override:
            if not isinstance(override[key], str) or not override[key].strip():
                raise CatalogueError(f"{where}.{key}: expected a non-empty string")
            changes[field] = override[key]
    columns = _column_types(cls)
    if "params" in override:
        params = override["params"]
        if not isinstance(params, Mapping):
            raise CatalogueError(f"{where}.params: expected a table of key = value")
        changes["extra_params"] = {**entry.extra_params,
                                   **_json_value(dict(params), f"{where}.params")}
    if "remove" in override:
        remove = override["remove"]
        if not isinstance(remove, list | tuple) or not all(isinstance(r, str) for r in remove):
            raise CatalogueError(f"{where}.remove: expected a list of parameter names")
        changes["remove"] = (*entry.remove, *remove)
    if "columns" in override:
        changes["params"], changes["filters"] = _override_columns(
            entry, override["columns"], columns, where)
    if "results" in override:
        changes["result_overrides"] = {
            **entry.result_overrides, **_override_results(override["results"], columns, where)}
    return attrs.evolve(entry, **changes)


def _override_columns(entry: Entry, renames: object, columns: Mapping[str, Column[Any]],
                      where: str) -> tuple[tuple[Param, ...], tuple[FilterRule, ...]]:
    if not isinstance(renames, Mapping):
        raise CatalogueError(f"{where}.columns: expected a table of column = \"param_key\"")
    params_list = list(entry.params)
    filters = list(entry.filters)
    for col, key in renames.items():
        if col not in columns:
            raise CatalogueError(f"{where}.columns: {entry.job_type} has no column {col!r}")
        if not isinstance(key, str):
            raise CatalogueError(f"{where}.columns.{col}: expected a parameter name or \"\"")
        if any(f.column == col for f in filters):
            if key:
                raise CatalogueError(f"{where}.columns.{col}: the column feeds the filter "
                                     f"list, not a parameter; use \"\" to drop it")
            filters = [f for f in filters if f.column != col]
            continue
        hits = [i for i, p in enumerate(params_list) if col in p.columns]
        if not key:
            for i in reversed(hits):
                rest = tuple(c for c in params_list[i].columns if c != col)
                if rest:
                    params_list[i] = attrs.evolve(params_list[i], columns=rest)
                else:
                    del params_list[i]
        elif hits:
            for i in hits:
                params_list[i] = attrs.evolve(params_list[i], key=key)
        else:
            params_list.append(Param(key, (col,), _auto_convert(columns[col])))
    return tuple(params_list), tuple(filters)


def _override_results(results: object, columns: Mapping[str, Column[Any]],
                      where: str) -> dict[str, str]:
    if not isinstance(results, Mapping):
        raise CatalogueError(f"{where}.results: expected a table of stats_key = \"column\"")
    for stats_key, col in results.items():
        if not isinstance(col, str):
            raise CatalogueError(f"{where}.results.{stats_key}: expected a column name or \"\"")
        if col and col not in columns:
            raise CatalogueError(f"{where}.results.{stats_key}: no column {col!r}")
        if col and not column_meta(columns[col]).updatable:
            raise CatalogueError(f"{where}.results.{stats_key}: column {col!r} is not one "
                                 f"a result may write")
    return {str(k): v for k, v in results.items()}


def _check_entry(entry: Entry, cls: type[Job]) -> None:
    columns = _column_types(cls)
    where = f"catalogue entry {entry.job_type}"
    for col in sorted(entry.columns_used() | set(entry.unused)):
        if col not in columns:
            raise CatalogueError(f"{where}: column {col!r} is not mapped for {cls.__name__}")
    for p in entry.params:
        if p.convert not in CONVERSIONS:
            raise CatalogueError(f"{where}: parameter {p.key!r}: unknown conversion {p.convert!r}")
    for f in entry.filters:
        if f.kind not in FILTER_KINDS:
            raise CatalogueError(f"{where}: unknown filter kind {f.kind!r}")


@attrs.frozen
class _Site:
    nextflow: str
    pipeline_dir: Path | None
    config_dir: Path | None
    command: tuple[str, ...]
    params: Mapping[str, Any]


class Catalogue:
    """The catalogue of pipelines: one `Entry` per job type plus the site's settings.

    Build it with `from_settings` (or `default` for the stand-in with no site
    paths); then call `prepare` for each job.
    """

    def __init__(self, entries: Mapping[str, Entry], classes: Mapping[str, type[Job]],
                 site: _Site) -> None:
        """Keep checked entries; use `from_settings` rather than this constructor."""
        self._entries = dict(entries)
        self._classes = dict(classes)
        self._site = site

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def default(cls) -> Catalogue:
        """Return the shipped catalogue with no site paths, running the stand-in pipeline."""
        return cls.from_settings(pipeline_dir=None, config_dir=None, command=STANDIN_COMMAND,
                                 params={}, overrides={})

    @classmethod
    def from_settings(cls, *, nextflow: str = "nextflow", pipeline_dir: Path | None,
                      config_dir: Path | None, command: Sequence[str] | None,
                      params: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]],
                      job_classes: Mapping[str, type[Job]] = JOB_CLASSES) -> Catalogue:
        """Build the catalogue from the ``[pipelines]`` settings.

        Args:
            nextflow: The Nextflow executable (``{nextflow}``).
            pipeline_dir: EST's ``pipelines/`` directory; scripts are relative to it.
            config_dir: EST's ``conf/`` directory; ``-c`` configs are relative to it.
            command: The command template (None: EST's own run template).
            params: Site-wide parameters (the old ``NEXTFLOW_PARAMS``); each goes to
                the pipelines that read it. ``import_blast_fasta_db`` and
                ``sb_search_refdb`` may be a table ``database name → path``.
            overrides: ``job_type → {script, config, pipeline_name, params, columns,
                results, remove}``.
            job_classes: The model's classes per job type.

        Raises:
            CatalogueError: an unknown job type, column, placeholder, key or value.

        """
        if command is None:
            if pipeline_dir is None:
                raise CatalogueError("pipelines.pipeline_dir is required unless "
                                     "pipelines.command is set")
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
            raise CatalogueError("pipelines.command uses {pipeline} but pipelines.pipeline_dir "
                                 "is not set")
        if "config" in used and config_dir is None:
            raise CatalogueError("pipelines.command uses {config} but pipelines.config_dir "
                                 "is not set")

        entries = {e.job_type: e for e in _default_entries() if e.job_type in job_classes}
        for job_type, override in overrides.items():
            if job_type not in job_classes:
                raise CatalogueError(f"pipelines.overrides.{job_type}: unknown job type "
                                     f"(known: {', '.join(sorted(job_classes))})")
            if not isinstance(override, Mapping):
                raise CatalogueError(f"pipelines.overrides.{job_type}: expected a table")
            base = entries.get(job_type) or Entry(job_type=job_type, pipeline=job_type,
                                                  script="", config="")
            entries[job_type] = _apply_override(base, override, job_classes[job_type])
        for job_type, entry in entries.items():
            _check_entry(entry, job_classes[job_type])
            if entry.runs_pipeline and not entry.script:
                raise CatalogueError(f"pipelines.overrides.{job_type}.script: no pipeline "
                                     f"script for {job_type}")

        site_params = _json_value(dict(params), "pipelines.params")
        known = set().union(*(e.site_params for e in entries.values())) | {"efi_db"}
        for key, value in site_params.items():
            if key not in known:
                raise CatalogueError(
                    f"pipelines.params.{key}: no pipeline reads it; set it for one job type "
                    f"with pipelines.overrides.<job_type>.params")
            if isinstance(value, dict) and key not in _SITE_PATH_MAPPINGS:
                raise CatalogueError(f"pipelines.params.{key}: expected a value, not a table")
            if isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
                raise CatalogueError(f"pipelines.params.{key}: expected a table of paths")
        site = _Site(nextflow=nextflow, pipeline_dir=pipeline_dir, config_dir=config_dir,
                     command=template, params=site_params)
        return cls(entries, job_classes, site)

    # -- queries ---------------------------------------------------------------------------

    def job_types(self) -> tuple[str, ...]:
        """Return the job types the catalogue knows, sorted."""
        return tuple(sorted(self._entries))

    def entry(self, job_type: str) -> Entry:
        """Return the entry of a job type (KeyError if unknown)."""
        return self._entries[job_type]

    def pipeline_name(self, job_type: str) -> str:
        """Return the short pipeline name of a job type (the job type itself if unknown)."""
        entry = self._entries.get(job_type)
        return entry.pipeline if entry is not None else job_type

    def result_columns(self, job_type: str) -> Mapping[str, str]:
        """Return ``stats.json key → column`` for a job type (empty if unknown)."""
        cls = self._classes.get(job_type)
        if cls is None:
            return {}
        mapping: dict[str, str] = {}
        for column in _column_types(cls).values():
            meta = column_meta(column)
            if meta.updatable and meta.result_key:
                mapping[meta.result_key] = column.name
        entry = self._entries.get(job_type)
        for key, col in (entry.result_overrides.items() if entry else ()):
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
        job_type = job.job_type
        entry = self._entries.get(job_type)
        if entry is None:
            raise JobInputError(f"job_type = {job_type!r}: no pipeline for this job type",
                                column="job_type")
        job_dir = job_dir.absolute()
        inputs: dict[str, Path] = {}
        extra: dict[str, str] = {}
        upload_path = self._stage_upload(entry, job, job_dir, input_dir, inputs)
        if not entry.runs_pipeline:
            return PreparedJob(params={}, inputs=inputs, extra_files={}, command=(),
                               pipeline=entry.pipeline, runs_pipeline=False)

        site = self._site.params
        params: dict[str, Any] = {k: v for k, v in site.items()
                                  if k in entry.site_params and not isinstance(v, dict)}
        params["efi_db"] = self._efi_db(job)
        params["job_id"] = str(job.id)
        params["final_output_dir"] = str(job_dir)
        params.update(entry.fixed)
        self._check_required(entry, job)
        for rule in entry.params:
            self._apply_param(rule, job, params)
        filters = self._filters(entry, job, job_dir, extra)
        if filters:
            params["filter"] = filters
        if entry.upload is not None and entry.upload.key and upload_path is not None:
            params[entry.upload.key] = upload_path
        self._stage_parent(entry, job, job_dir=job_dir, results_dir=results_dir, inputs=inputs,
                           params=params)
        params.update(entry.extra_params)
        for key in entry.remove:
            params.pop(key, None)
        command = self._command(entry, job_dir)
        return PreparedJob(params=dict(sorted(params.items())), inputs=inputs,
                           extra_files=extra, command=command, pipeline=entry.pipeline,
                           runs_pipeline=True)

    # -- helpers ---------------------------------------------------------------------------

    def _command(self, entry: Entry, job_dir: Path) -> tuple[str, ...]:
        site = self._site
        values = {
            "nextflow": site.nextflow,
            "config": str(site.config_dir / entry.config) if site.config_dir else "",
            "pipeline": str(site.pipeline_dir / entry.script) if site.pipeline_dir else "",
            "pipeline_name": entry.pipeline,
            "params_file": PARAMS_FILE,
            "job_dir": str(job_dir),
        }
        return tuple(arg.format(**values) for arg in site.command)

    def _efi_db(self, job: Job) -> str:
        value = getattr(job, "efi_db_version", None)
        if not _is_empty(value):
            return _to_str("efi_db_version", value).strip()
        site = self._site.params.get("efi_db")
        if isinstance(site, str) and site:
            return site
        raise JobInputError("efi_db_version is empty and the site sets no efi_db parameter",
                            column="efi_db_version")

    @staticmethod
    def _check_required(entry: Entry, job: Job) -> None:
        for rule in entry.params:
            if rule.required and all(_is_empty(getattr(job, c, None)) for c in rule.columns):
                names = " or ".join(rule.columns)
                raise JobInputError(f"{names} is required for {entry.job_type} "
                                    f"(EST parameter {rule.key})", column=rule.columns[0])
        for flag, cols in entry.requires_if:
            raw = getattr(job, flag, None)
            if not _is_empty(raw) and _to_bool(flag, raw):
                for col in cols:
                    if _is_empty(getattr(job, col, None)):
                        raise JobInputError(f"{col} is required when {flag} is set",
                                            column=col)

    def _apply_param(self, rule: Param, job: Job, params: dict[str, Any]) -> None:
        column = rule.columns[0]
        value: object = None
        for col in rule.columns:
            candidate = getattr(job, col, None)
            if not _is_empty(candidate):
                column, value = col, candidate
                break
        if rule.convert == "site_path":
            resolved = self._site_path(rule, column, value)
            if resolved is not None:
                params[rule.key] = resolved
            return
        if value is None:
            return
        if rule.when is not None:
            flag = getattr(job, rule.when, None)
            if _is_empty(flag) or not _to_bool(rule.when, flag):
                return
        try:
            converted = self._convert(rule.convert, column, value, job)
        except JobInputError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise _fail(column, value, f"cannot be converted: {exc}") from None
        for number in converted if isinstance(converted, list) else [converted]:
            if isinstance(number, int | float) and not isinstance(number, bool):
                if rule.minimum is not None and number < rule.minimum:
                    raise _fail(column, value, f"must be at least {rule.minimum:g} "
                                               f"(EST parameter {rule.key})")
                if rule.maximum is not None and number > rule.maximum:
                    raise _fail(column, value, f"must be at most {rule.maximum:g} "
                                               f"(EST parameter {rule.key})")
        params[rule.key] = converted

    def _convert(self, kind: str, column: str, value: object, job: Job) -> Any:
        simple: dict[str, Callable[[str, object], Any]] = {
            "int": _to_int, "float": _to_float, "bool": _to_bool, "str": _to_str,
            "evalue": _evalue, "families": _families, "str_list": _str_list,
            "number_list": _number_list,
        }
        if kind == "auto":
            kind = _auto_convert(_column_types(type(job))[column])
        if kind in simple:
            return simple[kind](column, value)
        if kind == "sequence_version":
            return _choice(column, value, _SEQUENCE_VERSIONS, "sequence version")
        if kind == "domain_region":
            return _choice(column, value, _DOMAIN_REGIONS, "domain region")
        if kind == "search_method":
            return _choice(column, value, {m: m for m in _SEARCH_METHODS}, "search method")
        if kind == "percent_to_fraction":
            number = _to_float(column, value)
            return round(number / 100, 6) if number > 1 else number
        raise AssertionError(f"unknown conversion {kind}")  # checked at start-up

    def _site_path(self, rule: Param, column: str, value: object) -> str | None:
        site = self._site.params.get(rule.key)
        if isinstance(site, dict):
            if value is not None:
                name = _to_str(column, value).strip()
                for key in (name, name.lower()):
                    if key in site:
                        return str(site[key])
                raise _fail(column, value, f"this site configures no {rule.key} for it "
                                           f"(known: {', '.join(sorted(site)) or 'none'})")
            if "default" in site:
                return str(site["default"])
        elif isinstance(site, str) and site:
            return site
        if rule.fallback:
            fallback = self._site.params.get(rule.fallback)
            if isinstance(fallback, str) and fallback:
                return fallback
        if rule.required:
            raise _fail(column, value, f"this site configures no {rule.key} "
                                       f"(pipelines.params.{rule.key})")
        return None

    def _filters(self, entry: Entry, job: Job, job_dir: Path, extra: dict[str, str]) -> list[str]:
        out: list[str] = []
        for rule in entry.filters:
            value = getattr(job, rule.column, None)
            if _is_empty(value):
                continue
            col = rule.column
            if rule.kind == "fragments":
                if _to_bool(col, value):
                    out.append("fragments")
            elif rule.kind == "fraction":
                n = _to_int(col, value)
                if n < 1:
                    raise _fail(col, value, "a fraction keeps every Nth sequence: N must be 1 "
                                            "or more")
                if n > 1:
                    out.append(f"fraction={n}")
            elif rule.kind == "family":
                out.append(f"family={_families(col, value)}")
            elif rule.kind == "taxonomy":
                extra[TAXONOMY_FILTER_FILE] = _taxonomy_filter(
                    col, value, getattr(job, "taxSearchName", None))
                out.append(f"user-filter={job_dir / TAXONOMY_FILTER_FILE}")
            else:  # min_seq_length / max_seq_length
                n = _to_int(col, value)
                if n < 0:
                    raise _fail(col, value, "a sequence length cannot be negative")
                out.append(f"{rule.kind}={n}")
        return out

    @staticmethod
    def _stage_upload(entry: Entry, job: Job, job_dir: Path, input_dir: Path,
                      inputs: dict[str, Path]) -> str | None:
        upload = entry.upload
        if upload is None:
            return None
        value = getattr(job, upload.column, None)
        if _is_empty(value) and not upload.required:
            return None
        source = _resolve_upload(upload.column, value, input_dir)
        name = f"{INPUT_SUBDIR}/{_safe_name(source.name)}"
        inputs[name] = source
        return str(job_dir / name)

    @staticmethod
    def _stage_parent(entry: Entry, job: Job, *, job_dir: Path, results_dir: Path,
                      inputs: dict[str, Path], params: dict[str, Any]) -> None:
        parent = entry.parent
        if parent is None:
            return
        col = parent.column
        raw = getattr(job, col, None)
        if _is_empty(raw):
            raise JobInputError(f"{col} is required for {entry.job_type}: it names the job "
                                f"whose results this one reads", column=col)
        parent_id = _to_int(col, raw)
        if parent_id <= 0:
            raise _fail(col, raw, "not a job id")
        if parent_id == job.id:
            raise _fail(col, raw, "a job cannot be its own parent")
        base = results_dir.resolve()
        parent_dir = (base / str(parent_id)).resolve()
        if not parent_dir.is_relative_to(base) or not parent_dir.is_dir():
            raise _fail(col, raw, f"the parent job has no results in {base}")
        for f in parent.files:
            source = (parent_dir / f.name).resolve()
            if not source.is_relative_to(base) or not source.is_file():
                if f.required:
                    raise _fail(col, raw, f"the parent job's results lack {f.name}")
                continue
            name = f"{PARENT_SUBDIR}/{f.name}"
            inputs[name] = source
            if f.key:
                params[f.key] = str(job_dir / name)
        if parent.dir_key:
            params[parent.dir_key] = str(job_dir / PARENT_SUBDIR)

