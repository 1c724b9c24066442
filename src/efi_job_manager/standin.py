"""A stand-in for EST's Nextflow pipelines, for machines without Nextflow or EST.

Run as ``python -m efi_job_manager.standin <pipeline_name> <params_file>`` in the
job directory (a site sets ``[pipelines] command`` to
``["python", "-m", "efi_job_manager.standin", "{pipeline_name}", "{params_file}"]``).

It does what EST's parameter scripts and pipelines would do with the same
``params.json``, short of the science:

* It checks the parameters against the names, types and ranges the EST pipeline
  accepts (required keys, ``import_mode`` values, the ``filter`` syntax of
  ``EFI::Import::Config::Filter``, ``nb_size`` 1 to 20, ``cooc_threshold`` 0 to 1…) and
  that the files named by ``input_file``, ``ssn_input``, the parent files and the
  ``user-filter=`` file exist. Site resources (``efi_config``, ``fasta_db``…) are
  not looked for: they exist only where EST is installed.
* Unknown keys are rejected. Nextflow itself ignores an unknown parameter (EST
  then silently uses its default), which hides a misspelt key; the stand-in's
  purpose is to catch that. ``EFI_STANDIN_ALLOW_UNKNOWN=1`` turns the rejection
  into a warning, as Nextflow would behave.
* On any rejection it prints ``ERROR ~ …`` lines on stderr and exits with 2.
* Otherwise it prints Nextflow-like progress lines (``-ansi-log false`` style) and
  writes small but real files with EST's names into ``final_output_dir`` (the job
  directory): zipped XGMML networks, SQLite diagram files, tables and a
  ``stats.json`` with EST's keys, its values computed deterministically from the
  input (FASTA headers and accession ids are counted, SSN clusters are the
  connected components of the uploaded network). ``1.out.parquet`` is a
  placeholder carrying Parquet's magic bytes, not a readable Parquet file.

Environment:
    ``EFI_STANDIN_DELAY``: seconds to spend running (default 0), so a demo or a
    test can watch a job run. ``EFI_STANDIN_FAIL``: an exit status (1 to 255) to end
    with after running, writing no results, as a failed pipeline would.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import quoteattr

import attrs

__all__ = ["PIPELINES", "StandinError", "main", "validate"]

EXIT_INVALID: Final = 2
EXIT_RUNTIME: Final = 1


class StandinError(Exception):
    """The run fails the way the EST pipeline would (exit status 1)."""


# -- parameter checks ------------------------------------------------------------------------

Check = Callable[[str, Any], str | None]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _str(key: str, v: Any) -> str | None:
    return None if isinstance(v, str) and v != "" else f"{key}: expected a non-empty string"


def _job_id(key: str, v: Any) -> str | None:
    if isinstance(v, str) and v.isdigit():
        return None
    return f"{key}: expected the job id as a string of digits, got {v!r}"


def _bool(key: str, v: Any) -> str | None:
    return None if isinstance(v, bool) else f"{key}: expected true or false, got {v!r}"


def _int(lo: float | None = None, hi: float | None = None) -> Check:
    def check(key: str, v: Any) -> str | None:
        if not isinstance(v, int) or isinstance(v, bool):
            return f"{key}: expected a whole number, got {v!r}"
        return _range(key, v, lo, hi)
    return check


def _num(lo: float | None = None, hi: float | None = None) -> Check:
    def check(key: str, v: Any) -> str | None:
        if not _is_num(v):
            return f"{key}: expected a number, got {v!r}"
        return _range(key, v, lo, hi)
    return check


def _range(key: str, v: float, lo: float | None, hi: float | None) -> str | None:
    if lo is not None and v < lo:
        return f"{key}: {v!r} is below the minimum {lo:g}"
    if hi is not None and v > hi:
        return f"{key}: {v!r} is above the maximum {hi:g}"
    return None


def _enum(*values: Any) -> Check:
    def check(key: str, v: Any) -> str | None:
        if v in values and type(v) in {type(x) for x in values}:
            return None
        return f"{key}: {v!r} is not one of {', '.join(repr(x) for x in values)}"
    return check


def _size(key: str, v: Any) -> str | None:
    """A Nextflow memory size or count: ``"8GB"``, ``"20 GB"`` or a number."""
    if _is_num(v) or (isinstance(v, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*[KMGT]?B?\s*", v,
                                                          re.IGNORECASE)):
        return None
    return f"{key}: expected a size such as \"8GB\", got {v!r}"


_EVALUE_RE = re.compile(r"^\d+(\.\d+)?([eE]-?\d+)?$")


def _evalue(key: str, v: Any) -> str | None:
    if (_is_num(v) and v >= 0) or (isinstance(v, str) and _EVALUE_RE.match(v)):
        return None
    return f"{key}: expected an e-value such as \"1e-5\", got {v!r}"


def _str_list(key: str, v: Any) -> str | None:
    if isinstance(v, list) and v and all(isinstance(i, str) and i for i in v):
        return None
    return f"{key}: expected a non-empty list of strings, got {v!r}"


def _num_list(lo: float | None = None, hi: float | None = None,
              integers: bool = False) -> Check:
    def check(key: str, v: Any) -> str | None:
        if not isinstance(v, list):
            return f"{key}: expected a list of numbers, got {v!r}"
        for item in v:
            if not _is_num(item) or (integers and not isinstance(item, int)):
                return f"{key}: {item!r} in the list is not a {'whole ' if integers else ''}number"
            problem = _range(key, item, lo, hi)
            if problem:
                return problem
        return None
    return check


def _any_db(key: str, v: Any) -> str | None:
    return None if (isinstance(v, str) and v) or _is_num(v) else f"{key}: expected a value"


_FAMILY = r"(PF\d{5}|IPR\d{6}|CL\d{4})"
_FILTER_FORMS: Final = (
    (re.compile(r"^fragments$"), None),
    (re.compile(r"^fraction=([1-9]\d*)$"), None),
    (re.compile(rf"^family={_FAMILY}(,{_FAMILY})*$"), None),
    (re.compile(r"^predef-filter=[A-Za-z0-9_.-]+$"), None),
    (re.compile(r"^predef-file=(.+)$"), "file"),
    (re.compile(r"^user-filter=(.+)$"), "user-filter"),
    (re.compile(r"^explicit-ids-file=(.+)$"), "file"),
    (re.compile(r"^min_seq_length=\d+$"), None),
    (re.compile(r"^max_seq_length=\d+$"), None),
)
_FILTER_SYNTAX = ("fragments, fraction=N, family=PF#####[,…], predef-filter=NAME, "
                  "predef-file=PATH, user-filter=PATH, explicit-ids-file=PATH, "
                  "min_seq_length=N, max_seq_length=N")


def _filter(key: str, v: Any) -> str | None:
    if not isinstance(v, list):
        return f"{key}: expected a list of filter strings, got {v!r}"
    for item in v:
        if not isinstance(item, str):
            return f"{key}: {item!r} is not a string"
        for pattern, kind in _FILTER_FORMS:
            m = pattern.match(item)
            if not m:
                continue
            if kind is not None:
                problem = _check_file(f"{key} entry {item!r}", m.group(1))
                if problem:
                    return problem
                if kind == "user-filter":
                    problem = _check_taxonomy_file(item, Path(m.group(1)))
                    if problem:
                        return problem
            break
        else:
            return f"{key}: {item!r} is not EST's filter syntax ({_FILTER_SYNTAX})"
    return None


def _check_taxonomy_file(item: str, path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"filter entry {item!r}: not a readable JSON taxonomy filter: {exc}"
    first = data[0] if isinstance(data, list) and data else None
    if not isinstance(first, dict) or not isinstance(first.get("conditions"), list):
        return (f"filter entry {item!r}: a taxonomy filter is a list whose first element "
                f"has conditions")
    for cond in first["conditions"]:
        if not (isinstance(cond, dict) and isinstance(cond.get("field"), str)
                and isinstance(cond.get("value"), str)):
            return f"filter entry {item!r}: every condition needs a field and a value"
        if "'" in cond["value"] or "\\" in cond["value"]:
            return f"filter entry {item!r}: quotes in a taxonomy value break EST's SQL"
    return None


def _check_file(what: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"{what}: expected a file path"
    if not Path(value).is_file():
        return f"{what}: no such file {value!r}"
    return None


def _file(key: str, v: Any) -> str | None:
    return _check_file(key, v)


def _dir(key: str, v: Any) -> str | None:
    if not isinstance(v, str) or not v or not Path(v).is_dir():
        return f"{key}: no such directory {v!r}"
    return None


# -- the pipelines ---------------------------------------------------------------------------


@attrs.frozen
class Pipeline:
    """What one EST pipeline accepts and what the stand-in writes for it.

    Attributes:
        name: The short name (``est``…).
        script: The Nextflow script it stands in for.
        required: Keys every run needs.
        keys: Every accepted key and its check.
        modes: ``import_mode`` → keys that mode requires (empty: no import mode).
        processes: Process names printed as progress.
        run: Writes the outputs; returns ``stats.json``'s content.

    """

    name: str
    script: str
    required: frozenset[str]
    keys: Mapping[str, Check]
    modes: Mapping[str, tuple[str, ...]]
    processes: tuple[str, ...]
    run: Callable[[Mapping[str, Any], Path], dict[str, Any]]


_COMMON: dict[str, Check] = {
    "final_output_dir": _dir, "efi_config": _str, "efi_db": _str, "job_id": _job_id,
}
_NAMED = {**_COMMON, "job_name": _str}
_ALL_BY_ALL: dict[str, Check] = {
    "duckdb_memory_limit": _size, "duckdb_threads": _int(1), "duckdb_temp_dir": _str,
    "num_fasta_shards": _int(1), "blast_num_matches": _int(1), "compute_local_storage": _str,
    "memory_cpu_ratio": _num(0), "blastp_threads": _int(1), "blastp_memory_limit": _size,
    "cdhit_threads": _int(1), "cdhit_memory_limit": _size, "blast_evalue": _evalue,
}
_SEQVER = _enum("uniprot", "uniref90", "uniref50")
_IMPORT: dict[str, Check] = {
    "fasta_db": _str, "num_accession_shards": _int(1), "sequence_version": _SEQVER,
    "uniprot_db_size": _size, "uniref90_db_size": _size, "uniref50_db_size": _size,
    "input_file": _file, "families": lambda k, v: None if isinstance(v, str) and re.fullmatch(
        rf"{_FAMILY}(,{_FAMILY})*", v) else f"{k}: {v!r} is not a comma-separated family list",
    "filter": _filter, "import_mode": _str,
}
_BLAST_IMPORT: dict[str, Check] = {
    "import_blast_fasta_db": _str, "import_blast_num_matches": _int(1),
    "import_blast_evalue": _evalue,
}
_NB_SIZE = _int(1, 20)
_COOC = _num(0, 1)


# -- reading inputs --------------------------------------------------------------------------

_UNIPROT_RE = re.compile(r"^([OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9]([A-Z][A-Z0-9]{2}[0-9]){1,2})"
                         r"(-\d+)?$")


def _seed(*parts: object) -> int:
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _fasta_records(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, str]] = []
    header: str | None = None
    seq: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            line = raw.rstrip("\r\n")
            if line.startswith(">"):
                if header is not None:
                    records.append((header, "".join(seq)))
                header, seq = line[1:].strip(), []
            elif header is not None and line.strip():
                seq.append(line.strip())
    if header is not None:
        records.append((header, "".join(seq)))
    return [(h, s) for h, s in records if s]


def _accessions(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return list(dict.fromkeys(t for t in re.split(r"[\s,]+", text) if t))


def _fasta_id(header: str, index: int) -> str:
    token = header.split(maxsplit=1)[0] if header.strip() else ""
    parts = token.split("|")
    candidate = parts[1] if len(parts) >= 3 else token
    return candidate if _UNIPROT_RE.match(candidate) else f"Z{index:06d}"


def _read_ssn(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".xgmml")]
            if not names:
                raise StandinError(f"{path.name}: the zip file holds no .xgmml network")
            text = zf.read(names[0]).decode("utf-8", errors="replace")
    else:
        text = path.read_text(encoding="utf-8", errors="replace")
    if "<graph" not in text:
        raise StandinError(f"{path.name}: not an XGMML network (no <graph> element)")
    nodes = re.findall(r"<node\b[^>]*?\bid=\"([^\"]*)\"", text)
    edges = re.findall(r"<edge\b[^>]*?\bsource=\"([^\"]*)\"[^>]*?\btarget=\"([^\"]*)\"", text)
    return list(dict.fromkeys(nodes)), edges


def _components(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for n in nodes:
        groups.setdefault(find(n), []).append(n)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


# -- writing outputs -------------------------------------------------------------------------


def _write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    tmp.replace(path)


def _xgmml(title: str, nodes: Sequence[tuple[str, Mapping[str, object]]],
           edges: Sequence[tuple[str, str, float]]) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<graph label={quoteattr(title)} xmlns="http://www.cs.rpi.edu/XGMML">']
    for node_id, atts in nodes:
        lines.append(f"  <node id={quoteattr(node_id)} label={quoteattr(node_id)}>")
        for name, value in atts.items():
            kind = "integer" if isinstance(value, int) else "string"
            lines.append(f"    <att name={quoteattr(name)} type=\"{kind}\" "
                         f"value={quoteattr(str(value))}/>")
        lines.append("  </node>")
    for i, (a, b, score) in enumerate(edges):
        lines.append(f"  <edge id=\"e{i}\" label={quoteattr(f'{a},{b}')} source={quoteattr(a)} "
                     f"target={quoteattr(b)}>")
        lines.append(f"    <att name=\"alignment_score\" type=\"real\" value=\"{score:.1f}\"/>")
        lines.append("  </edge>")
    lines.append("</graph>")
    return "\n".join(lines) + "\n"


def _zip_xgmml(out: Path, zip_name: str, member: str, text: str) -> None:
    tmp = out / f".{zip_name}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text)
    tmp.replace(out / zip_name)


def _clean_name(name: str, default: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9_.-]", "_", name.encode("ascii", "ignore").decode()).strip("_-")
    return (cleaned or default) + ".xgmml"


def _gnd_sqlite(path: Path, ids: Sequence[str], nb_size: int, seed: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.execute("CREATE TABLE metadata (cooccurrence REAL, name TEXT, neighborhood_size INT,"
                   " type TEXT, sequence_source TEXT)")
        db.execute("INSERT INTO metadata VALUES (?, ?, ?, ?, ?)",
                   (0.2, "stand-in", nb_size, "gnd", "UniProt"))
        db.execute("CREATE TABLE attributes (sort_order INT, id TEXT, accession TEXT,"
                   " num_neighbors INT, organism TEXT, cluster_num INT)")
        db.execute("CREATE TABLE neighbors (gene_key INT, accession TEXT, num INT,"
                   " family TEXT, start INT, stop INT)")
        for i, acc in enumerate(ids):
            n = 1 + (seed >> (i % 40)) % (2 * nb_size)
            db.execute("INSERT INTO attributes VALUES (?, ?, ?, ?, ?, ?)",
                       (i, acc, acc, n, "Organism stand-in", 1))
            for j in range(n):
                db.execute("INSERT INTO neighbors VALUES (?, ?, ?, ?, ?, ?)",
                           (i, f"{acc}_nb{j}", j - nb_size, f"PF{(seed + j) % 99999:05d}",
                            1000 * j, 1000 * j + 900))
    db.close()
    tmp.replace(path)


def _fake_sequence(seed: int, length: int) -> str:
    alphabet = "ACDEFGHIKLMNPQRSTVWY"
    out = []
    x = seed or 1
    for _ in range(length):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append(alphabet[x >> 59 if (x >> 59) < 20 else (x >> 59) - 12])
    return "M" + "".join(out)


# -- import (est, taxonomy, gnd) -----------------------------------------------------------


@attrs.define
class _Imported:
    ids: list[str]
    sequences: dict[str, str]
    stats: dict[str, int]


def _import(params: Mapping[str, Any]) -> _Imported:  # noqa: PLR0915
    mode = params["import_mode"]
    stats: dict[str, int] = {}
    ids: list[str] = []
    sequences: dict[str, str] = {}
    seed = _seed(mode, params.get("families"), params.get("sequence_version"))
    if mode == "fasta":
        records = _fasta_records(Path(params["input_file"]))
        for i, (header, seq) in enumerate(records):
            acc = _fasta_id(header, i)
            ids.append(acc)
            sequences[acc] = seq
        matched = sum(1 for a in ids if not a.startswith("Z"))
        stats.update(num_ids=len(ids), num_headers=len(records), num_matched=matched,
                     num_unmatched=len(ids) - matched)
    elif mode == "accessions":
        raw = _accessions(Path(params["input_file"]))
        ids = [a for a in raw if _UNIPROT_RE.match(a)]
        stats.update(num_ids=len(raw), num_matched=len(ids), num_unmatched=len(raw) - len(ids),
                     num_foreign=0)
    elif mode == "blast":
        records = _fasta_records(Path(params["input_file"]))
        if not records:
            raise StandinError("BLAST did not return any matches.  Verify that the sequence is "
                               "a protein and not a nucleotide sequence.")
        query = records[0][1]
        cap = int(params.get("import_blast_num_matches", 1000))
        count = min(cap, 50 + _seed(query) % 400)
        ids = [f"A0A{(_seed(query, i) % 10**6):06d}" for i in range(count)]
        stats.update(num_blast_retr=count)
    elif mode == "family":
        pass
    else:  # validated before
        raise StandinError(f"Mode '{mode}' not yet implemented")
    families = [f for f in str(params.get("families") or "").split(",") if f]
    if families:
        fam_ids = [f"{fam[:2]}{(_seed(fam, i) % 10**7):07d}" for fam in families
                   for i in range(20 + _seed(fam) % 180)]
        shared = len(set(fam_ids) & set(ids))
        ids = list(dict.fromkeys([*ids, *fam_ids]))
        if mode == "family":
            stats["num_ids"] = len(ids)
        elif shared:
            stats["num_shared_ids"] = shared
    version = params.get("sequence_version", "uniprot")
    if mode == "family" and version != "uniprot":
        stats.update(num_full_family=len(ids), num_uniref90_in_family=len(ids) * 6 // 10,
                     num_uniref50_in_family=len(ids) * 3 // 10)
    for entry in params.get("filter", []):
        name, _, value = entry.partition("=")
        before = len(ids)
        if name == "fraction":
            ids = ids[:: int(value)]
            stats["num_filter_fraction"] = before - len(ids)
        elif name == "fragments":
            ids = [a for a in ids if _seed(a, "fragment") % 20]
            stats["num_filter_fragment"] = before - len(ids)
        elif name in ("user-filter", "predef-filter", "predef-file"):
            ids = [a for a in ids if _seed(a, "taxonomy", value) % 3]
            stats["num_filter_taxonomy"] = before - len(ids)
        elif name == "family":
            ids = [a for a in ids if _seed(a, "family", value) % 10]
            stats["num_filter_family"] = before - len(ids)
        elif name in ("min_seq_length", "max_seq_length"):
            ids = [a for a in ids if _seed(a, name, value) % 25]
            stats["num_filter_length"] = before - len(ids)
    for acc in ids:
        sequences.setdefault(acc, _fake_sequence(_seed(acc, seed), 80 + _seed(acc) % 300))
    return _Imported(ids=ids, sequences={a: sequences[a] for a in ids}, stats=stats)


def _write_import_files(out: Path, imported: _Imported) -> None:
    _write(out / "accession_table.tab", "uniprot_id\tuniref90_id\tuniref50_id\n" + "".join(
        f"{a}\t{a}\t{a}\n" for a in imported.ids))
    _write(out / "sequence_metadata.tab", "UniProt_ID\tAttribute\tValue\n" + "".join(
        f"{a}\tSequence_Source\tFAMILY\n{a}\tseq_len\t{len(s)}\n"
        for a, s in imported.sequences.items()))
    tree = {"id": "root", "name": "All", "children": [
        {"id": "bacteria", "name": "Bacteria",
         "numSequences": len(imported.ids) * 2 // 3, "children": []},
        {"id": "archaea", "name": "Archaea",
         "numSequences": len(imported.ids) - len(imported.ids) * 2 // 3, "children": []}]}
    _write(out / "sunburst_tax.json", json.dumps({"data": tree}, indent=2) + "\n")


def _fasta_text(sequences: Mapping[str, str]) -> str:
    return "".join(f">{acc}\n{seq}\n" for acc, seq in sequences.items())


def _similarity_edges(ids: Sequence[str], seed: int, limit: int = 5000) -> list[tuple[str, str,
                                                                                       float]]:
    edges: list[tuple[str, str, float]] = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            h = _seed(a, b, seed)
            if h % 7 == 0:
                edges.append((a, b, float(20 + h % 200)))
                if len(edges) >= limit:
                    return edges
    return edges


def _run_est(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    imported = _import(params)
    if not imported.ids:
        raise StandinError("No FASTA sequences were retrieved. Terminating pipeline.")
    _write_import_files(out, imported)
    _write(out / "all_sequences.fasta", _fasta_text(imported.sequences))
    if params["import_mode"] == "blast":
        _write(out / "blast_hits.tab", "".join(
            f"{a}\t1e-{10 + _seed(a) % 100}\n" for a in imported.ids))
    _write(out / "import_stats.json", json.dumps(imported.stats, indent=2) + "\n")
    n = len(imported.ids)
    edges = _similarity_edges(imported.ids, _seed(params.get("blast_evalue")), limit=10**6)
    pairs = n * (n - 1) // 2
    conv = {"convergence_ratio": round(len(edges) / pairs, 6) if pairs else 0.0,
            "num_blast_edges": len(edges), "num_unique_ids": n}
    _write(out / "conv_ratio.json", json.dumps(conv, indent=2) + "\n")
    _write(out / "1.out.parquet", b"PAR1" + json.dumps(
        {"stand-in": True, "edges": len(edges)}).encode() + b"PAR1")
    return {**imported.stats, **conv}


def _run_taxonomy(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    imported = _import(params)
    _write_import_files(out, imported)
    return dict(imported.stats)


def _run_gnd(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    imported = _import(params)
    nb = int(params.get("nb_size", 20))
    _gnd_sqlite(out / "gnd.sqlite", imported.ids, nb, _seed(*imported.ids[:20]))
    with zipfile.ZipFile(out / ".gnd.sqlite.zip.tmp", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(out / "gnd.sqlite", "gnd.sqlite")
    (out / ".gnd.sqlite.zip.tmp").replace(out / "gnd.sqlite.zip")
    return {**imported.stats, "num_diagrams": len(imported.ids), "nb_size": nb}


def _run_generatessn(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    records = _fasta_records(Path(params["fasta_file"]))
    lo, hi = int(params.get("min_length", 0)), int(params.get("max_length", 65000))
    ids = [_fasta_id(h, i) for i, (h, s) in enumerate(records) if lo <= len(s) <= hi]
    for entry in params.get("filter", []):
        if entry == "fragments":
            ids = [a for a in ids if _seed(a, "fragment") % 20]
    threshold = float(params["threshold_min_val"])
    edges = [e for e in _similarity_edges(ids, 0) if e[2] >= threshold]
    title = params.get("job_name") or "Full SSN"
    text = _xgmml(title, [(a, {"Sequence Length": 100 + _seed(a) % 400}) for a in ids], edges)
    _zip_xgmml(out, "full_ssn.xgmml.zip", _clean_name(title, "Full SSN"), text)
    stats: dict[str, Any] = {"full_ssn.xgmml.zip": {"num_nodes": len(ids),
                                                    "num_edges": len(edges)}}
    if params.get("make_repnodes", True):
        for pct in params.get("repnode_pct", [100, 95, 90, 85, 80, 75, 70, 65, 60, 55, 50]):
            kept = ids[:: max(1, (105 - int(pct)) // 5)]
            keep = set(kept)
            sub = [e for e in edges if e[0] in keep and e[1] in keep]
            name = f"repnode_{pct}_ssn.xgmml.zip"
            _zip_xgmml(out, name, _clean_name(f"{title} repnode-{pct}", f"repnode-{pct}"),
                       _xgmml(f"{title} repnode-{pct}", [(a, {}) for a in kept], sub))
            stats[name] = {"num_nodes": len(kept), "num_edges": len(sub)}
    _write(out / "job.finish", "")
    return stats


def _cluster_stats(nodes: Sequence[str], groups: Sequence[Sequence[str]]) -> dict[str, Any]:
    return {"num_ssn_clusters": sum(1 for g in groups if len(g) > 1),
            "num_ssn_singletons": sum(1 for g in groups if len(g) == 1),
            "num_ssn_nodes": len(nodes), "num_ssn_accession_ids": len(nodes),
            "ssn_sequence_source": "UniProt"}


def _write_cluster_tables(out: Path, groups: Sequence[Sequence[str]]) -> None:
    _write(out / "cluster_num_map.txt", "cluster_num\tcluster_size\n" + "".join(
        f"{i + 1}\t{len(g)}\n" for i, g in enumerate(groups) if len(g) > 1))
    _write(out / "mapping_table.txt", "UniProt_ID\tCluster_Number\tCluster_Color\n" + "".join(
        f"{a}\t{i + 1}\t#{_seed(i) % 0xFFFFFF:06X}\n"
        for i, g in enumerate(groups) for a in g))


def _colored(params: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]],
                                                  list[list[str]]]:
    nodes, edges = _read_ssn(Path(params["ssn_input"]))
    return nodes, edges, _components(nodes, edges)


def _colored_xgmml(title: str, nodes: Sequence[str], edges: Sequence[tuple[str, str]],
                   groups: Sequence[Sequence[str]]) -> str:
    cluster = {a: i + 1 for i, g in enumerate(groups) for a in g}
    return _xgmml(title, [(a, {"Cluster Number": cluster[a]}) for a in nodes],
                  [(a, b, 0.0) for a, b in edges])


def _run_colorssn(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, edges, groups = _colored(params)
    _write_cluster_tables(out, groups)
    title = params.get("job_name") or "Colored SSN"
    _zip_xgmml(out, "colored_ssn.xgmml.zip", _clean_name(title, "colored_ssn"),
               _colored_xgmml(title, nodes, edges, groups))
    return _cluster_stats(nodes, groups)


def _run_nc(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, edges, groups = _colored(params)
    degree = dict.fromkeys(nodes, 0)
    for a, b in edges:
        if a in degree and b in degree:
            degree[a] += 1
            degree[b] += 1
    top = max(degree.values(), default=0) or 1
    _write(out / "nc.tab", "".join(f"{a}\t{d / top:.4f}\n" for a, d in degree.items()))
    _zip_xgmml(out, "ssn.xgmml.zip", "ssn.xgmml", _colored_xgmml("NC", nodes, edges, groups))
    return _cluster_stats(nodes, groups)


def _run_convratio(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, edges, groups = _colored(params)
    lines = ["Cluster\tConvergenceRatio\tNumBlastEdges\tNumUniqueIds\n"]
    total_edges = 0
    for i, g in enumerate(groups):
        if len(g) < 2:
            continue
        members = set(g)
        n_edges = sum(1 for a, b in edges if a in members and b in members)
        total_edges += n_edges
        lines.append(f"Cluster_{i + 1}\t{n_edges / (len(g) * (len(g) - 1) / 2):.6f}\t"
                     f"{n_edges}\t{len(g)}\n")
    _write(out / "conv_ratio.tab", "".join(lines))
    pairs = len(nodes) * (len(nodes) - 1) // 2
    return {"convergence_ratio": round(total_edges / pairs, 6) if pairs else 0.0,
            "num_blast_edges": total_edges, "num_unique_ids": len(nodes)}


def _run_clusteranalysis(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, _edges, groups = _colored(params)
    _write_cluster_tables(out, groups)
    lo = int(params.get("min_msa_sequences", 3))
    analysed = [g for g in groups if len(g) >= lo]
    _write(out / "cluster_sizes.txt", "".join(f"Cluster_{i + 1}\t{len(g)}\n"
                                              for i, g in enumerate(analysed)))
    if params.get("compute_conserved_residues"):
        residues = params.get("conserved_residues", [])
        _write(out / "conserved_residues.txt", "Cluster\t" + "\t".join(residues) + "\n" + "".join(
            f"Cluster_{i + 1}\t" + "\t".join(str(_seed(i, r) % 5) for r in residues) + "\n"
            for i, _ in enumerate(analysed)))
    return _cluster_stats(nodes, groups)


def _run_gnt(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, edges, groups = _colored(params)
    nb = int(params.get("nb_size", 20))
    cooc = float(params.get("cooc_threshold", 0.2))
    _write_cluster_tables(out, groups)
    clusters = [g for g in groups if len(g) > 1]
    pfams = [f"PF{_seed(i, 'pfam') % 99999:05d}" for i in range(max(1, len(clusters)))]
    hubs = [p for i, p in enumerate(pfams) if (_seed(p) % 100) / 100 >= cooc or i == 0]
    _write(out / "hub_count.txt", "".join(f"{p}\t{1 + _seed(p) % 9}\n" for p in hubs))
    _write(out / "cooc_table.txt", "".join(
        f"{p}\t" + "\t".join(f"{(_seed(p, i) % 100) / 100:.2f}" for i in range(len(clusters)))
        + "\n" for p in pfams))
    _zip_xgmml(out, "ssn_cluster_gnn.xgmml.zip", "ssn_cluster_gnn.xgmml", _xgmml(
        "Cluster GNN", [(f"Cluster {i + 1}", {"Cluster Size": len(g)})
                        for i, g in enumerate(clusters)], []))
    _zip_xgmml(out, "pfam_family_gnn.xgmml.zip", "pfam_family_gnn.xgmml", _xgmml(
        "Pfam GNN", [(p, {"Hub": int(p in hubs)}) for p in pfams], []))
    _zip_xgmml(out, "color_ssn.xgmml.zip", "color_ssn.xgmml",
               _colored_xgmml("Colored SSN", nodes, edges, groups))
    _gnd_sqlite(out / "gnd.sqlite", nodes, nb, _seed(*nodes[:20]))
    return {**_cluster_stats(nodes, groups), "nb_size": nb, "cooc_threshold": cooc}


def _run_cgfpidentify(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, edges, groups = _colored(params)
    cluster = {a: i + 1 for i, g in enumerate(groups) for a in g}
    markers = [a for a in nodes if _seed(a, "marker") % 3 == 0] or nodes[:1]
    _write(out / "markers.faa", "".join(
        f">{a}_TM_{i}\n{_fake_sequence(_seed(a), 30)}\n" for i, a in enumerate(markers)))
    _write(out / "cdhit.tab", "Cluster\tProtein\n" + "".join(
        f"{cluster[a]}\t{a}\n" for a in markers))
    _write(out / "cluster_id_map.txt", "".join(f"{a}\t{cluster[a]}\n" for a in nodes))
    _write(out / "seqid_source_map.txt", "".join(f"{a}\t{a}\n" for a in nodes))
    text = _xgmml("ShortBRED Markers", [(a, {"Marker": int(a in markers)}) for a in nodes],
                  [(a, b, 0.0) for a, b in edges])
    _write(out / "marker_ssn.xgmml", text)
    _zip_xgmml(out, "marker_ssn.xgmml.zip", "ShortBRED_Markers.xgmml", text)
    return {**_cluster_stats(nodes, groups), "num_markers": len(markers),
            "num_cons_seq": len({cluster[a] for a in markers})}


def _run_cgfpquantify(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    identify = Path(params["identify_dir"])
    markers = [h for h, _ in _fasta_records(identify / "markers.faa")]
    nodes, edges = _read_ssn(Path(params["ssn_input"]))
    mgs = list(params["metagenome_ids"])
    for suffix in ("median", "mean"):
        for mg in mgs:
            rows = "".join(f"{m}\t{(_seed(mg, m, suffix) % 1000) / 10:.1f}\t{_seed(m) % 50}\t30\n"
                           for m in markers)
            _write(out / f"{mg}.results.{suffix}", "Family\tCount\tHits\tTotMarkerLength\n" + rows)
    _write(out / "metagenome_desc.txt", "".join(f"{mg}\tMetagenome {mg}\n" for mg in mgs))
    _zip_xgmml(out, "quantify_ssn.xgmml.zip", "ShortBRED_Quantify.xgmml",
               _xgmml("ShortBRED Quantify", [(a, {}) for a in nodes],
                      [(a, b, 0.0) for a, b in edges]))
    identify_stats: dict[str, Any] = {}
    stats_file = identify / "stats.json"
    if stats_file.is_file():
        loaded = json.loads(stats_file.read_text(encoding="utf-8"))
        identify_stats = loaded if isinstance(loaded, dict) else {}
    return {**identify_stats, "num_metagenomes": len(mgs), "num_markers": len(markers)}


PIPELINES: Final[Mapping[str, Pipeline]] = {p.name: p for p in (
    Pipeline(
        "est", "est/est.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "fasta_db",
                            "import_mode"}),
        keys={**_COMMON, **_ALL_BY_ALL, **_IMPORT, **_BLAST_IMPORT, "multiplex": _bool,
              "domain": _bool, "domain_region": _enum("domain", "n-terminal", "c-terminal"),
              "domain_family": _str, "sort_seq_by_length": _bool},
        modes={"blast": ("input_file", "import_blast_fasta_db"), "family": ("families",),
               "fasta": ("input_file",), "accessions": ("input_file",)},
        processes=("IMPORT_AND_FILTER:GET_SOURCE_IDS", "IMPORT_AND_FILTER:filter_ids",
                   "IMPORT_AND_FILTER:get_sequences", "ALL_BY_ALL:all_by_all_blast",
                   "ALL_BY_ALL:blastreduce", "REPORTING:compute_stats", "REPORTING:merge_stats"),
        run=_run_est),
    Pipeline(
        "generatessn", "generatessn/generatessn.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "blast_parquet",
                            "fasta_file", "source_ids_file", "seq_meta_file",
                            "threshold_min_val"}),
        keys={**_NAMED, "blast_parquet": _file, "fasta_file": _file, "source_ids_file": _file,
              "seq_meta_file": _file, "threshold_min_val": _num(0),
              "threshold_metric": _enum("pident", "alignment_length", "bitscore",
                                        "query_length", "subject_length", "alignment_score"),
              "min_length": _int(0), "max_length": _int(1), "filter": _filter,
              "ssn_name": _str, "maxfull": _int(0), "db_version": _any_db,
              "duckdb_memory_limit": _size, "duckdb_threads": _int(1), "duckdb_temp_dir": _str,
              "make_repnodes": _bool, "repnode_pct": _num_list(1, 100, integers=True),
              "max_ssn_edges": _int(1), "compute_ssn_nc_factor": _bool, "color_ssn": _bool,
              "sequence_version": _SEQVER},
        modes={},
        processes=("import_data", "filter_ids", "threshold_blast", "get_annotations",
                   "create_full_ssn", "create_repnode_ssns", "merge_stats"),
        run=_run_generatessn),
    Pipeline(
        "colorssn", "colorssn/colorssn.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "ssn_input",
                            "fasta_db"}),
        keys={**_NAMED, "ssn_input": _file, "fasta_db": _str}, modes={},
        processes=("color_and_retrieve:get_ssn_id_info", "color_and_retrieve:compute_clusters",
                   "color_and_retrieve:get_fasta", "color_ssn", "merge_stats"),
        run=_run_colorssn),
    Pipeline(
        "neighborhoodconnectivity", "neighborhoodconnectivity/neighborhoodconnectivity.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "ssn_input"}),
        keys={**_NAMED, "ssn_input": _file}, modes={},
        processes=("compute_connectivity_from_ssn", "color_by_connectivity", "make_legend",
                   "zip_files"),
        run=_run_nc),
    Pipeline(
        "convergenceratio", "convergenceratio/convergenceratio.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "ssn_input",
                            "fasta_db"}),
        keys={**_NAMED, **_ALL_BY_ALL, "ssn_input": _file, "fasta_db": _str}, modes={},
        processes=("get_ssn_id_info", "compute_clusters", "get_fasta_files",
                   "all_by_all_blast", "blastreduce", "compute_blast_conv_ratio",
                   "merge_conv_ratios"),
        run=_run_convratio),
    Pipeline(
        "clusteranalysis", "clusteranalysis/clusteranalysis.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "ssn_input",
                            "fasta_db"}),
        keys={**_NAMED, "ssn_input": _file, "fasta_db": _str, "min_msa_sequences": _int(1),
              "max_msa_sequences": _int(1), "make_weblogos": _bool, "make_hmms": _bool,
              "make_length_histograms": _bool, "compute_conserved_residues": _bool,
              "conserved_residues": _str_list, "pid_thresholds": _num_list(0, 100),
              "muscle_version": _enum(3, 5)},
        modes={},
        processes=("color_and_retrieve:compute_clusters", "PREPARE_FASTA", "ALIGN_AND_ANALYZE",
                   "MAKE_HISTOGRAMS"),
        run=_run_clusteranalysis),
    Pipeline(
        "gnt", "gnt/gnt.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "ssn_input",
                            "fasta_db"}),
        keys={**_NAMED, "ssn_input": _file, "fasta_db": _str, "nb_size": _NB_SIZE,
              "cooc_threshold": _COOC},
        modes={},
        processes=("color_and_retrieve:compute_clusters", "create_gnns", "color_gnt_ssn"),
        run=_run_gnt),
    Pipeline(
        "gnd", "gnd/gnd.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "import_mode",
                            "input_file"}),
        keys={**_NAMED, **_BLAST_IMPORT, "import_mode": _str, "input_file": _file,
              "nb_size": _NB_SIZE, "fasta_db": _str, "sequence_version": _SEQVER},
        modes={"blast": ("import_blast_fasta_db",), "fasta": (), "accessions": ()},
        processes=("GET_SOURCE_IDS", "create_gnd", "zip_files"),
        run=_run_gnd),
    Pipeline(
        "taxonomy", "taxonomy/taxonomy.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "import_mode",
                            "fasta_db"}),
        keys={**_COMMON, "import_mode": _str, "input_file": _file, "families": _IMPORT["families"],
              "filter": _filter, "sequence_version": _SEQVER, "fasta_db": _str},
        modes={"family": ("families",), "fasta": ("input_file",), "accessions": ("input_file",)},
        processes=("GET_SOURCE_IDS", "filter_ids", "get_sunburst_data",
                   "process_sunburst_stats", "get_sequences", "create_blast_db"),
        run=_run_taxonomy),
    Pipeline(
        "cgfpidentify", "cgfp/cgfpidentify.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "ssn_input", "fasta_db",
                            "sb_search_refdb"}),
        keys={**_NAMED, "ssn_input": _file, "fasta_db": _str, "sb_search_refdb": _str,
              "sb_cdhit_sid": _num(0, 1), "sb_identify_method": _enum("blast", "diamond"),
              "sb_identify_threads": _int(1), "sb_cons_thresh": _num(0),
              "sb_diamond_sensitivity": _any_db},
        modes={},
        processes=("COMPUTE_COLOR_CLUSTER_WORKFLOW", "get_sequences", "cgfp_identify",
                   "create_cdhit_table", "create_marker_ssn", "merge_stats"),
        run=_run_cgfpidentify),
    Pipeline(
        "cgfpquantify", "cgfp/cgfpquantify.nf",
        required=frozenset({"final_output_dir", "efi_config", "efi_db", "ssn_input",
                            "identify_dir", "metagenome_db_dir", "metagenome_ids",
                            "shortbred_src_dir"}),
        keys={**_NAMED, "ssn_input": _file, "identify_dir": _dir, "metagenome_db_dir": _str,
              "metagenome_ids": _str_list, "shortbred_src_dir": _str,
              "sb_identify_method": _enum("blast", "diamond"), "sb_quantify_threads": _int(1)},
        modes={},
        processes=("cgfp_quantify", "merge_results", "create_quantify_ssn",
                   "compute_quantify_stats", "merge_stats"),
        run=_run_cgfpquantify),
)}


# -- validation and main ------------------------------------------------------------------


def validate(pipeline: Pipeline, params: Mapping[str, Any], *,
             allow_unknown: bool = False) -> tuple[list[str], list[str]]:
    """Check ``params`` against what the EST pipeline accepts.

    Returns:
        ``(errors, warnings)``: any error means EST would reject the run.

    """
    errors: list[str] = []
    warnings: list[str] = []
    unknown = sorted(set(params) - set(pipeline.keys))
    for key in unknown:
        msg = f"unknown parameter {key!r} for {pipeline.script} (Nextflow would ignore it)"
        (warnings if allow_unknown else errors).append(msg)
    required = set(pipeline.required)
    if pipeline.modes:
        mode = params.get("import_mode")
        if not isinstance(mode, str) or mode not in pipeline.modes:
            errors.append(f"import_mode: {mode!r} is not one of "
                          f"{', '.join(repr(m) for m in pipeline.modes)}")
        else:
            required.update(pipeline.modes[mode])
    for key in sorted(required):
        if params.get(key) in (None, "", []):
            errors.append(f"missing required parameter {key!r}")
    for key, value in params.items():
        check = pipeline.keys.get(key)
        if check is None or value is None:
            continue
        problem = check(key, value)
        if problem:
            errors.append(problem)
    for low, high in (("min_length", "max_length"), ("min_msa_sequences", "max_msa_sequences")):
        lo: Any = params.get(low)
        hi: Any = params.get(high)
        if _is_num(lo) and _is_num(hi) and lo > hi:
            errors.append(f"{low} {lo} is above {high} {hi}")
    if params.get("compute_conserved_residues") is True:
        for key in ("conserved_residues", "pid_thresholds"):
            if not params.get(key):
                errors.append(f"{key} is required when compute_conserved_residues is true")
    if pipeline.name == "est" and "multiplex" not in params:
        warnings.append("multiplex is not set: EST's default (true) runs CD-HIT")
    identify = params.get("identify_dir")
    if pipeline.name == "cgfpquantify" and isinstance(identify, str) and Path(identify).is_dir() \
            and not (Path(identify) / "markers.faa").is_file():
        errors.append(f"identify_dir: {identify!r} holds no markers.faa")
    return errors, warnings


def _env_number(name: str, kind: Callable[[str], float]) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={raw!r} must be a finite number of 0 or more")
    return value


def _say(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in; return the exit status (0, 1 for a failed run, 2 for rejected input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        _err("usage: python -m efi_job_manager.standin <pipeline_name> <params_file>")
        _err(f"pipelines: {', '.join(sorted(PIPELINES))}")
        return EXIT_INVALID
    name, params_path = args
    pipeline = PIPELINES.get(name)
    if pipeline is None:
        _err(f"ERROR ~ unknown pipeline {name!r} (known: {', '.join(sorted(PIPELINES))})")
        return EXIT_INVALID
    try:
        delay = _env_number("EFI_STANDIN_DELAY", float) or 0.0
        fail = _env_number("EFI_STANDIN_FAIL", int)
        if fail is not None and not 0 <= fail <= 255:
            raise ValueError("EFI_STANDIN_FAIL must be an exit status from 0 to 255")
    except ValueError as exc:
        _err(f"ERROR ~ {exc}")
        return EXIT_INVALID
    try:
        params = json.loads(Path(params_path).read_text(encoding="utf-8"))
    except OSError as exc:
        _err(f"ERROR ~ cannot read the params file {params_path!r}: {exc.strerror or exc}")
        return EXIT_INVALID
    except ValueError as exc:
        _err(f"ERROR ~ the params file {params_path!r} is not valid JSON: {exc}")
        return EXIT_INVALID
    if not isinstance(params, dict):
        _err(f"ERROR ~ the params file {params_path!r} must hold a JSON object")
        return EXIT_INVALID
    allow_unknown = os.environ.get("EFI_STANDIN_ALLOW_UNKNOWN", "") in {"1", "true", "yes"}
    errors, warnings = validate(pipeline, params, allow_unknown=allow_unknown)
    for warning in warnings:
        _err(f"WARN: {warning}")
    if errors:
        for error in errors:
            _err(f"ERROR ~ {error}")
        return EXIT_INVALID

    return _execute(pipeline, params, delay=delay, fail=int(fail or 0))


def _execute(pipeline: Pipeline, params: Mapping[str, Any], *, delay: float, fail: int) -> int:
    run_name = f"standin-{_seed(pipeline.name, params.get('job_id')) % 16**6:06x}"
    _say("N E X T F L O W  ~  version 24.10.0 (efi-job-manager stand-in)")
    _say(f"Launching `{pipeline.script}` [{run_name}] DSL2 - revision: stand-in")
    started = time.monotonic()
    step = delay / max(1, len(pipeline.processes))
    for i, process in enumerate(pipeline.processes):
        digest = f"{_seed(run_name, process) % 256:02x}/{_seed(process) % 16**6:06x}"
        _say(f"[{digest}] Submitted process > {process} ({i + 1})")
        if step:
            time.sleep(step)
    if fail:
        last = pipeline.processes[-1]
        _err(f"ERROR ~ Error executing process > '{last}'")
        _err("")
        _err("Caused by:")
        _err(f"  Process `{last}` terminated with an error exit status ({fail}) "
             f"(EFI_STANDIN_FAIL)")
        return fail
    out = Path(params["final_output_dir"])
    try:
        stats = pipeline.run(params, out)
    except StandinError as exc:
        _err(f"ERROR ~ {exc}")
        return EXIT_RUNTIME
    _write(out / "stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    elapsed = time.monotonic() - started
    _say(f"Completed at: {datetime.now(UTC).strftime('%d-%b-%Y %H:%M:%S')}")
    _say(f"Duration    : {elapsed:.1f}s")
    _say(f"Succeeded   : {len(pipeline.processes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
