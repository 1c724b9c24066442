"""What each EST pipeline can run: its parameters, their JSON types and allowed values.

Read from EST's newest pipelines (``pipelines/<p>/*.nf``, the shared modules they
include and ``conf/default_params.config``), not from this product's own writer:
a key is *required* when the pipeline uses it with no default (a missing one
reaches a command line as the text ``null``, or a ``path`` input as null); types are
those the pipeline can use (Groovy takes any non-empty string as true, so a flag
must be a JSON boolean; ``Channel.from`` walks a string as one item, so lists must
be lists); a key that no pipeline reads and no EST script writes is refused, since
Nextflow would ignore it silently. Keys EST's scripts write for their own run
script (`RUNNER_KEYS`) are accepted everywhere. Each message names the key. The
sources, file by file: ``docs/est-params.md``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from efi_job_manager.catalogue.estscripts import RUNNER_KEYS
from efi_job_manager.catalogue.filters import PREDEFINED_TAXONOMY_FILTERS, TAXONOMY_FIELDS

__all__ = ["SCHEMAS", "Schema", "validate"]

Check = Callable[[str, Any], str | None]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _range(key: str, v: float, lo: float | None, hi: float | None) -> str | None:
    if lo is not None and v < lo:
        return f"{key}: {v!r} is below the minimum {lo:g}"
    if hi is not None and v > hi:
        return f"{key}: {v!r} is above the maximum {hi:g}"
    return None


def text(key: str, v: Any) -> str | None:
    """A non-empty string."""
    return None if isinstance(v, str) and v.strip() else f"{key}: expected a non-empty string"


def any_text(key: str, v: Any) -> str | None:
    """A string, possibly empty (a title the pipeline defaults when empty)."""
    return None if isinstance(v, str) else f"{key}: expected a string, got {v!r}"


def boolean(key: str, v: Any) -> str | None:
    """A JSON boolean (Groovy reads the string "false" as true)."""
    return None if isinstance(v, bool) else f"{key}: expected true or false, got {v!r}"


def integer(lo: float | None = None, hi: float | None = None) -> Check:
    """A JSON whole number in a range."""
    def check(key: str, v: Any) -> str | None:
        if not isinstance(v, int) or isinstance(v, bool):
            return f"{key}: expected a whole number, got {v!r}"
        return _range(key, v, lo, hi)
    return check


def number(lo: float | None = None, hi: float | None = None) -> Check:
    """A JSON number in a range."""
    def check(key: str, v: Any) -> str | None:
        if not _is_num(v):
            return f"{key}: expected a number, got {v!r}"
        return _range(key, v, lo, hi)
    return check


def whole_text(lo: float = 0) -> Check:
    """A whole number, as a number or as digits (EST writes ``--min-length`` as text)."""
    def check(key: str, v: Any) -> str | None:
        if isinstance(v, str) and re.fullmatch(r"\d+", v):
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            return f"{key}: expected a whole number (or its digits), got {v!r}"
        return _range(key, v, lo, None)
    return check


def text_or_number() -> Check:
    """A value interpolated into a command line: non-empty text or a number."""
    def check(key: str, v: Any) -> str | None:
        if _is_num(v) or (isinstance(v, str) and v.strip()):
            return None
        return f"{key}: expected a value, got {v!r}"
    return check


def choice(*values: Any) -> Check:
    """One of ``values``, of the same JSON type."""
    def check(key: str, v: Any) -> str | None:
        if any(v == x and type(v) is type(x) for x in values):
            return None
        return f"{key}: {v!r} is not one of {', '.join(repr(x) for x in values)}"
    return check


def job_id(key: str, v: Any) -> str | None:
    """EST writes a given ``--job-id`` as text, its default (42) as a number."""
    if (isinstance(v, str) and v.isdigit()) or (isinstance(v, int) and not isinstance(v, bool)):
        return None
    return f"{key}: expected a job id, got {v!r}"


def size(key: str, v: Any) -> str | None:
    """A memory size: ``"8GB"`` (what EST's scripts write) or a number."""
    if _is_num(v) or (isinstance(v, str) and re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]?B", v.strip(),
                                                          re.IGNORECASE)):
        return None
    return f"{key}: expected a size such as \"8GB\", got {v!r}"


