"""Each EFI-Web job type as a call of EST's parameter script.

For every ``job_type``, `JOB_TYPES` holds a `JobType`: which EST script and
subcommand write its parameters, which Nextflow workflow and config run it, which
upload and parent-job files it reads, and a ``build`` function that turns the row
(and the site's values) into the `EstCall` a site would make by hand with EST's
own ``bin/create_*_nextflow_params.py``. The call, not this module, decides the
params file (`efi_job_manager.est_scripts`). Columns a job type does not pass on
are listed in `JobType.unused` with the reason. The whole mapping, column by
column: ``docs/est-params.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from efi_job_manager.est_filters import (
    TAXONOMY_FILTER_FILE,
    families,
    family_filter,
    fraction_filter,
    taxonomy_filter,
)
from efi_job_manager.est_scripts import (
    CREATE_CGFPIDENTIFY,
    CREATE_CGFPQUANTIFY,
    CREATE_CLUSTERANALYSIS,
    CREATE_COLORSSN,
    CREATE_CONV_RATIO,
    CREATE_EST,
    CREATE_GENERATESSN,
    CREATE_GND,
    CREATE_GNT,
    CREATE_NB_CONN,
    CREATE_TAXONOMY,
    CallBuilder,
    EstCall,
    Script,
)
from efi_job_manager.rowvalues import (
    JobInputError,
    RowReader,
    domain_family,
    domain_region,
    evalue,
    fail,
    fraction_of,
    metagenome_ids,
    number_text,
    percents,
    plain_text,
    residues,
    search_method,
    sequence_version,
    title,
    to_bool,
    to_float,
    to_int,
    whole,
)

__all__ = ["JOB_TYPES", "Context", "JobType", "Parent", "SiteValues", "Upload"]


@attrs.frozen
class Upload:
    """The uploaded file a job reads (staged as ``input/<name>``).

    Attributes:
        column: The column naming the stored upload, relative to the input directory.
        required: A job without it cannot run.

    """

    column: str = "jobFilename"
    required: bool = True


@attrs.frozen
class Parent:
    """Files of the parent job a job reads, staged as ``parent/<name>``.

    Attributes:
        files: ``(name, required)`` for each file of ``<results_dir>/<parentJob_id>/``.
        column: The column holding the parent's id.

    """

    files: tuple[tuple[str, bool], ...]
    column: str = "parentJob_id"


@attrs.frozen
class SiteValues:
    """What a build needs of the site.

    Attributes:
        params: ``[pipelines] params`` (keys as in the params file).
        efi_db: The EFI database this job uses (resolved from its ``efi_db_version``).
        nextflow_config: The Nextflow config EST's script is told about.
        predefined_filters: Names of EST's predefined taxonomy filters.

    """

    params: Mapping[str, Any]
    efi_db: str
    nextflow_config: str
    predefined_filters: tuple[str, ...]

    def text(self, key: str) -> str | None:
        """Return a site parameter as option text (None when unset)."""
        value = self.params.get(key)
        if value is None or isinstance(value, Mapping):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def database(self, key: str, column: str, name: str | None) -> str | None:
        """Return a site path that may be a table keyed by a column's database name."""
        value = self.params.get(key)
        if isinstance(value, Mapping):
            if name is not None:
                for candidate in (name, name.lower()):
                    if candidate in value:
                        return str(value[candidate])
                raise fail(column, name, f"this site configures no {key} for it (known: "
                                         f"{', '.join(sorted(value)) or 'none'})")
            return str(value["default"]) if "default" in value else None
        return None if value is None else str(value)


@attrs.define
class Context:
    """One job being built: its row, directory, staged files and the site.

    Attributes:
        row: The row's columns.
        job_dir: The job directory (absolute) where the pipeline runs.
        upload: The staged upload's path, if the job has one.
        parent: Parent file name → staged path; ``""`` → the staged parent directory.
        site: The site's values.
        extra_files: Small files the build writes into the job directory.
        additions: Parameters the pipeline reads that EST's script does not write.

    """

    row: RowReader
    job_dir: str
    upload: str | None
    parent: Mapping[str, str]
    site: SiteValues
    extra_files: dict[str, str] = attrs.field(factory=dict)
    additions: dict[str, Any] = attrs.field(factory=dict)


Build = Callable[[Context], EstCall]


