"""Each EFI-Web job type as a call of EST's parameter script.

For every ``job_type``, `JOB_TYPES` holds a `JobType`: which EST script and
subcommand write its parameters, which Nextflow workflow and config run it, which
upload and parent-job files it reads, and a ``build`` function
(`efi_job_manager.catalogue.builds`) that turns the row (and the site's values) into the
`EstCall` a site would make by hand with EST's own
``bin/create_*_nextflow_params.py``. The call, not this module, decides the params
file (`efi_job_manager.catalogue.estscripts`). Columns a job type does not pass on are listed
in `JobType.unused` with the reason. The whole mapping, column by column:
``docs/est-params.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from efi_job_manager.catalogue.builds import (
    Build,
    Context,
    SiteValues,
    build_cgfp_identify,
    build_cgfp_quantify,
    build_clusteranalysis,
    build_colorssn,
    build_conv_ratio,
    build_est,
    build_generatessn,
    build_gnd,
    build_gnt,
    build_nb_conn,
    build_taxonomy,
)
from efi_job_manager.catalogue.estcalls import Script
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
    return JobType(job_type, "est", "est/est.nf", CREATE_EST, build_est(mode),
                   upload=Upload() if upload else None, additions=_EST_ADDITIONS,
                   unused={"jobName": _NO_JOB_NAME, **({"uploadedFilename": _DISPLAY_ONLY}
                                                      if upload else {}), **unused})


def _gnd_type(job_type: str, mode: str, unused: Mapping[str, str]) -> JobType:
    return JobType(job_type, "gnd", "gnd/gnd.nf", CREATE_GND, build_gnd(mode),
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
                   build_taxonomy(mode), upload=Upload() if upload else None,
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
            CREATE_GENERATESSN, build_generatessn,
            parent=Parent(files=(("1.out.parquet", True), ("all_sequences.fasta", True),
                                 ("accession_table.tab", True), ("sequence_metadata.tab", True))),
            additions=frozenset({"duckdb_temp_dir", "duckdb_memory_limit", "max_ssn_edges",
                                 "make_repnodes", "repnode_pct", "color_ssn",
                                 "sequence_version"})),
    _ssn_type("est_color_ssn", "colorssn", "colorssn/colorssn.nf", CREATE_COLORSSN,
              build_colorssn),
    _ssn_type("est_neighborhood_connectivity", "neighborhoodconnectivity",
              "neighborhoodconnectivity/neighborhoodconnectivity.nf", CREATE_NB_CONN,
              build_nb_conn),
    _ssn_type("est_convergence_ratio", "convergenceratio",
              "convergenceratio/convergenceratio.nf", CREATE_CONV_RATIO, build_conv_ratio,
              additions=frozenset({"duckdb_temp_dir", "blast_num_matches", "num_fasta_shards",
                                   "sort_seq_by_length"})),
    _ssn_type("est_cluster_analysis", "clusteranalysis", "clusteranalysis/clusteranalysis.nf",
              CREATE_CLUSTERANALYSIS, build_clusteranalysis,
              additions=frozenset({"muscle_version"})),
    _ssn_type("gnt_gnn", "gnt", "gnt/gnt.nf", CREATE_GNT, build_gnt),
    _gnd_type("gnt_diagram_blast", "blast", {"excludeFragments": _NO_GND_FILTER}),
    _gnd_type("gnt_diagram_fasta", "fasta", {}),
    _gnd_type("gnt_diagram_sequence_id", "accessions", {
        "excludeFragments": _NO_GND_FILTER, "blastEValue": "BLAST import only",
        "maxBlastSequences": "BLAST import only", "sequenceDatabase": "BLAST import only"}),
    JobType("gnt_view_diagram", "gnd", "", None, None, upload=Upload(),
            unused={"uploadedFilename": _DISPLAY_ONLY, "jobName": "no pipeline runs",
                    "efi_db_version": "no pipeline runs", "id": "no pipeline runs"}),
    _ssn_type("cgfp_identify", "cgfpidentify", "cgfp/cgfpidentify.nf", CREATE_CGFPIDENTIFY,
              build_cgfp_identify,
              additions=frozenset({"sb_identify_threads", "sb_cons_thresh",
                                   "sb_diamond_sensitivity"}),
              unused={"minLength": "EST's create_cgfpidentify takes no length",
                      "maxLength": "EST's create_cgfpidentify takes no length"}),
    JobType("cgfp_quantify", "cgfpquantify", "cgfp/cgfpquantify.nf", CREATE_CGFPQUANTIFY,
            build_cgfp_quantify,
            parent=Parent(files=(("marker_ssn.xgmml", True), ("markers.faa", True),
                                 ("cdhit.tab", False), ("stats.json", False),
                                 ("cluster_id_map.txt", False), ("seqid_source_map.txt", False))),
            additions=frozenset({"sb_quantify_threads"}),
            unused={"jobName": _NO_JOB_NAME}),
    _taxonomy_type("taxonomy_accession", "accessions", {}),
    _taxonomy_type("taxonomy_families", "family", {}, upload=False),
    _taxonomy_type("taxonomy_fasta", "fasta", {}),
)}