def evalue(key: str, v: Any) -> str | None:
    """An e-value: ``"1e-5"`` (what EST writes) or a number."""
    if (_is_num(v) and v >= 0) or (isinstance(v, str) and re.fullmatch(
            r"\d+(\.\d+)?([eE]-?\d+)?", v)):
        return None
    return f"{key}: expected an e-value such as \"1e-5\", got {v!r}"


_FAMILY: Final = r"(PF\d{5}|IPR\d{6}|CL\d{4})"


def families(key: str, v: Any) -> str | None:
    """Comma-separated PF/IPR/CL accessions without spaces (EST's Perl drops anything else)."""
    if isinstance(v, str) and re.fullmatch(rf"{_FAMILY}(,{_FAMILY})*", v, re.IGNORECASE):
        return None
    return f"{key}: {v!r} is not a comma-separated list of PF/IPR/CL accessions (no spaces)"


def domain_family(key: str, v: Any) -> str | None:
    """One Pfam family (``EFI::Import::Config::Source``)."""
    if isinstance(v, str) and re.fullmatch(r"PF\d+", v, re.IGNORECASE):
        return None
    return f"{key}: {v!r} is not one Pfam family (PF#####)"


def file_path(key: str, v: Any) -> str | None:
    """A path to an existing file."""
    if not isinstance(v, str) or not v:
        return f"{key}: expected a file path, got {v!r}"
    return None if Path(v).is_file() else f"{key}: no such file {v!r}"


def dir_path(key: str, v: Any) -> str | None:
    """A path to an existing directory."""
    if not isinstance(v, str) or not v or not Path(v).is_dir():
        return f"{key}: no such directory {v!r}"
    return None


def text_list(key: str, v: Any) -> str | None:
    """A non-empty JSON list of non-empty strings (a string would be walked as one item)."""
    if isinstance(v, list) and v and all(isinstance(i, str) and i for i in v):
        return None
    return f"{key}: expected a non-empty list of strings, got {v!r}"


def number_list(lo: float | None = None, hi: float | None = None) -> Check:
    """A JSON list of numbers (possibly empty)."""
    def check(key: str, v: Any) -> str | None:
        if not isinstance(v, list):
            return f"{key}: expected a list of numbers, got {v!r}"
        for item in v:
            if not _is_num(item):
                return f"{key}: {item!r} in the list is not a number"
            problem = _range(key, item, lo, hi)
            if problem:
                return problem
        return None
    return check


def residues(key: str, v: Any) -> str | None:
    """One-letter residues as a list, or ``""`` (what EST writes when none are counted)."""
    if v == "" or (isinstance(v, list) and all(isinstance(i, str) and re.fullmatch(
            r"[A-Za-z]", i) for i in v)):
        return None
    return f"{key}: expected a list of one-letter residues (or \"\"), got {v!r}"


def accepted(key: str, v: Any) -> str | None:
    """Written by EST's scripts, read by no pipeline: any value."""
    return None


# -- the filter list (lib/EFI/Import/Config/Filter.pm, filter_ids.pl) ------------------------

_FILTER_GRAMMAR: Final = ("fragments, fraction=N, family=PF…|IPR…[,…], predef-filter=NAME, "
                          "predef-file=PATH, user-filter=PATH, min_seq_length=N, "
                          "max_seq_length=N, explicit-ids-file=PATH")


def _filter_entry(item: str) -> str | None:
    name, sep, value = item.partition("=")
    if name == "fragments" and not sep:
        return None
    if name in ("fraction", "min_seq_length", "max_seq_length") and re.fullmatch(r"[1-9]\d*",
                                                                                  value):
        return None
    if name == "family" and re.fullmatch(r"(PF\d{5}|IPR\d{6})(,(PF\d{5}|IPR\d{6}))*", value,
                                         re.IGNORECASE):
        return None
    if name == "predef-filter":
        if value in PREDEFINED_TAXONOMY_FILTERS:
            return None
        return (f"predef-filter={value!r} is not one of EST's predefined taxonomy filters "
                f"({', '.join(PREDEFINED_TAXONOMY_FILTERS)})")
    if name in ("predef-file", "explicit-ids-file") and value:
        return None if Path(value).is_file() else f"no such file {value!r}"
    if name == "user-filter" and value:
        return _taxonomy_file(Path(value))
    return f"{item!r} is not EST's filter syntax ({_FILTER_GRAMMAR})"