@attrs.frozen
class JobType:
    """How one job type runs.

    Attributes:
        job_type: The ``job_type`` string.
        pipeline: The pipeline's short name (``est``…), used for resource profiles.
        workflow: The Nextflow script, relative to EST's ``pipelines/``.
        script: The EST script that writes its parameters; None when no pipeline runs.
        build: Turns the row into that script's call; None when no pipeline runs.
        upload: The upload it reads, if any.
        parent: The parent job's files it reads, if any.
        additions: Site parameters the pipeline reads beyond what EST's script writes.
        unused: Parameter columns deliberately not passed on, with the reason.
        config: The Nextflow config, relative to EST's ``conf/`` (EST has one per
            executor for all its pipelines: ``conf/slurm.config``).

    """

    job_type: str
    pipeline: str
    workflow: str
    script: Script | None
    build: Build | None
    upload: Upload | None = None
    parent: Parent | None = None
    additions: frozenset[str] = frozenset()
    unused: Mapping[str, str] = attrs.field(factory=dict)
    config: str = "slurm.config"

    @property
    def runs_pipeline(self) -> bool:
        """Return whether a pipeline runs for this job type."""
        return self.build is not None


# -- pieces shared by several builds -------------------------------------------------------


def _start(ctx: Context, script: Script, subcommand: str | None = None) -> CallBuilder:
    site = ctx.site
    return (CallBuilder(script, subcommand)
            .add("--output-dir", ctx.job_dir)
            .add("--efi-config", site.text("efi_config"))
            .add("--efi-db", site.efi_db)
            .add("--nextflow-config", site.nextflow_config)
            .add("--job-id", str(to_int("id", ctx.row.raw("id")))))


#: ``[pipelines] params`` keys that are options of ``create_est``.
_EST_SITE_OPTIONS: Final = {
    "duckdb_memory_limit": "--duckdb-memory-limit", "duckdb_threads": "--duckdb-threads",
    "num_fasta_shards": "--fasta-shards", "num_accession_shards": "--accession-shards",
    "blast_num_matches": "--blast-num-matches",
}


def _filters(ctx: Context, *, fragments: bool = False, fraction: bool = False,
             family: bool = False, taxonomy: bool = False, lengths: bool = False) -> list[str]:
    row = ctx.row
    out: list[str] = []
    if fragments and row.flag("excludeFragments"):
        out.append("fragments")
    if fraction and (entry := row.get("fraction", fraction_filter)):
        out.append(entry)
    if family and (entry := row.get("filterByFamilies", family_filter)):
        out.append(entry)
    if taxonomy:
        predefined, user_filter = taxonomy_filter(row, predefined=ctx.site.predefined_filters)
        if user_filter is not None:
            ctx.extra_files[TAXONOMY_FILTER_FILE] = user_filter
            out.append(f"user-filter={ctx.job_dir}/{TAXONOMY_FILTER_FILE}")
        elif predefined is not None:
            out.append(f"predef-filter={predefined}")
    if lengths:
        low, high = _length_range(row, "minLength", "maxLength", 1)
        out += [f"{key}={n}" for key, n in (("min_seq_length", low), ("max_seq_length", high))
                if n is not None]
    return out


def _length_range(row: RowReader, low_column: str, high_column: str, least: int
                  ) -> tuple[int | None, int | None]:
    low = row.get(low_column, whole(least))
    high = row.get(high_column, whole(max(least, 1)))
    if low is not None and high is not None and low > high:
        raise JobInputError(f"{low_column} {low} is above {high_column} {high}",
                            column=low_column)
    return low, high


def _blast_import(ctx: Context, b: CallBuilder, fallback: str | None) -> None:
    row = ctx.row
    b.add("--import-blast-evalue", row.get("blastEValue", evalue))
    b.add("--import-blast-num-matches", _opt_int(row.get("maxBlastSequences", whole(1))))
    name = row.get("sequenceDatabase", plain_text)
    b.add("--import-blast-fasta-db",
          ctx.site.database("import_blast_fasta_db", "sequenceDatabase", name) or fallback)


def _opt_int(value: int | None) -> str | None:
    return None if value is None else str(value)


# -- the builds ----------------------------------------------------------------------------


