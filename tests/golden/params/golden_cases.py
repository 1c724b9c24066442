"""The golden cases: rows of every job type and the site they run at.

Shared by the fidelity tests (``tests/test_est_fidelity.py``) and the reference run
against EST's own scripts (``scripts/est-reference``). A case is a row; its golden
``<case>.json`` is what EST's ``bin/create_*_nextflow_params.py`` wrote for the
call the product makes for that row (``est-reference.json`` records the calls).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Final

#: The site: its values for EST's scripts (and one pipeline addition, duckdb_temp_dir).
SITE_PARAMS: Final[dict[str, Any]] = {
    "efi_config": "/opt/efi/efi.config",
    "fasta_db": "/db/blastdb/combined.fasta",
    "duckdb_memory_limit": "8GB",
    "duckdb_threads": 4,
    "num_fasta_shards": 64,
    "num_accession_shards": 16,
    "blast_num_matches": 250,
    "duckdb_temp_dir": "/scratch/duckdb",
    "import_blast_fasta_db": {"uniprot": "/db/blastdb/combined.fasta",
                              "uniref90": "/db/blastdb/uniref90.fasta",
                              "uniref50": "/db/blastdb/uniref50.fasta"},
    "sb_search_refdb": {"default": "/db/shortbred/uniref90", "uniprot": "/db/shortbred/uniprot",
                        "uniref90": "/db/shortbred/uniref90"},
    "metagenome_db_dir": "/db/metagenomes/hmp",
    "shortbred_src_dir": "/opt/shortbred",
}
#: ``[pipelines.efi_db]``: the default, a table of versions, and a template for the rest.
EFI_DB: Final[dict[str, Any]] = {
    "default": "efi_202406",
    "versions": {"2025_04": "efi_202504", "sqlite-2024": "/data/efi/efi_202406.sqlite"},
    "template": "efi_{efi_db_version}",
}
PIPELINE_DIR: Final = "/opt/EST/pipelines"
CONFIG_DIR: Final = "/opt/EST/conf"

QUERY = ">query\nMKLVVLGAGGVGKSALTIQLIQNHFVDEYDPTIEDSYRKQVVIDGETCLLDILDTAGQEEYSAMRDQYMRTGEGF\n"
FASTA = (">sp|P0A9Q7|ADHE_ECOLI Aldehyde-alcohol dehydrogenase\n"
         "MAVTNVAELNALVERVKKAQREYASFTQEQVDKIFRAAALAAADARIPLAKMAVAESGMG\n"
         ">tr|A0A0H3JEF8|A0A0H3JEF8_STAA1 Uncharacterized protein\n"
         "MKKLLLSAALLSLSLGAHAEEAQKIEVKDAKGNVVGTVEYNPETGKVEITGLPEGKYTVE\n")
ACCESSIONS = "P0A9Q7\nA0A0H3JEF8\nQ9Y6K9\nB2RID1\n"
NODES = ("P0A9Q7", "P0A9Q8", "P0A9Q9", "A0A0H3JEF8", "A0A0H3JEF9", "Q9Y6K9")
EDGES = (("P0A9Q7", "P0A9Q8"), ("P0A9Q8", "P0A9Q9"), ("A0A0H3JEF8", "A0A0H3JEF9"))
GENERATE_JOB: Final = 41
IDENTIFY_JOB: Final = 42


def xgmml(title: str) -> str:
    """Return a small XGMML network."""
    nodes = "".join(f'  <node id="{n}" label="{n}"/>\n' for n in NODES)
    edges = "".join(f'  <edge id="e{i}" source="{a}" target="{b}"/>\n'
                    for i, (a, b) in enumerate(EDGES))
    return (f'<?xml version="1.0"?>\n<graph label="{title}" '
            f'xmlns="http://www.cs.rpi.edu/XGMML">\n{nodes}{edges}</graph>\n')


def make_site(root: Path) -> tuple[Path, Path]:
    """Write the uploads and the parent jobs' results; return ``(input_dir, results_dir)``."""
    uploads = root / "uploads"
    results = root / "results"
    (uploads / "2026").mkdir(parents=True)
    (uploads / "2026" / "query.fa").write_text(QUERY)
    (uploads / "seqs.fasta").write_text(FASTA)
    (uploads / "ids.txt").write_text(ACCESSIONS)
    (uploads / "network.xgmml").write_text(xgmml("PF07476 SSN"))
    with zipfile.ZipFile(uploads / "network.xgmml.zip", "w") as zf:
        zf.writestr("PF07476_full_ssn.xgmml", xgmml("PF07476 SSN"))
    (uploads / "diagram.sqlite").write_bytes(b"SQLite format 3\x00")
    generate = results / str(GENERATE_JOB)
    generate.mkdir(parents=True)
    (generate / "1.out.parquet").write_bytes(b"PAR1....PAR1")
    (generate / "all_sequences.fasta").write_text(FASTA)
    (generate / "accession_table.tab").write_text("uniprot_id\nP0A9Q7\nA0A0H3JEF8\n")
    (generate / "sequence_metadata.tab").write_text("UniProt_ID\tAttribute\tValue\n")
    identify = results / str(IDENTIFY_JOB)
    identify.mkdir()
    (identify / "marker_ssn.xgmml").write_text(xgmml("ShortBRED Markers"))
    (identify / "markers.faa").write_text(">P0A9Q7_TM_0\nMAVTNVAELNALVERVKKAQ\n")
    (identify / "cdhit.tab").write_text("Cluster\tProtein\n1\tP0A9Q7\n")
    (identify / "stats.json").write_text('{"num_markers": 1}\n')
    return uploads, results


