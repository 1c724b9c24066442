"""How each job type's row becomes a call of EST's parameter script: the builds.

A build takes a `Context` (the row, the job directory, the staged files and the
site's `SiteValues`) and returns the `EstCall` a site would make by hand with EST's
own ``bin/create_*_nextflow_params.py``; the call, not the build, decides the params
file (`efi_job_manager.catalogue.estcalls`). Which job type uses which build is the table in
`efi_job_manager.catalogue.jobtypes`; the whole mapping, column by column: ``docs/est-params.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from efi_job_manager.catalogue.estcalls import CallBuilder, EstCall, Script
from efi_job_manager.catalogue.estscripts import (
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
)
from efi_job_manager.catalogue.filters import (
    TAXONOMY_FILTER_FILE,
    families,
    family_filter,
    fraction_filter,
    taxonomy_filter,
)
from efi_job_manager.catalogue.rowvalues import (
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

__all__ = [
    "Build",
    "Context",
    "SiteValues",
    "build_cgfp_identify",
    "build_cgfp_quantify",
    "build_clusteranalysis",
    "build_colorssn",
    "build_conv_ratio",
    "build_est",
    "build_generatessn",
    "build_gnd",
    "build_gnt",
    "build_nb_conn",
    "build_taxonomy",
]


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


#: Turns one job's `Context` into the call of its EST script.
Build = Callable[[Context], EstCall]


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


def build_est(mode: str) -> Build:
    """Return the build of an EST generate job (``create_est``) for an import mode."""
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


def build_generatessn(ctx: Context) -> EstCall:
    """Build the call of an SSN finalization job (``create_generatessn``)."""
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


def build_colorssn(ctx: Context) -> EstCall:
    """Build the call of a color SSN job (``create_colorssn``)."""
    return _ssn_input(CREATE_COLORSSN)(ctx).build()


def build_nb_conn(ctx: Context) -> EstCall:
    """Build the call of a neighborhood connectivity job (``create_nb_conn``)."""
    return _ssn_input(CREATE_NB_CONN, fasta_db=False)(ctx).build()


def build_conv_ratio(ctx: Context) -> EstCall:
    """Build the call of a convergence ratio job (``create_conv_ratio``)."""
    b = _ssn_input(CREATE_CONV_RATIO, flag="--colored-ssn-input")(ctx)
    return b.add("--ascore", _opt_int(ctx.row.get("alignmentScore", whole(0)))).build()


def build_clusteranalysis(ctx: Context) -> EstCall:
    """Build the call of a cluster analysis job (``create_clusteranalysis``)."""
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


def build_gnt(ctx: Context) -> EstCall:
    """Build the call of a GNT job (``create_gnt``)."""
    row = ctx.row
    size = row.get("neighborhood_size", whole(1, 20))
    if size is None:
        size = row.get("neighborhoodSize", whole(1, 20))
    cooc = row.get("cooccurrence", fraction_of)
    return (_ssn_input(CREATE_GNT)(ctx).add("--nb-size", _opt_int(size))
            .add("--cooc-threshold", None if cooc is None else number_text(cooc)).build())


def build_gnd(mode: str) -> Build:
    """Return the build of a diagram job (``create_gnd``) for an import mode."""
    def build(ctx: Context) -> EstCall:
        b = (_start(ctx, CREATE_GND).add("--import-mode", mode).add("--input-file", ctx.upload)
             .add("--nb-size", _opt_int(ctx.row.get("neighborhoodSize", whole(1, 20)))))
        if mode == "blast":  # create_gnd requires a database: the site's fasta_db by default
            _blast_import(ctx, b, ctx.site.text("fasta_db"))
        return b.build()
    return build


def build_cgfp_identify(ctx: Context) -> EstCall:
    """Build the call of a CGFP identify job (``create_cgfpidentify``)."""
    row = ctx.row
    name = row.get("referenceDatabase", plain_text)
    refdb = ctx.site.database("sb_search_refdb", "referenceDatabase", name)
    sid = row.get("cdhitSequenceIdentity", fraction_of)
    return (_ssn_input(CREATE_CGFPIDENTIFY)(ctx)
            .add("--search-method", row.get("searchType", search_method))
            .add("--cdhit-sid", None if sid is None else number_text(sid))
            .add("--ref-fasta-db", refdb).build())


def build_cgfp_quantify(ctx: Context) -> EstCall:
    """Build the call of a CGFP quantify job (``create_cgfpquantify``)."""
    row, site = ctx.row, ctx.site
    return (_start(ctx, CREATE_CGFPQUANTIFY)
            .add("--identify-dir", ctx.parent[""])
            .add("--metagenome-db-dir", site.text("metagenome_db_dir"))
            .add("--metagenome-ids", row.require("metagenomes", metagenome_ids,
                                                 "the metagenomes to quantify in"))
            .add("--search-method", row.get("searchType", search_method))
            .add("--shortbred-src", site.text("shortbred_src_dir")).build())


def build_taxonomy(mode: str) -> Build:
    """Return the build of a taxonomy job (``create_taxonomy``) for an import mode."""
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