def _est(mode: str) -> Build:
    def build(ctx: Context) -> EstCall:
        row, site = ctx.row, ctx.site
        b = _start(ctx, CREATE_EST, mode).add("--fasta-db", site.text("fasta_db"))
        for key, flag in _EST_SITE_OPTIONS.items():
            b.add(flag, site.text(key))
        b.switch("--collapse-redundancy", bool(site.params.get("multiplex")) or None)
        b.add("--input-file", ctx.upload)
        if mode == "family":
            b.add("--families", row.require("families", families, "the families to import"))
        else:
            b.add("--families", row.get("families", families))
        b.add("--sequence-version", row.get("sequence_version", sequence_version))
        b.add("--blast-evalue", row.get("allByAllBlastEValue", evalue) or site.text("blast_evalue"))
        if mode in ("family", "accessions") and row.flag("domain"):
            b.switch("--domain", True)
            b.add("--domain-region", row.get("domainRegion", domain_region))
            if mode == "accessions":
                b.add("--domain-family", row.get("domainFamily", domain_family))
        if mode == "blast":  # create_est itself searches --fasta-db when given no database
            _blast_import(ctx, b, None)
        b.add_all("--filter", _filters(
            ctx, fragments=mode != "fasta", fraction=True, family=mode in ("fasta", "accessions"),
            taxonomy=mode != "fasta"))
        return b.build()
    return build


def _generatessn(ctx: Context) -> EstCall:
    row = ctx.row
    low, high = _length_range(row, "minLength", "maxLength", 0)
    score = row.require("alignmentScore", to_float, "the alignment score the SSN keeps edges at")
    if score < 0:
        raise fail("alignmentScore", score, "must be 0 or more")
    nc_factor = row.get("computeNeighborhoodConnectivity", to_bool)
    if nc_factor is not None:
        ctx.additions["compute_ssn_nc_factor"] = nc_factor
    return (_start(ctx, CREATE_GENERATESSN, "manual")
            .add("--blast-parquet", ctx.parent["1.out.parquet"])
            .add("--fasta-file", ctx.parent["all_sequences.fasta"])
            .add("--seq-meta-file", ctx.parent["sequence_metadata.tab"])
            .add("--source-ids-file", ctx.parent["accession_table.tab"])
            .add("--threshold-min-val", number_text(score))
            .add("--min-length", _opt_int(low)).add("--max-length", _opt_int(high))
            .add_all("--filter", _filters(ctx, fragments=True, taxonomy=True))
            # the pipeline names its network full_ssn.xgmml.zip and reads no ssn_name
            .add("--ssn-name", "full_ssn")
            .add("--job-name", row.get("jobName", title) or "")
            .build())


def _ssn_input(script: Script, *, fasta_db: bool = True, flag: str = "--ssn-input"
               ) -> Callable[[Context], CallBuilder]:
    def start(ctx: Context) -> CallBuilder:
        b = _start(ctx, script).add(flag, ctx.upload)
        return b.add("--fasta-db", ctx.site.text("fasta_db")) if fasta_db else b
    return start


def _colorssn(ctx: Context) -> EstCall:
    return _ssn_input(CREATE_COLORSSN)(ctx).build()


def _nb_conn(ctx: Context) -> EstCall:
    return _ssn_input(CREATE_NB_CONN, fasta_db=False)(ctx).build()


def _conv_ratio(ctx: Context) -> EstCall:
    b = _ssn_input(CREATE_CONV_RATIO, flag="--colored-ssn-input")(ctx)
    return b.add("--ascore", _opt_int(ctx.row.get("alignmentScore", whole(0)))).build()


def _clusteranalysis(ctx: Context) -> EstCall:
    row = ctx.row
    low, high = _length_range(row, "minNumSequences", "maxNumSequences", 1)
    b = (_ssn_input(CREATE_CLUSTERANALYSIS)(ctx)
         .add("--min-msa-seq", _opt_int(low)).add("--max-msa-seq", _opt_int(high))
         .switch("--weblogo", row.get("makeWeblogo", to_bool))
         .switch("--hmms", row.get("makeHmms", to_bool))
         .switch("--length-histo", row.get("makeLengthHistograms", to_bool)))
    compute = row.get("computeConsensusResidues", to_bool)
    b.switch("--compute-cons-res", compute)
    if compute:
        b.add("--residues", row.require("consensusResidues", residues,
                                        "the residues to count (computeConsensusResidues is set)"))
        b.add("--pid-thresholds", row.require(
            "pidThresholds", percents, "the identities to count at (computeConsensusResidues "
                                        "is set)"))
    return b.build()


def _gnt(ctx: Context) -> EstCall:
    row = ctx.row
    size = row.get("neighborhood_size", whole(1, 20))
    if size is None:
        size = row.get("neighborhoodSize", whole(1, 20))
    cooc = row.get("cooccurrence", fraction_of)
    return (_ssn_input(CREATE_GNT)(ctx).add("--nb-size", _opt_int(size))
            .add("--cooc-threshold", None if cooc is None else number_text(cooc)).build())


