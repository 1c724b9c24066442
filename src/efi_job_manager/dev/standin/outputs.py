"""Small but real stand-in files: reading EST's inputs, writing files with EST's names.

Values are computed deterministically from the inputs (FASTA headers and accession
ids are counted, SSN clusters are the connected components of the uploaded network);
nothing here is science.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final
from xml.sax.saxutils import quoteattr

__all__ = [
    "StandinError",
    "accessions",
    "clean_name",
    "components",
    "fake_sequence",
    "fasta_id",
    "fasta_records",
    "gnd_sqlite",
    "read_ssn",
    "seed",
    "write",
    "xgmml",
    "zip_xgmml",
]


class StandinError(Exception):
    """The run fails the way the EST pipeline would (exit status 1)."""


#: A UniProt accession (with an optional isoform suffix).
UNIPROT_RE: Final = re.compile(
    r"^([OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9]([A-Z][A-Z0-9]{2}[0-9]){1,2})(-\d+)?$")


def seed(*parts: object) -> int:
    """Return a stable number from any values (the stand-in's only randomness)."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def fasta_records(path: Path) -> list[tuple[str, str]]:
    """Return ``(header, sequence)`` for each record of a FASTA file with a sequence."""
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


def accessions(path: Path) -> list[str]:
    """Return the distinct ids of an id list (whitespace or comma separated)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return list(dict.fromkeys(t for t in re.split(r"[\s,]+", text) if t))


def fasta_id(header: str, index: int) -> str:
    """Return the UniProt id of a FASTA header, or a made-up ``Z…`` id."""
    token = header.split(maxsplit=1)[0] if header.strip() else ""
    parts = token.split("|")
    candidate = parts[1] if len(parts) >= 3 else token
    return candidate if UNIPROT_RE.match(candidate) else f"Z{index:06d}"


def read_ssn(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Return the node ids and edges of an XGMML network (zipped or not)."""
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


def components(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Return the connected components of a network, largest first."""
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


def write(path: Path, data: str | bytes) -> None:
    """Write a file through a temporary name and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    tmp.replace(path)


def xgmml(title: str, nodes: Sequence[tuple[str, Mapping[str, object]]],
           edges: Sequence[tuple[str, str, float]]) -> str:
    """Return an XGMML network with node attributes and scored edges."""
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


def zip_xgmml(out: Path, zip_name: str, member: str, text: str) -> None:
    """Write ``zip_name`` holding one XGMML member."""
    tmp = out / f".{zip_name}.tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, text)
    tmp.replace(out / zip_name)


def clean_name(name: str, default: str) -> str:
    """Return EST's file name for a title (``getCleanFilename``)."""
    cleaned = re.sub(r"[^a-zA-Z0-9_.-]", "_", name.encode("ascii", "ignore").decode()).strip("_-")
    return (cleaned or default) + ".xgmml"


def gnd_sqlite(path: Path, ids: Sequence[str], nb_size: int, seed: int) -> None:
    """Write a small genome neighbourhood diagram database."""
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


def fake_sequence(seed: int, length: int) -> str:
    """Return a made-up protein sequence of ``length`` residues."""
    alphabet = "ACDEFGHIKLMNPQRSTVWY"
    out = []
    x = seed or 1
    for _ in range(length):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append(alphabet[x >> 59 if (x >> 59) < 20 else (x >> 59) - 12])
    return "M" + "".join(out)
