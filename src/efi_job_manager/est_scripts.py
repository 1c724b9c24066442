"""EST's parameter scripts, ``bin/create_*_nextflow_params.py``, as this product renders them.

EST ships one script per pipeline that turns command-line options into the
pipeline's params file. They are the reference for what a params file holds: key
names, which keys are written when, and each value's JSON type (an option without
``type=`` is written as text, ``type=int`` as a number, a ``store_true`` flag as a
boolean, ``--filter`` as a list). Each `Script` below declares a script's options
as EST's ``argparse`` declares them, and its ``render`` reproduces the script's
``check_args``/``render_params`` for a valid call. An `EstCall` is one call: its
`EstCall.argv` is the exact command line that makes EST's own script write the
same file, so a site (and this project's golden tests) can check one against the
other. Where the scripts come from and what each key means: ``docs/est-params.md``.

EST's scripts also write the keys of their run-script template
(``nextflow_config``, ``workflow_def``, ``templates_dir``, ``template``) through
``**kwargs``; no pipeline reads them (`RUNNER_KEYS`) and they are not rendered here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

__all__ = [
    "RUNNER_KEYS",
    "SCRIPTS",
    "EstArgumentError",
    "EstCall",
    "Option",
    "Script",
]

#: Keys EST's scripts write through ``**kwargs`` for their own run script; no pipeline reads them.
RUNNER_KEYS: Final = frozenset(
    {"nextflow_config", "workflow_def", "templates_dir", "template", "template_env"})


class EstArgumentError(ValueError):
    """A call EST's script would refuse (it prints a message and exits 1 or 2)."""


@attrs.frozen
class Option:
    """One command-line option of an EST script, as its ``add_argument`` declares it.

    Attributes:
        flag: The option (``--fasta-shards``).
        kind: ``str`` (no ``type=``), ``int``, ``float``, ``flag`` (``store_true``),
            ``bool`` (``BooleanOptionalAction``: ``--x`` / ``--no-x``) or ``append``.
        default: The declared default (None when there is none).
        choices: The declared ``choices``, if any.
        required: Declared ``required=True``.

    """

    flag: str
    kind: str = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    required: bool = False

    @property
    def dest(self) -> str:
        """Return the attribute name argparse gives the option."""
        return self.flag[2:].replace("-", "_")


Render = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.frozen
class Script:
    """One of EST's parameter scripts.

    Attributes:
        name: The file in EST's ``bin/`` (``create_est_nextflow_params.py``).
        workflow: The Nextflow workflow it writes parameters for (``pipelines/est/est.nf``).
        options: Options every call takes (including EST's ``shared_args``).
        subcommands: Subcommand → options only it takes (empty: no subcommand).
        subcommand_dest: The attribute that holds the subcommand (``import_mode``).
        render: ``parsed options → params`` (EST's ``check_args`` + ``render_params``).
        named: Attributes ``render_params`` names; with ``leaks_kwargs`` every other
            parsed attribute is written too (EST's ``params.update(kwargs)``).
        leaks_kwargs: The script writes its unnamed attributes (``**kwargs``).
        drops_none: The script removes keys whose value is None.

    """

    name: str
    workflow: str
    options: tuple[Option, ...]
    render: Render
    subcommands: Mapping[str, tuple[Option, ...]] = attrs.field(factory=dict)
    subcommand_dest: str | None = None
    named: frozenset[str] = frozenset()
    leaks_kwargs: bool = False
    drops_none: bool = True

    def option(self, flag: str, subcommand: str | None) -> Option:
        """Return the option a flag names for a subcommand (KeyError if the script has none)."""
        for opt in (*self.options, *self.subcommands.get(subcommand or "", ())):
            if opt.flag == flag:
                return opt
        raise KeyError(f"{self.name} {subcommand or ''} has no option {flag}")