def _gnd(mode: str) -> Build:
    def build(ctx: Context) -> EstCall:
        b = (_start(ctx, CREATE_GND).add("--import-mode", mode).add("--input-file", ctx.upload)
             .add("--nb-size", _opt_int(ctx.row.get("neighborhoodSize", whole(1, 20)))))
        if mode == "blast":  # create_gnd requires a database: the site's fasta_db by default
            _blast_import(ctx, b, ctx.site.text("fasta_db"))
        return b.build()
    return build


def _cgfp_identify(ctx: Context) -> EstCall:
    row = ctx.row
    name = row.get("referenceDatabase", plain_text)
    refdb = ctx.site.database("sb_search_refdb", "referenceDatabase", name)
    sid = row.get("cdhitSequenceIdentity", fraction_of)
    return (_ssn_input(CREATE_CGFPIDENTIFY)(ctx)
            .add("--search-method", row.get("searchType", search_method))
            .add("--cdhit-sid", None if sid is None else number_text(sid))
            .add("--ref-fasta-db", refdb).build())


def _cgfp_quantify(ctx: Context) -> EstCall:
    row, site = ctx.row, ctx.site
    return (_start(ctx, CREATE_CGFPQUANTIFY)
            .add("--identify-dir", ctx.parent[""])
            .add("--metagenome-db-dir", site.text("metagenome_db_dir"))
            .add("--metagenome-ids", row.require("metagenomes", metagenome_ids,
                                                 "the metagenomes to quantify in"))
            .add("--search-method", row.get("searchType", search_method))
            .add("--shortbred-src", site.text("shortbred_src_dir")).build())


def _taxonomy(mode: str) -> Build:
    def build(ctx: Context) -> EstCall:
        row = ctx.row
        b = _start(ctx, CREATE_TAXONOMY, mode).add("--input-file", ctx.upload)
        if mode == "family":  # the families job's list is in filterByFamilies
            b.add("--families", row.require("filterByFamilies", families,
                                            "the families whose taxonomy is shown"))
        if mode == "accessions":
            b.add("--sequence-version", row.get("sequence_version", sequence_version))
        b.add_all("--filter", _filters(
            ctx, fragments=True, family=mode == "accessions", taxonomy=mode != "fasta",
            lengths=mode == "family"))
        # EST's render_params writes fasta_db (taxonomy.nf reads it) but its parser has no
        # --fasta-db option: the value goes to render_params directly
        fasta_db = ctx.site.text("fasta_db")
        if fasta_db is not None:
            b.render_input("fasta_db", fasta_db)
        return b.build()
    return build


# -- the table -----------------------------------------------------------------------------

_DISPLAY_ONLY = "the name the user uploaded; shown by EFI-Web, not read by EST"
_NO_JOB_NAME = "EST's script for this pipeline takes no job name"
_EST_ADDITIONS = frozenset({
    "duckdb_temp_dir", "sort_seq_by_length", "uniprot_db_size", "uniref90_db_size",
    "uniref50_db_size", "memory_cpu_ratio", "compute_local_storage", "blastp_threads",
    "blastp_memory_limit", "cdhit_threads", "cdhit_memory_limit",
})


def _est_type(job_type: str, mode: str, unused: Mapping[str, str], *,
              upload: bool = True) -> JobType:
    return JobType(job_type, "est", "est/est.nf", CREATE_EST, _est(mode),
                   upload=Upload() if upload else None, additions=_EST_ADDITIONS,
                   unused={"jobName": _NO_JOB_NAME, **({"uploadedFilename": _DISPLAY_ONLY}
                                                      if upload else {}), **unused})


def _gnd_type(job_type: str, mode: str, unused: Mapping[str, str]) -> JobType:
    return JobType(job_type, "gnd", "gnd/gnd.nf", CREATE_GND, _gnd(mode),
                   upload=Upload(), additions=frozenset({"sequence_version"}),
                   unused={"uploadedFilename": _DISPLAY_ONLY, "jobName": _NO_JOB_NAME,
                           **unused})


def _ssn_type(job_type: str, pipeline: str, workflow: str, script: Script, build: Build, *,
              additions: frozenset[str] = frozenset(),
              unused: Mapping[str, str] | None = None) -> JobType:
    return JobType(job_type, pipeline, workflow, script, build,
                   upload=Upload(), additions=additions,
                   unused={"uploadedFilename": _DISPLAY_ONLY, "jobName": _NO_JOB_NAME,
                           **(unused or {})})


