"""EST's parameter scripts, ``bin/create_*_nextflow_params.py``, as this product renders them.

EST ships one script per pipeline that turns command-line options into the
pipeline's params file. They are the reference for what a params file holds: key
names, which keys are written when, and each value's JSON type (an option without
``type=`` is written as text, ``type=int`` as a number, a ``store_true`` flag as a
boolean, ``--filter`` as a list). Each `Script` below declares a script's options
as EST's ``argparse`` declares them, and its ``render`` reproduces the script's
``check_args``/``render_params`` for a valid call. A call of a script (`EstCall`)
and the pieces of a declaration (`Option`, `Script`) are in
`efi_job_manager.catalogue.estcalls`. Where the scripts come from and what each key means:
``docs/est-params.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from efi_job_manager.catalogue.estcalls import (
    RUNNER_KEYS,
    EstArgumentError,
    EstCall,
    Option,
    Script,
)

__all__ = [
    "RUNNER_KEYS",
    "SCRIPTS",
    "EstArgumentError",
    "EstCall",
    "Option",
    "Script",
]


# -- the scripts ------------------------------------------------------------------------------

#: ``bin/shared_args.py``: the options every script takes (its run-script options aside).
SHARED: Final = (
    Option("--output-dir", required=True),
    Option("--efi-config", required=True),
    Option("--efi-db", required=True),
    Option("--nextflow-config", required=True),
    Option("--job-id", default=42),
)
_SEQUENCE_VERSION = Option("--sequence-version", choices=("uniprot", "uniref90", "uniref50"))
_FILTER = Option("--filter", "append")
_INPUT_FILE = Option("--input-file")
_FAMILIES = Option("--families")
_IMPORT_BLAST = (
    Option("--import-blast-fasta-db"),
    Option("--import-blast-num-matches", "int"),
    Option("--import-blast-evalue"),
)


def _in_range(script: str, flag: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise EstArgumentError(f"{script}: invalid value for {flag} ({value})")


def _render_est(a: Mapping[str, Any]) -> dict[str, Any]:
    mode = a["import_mode"]
    if mode == "family" and not a["families"]:
        raise EstArgumentError("create_est_nextflow_params.py: Family mode requires --families "
                               "argument")
    params = {
        "final_output_dir": a["output_dir"], "input_file": a["input_file"],
        "duckdb_memory_limit": a["duckdb_memory_limit"], "duckdb_threads": a["duckdb_threads"],
        "num_fasta_shards": a["fasta_shards"], "num_accession_shards": a["accession_shards"],
        "job_id": a["job_id"], "efi_config": a["efi_config"], "fasta_db": a["fasta_db"],
        "efi_db": a["efi_db"], "import_mode": mode, "filter": a["filter"],
        "multiplex": a["collapse_redundancy"], "blast_num_matches": a["blast_num_matches"],
        "blast_evalue": a["blast_evalue"], "sequence_version": a["sequence_version"],
        "domain": a["domain"],
    }
    if mode == "blast":
        params |= {
            # check_args: the BLAST import searches --fasta-db unless told otherwise
            "import_blast_fasta_db": a["import_blast_fasta_db"] or a["fasta_db"],
            "import_blast_num_matches": a["import_blast_num_matches"],
            "import_blast_evalue": a["import_blast_evalue"],
        }
    if a["families"] is not None:
        params["families"] = a["families"]
    if a["domain"] and a["domain_region"] is not None:
        params["domain_region"] = a["domain_region"]
        if mode == "accessions" and a.get("domain_family") is not None:
            params["domain_family"] = a["domain_family"]
    return params


CREATE_EST: Final = Script(
    name="create_est_nextflow_params.py", workflow="pipelines/est/est.nf",
    options=(
        Option("--duckdb-memory-limit"), Option("--duckdb-threads", "int"),
        Option("--fasta-shards", "int"), Option("--accession-shards", "int"),
        Option("--fasta-db", required=True), Option("--collapse-redundancy", "flag", False),
        Option("--blast-num-matches", "int"), Option("--blast-evalue"), _SEQUENCE_VERSION,
        _FILTER, _FAMILIES, Option("--domain", "flag", False),
        Option("--domain-region", choices=("domain", "n-terminal", "c-terminal")),
        _INPUT_FILE, *SHARED,
    ),
    subcommands={"blast": _IMPORT_BLAST, "family": (), "fasta": (),
                 "accessions": (Option("--domain-family"),)},
    subcommand_dest="import_mode", render=_render_est,
)


def _render_generatessn(a: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "blast_parquet": a["blast_parquet"], "fasta_file": a["fasta_file"],
        "source_ids_file": a["source_ids_file"], "seq_meta_file": a["seq_meta_file"],
        "final_output_dir": a["output_dir"], "threshold_metric": a["threshold_metric"],
        "threshold_min_val": a["threshold_min_val"], "min_length": a["min_length"],
        "max_length": a["max_length"], "filter": a["filter"], "ssn_name": a["ssn_name"],
        "job_name": a["job_name"], "maxfull": a["maxfull"], "efi_config": a["efi_config"],
        "db_version": a["db_version"], "job_id": a["job_id"], "efi_db": a["efi_db"],
    }


CREATE_GENERATESSN: Final = Script(
    name="create_generatessn_nextflow_params.py", workflow="pipelines/generatessn/generatessn.nf",
    options=(
        Option("--threshold-metric", default="alignment_score", choices=(
            "pident", "alignment_length", "bitscore", "query_length", "subject_length",
            "alignment_score")),
        Option("--threshold-min-val", "float", required=True), _FILTER,
        Option("--min-length"), Option("--max-length"),
        Option("--ssn-name", required=True), Option("--job-name", required=True),
        Option("--maxfull", default=0),
    ),
    subcommands={"manual": (
        Option("--blast-parquet", required=True), Option("--fasta-file", required=True),
        Option("--seq-meta-file", required=True), Option("--source-ids-file", required=True),
        Option("--db-version", default=100), *SHARED,
    )},
    subcommand_dest="mode", render=_render_generatessn, leaks_kwargs=True,
    named=frozenset({
        "blast_parquet", "fasta_file", "source_ids_file", "seq_meta_file", "output_dir",
        "efi_config", "db_version", "job_id", "efi_db", "ssn_name", "job_name", "maxfull",
        "threshold_min_val", "threshold_metric", "min_length", "max_length", "filter"}),
)


CREATE_COLORSSN: Final = Script(
    name="create_colorssn_nextflow_params.py", workflow="pipelines/colorssn/colorssn.nf",
    options=(Option("--ssn-input", required=True), Option("--fasta-db", required=True), *SHARED),
    render=lambda a: {"final_output_dir": a["output_dir"], "ssn_input": a["ssn_input"],
                      "fasta_db": a["fasta_db"], "efi_config": a["efi_config"],
                      "efi_db": a["efi_db"]},
    drops_none=False,
)

CREATE_NB_CONN: Final = Script(
    name="create_nb_conn_nextflow_params.py",
    workflow="pipelines/neighborhoodconnectivity/neighborhoodconnectivity.nf",
    options=(Option("--ssn-input", required=True), *SHARED),
    render=lambda a: {"final_output_dir": a["output_dir"], "ssn_input": a["ssn_input"],
                      "efi_config": a["efi_config"], "efi_db": a["efi_db"]},
    leaks_kwargs=True, named=frozenset({"ssn_input", "efi_config", "efi_db", "output_dir"}),
)

CREATE_CONV_RATIO: Final = Script(
    name="create_conv_ratio_nextflow_params.py",
    workflow="pipelines/convergenceratio/convergenceratio.nf",
    options=(Option("--ascore", "int", 5), Option("--colored-ssn-input", required=True),
             Option("--fasta-db", required=True), *SHARED),
    render=lambda a: {"blast_evalue": f"1e-{a['ascore']}", "efi_config": a["efi_config"],
                      "efi_db": a["efi_db"], "fasta_db": a["fasta_db"],
                      "final_output_dir": a["output_dir"], "ssn_input": a["colored_ssn_input"]},
    leaks_kwargs=True,
    named=frozenset({"colored_ssn_input", "ascore", "efi_config", "efi_db", "fasta_db",
                     "output_dir"}),
)


def _render_clusteranalysis(a: Mapping[str, Any]) -> dict[str, Any]:
    name = "create_clusteranalysis_nextflow_params.py"
    residues: Any = ""
    thresholds: list[float] = []
    if a["compute_cons_res"]:
        if not a["residues"] or not a["pid_thresholds"]:
            raise EstArgumentError(f"{name}: Both --residues and --pid-threshold must be passed "
                                   f"when --compute-cons-res is specified")
        try:
            thresholds = [float(x.strip()) for x in a["pid_thresholds"].split(",")]
        except ValueError:
            raise EstArgumentError(f"{name}: --pid-threshold must be a comma-separated list of "
                                   f"percentages from 0-100") from None
        for x in thresholds:
            _in_range(name, "--pid-threshold", x, 0, 100)
        residues = [x.strip() for x in a["residues"].split(",")]
    return {
        "final_output_dir": a["output_dir"], "ssn_input": a["ssn_input"],
        "fasta_db": a["fasta_db"], "efi_config": a["efi_config"], "efi_db": a["efi_db"],
        "max_msa_sequences": a["max_msa_seq"], "min_msa_sequences": a["min_msa_seq"],
        "make_weblogos": a["weblogo"], "make_hmms": a["hmms"],
        "make_length_histograms": a["length_histo"],
        "compute_conserved_residues": a["compute_cons_res"],
        "conserved_residues": residues, "pid_thresholds": thresholds,
    }


CREATE_CLUSTERANALYSIS: Final = Script(
    name="create_clusteranalysis_nextflow_params.py",
    workflow="pipelines/clusteranalysis/clusteranalysis.nf",
    options=(
        Option("--ssn-input", required=True), Option("--fasta-db", required=True),
        Option("--max-msa-seq", "int", 750), Option("--min-msa-seq", "int", 3),
        Option("--weblogo", "bool", True), Option("--hmms", "bool", True),
        Option("--length-histo", "bool", True), Option("--compute-cons-res", "bool", False),
        Option("--residues"), Option("--pid-thresholds"), *SHARED,
    ),
    render=_render_clusteranalysis, leaks_kwargs=True,
    named=frozenset({"ssn_input", "efi_config", "efi_db", "fasta_db", "output_dir",
                     "max_msa_seq", "min_msa_seq", "weblogo", "hmms", "length_histo",
                     "compute_cons_res", "residues", "pid_thresholds"}),
)


def _render_gnt(a: Mapping[str, Any]) -> dict[str, Any]:
    name = "create_gnt_nextflow_params.py"
    _in_range(name, "--nb-size", a["nb_size"], 1, 20)
    _in_range(name, "--cooc-threshold", a["cooc_threshold"], 0, 1)
    return {"final_output_dir": a["output_dir"], "ssn_input": a["ssn_input"],
            "efi_config": a["efi_config"], "efi_db": a["efi_db"], "fasta_db": a["fasta_db"],
            "nb_size": a["nb_size"], "cooc_threshold": a["cooc_threshold"]}


CREATE_GNT: Final = Script(
    name="create_gnt_nextflow_params.py", workflow="pipelines/gnt/gnt.nf",
    options=(Option("--ssn-input", required=True), Option("--fasta-db", required=True),
             Option("--nb-size", "int", 20), Option("--cooc-threshold", "float", 0.20), *SHARED),
    render=_render_gnt, drops_none=False,
)


def _render_gnd(a: Mapping[str, Any]) -> dict[str, Any]:
    name = "create_gnd_nextflow_params.py"
    if a["import_mode"] == "blast" and a["import_blast_fasta_db"] is None:
        raise EstArgumentError(f"{name}: When --import-mode is blast, --import-blast-fasta-db "
                               f"must be specified")
    if a["nb_size"]:  # EST tests truthiness: 0 passes
        _in_range(name, "--nb-size", a["nb_size"], 1, 20)
    return {"final_output_dir": a["output_dir"], "import_mode": a["import_mode"],
            "input_file": a["input_file"], "efi_config": a["efi_config"], "efi_db": a["efi_db"],
            "nb_size": a["nb_size"], "import_blast_fasta_db": a["import_blast_fasta_db"],
            "import_blast_num_matches": a["import_blast_num_matches"],
            "import_blast_evalue": a["import_blast_evalue"]}


CREATE_GND: Final = Script(
    name="create_gnd_nextflow_params.py", workflow="pipelines/gnd/gnd.nf",
    options=(Option("--import-mode", required=True, choices=("blast", "fasta", "accessions")),
             Option("--input-file", required=True), Option("--nb-size", "int"),
             Option("--fasta-db"), *_IMPORT_BLAST, *SHARED),
    render=_render_gnd, leaks_kwargs=True,
    named=frozenset({"import_mode", "input_file", "efi_config", "efi_db", "output_dir",
                     "import_blast_fasta_db", "import_blast_num_matches", "import_blast_evalue",
                     "nb_size"}),
)


def _render_taxonomy(a: Mapping[str, Any]) -> dict[str, Any]:
    if a["import_mode"] == "family" and not a["families"]:
        raise EstArgumentError("create_taxonomy_nextflow_params.py: Family mode requires "
                               "--families argument")
    params = {"final_output_dir": a["output_dir"], "sequence_version": a["sequence_version"],
              "filter": a["filter"], "input_file": a["input_file"], "job_id": a["job_id"],
              "efi_config": a["efi_config"], "efi_db": a["efi_db"],
              "fasta_db": a.get("fasta_db"), "import_mode": a["import_mode"]}
    if a["families"] is not None:
        params["families"] = a["families"]
    return params


CREATE_TAXONOMY: Final = Script(
    name="create_taxonomy_nextflow_params.py", workflow="pipelines/taxonomy/taxonomy.nf",
    options=(_SEQUENCE_VERSION, _FILTER, _INPUT_FILE, _FAMILIES, *SHARED),
    subcommands={"family": (), "fasta": (), "accessions": ()},
    subcommand_dest="import_mode", render=_render_taxonomy,
)

_SEARCH_METHOD = Option("--search-method", choices=("diamond", "blast"))

CREATE_CGFPIDENTIFY: Final = Script(
    name="create_cgfpidentify_nextflow_params.py", workflow="pipelines/cgfp/cgfpidentify.nf",
    options=(Option("--ssn-input", required=True), Option("--fasta-db", required=True),
             _SEARCH_METHOD, Option("--cdhit-sid", "float", 0.85),
             Option("--ref-fasta-db", required=True), *SHARED),
    render=lambda a: {"final_output_dir": a["output_dir"], "ssn_input": a["ssn_input"],
                      "fasta_db": a["fasta_db"], "efi_config": a["efi_config"],
                      "efi_db": a["efi_db"], "sb_search_refdb": a["ref_fasta_db"],
                      "sb_cdhit_sid": a["cdhit_sid"], "sb_identify_method": a["search_method"]},
    leaks_kwargs=True,
    named=frozenset({"ssn_input", "efi_config", "efi_db", "fasta_db", "output_dir",
                     "search_method", "cdhit_sid", "ref_fasta_db"}),
)


def _render_cgfpquantify(a: dict[str, Any]) -> dict[str, Any]:
    # check_args derives the SSN from the identify directory and splits the ids
    a["ssn_input"] = f"{a['identify_dir']}/marker_ssn.xgmml"
    a["metagenome_ids"] = a["metagenome_ids"].split(",")
    return {"final_output_dir": a["output_dir"], "efi_config": a["efi_config"],
            "efi_db": a["efi_db"], "sb_identify_method": a["search_method"],
            "metagenome_db_dir": a["metagenome_db_dir"], "identify_dir": a["identify_dir"],
            "ssn_input": a["ssn_input"], "shortbred_src_dir": a["shortbred_src"]}


CREATE_CGFPQUANTIFY: Final = Script(
    name="create_cgfpquantify_nextflow_params.py", workflow="pipelines/cgfp/cgfpquantify.nf",
    options=(Option("--identify-dir", required=True), Option("--metagenome-db-dir", required=True),
             Option("--metagenome-ids", required=True), _SEARCH_METHOD,
             Option("--shortbred-src", required=True), *SHARED),
    render=_render_cgfpquantify,
    leaks_kwargs=True,
    named=frozenset({"efi_config", "efi_db", "output_dir", "metagenome_db_dir", "identify_dir",
                     "ssn_input", "search_method", "shortbred_src"}),
)

#: Every script, by file name.
SCRIPTS: Final[Mapping[str, Script]] = {s.name: s for s in (
    CREATE_EST, CREATE_GENERATESSN, CREATE_COLORSSN, CREATE_NB_CONN, CREATE_CONV_RATIO,
    CREATE_CLUSTERANALYSIS, CREATE_GNT, CREATE_GND, CREATE_TAXONOMY, CREATE_CGFPIDENTIFY,
    CREATE_CGFPQUANTIFY,
)}