def filters(key: str, v: Any) -> str | None:
    """EST's ``filter`` list: each entry in its grammar, files present and readable."""
    if not isinstance(v, list):
        return f"{key}: expected a list of filter strings, got {v!r}"
    for item in v:
        if not isinstance(item, str):
            return f"{key}: {item!r} is not a string"
        problem = _filter_entry(item)
        if problem:
            return f"{key}: {problem}"
    return None


def _taxonomy_file(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        return f"user-filter {str(path)!r} is not a readable JSON taxonomy filter: {exc}"
    if isinstance(data, list) and len(data) == 1:
        data = data[0]  # the form EST read before April 2026
    if not isinstance(data, dict) or not isinstance(data.get("conditions"), list) \
            or not data["conditions"]:
        return "a user taxonomy filter is an object with a non-empty list of conditions"
    if data.get("operator", "OR") not in ("AND", "OR"):
        return f"taxonomy filter operator {data.get('operator')!r} is not AND or OR"
    for cond in data["conditions"]:
        if not isinstance(cond, dict) or not isinstance(cond.get("value"), str) \
                or not cond.get("value"):
            return "every taxonomy condition needs a field and a value"
        field = cond.get("field")
        if field not in TAXONOMY_FIELDS:
            return (f"taxonomy field {field!r} is not a column of EFI's taxonomy table "
                    f"({', '.join(TAXONOMY_FIELDS)})")
        if "'" in cond["value"] or "\\" in cond["value"]:
            return "a quote or backslash in a taxonomy value breaks EST's SQL"
        for flag in ("negate", "exact"):
            if flag in cond and cond[flag] not in ("true", "false"):
                return (f"taxonomy condition {flag} is {cond[flag]!r}: EST compares it with "
                        f"the strings \"true\" and \"false\"")
    return None


# -- the pipelines ---------------------------------------------------------------------------


@attrs.frozen
class Schema:
    """What one EST pipeline can run.

    Attributes:
        name: The pipeline's short name (``est``…).
        workflow: Its Nextflow script (``est/est.nf``).
        required: Keys it needs in every run.
        keys: Every key it reads or EST's script writes, with its check.
        modes: ``import_mode`` → keys that mode needs (empty: the pipeline has no modes).
        pairs: ``(low, high)`` keys whose values must not cross.
        warnings: ``(key, predicate, message)``: runnable but probably not meant.

    """

    name: str
    workflow: str
    required: frozenset[str]
    keys: Mapping[str, Check]
    modes: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    pairs: tuple[tuple[str, str], ...] = ()
    warnings: tuple[tuple[str, Callable[[Mapping[str, Any]], bool], str], ...] = ()


_RUNNER: Final[dict[str, Check]] = dict.fromkeys(RUNNER_KEYS, accepted)
_BASE: Final[dict[str, Check]] = {
    **_RUNNER, "final_output_dir": dir_path, "efi_config": text, "efi_db": text,
    "job_id": job_id,
}
_TITLED: Final = {**_BASE, "job_name": any_text}
_SEQUENCE_VERSION: Final = choice("uniprot", "uniref90", "uniref50")
_DB_SIZES: Final[dict[str, Check]] = {
    "uniprot_db_size": size, "uniref90_db_size": size, "uniref50_db_size": size,
    "memory_cpu_ratio": number(0),
}
_IMPORT: Final[dict[str, Check]] = {
    "import_mode": text, "input_file": file_path, "families": families, "filter": filters,
    "sequence_version": _SEQUENCE_VERSION, "fasta_db": text, "domain": boolean,
    "domain_region": choice("domain", "central", "n-terminal", "c-terminal"),
    "domain_family": domain_family, "import_blast_fasta_db": text,
    "import_blast_num_matches": integer(1), "import_blast_evalue": evalue, **_DB_SIZES,
}
_IMPORT_MODES: Final = {"accessions": ("input_file",), "blast": ("input_file",
                                                                 "import_blast_fasta_db"),
                        "family": ("families",), "fasta": ("input_file",)}
_ALL_BY_ALL: Final[dict[str, Check]] = {
    "blast_evalue": evalue, "blast_num_matches": integer(1), "num_fasta_shards": integer(1),
    "sort_seq_by_length": boolean, "duckdb_temp_dir": text,
}
_SSN_INPUT: Final = frozenset({"final_output_dir", "ssn_input", "efi_config", "efi_db",
                               "fasta_db"})

#: Every pipeline, by short name.
SCHEMAS: Final[Mapping[str, Schema]] = {s.name: s for s in (
    Schema("est", "est/est.nf",
           required=frozenset({"final_output_dir", "efi_config", "efi_db", "fasta_db",
                               "import_mode"}),
           keys={**_BASE, **_IMPORT, **_ALL_BY_ALL, "multiplex": boolean,
                 "num_accession_shards": integer(1), "duckdb_memory_limit": size,
                 "duckdb_threads": integer(1), "compute_local_storage": text,
                 "blastp_threads": integer(1), "blastp_memory_limit": size,
                 "cdhit_threads": integer(1), "cdhit_memory_limit": size},
           modes=_IMPORT_MODES,
           warnings=(("multiplex", lambda p: "multiplex" not in p,
                      "multiplex is not set: EST's default (true) runs CD-HIT"),)),
    Schema("taxonomy", "taxonomy/taxonomy.nf",
           required=frozenset({"final_output_dir", "efi_config", "efi_db", "fasta_db",
                               "import_mode"}),
           keys={**_BASE, **_IMPORT}, modes=_IMPORT_MODES),
    Schema("generatessn", "generatessn/generatessn.nf",
           required=frozenset({"final_output_dir", "efi_config", "efi_db", "blast_parquet",
                               "fasta_file", "source_ids_file", "seq_meta_file",
                               "threshold_min_val", "db_version"}),
           keys={**_TITLED, "blast_parquet": file_path, "fasta_file": file_path,
                 "source_ids_file": file_path, "seq_meta_file": file_path,
                 "threshold_min_val": number(0),
                 # the threshold renderer's choices, narrower than create_generatessn's
                 "threshold_metric": choice("pident", "bitscore", "alignment_score"),
                 "min_length": whole_text(0), "max_length": whole_text(0), "filter": filters,
                 "ssn_name": accepted, "maxfull": accepted, "db_version": text_or_number(),
                 "duckdb_temp_dir": text, "duckdb_memory_limit": size,
                 "duckdb_threads": integer(1), "max_ssn_edges": integer(1),
                 "make_repnodes": boolean, "repnode_pct": number_list(1, 100),
                 "compute_ssn_nc_factor": boolean, "color_ssn": boolean,
                 "sequence_version": _SEQUENCE_VERSION},
           pairs=(("min_length", "max_length"),),
           warnings=(("filter", lambda p: any(
               isinstance(f, str) and f.startswith("user-filter=") for f in p.get("filter") or []),
               "generatessn.nf passes no user-filter to filter_ids: the taxonomy filter is "
               "ignored"),)),
    Schema("colorssn", "colorssn/colorssn.nf", required=_SSN_INPUT,
           keys={**_TITLED, "ssn_input": file_path, "fasta_db": text}),
    Schema("neighborhoodconnectivity", "neighborhoodconnectivity/neighborhoodconnectivity.nf",
           required=frozenset({"final_output_dir", "ssn_input"}),
           keys={**_TITLED, "ssn_input": file_path}),
    Schema("convergenceratio", "convergenceratio/convergenceratio.nf", required=_SSN_INPUT,
           keys={**_BASE, **_ALL_BY_ALL, "ssn_input": file_path, "fasta_db": text}),
    Schema("clusteranalysis", "clusteranalysis/clusteranalysis.nf", required=_SSN_INPUT,
           keys={**_TITLED, "ssn_input": file_path, "fasta_db": text,
                 "min_msa_sequences": integer(0), "max_msa_sequences": integer(0),
                 "make_weblogos": boolean, "make_hmms": boolean,
                 "make_length_histograms": boolean, "compute_conserved_residues": boolean,
                 "conserved_residues": residues, "pid_thresholds": number_list(0, 100),
                 "muscle_version": choice(3, 5)},
           pairs=(("min_msa_sequences", "max_msa_sequences"),)),
    Schema("gnt", "gnt/gnt.nf", required=_SSN_INPUT,
           keys={**_TITLED, "ssn_input": file_path, "fasta_db": text,
                 "nb_size": integer(1, 20), "cooc_threshold": number(0, 1)}),
    Schema("gnd", "gnd/gnd.nf",
           required=frozenset({"final_output_dir", "efi_config", "efi_db", "import_mode",
                               "input_file"}),
           keys={**_TITLED, "import_mode": text, "input_file": file_path,
                 "nb_size": integer(1, 20), "sequence_version": _SEQUENCE_VERSION,
                 "import_blast_fasta_db": text, "import_blast_num_matches": integer(1),
                 "import_blast_evalue": evalue, "fasta_db": accepted},
           modes={"accessions": (), "blast": ("import_blast_fasta_db",), "fasta": ()}),
    Schema("cgfpidentify", "cgfp/cgfpidentify.nf",
           required=_SSN_INPUT | {"sb_search_refdb"},
           keys={**_TITLED, "ssn_input": file_path, "fasta_db": text, "sb_search_refdb": text,
                 "sb_identify_method": choice("diamond", "blast"), "sb_cdhit_sid": number(0, 1),
                 "sb_cons_thresh": number(0), "sb_diamond_sensitivity": accepted,
                 "sb_identify_threads": integer(1)}),
    Schema("cgfpquantify", "cgfp/cgfpquantify.nf",
           required=frozenset({"final_output_dir", "ssn_input", "identify_dir",
                               "metagenome_db_dir", "metagenome_ids", "shortbred_src_dir"}),
           keys={**_TITLED, "ssn_input": file_path, "identify_dir": dir_path,
                 "metagenome_db_dir": text, "metagenome_ids": text_list,
                 "shortbred_src_dir": text, "sb_identify_method": choice("diamond", "blast"),
                 "sb_quantify_threads": integer(1)}),
)}


def validate(schema: Schema, params: Mapping[str, Any], *,
             allow_unknown: bool = False) -> tuple[list[str], list[str]]:
    """Check ``params`` against what the pipeline can run.

    Returns:
        ``(errors, warnings)``: any error means EST's pipeline would fail or
        silently do something else.

    """
    errors: list[str] = []
    warnings: list[str] = []
    for key in sorted(set(params) - set(schema.keys)):
        msg = (f"{key}: unknown parameter for {schema.workflow} (no EST script writes it and "
               f"the pipeline never reads it)")
        (warnings if allow_unknown else errors).append(msg)
    required = set(schema.required)
    if schema.modes:
        mode = params.get("import_mode")
        if isinstance(mode, str) and mode in schema.modes:
            required.update(schema.modes[mode])
        else:
            errors.append(f"import_mode: {mode!r} is not one of "
                          f"{', '.join(repr(m) for m in schema.modes)}")
    for key in sorted(required):
        if params.get(key) is None or params.get(key) in ("", []):
            errors.append(f"{key}: required by {schema.workflow} and missing")
    for key, value in params.items():
        check = schema.keys.get(key)
        if check is not None and value is not None:
            problem = check(key, value)
            if problem:
                errors.append(problem)
    for low, high in schema.pairs:
        lo, hi = _as_number(params.get(low)), _as_number(params.get(high))
        if lo is not None and hi is not None and hi != 0 and lo > hi:
            errors.append(f"{low}: {lo:g} is above {high} {hi:g}")
    for _key, predicate, message in schema.warnings:
        if predicate(params):
            warnings.append(message)
    return errors, warnings


def _as_number(value: Any) -> float | None:
    if isinstance(value, str) and re.fullmatch(r"\d+", value):
        return float(value)
    return float(value) if _is_num(value) else None