def _taxonomy(*conditions: dict[str, Any], operator: str = "OR") -> str:
    return json.dumps({"operator": operator, "conditions": list(conditions)})


_ENTEROBACTERIA = _taxonomy({"field": "domain", "value": "Bacteria"},
                            {"field": "family", "value": "Enterobacteriaceae"}, operator="AND")
# EFI-Web's older rank names, JSON booleans and a condition operator EST ignores
_LEGACY_NAMES = _taxonomy({"field": "superkingdom", "value": "Eukaryota"},
                          {"field": "order", "value": "Hypocreales", "negate": True,
                           "exact": False, "operator": "!="}, operator="and")

#: ``case name → (job_type, row columns)``; ids are unique so job directories differ.
CASES: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "est_generate_blast-realistic": ("est_generate_blast", {
        "id": 101, "efi_db_version": "2025_04", "jobName": "PF07476 query",
        "jobFilename": "2026/query.fa", "uploadedFilename": "my query.fasta",
        "allByAllBlastEValue": 5, "blastEValue": 10, "maxBlastSequences": 1000,
        "sequenceDatabase": "uniref90", "sequence_version": "UniRef90", "excludeFragments": True,
        "taxSearch": _ENTEROBACTERIA, "taxSearchName": "Enterobacteria", "families": "PF05544",
        "fraction": 3}),
    "est_generate_blast-minimal": ("est_generate_blast", {
        "id": 102, "efi_db_version": None, "jobFilename": "2026/query.fa"}),
    "est_generate_families-realistic": ("est_generate_families", {
        "id": 103, "efi_db_version": "2024_06", "families": "PF07476, pf05544",
        "domain": True, "domainRegion": "n-terminal", "fraction": 2, "excludeFragments": True,
        "sequence_version": "uniref90", "allByAllBlastEValue": 10, "taxSearchName": "bacteria"}),
    "est_generate_families-minimal": ("est_generate_families", {
        "id": 104, "efi_db_version": "2025_04", "families": "PF07476"}),
    "est_generate_families-domain-central": ("est_generate_families", {
        "id": 105, "efi_db_version": "2025_04", "families": "PF07476", "domain": True,
        "domainRegion": "central", "excludeFragments": False, "fraction": 1}),
    "est_generate_families-user-taxonomy": ("est_generate_families", {
        "id": 106, "efi_db_version": "2025_04", "families": "CL0123,IPR000001",
        "taxSearch": _LEGACY_NAMES, "sequence_version": "uniref50", "domain": False,
        "domainRegion": "c-terminal"}),
    "est_generate_fasta-realistic": ("est_generate_fasta", {
        "id": 107, "efi_db_version": "2025_04", "jobFilename": "seqs.fasta",
        "uploadedFilename": "seqs.fasta", "families": "PF05544", "fraction": 3,
        "sequence_version": "uniprot", "allByAllBlastEValue": 5,
        "filterByFamilies": "PF07476,IPR000001"}),
    "est_generate_fasta-minimal": ("est_generate_fasta", {
        "id": 108, "efi_db_version": "2025_04", "jobFilename": "seqs.fasta"}),
    "est_generate_accession-realistic": ("est_generate_accession", {
        "id": 109, "efi_db_version": "sqlite-2024", "jobFilename": "ids.txt", "domain": True,
        "domainRegion": "c-terminal", "domainFamily": "pf07476",
        "filterByFamilies": "PF07476,IPR000001", "excludeFragments": True,
        "allByAllBlastEValue": 5, "taxSearch": _ENTEROBACTERIA}),
    "est_generate_accession-minimal": ("est_generate_accession", {
        "id": 110, "efi_db_version": "2025_04", "jobFilename": "ids.txt"}),
    "est_ssn_finalization-realistic": ("est_ssn_finalization", {
        "id": 111, "efi_db_version": "2025_04", "parentJob_id": GENERATE_JOB,
        "alignmentScore": 87, "minLength": 150, "maxLength": 500, "excludeFragments": True,
        "taxSearchName": "fungi", "computeNeighborhoodConnectivity": True,
        "jobName": "PF07476 AS87"}),
    "est_ssn_finalization-minimal": ("est_ssn_finalization", {
        "id": 112, "efi_db_version": "2025_04", "parentJob_id": GENERATE_JOB,
        "alignmentScore": 40}),
    "est_ssn_finalization-user-taxonomy": ("est_ssn_finalization", {
        "id": 113, "efi_db_version": "2025_04", "parentJob_id": GENERATE_JOB,
        "alignmentScore": 62.5, "taxSearch": _ENTEROBACTERIA, "jobName": 'the "best" SSN'}),
    "est_color_ssn-realistic": ("est_color_ssn", {
        "id": 114, "efi_db_version": "2024_06", "jobFilename": "network.xgmml.zip",
        "uploadedFilename": "PF07476 full.xgmml.zip", "jobName": "colored"}),
    "est_color_ssn-minimal": ("est_color_ssn", {
        "id": 115, "efi_db_version": "2025_04", "jobFilename": "network.xgmml"}),
    "est_neighborhood_connectivity-realistic": ("est_neighborhood_connectivity", {
        "id": 116, "efi_db_version": "2025_04", "jobFilename": "network.xgmml.zip",
        "jobName": "nc"}),
    "est_neighborhood_connectivity-minimal": ("est_neighborhood_connectivity", {
        "id": 117, "efi_db_version": None, "jobFilename": "network.xgmml"}),
    "est_convergence_ratio-realistic": ("est_convergence_ratio", {
        "id": 118, "efi_db_version": "2025_04", "jobFilename": "network.xgmml.zip",
        "alignmentScore": 12}),
    "est_convergence_ratio-minimal": ("est_convergence_ratio", {
        "id": 119, "efi_db_version": "2025_04", "jobFilename": "network.xgmml"}),
    "est_cluster_analysis-realistic": ("est_cluster_analysis", {
        "id": 120, "efi_db_version": "2025_04", "jobFilename": "network.xgmml.zip",
        "minNumSequences": 5, "maxNumSequences": 500, "makeWeblogo": True, "makeHmms": True,
        "makeLengthHistograms": False, "computeConsensusResidues": True,
        "consensusResidues": "C, h", "pidThresholds": "80,90"}),
    "est_cluster_analysis-minimal": ("est_cluster_analysis", {
        "id": 121, "efi_db_version": "2025_04", "jobFilename": "network.xgmml"}),
    "est_cluster_analysis-residues-off": ("est_cluster_analysis", {
        "id": 122, "efi_db_version": "2025_04", "jobFilename": "network.xgmml",
        "computeConsensusResidues": False, "consensusResidues": "C", "pidThresholds": "80"}),
    "gnt_gnn-realistic": ("gnt_gnn", {
        "id": 123, "efi_db_version": "2025_04", "jobFilename": "network.xgmml.zip",
        "neighborhood_size": 10, "cooccurrence": 20}),
    "gnt_gnn-fraction": ("gnt_gnn", {
        "id": 124, "efi_db_version": "2025_04", "jobFilename": "network.xgmml",
        "neighborhoodSize": 5, "cooccurrence": 0.35}),
    "gnt_gnn-minimal": ("gnt_gnn", {
        "id": 125, "efi_db_version": "2025_04", "jobFilename": "network.xgmml"}),
    "gnt_diagram_blast-realistic": ("gnt_diagram_blast", {
        "id": 126, "efi_db_version": "2025_04", "jobFilename": "2026/query.fa",
        "neighborhoodSize": 15, "blastEValue": 5, "maxBlastSequences": 500,
        "sequenceDatabase": "uniref50", "excludeFragments": True}),
    "gnt_diagram_blast-minimal": ("gnt_diagram_blast", {
        "id": 127, "efi_db_version": "2025_04", "jobFilename": "2026/query.fa"}),
    "gnt_diagram_fasta-realistic": ("gnt_diagram_fasta", {
        "id": 128, "efi_db_version": "2025_04", "jobFilename": "seqs.fasta",
        "neighborhoodSize": 5}),
    "gnt_diagram_fasta-minimal": ("gnt_diagram_fasta", {
        "id": 129, "efi_db_version": "2025_04", "jobFilename": "seqs.fasta"}),
    "gnt_diagram_sequence_id-realistic": ("gnt_diagram_sequence_id", {
        "id": 130, "efi_db_version": "2025_04", "jobFilename": "ids.txt",
        "neighborhoodSize": 10}),
    "gnt_diagram_sequence_id-minimal": ("gnt_diagram_sequence_id", {
        "id": 131, "efi_db_version": "2025_04", "jobFilename": "ids.txt"}),
    "cgfp_identify-realistic": ("cgfp_identify", {
        "id": 132, "efi_db_version": "2025_04", "jobFilename": "network.xgmml.zip",
        "referenceDatabase": "uniprot", "cdhitSequenceIdentity": 85, "searchType": "DIAMOND",
        "minLength": 100, "maxLength": 1000}),
    "cgfp_identify-minimal": ("cgfp_identify", {
        "id": 133, "efi_db_version": "2025_04", "jobFilename": "network.xgmml"}),
    "cgfp_quantify-realistic": ("cgfp_quantify", {
        "id": 134, "efi_db_version": "2025_04", "parentJob_id": IDENTIFY_JOB,
        "metagenomes": "SRS011061, SRS011084", "searchType": "blast"}),
    "cgfp_quantify-minimal": ("cgfp_quantify", {
        "id": 135, "efi_db_version": "2025_04", "parentJob_id": IDENTIFY_JOB,
        "metagenomes": "SRS011061"}),
    "taxonomy_accession-realistic": ("taxonomy_accession", {
        "id": 136, "efi_db_version": "2025_04", "jobFilename": "ids.txt",
        "sequence_version": "uniref50", "filterByFamilies": "PF07476", "excludeFragments": True,
        "taxSearch": _ENTEROBACTERIA, "taxSearchName": "Enterobacteria"}),
    "taxonomy_accession-minimal": ("taxonomy_accession", {
        "id": 137, "efi_db_version": "2025_04", "jobFilename": "ids.txt"}),
    "taxonomy_families-realistic": ("taxonomy_families", {
        "id": 138, "efi_db_version": "2025_04", "filterByFamilies": "PF07476,PF05544",
        "excludeFragments": True, "taxSearchName": "archaea", "minLength": 100,
        "maxLength": 1000}),
    "taxonomy_families-minimal": ("taxonomy_families", {
        "id": 139, "efi_db_version": "2025_04", "filterByFamilies": "PF07476"}),
    "taxonomy_fasta-realistic": ("taxonomy_fasta", {
        "id": 140, "efi_db_version": "2025_04", "jobFilename": "seqs.fasta",
        "excludeFragments": True}),
    "taxonomy_fasta-minimal": ("taxonomy_fasta", {
        "id": 141, "efi_db_version": "2025_04", "jobFilename": "seqs.fasta"}),
}


def job_dir(case: str) -> str:
    """Return the (fictional) job directory a case is prepared for."""
    return f"/jobs/{CASES[case][1]['id']}"