@attrs.frozen
class EstCall:
    """One call of an EST script: its subcommand and options, in order.

    Attributes:
        script: The script.
        subcommand: The subcommand (``family``…), or None.
        args: ``(flag, value)`` pairs in order; value None for a flag without a value.
        extras: Values ``render_params`` needs but the script's parser cannot take
            (EST's ``create_taxonomy`` writes ``fasta_db`` and has no ``--fasta-db``).

    """

    script: Script
    subcommand: str | None
    args: tuple[tuple[str, str | None], ...]
    extras: Mapping[str, str] = attrs.field(factory=dict)

    def argv(self) -> list[str]:
        """Return the arguments after the script's name, as EST's script takes them."""
        out = [self.subcommand] if self.subcommand else []
        for flag, value in self.args:
            out.append(flag)
            if value is not None:
                out.append(value)
        return out

    def parsed(self) -> dict[str, Any]:
        """Return the options as EST's ``argparse`` parses them (types, defaults, lists)."""
        script = self.script
        if script.subcommands and self.subcommand not in script.subcommands:
            raise EstArgumentError(f"{script.name}: invalid choice {self.subcommand!r}")
        declared = (*script.options, *script.subcommands.get(self.subcommand or "", ()))
        values: dict[str, Any] = {opt.dest: opt.default for opt in declared}
        if script.subcommand_dest:
            values[script.subcommand_dest] = self.subcommand
        given: set[str] = set()
        for flag, value in self.args:
            negated = flag.startswith("--no-")
            opt = script.option("--" + flag[5:] if negated else flag, self.subcommand)
            given.add(opt.flag)
            if opt.kind == "append":
                if value is None:
                    raise EstArgumentError(f"{script.name}: {opt.flag} expects a value")
                values[opt.dest] = [*(values[opt.dest] or []), value]
            else:
                values[opt.dest] = _parse_value(script.name, opt, value, negated)
        for opt in declared:
            if opt.required and opt.flag not in given:
                raise EstArgumentError(f"{script.name}: the following arguments are required: "
                                       f"{opt.flag}")
        values.update(self.extras)
        return values

    def render(self) -> dict[str, Any]:
        """Return the params file EST's script writes for this call."""
        script = self.script
        values = self.parsed()
        params = script.render(values)
        if script.leaks_kwargs:
            for dest, value in values.items():
                if dest not in script.named and dest not in RUNNER_KEYS \
                        and dest != script.subcommand_dest:
                    params[dest] = value
        if script.drops_none:
            params = {k: v for k, v in params.items() if v is not None}
        return params


def _parse_value(script: str, opt: Option, value: str | None, negated: bool) -> Any:
    if opt.kind in ("flag", "bool"):
        if value is not None or (negated and opt.kind != "bool"):
            raise EstArgumentError(f"{script}: {opt.flag} takes no value")
        return not negated
    if value is None:
        raise EstArgumentError(f"{script}: {opt.flag} expects a value")
    if opt.choices and value not in opt.choices:
        raise EstArgumentError(f"{script}: argument {opt.flag}: invalid choice: {value!r} "
                               f"(choose from {', '.join(opt.choices)})")
    if opt.kind == "int":
        try:
            return int(value)
        except ValueError:
            raise EstArgumentError(f"{script}: argument {opt.flag}: invalid int value: "
                                   f"{value!r}") from None
    if opt.kind == "float":
        try:
            return float(value)
        except ValueError:
            raise EstArgumentError(f"{script}: argument {opt.flag}: invalid float value: "
                                   f"{value!r}") from None
    return value


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


class CallBuilder:
    """Builds an `EstCall` option by option, refusing options the script does not declare."""

    def __init__(self, script: Script, subcommand: str | None = None) -> None:
        """Start a call of ``script`` (with its subcommand, if it has subcommands)."""
        self.script = script
        self.subcommand = subcommand
        self._args: list[tuple[str, str | None]] = []
        self._extras: dict[str, str] = {}

    def add(self, flag: str, value: str | None) -> CallBuilder:
        """Add ``flag value``; a None value leaves the option out."""
        if value is not None:
            self.script.option(flag, self.subcommand)
            self._args.append((flag, value))
        return self

    def add_all(self, flag: str, values: Sequence[str]) -> CallBuilder:
        """Add ``flag value`` once per value (an ``append`` option)."""
        for value in values:
            self.add(flag, value)
        return self

    def switch(self, flag: str, on: bool | None) -> CallBuilder:
        """Add a flag when ``on``; for a ``--x/--no-x`` option add ``--no-x`` when off."""
        if on is None:
            return self
        opt = self.script.option(flag, self.subcommand)
        if on:
            self._args.append((flag, None))
        elif opt.kind == "bool":
            self._args.append(("--no-" + flag[2:], None))
        return self

    def render_input(self, name: str, value: str) -> CallBuilder:
        """Pass a value ``render_params`` needs that the script's parser cannot take."""
        self._extras[name] = value
        return self

    def build(self) -> EstCall:
        """Return the call."""
        return EstCall(self.script, self.subcommand, tuple(self._args), dict(self._extras))
