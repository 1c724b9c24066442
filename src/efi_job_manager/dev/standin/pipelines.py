"""What the stand-in writes for each pipeline: EST's files and ``stats.json`` keys.

`RUNS` maps a pipeline's short name to the process names it prints and the
function that writes its outputs into ``final_output_dir`` and returns the
content of ``stats.json``.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from efi_job_manager.dev.standin.outputs import (
    UNIPROT_RE,
    StandinError,
    accessions,
    clean_name,
    components,
    fake_sequence,
    fasta_id,
    fasta_records,
    gnd_sqlite,
    read_ssn,
    seed,
    write,
    xgmml,
    zip_xgmml,
)

__all__ = ["RUNS", "Run"]


@attrs.frozen
class Run:
    """What the stand-in does for one pipeline.

    Attributes:
        processes: Process names printed as progress.
        write: Writes the outputs; returns ``stats.json``'s content.

    """

    processes: tuple[str, ...]
    write: Callable[[Mapping[str, Any], Path], dict[str, Any]]


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
    run_seed = seed(mode, params.get("families"), params.get("sequence_version"))
    if mode == "fasta":
        records = fasta_records(Path(params["input_file"]))
        for i, (header, seq) in enumerate(records):
            acc = fasta_id(header, i)
            ids.append(acc)
            sequences[acc] = seq
        matched = sum(1 for a in ids if not a.startswith("Z"))
        stats.update(num_ids=len(ids), num_headers=len(records), num_matched=matched,
                     num_unmatched=len(ids) - matched)
    elif mode == "accessions":
        raw = accessions(Path(params["input_file"]))
        ids = [a for a in raw if UNIPROT_RE.match(a)]
        stats.update(num_ids=len(raw), num_matched=len(ids), num_unmatched=len(raw) - len(ids),
                     num_foreign=0)
    elif mode == "blast":
        records = fasta_records(Path(params["input_file"]))
        if not records:
            raise StandinError("BLAST did not return any matches.  Verify that the sequence is "
                               "a protein and not a nucleotide sequence.")
        query = records[0][1]
        cap = int(params.get("import_blast_num_matches", 1000))
        count = min(cap, 50 + seed(query) % 400)
        ids = [f"A0A{(seed(query, i) % 10**6):06d}" for i in range(count)]
        stats.update(num_blast_retr=count)
    elif mode == "family":
        pass
    else:  # validated before
        raise StandinError(f"Mode '{mode}' not yet implemented")
    families = [f for f in str(params.get("families") or "").split(",") if f]
    if families:
        fam_ids = [f"{fam[:2]}{(seed(fam, i) % 10**7):07d}" for fam in families
                   for i in range(20 + seed(fam) % 180)]
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
            ids = [a for a in ids if seed(a, "fragment") % 20]
            stats["num_filter_fragment"] = before - len(ids)
        elif name in ("user-filter", "predef-filter", "predef-file"):
            # what the filter says, not where its file is, decides (runs are repeatable)
            rule = Path(value).read_text(encoding="utf-8") if name != "predef-filter" else value
            ids = [a for a in ids if seed(a, "taxonomy", rule) % 3]
            stats["num_filter_taxonomy"] = before - len(ids)
        elif name == "family":
            ids = [a for a in ids if seed(a, "family", value) % 10]
            stats["num_filter_family"] = before - len(ids)
        elif name in ("min_seq_length", "max_seq_length"):
            ids = [a for a in ids if seed(a, name, value) % 25]
            stats["num_filter_length"] = before - len(ids)
    for acc in ids:
        sequences.setdefault(acc, fake_sequence(seed(acc, run_seed), 80 + seed(acc) % 300))
    return _Imported(ids=ids, sequences={a: sequences[a] for a in ids}, stats=stats)


def _write_import_files(out: Path, imported: _Imported) -> None:
    write(out / "accession_table.tab", "uniprot_id\tuniref90_id\tuniref50_id\n" + "".join(
        f"{a}\t{a}\t{a}\n" for a in imported.ids))
    write(out / "sequence_metadata.tab", "UniProt_ID\tAttribute\tValue\n" + "".join(
        f"{a}\tSequence_Source\tFAMILY\n{a}\tseq_len\t{len(s)}\n"
        for a, s in imported.sequences.items()))
    tree = {"id": "root", "name": "All", "children": [
        {"id": "bacteria", "name": "Bacteria",
         "numSequences": len(imported.ids) * 2 // 3, "children": []},
        {"id": "archaea", "name": "Archaea",
         "numSequences": len(imported.ids) - len(imported.ids) * 2 // 3, "children": []}]}
    write(out / "sunburst_tax.json", json.dumps({"data": tree}, indent=2) + "\n")


def _fasta_text(sequences: Mapping[str, str]) -> str:
    return "".join(f">{acc}\n{seq}\n" for acc, seq in sequences.items())


def _similarity_edges(ids: Sequence[str], salt: int, limit: int = 5000
                      ) -> list[tuple[str, str, float]]:
    edges: list[tuple[str, str, float]] = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            h = seed(a, b, salt)
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
    write(out / "all_sequences.fasta", _fasta_text(imported.sequences))
    if params["import_mode"] == "blast":
        write(out / "blast_hits.tab", "".join(
            f"{a}\t1e-{10 + seed(a) % 100}\n" for a in imported.ids))
    write(out / "import_stats.json", json.dumps(imported.stats, indent=2) + "\n")
    n = len(imported.ids)
    edges = _similarity_edges(imported.ids, seed(params.get("blast_evalue")), limit=10**6)
    pairs = n * (n - 1) // 2
    conv = {"convergence_ratio": round(len(edges) / pairs, 6) if pairs else 0.0,
            "num_blast_edges": len(edges), "num_unique_ids": n}
    write(out / "conv_ratio.json", json.dumps(conv, indent=2) + "\n")
    write(out / "1.out.parquet", b"PAR1" + json.dumps(
        {"stand-in": True, "edges": len(edges)}).encode() + b"PAR1")
    return {**imported.stats, **conv}


def _run_taxonomy(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    imported = _import(params)
    _write_import_files(out, imported)
    return dict(imported.stats)


def _run_gnd(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    imported = _import(params)
    nb = int(params.get("nb_size", 20))
    gnd_sqlite(out / "gnd.sqlite", imported.ids, nb, seed(*imported.ids[:20]))
    with zipfile.ZipFile(out / ".gnd.sqlite.zip.tmp", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(out / "gnd.sqlite", "gnd.sqlite")
    (out / ".gnd.sqlite.zip.tmp").replace(out / "gnd.sqlite.zip")
    return {**imported.stats, "num_diagrams": len(imported.ids), "nb_size": nb}


def _run_generatessn(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    records = fasta_records(Path(params["fasta_file"]))
    lo, hi = int(params.get("min_length", 0)), int(params.get("max_length", 65000))
    ids = [fasta_id(h, i) for i, (h, s) in enumerate(records) if lo <= len(s) <= hi]
    for entry in params.get("filter", []):
        if entry == "fragments":
            ids = [a for a in ids if seed(a, "fragment") % 20]
    threshold = float(params["threshold_min_val"])
    edges = [e for e in _similarity_edges(ids, 0) if e[2] >= threshold]
    title = params.get("job_name") or "Full SSN"
    text = xgmml(title, [(a, {"Sequence Length": 100 + seed(a) % 400}) for a in ids], edges)
    zip_xgmml(out, "full_ssn.xgmml.zip", clean_name(title, "Full SSN"), text)
    stats: dict[str, Any] = {"full_ssn.xgmml.zip": {"num_nodes": len(ids),
                                                    "num_edges": len(edges)}}
    if params.get("make_repnodes", True):
        for pct in params.get("repnode_pct", [100, 95, 90, 85, 80, 75, 70, 65, 60, 55, 50]):
            kept = ids[:: max(1, (105 - int(pct)) // 5)]
            keep = set(kept)
            sub = [e for e in edges if e[0] in keep and e[1] in keep]
            name = f"repnode_{pct}_ssn.xgmml.zip"
            zip_xgmml(out, name, clean_name(f"{title} repnode-{pct}", f"repnode-{pct}"),
                       xgmml(f"{title} repnode-{pct}", [(a, {}) for a in kept], sub))
            stats[name] = {"num_nodes": len(kept), "num_edges": len(sub)}
    write(out / "job.finish", "")
    return stats


def _cluster_stats(nodes: Sequence[str], groups: Sequence[Sequence[str]]) -> dict[str, Any]:
    return {"num_ssn_clusters": sum(1 for g in groups if len(g) > 1),
            "num_ssn_singletons": sum(1 for g in groups if len(g) == 1),
            "num_ssn_nodes": len(nodes), "num_ssn_accession_ids": len(nodes),
            "ssn_sequence_source": "UniProt"}


def _write_cluster_tables(out: Path, groups: Sequence[Sequence[str]]) -> None:
    write(out / "cluster_num_map.txt", "cluster_num\tcluster_size\n" + "".join(
        f"{i + 1}\t{len(g)}\n" for i, g in enumerate(groups) if len(g) > 1))
    write(out / "mapping_table.txt", "UniProt_ID\tCluster_Number\tCluster_Color\n" + "".join(
        f"{a}\t{i + 1}\t#{seed(i) % 0xFFFFFF:06X}\n"
        for i, g in enumerate(groups) for a in g))


def _colored(params: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]],
                                                  list[list[str]]]:
    nodes, edges = read_ssn(Path(params["ssn_input"]))
    return nodes, edges, components(nodes, edges)


def _colored_xgmml(title: str, nodes: Sequence[str], edges: Sequence[tuple[str, str]],
                   groups: Sequence[Sequence[str]]) -> str:
    cluster = {a: i + 1 for i, g in enumerate(groups) for a in g}
    return xgmml(title, [(a, {"Cluster Number": cluster[a]}) for a in nodes],
                  [(a, b, 0.0) for a, b in edges])


def _run_colorssn(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, edges, groups = _colored(params)
    _write_cluster_tables(out, groups)
    title = params.get("job_name") or "Colored SSN"
    zip_xgmml(out, "colored_ssn.xgmml.zip", clean_name(title, "colored_ssn"),
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
    write(out / "nc.tab", "".join(f"{a}\t{d / top:.4f}\n" for a, d in degree.items()))
    zip_xgmml(out, "ssn.xgmml.zip", "ssn.xgmml", _colored_xgmml("NC", nodes, edges, groups))
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
    write(out / "conv_ratio.tab", "".join(lines))
    pairs = len(nodes) * (len(nodes) - 1) // 2
    return {"convergence_ratio": round(total_edges / pairs, 6) if pairs else 0.0,
            "num_blast_edges": total_edges, "num_unique_ids": len(nodes)}


def _run_clusteranalysis(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, _edges, groups = _colored(params)
    _write_cluster_tables(out, groups)
    lo = int(params.get("min_msa_sequences", 3))
    analysed = [g for g in groups if len(g) >= lo]
    write(out / "cluster_sizes.txt", "".join(f"Cluster_{i + 1}\t{len(g)}\n"
                                              for i, g in enumerate(analysed)))
    if params.get("compute_conserved_residues"):
        residues = params.get("conserved_residues", [])
        write(out / "conserved_residues.txt", "Cluster\t" + "\t".join(residues) + "\n" + "".join(
            f"Cluster_{i + 1}\t" + "\t".join(str(seed(i, r) % 5) for r in residues) + "\n"
            for i, _ in enumerate(analysed)))
    return _cluster_stats(nodes, groups)


def _run_gnt(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, edges, groups = _colored(params)
    nb = int(params.get("nb_size", 20))
    cooc = float(params.get("cooc_threshold", 0.2))
    _write_cluster_tables(out, groups)
    clusters = [g for g in groups if len(g) > 1]
    pfams = [f"PF{seed(i, 'pfam') % 99999:05d}" for i in range(max(1, len(clusters)))]
    hubs = [p for i, p in enumerate(pfams) if (seed(p) % 100) / 100 >= cooc or i == 0]
    write(out / "hub_count.txt", "".join(f"{p}\t{1 + seed(p) % 9}\n" for p in hubs))
    write(out / "cooc_table.txt", "".join(
        f"{p}\t" + "\t".join(f"{(seed(p, i) % 100) / 100:.2f}" for i in range(len(clusters)))
        + "\n" for p in pfams))
    zip_xgmml(out, "ssn_cluster_gnn.xgmml.zip", "ssn_cluster_gnn.xgmml", xgmml(
        "Cluster GNN", [(f"Cluster {i + 1}", {"Cluster Size": len(g)})
                        for i, g in enumerate(clusters)], []))
    zip_xgmml(out, "pfam_family_gnn.xgmml.zip", "pfam_family_gnn.xgmml", xgmml(
        "Pfam GNN", [(p, {"Hub": int(p in hubs)}) for p in pfams], []))
    zip_xgmml(out, "color_ssn.xgmml.zip", "color_ssn.xgmml",
               _colored_xgmml("Colored SSN", nodes, edges, groups))
    gnd_sqlite(out / "gnd.sqlite", nodes, nb, seed(*nodes[:20]))
    return {**_cluster_stats(nodes, groups), "nb_size": nb, "cooc_threshold": cooc}


def _run_cgfpidentify(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    nodes, edges, groups = _colored(params)
    cluster = {a: i + 1 for i, g in enumerate(groups) for a in g}
    markers = [a for a in nodes if seed(a, "marker") % 3 == 0] or nodes[:1]
    write(out / "markers.faa", "".join(
        f">{a}_TM_{i}\n{fake_sequence(seed(a), 30)}\n" for i, a in enumerate(markers)))
    write(out / "cdhit.tab", "Cluster\tProtein\n" + "".join(
        f"{cluster[a]}\t{a}\n" for a in markers))
    write(out / "cluster_id_map.txt", "".join(f"{a}\t{cluster[a]}\n" for a in nodes))
    write(out / "seqid_source_map.txt", "".join(f"{a}\t{a}\n" for a in nodes))
    text = xgmml("ShortBRED Markers", [(a, {"Marker": int(a in markers)}) for a in nodes],
                  [(a, b, 0.0) for a, b in edges])
    write(out / "marker_ssn.xgmml", text)
    zip_xgmml(out, "marker_ssn.xgmml.zip", "ShortBRED_Markers.xgmml", text)
    return {**_cluster_stats(nodes, groups), "num_markers": len(markers),
            "num_cons_seq": len({cluster[a] for a in markers})}


def _run_cgfpquantify(params: Mapping[str, Any], out: Path) -> dict[str, Any]:
    identify = Path(params["identify_dir"])
    markers = [h for h, _ in fasta_records(identify / "markers.faa")]
    nodes, edges = read_ssn(Path(params["ssn_input"]))
    mgs = list(params["metagenome_ids"])
    for suffix in ("median", "mean"):
        for mg in mgs:
            rows = "".join(f"{m}\t{(seed(mg, m, suffix) % 1000) / 10:.1f}\t{seed(m) % 50}\t30\n"
                           for m in markers)
            write(out / f"{mg}.results.{suffix}", "Family\tCount\tHits\tTotMarkerLength\n" + rows)
    write(out / "metagenome_desc.txt", "".join(f"{mg}\tMetagenome {mg}\n" for mg in mgs))
    zip_xgmml(out, "quantify_ssn.xgmml.zip", "ShortBRED_Quantify.xgmml",
               xgmml("ShortBRED Quantify", [(a, {}) for a in nodes],
                      [(a, b, 0.0) for a, b in edges]))
    identify_stats: dict[str, Any] = {}
    stats_file = identify / "stats.json"
    if stats_file.is_file():
        loaded = json.loads(stats_file.read_text(encoding="utf-8"))
        identify_stats = loaded if isinstance(loaded, dict) else {}
    return {**identify_stats, "num_metagenomes": len(mgs), "num_markers": len(markers)}


#: What the stand-in does per pipeline (short name → `Run`).
RUNS: Final[Mapping[str, Run]] = {
    "est": Run((
        "IMPORT_AND_FILTER:GET_SOURCE_IDS", "IMPORT_AND_FILTER:filter_ids",
        "IMPORT_AND_FILTER:get_sequences", "ALL_BY_ALL:all_by_all_blast",
        "ALL_BY_ALL:blastreduce", "REPORTING:compute_stats", "REPORTING:merge_stats",
    ), _run_est),
    "generatessn": Run((
        "import_data", "filter_ids", "threshold_blast", "get_annotations", "create_full_ssn",
        "create_repnode_ssns", "merge_stats",
    ), _run_generatessn),
    "colorssn": Run((
        "color_and_retrieve:get_ssn_id_info", "color_and_retrieve:compute_clusters",
        "color_and_retrieve:get_fasta", "color_ssn", "merge_stats",
    ), _run_colorssn),
    "neighborhoodconnectivity": Run((
        "compute_connectivity_from_ssn", "color_by_connectivity", "make_legend", "zip_files",
    ), _run_nc),
    "convergenceratio": Run((
        "get_ssn_id_info", "compute_clusters", "get_fasta_files", "all_by_all_blast",
        "blastreduce", "compute_blast_conv_ratio", "merge_conv_ratios",
    ), _run_convratio),
    "clusteranalysis": Run((
        "color_and_retrieve:compute_clusters", "PREPARE_FASTA", "ALIGN_AND_ANALYZE",
        "MAKE_HISTOGRAMS",
    ), _run_clusteranalysis),
    "gnt": Run((
        "color_and_retrieve:compute_clusters", "create_gnns", "color_gnt_ssn",
    ), _run_gnt),
    "gnd": Run((
        "GET_SOURCE_IDS", "create_gnd", "zip_files",
    ), _run_gnd),
    "taxonomy": Run((
        "GET_SOURCE_IDS", "filter_ids", "get_sunburst_data", "process_sunburst_stats",
        "get_sequences", "create_blast_db",
    ), _run_taxonomy),
    "cgfpidentify": Run((
        "COMPUTE_COLOR_CLUSTER_WORKFLOW", "get_sequences", "cgfp_identify",
        "create_cdhit_table", "create_marker_ssn", "merge_stats",
    ), _run_cgfpidentify),
    "cgfpquantify": Run((
        "cgfp_quantify", "merge_results", "create_quantify_ssn", "compute_quantify_stats",
        "merge_stats",
    ), _run_cgfpquantify),
}