def _taxonomy_type(job_type: str, mode: str, unused: Mapping[str, str], *,
                   upload: bool = True) -> JobType:
    return JobType(job_type, "taxonomy", "taxonomy/taxonomy.nf", CREATE_TAXONOMY,
                   _taxonomy(mode), upload=Upload() if upload else None,
                   additions=frozenset({"uniprot_db_size", "uniref90_db_size",
                                        "uniref50_db_size", "memory_cpu_ratio"}),
                   unused={"jobName": _NO_JOB_NAME, **({"uploadedFilename": _DISPLAY_ONLY}
                                                      if upload else {}), **unused})


_NO_GND_FILTER = "gnd.nf has no sequence filter"

#: Every job type, by ``job_type``.
JOB_TYPES: Final[Mapping[str, JobType]] = {t.job_type: t for t in (
    _est_type("est_generate_blast", "blast", {}),
    _est_type("est_generate_families", "family", {}, upload=False),
    _est_type("est_generate_fasta", "fasta", {}),
    _est_type("est_generate_accession", "accessions", {}),
    JobType("est_ssn_finalization", "generatessn", "generatessn/generatessn.nf",
            CREATE_GENERATESSN, _generatessn,
            parent=Parent(files=(("1.out.parquet", True), ("all_sequences.fasta", True),
                                 ("accession_table.tab", True), ("sequence_metadata.tab", True))),
            additions=frozenset({"duckdb_temp_dir", "duckdb_memory_limit", "max_ssn_edges",
                                 "make_repnodes", "repnode_pct", "color_ssn",
                                 "sequence_version"})),
    _ssn_type("est_color_ssn", "colorssn", "colorssn/colorssn.nf", CREATE_COLORSSN, _colorssn),
    _ssn_type("est_neighborhood_connectivity", "neighborhoodconnectivity",
              "neighborhoodconnectivity/neighborhoodconnectivity.nf", CREATE_NB_CONN, _nb_conn),
    _ssn_type("est_convergence_ratio", "convergenceratio",
              "convergenceratio/convergenceratio.nf", CREATE_CONV_RATIO, _conv_ratio,
              additions=frozenset({"duckdb_temp_dir", "blast_num_matches", "num_fasta_shards",
                                   "sort_seq_by_length"})),
    _ssn_type("est_cluster_analysis", "clusteranalysis", "clusteranalysis/clusteranalysis.nf",
              CREATE_CLUSTERANALYSIS, _clusteranalysis, additions=frozenset({"muscle_version"})),
    _ssn_type("gnt_gnn", "gnt", "gnt/gnt.nf", CREATE_GNT, _gnt),
    _gnd_type("gnt_diagram_blast", "blast", {"excludeFragments": _NO_GND_FILTER}),
    _gnd_type("gnt_diagram_fasta", "fasta", {}),
    _gnd_type("gnt_diagram_sequence_id", "accessions", {
        "excludeFragments": _NO_GND_FILTER, "blastEValue": "BLAST import only",
        "maxBlastSequences": "BLAST import only", "sequenceDatabase": "BLAST import only"}),
    JobType("gnt_view_diagram", "gnd", "", None, None, upload=Upload(),
            unused={"uploadedFilename": _DISPLAY_ONLY, "jobName": "no pipeline runs",
                    "efi_db_version": "no pipeline runs", "id": "no pipeline runs"}),
    _ssn_type("cgfp_identify", "cgfpidentify", "cgfp/cgfpidentify.nf", CREATE_CGFPIDENTIFY,
              _cgfp_identify,
              additions=frozenset({"sb_identify_threads", "sb_cons_thresh",
                                   "sb_diamond_sensitivity"}),
              unused={"minLength": "EST's create_cgfpidentify takes no length",
                      "maxLength": "EST's create_cgfpidentify takes no length"}),
    JobType("cgfp_quantify", "cgfpquantify", "cgfp/cgfpquantify.nf", CREATE_CGFPQUANTIFY,
            _cgfp_quantify,
            parent=Parent(files=(("marker_ssn.xgmml", True), ("markers.faa", True),
                                 ("cdhit.tab", False), ("stats.json", False),
                                 ("cluster_id_map.txt", False), ("seqid_source_map.txt", False))),
            additions=frozenset({"sb_quantify_threads"}),
            unused={"jobName": _NO_JOB_NAME}),
    _taxonomy_type("taxonomy_accession", "accessions", {}),
    _taxonomy_type("taxonomy_families", "family", {}, upload=False),
    _taxonomy_type("taxonomy_fasta", "fasta", {}),
)}
