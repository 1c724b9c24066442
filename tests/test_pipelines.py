"""The pipeline catalogue: rows become EST's params.json, staged files and a safe command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from efi_job_manager import models as m
from efi_job_manager.models import JOB_CLASSES, Job, parameter_columns
from efi_job_manager.pipelines import (
    DEFAULT_COMMAND,
    STANDIN_COMMAND,
    Catalogue,
    CatalogueError,
    JobInputError,
    PreparedJob,
    relocate_params,
)
from efi_job_manager.results import read_stats, stats_to_columns

GOLDEN = Path(__file__).parent / "golden" / "params"
UPDATE_GOLDEN = os.environ.get("EFI_UPDATE_GOLDEN") == "1"

SITE: dict[str, Any] = {
    "efi_config": "/opt/efi/efi.config",
    "efi_db": "efi_202406",
    "fasta_db": "/db/blastdb/combined.fasta",
    "duckdb_temp_dir": "/scratch/duckdb",
    "duckdb_memory_limit": "8GB",
    "import_blast_fasta_db": {"uniprot": "/db/blastdb/combined.fasta",
                              "uniref90": "/db/blastdb/uniref90.fasta",
                              "uniref50": "/db/blastdb/uniref50.fasta"},
    "sb_search_refdb": {"uniprot": "/db/shortbred/uniprot", "uniref90": "/db/shortbred/uniref90"},
    "metagenome_db_dir": "/db/metagenomes/hmp",
    "shortbred_src_dir": "/opt/shortbred",
}

FASTA = """>sp|P0A9Q7|ADHE_ECOLI Aldehyde-alcohol dehydrogenase
MAVTNVAELNALVERVKKAQREYASFTQEQVDKIFRAAALAAADARIPLAKMAVAESGMG
IVEDKVIKNHFASEYIYNAYKDEKTCGVLSEDDTFGTITIAEPIGIICGIVPTTNPTSTA
>tr|A0A0H3JEF8|A0A0H3JEF8_STAA1 Uncharacterized protein
MKKLLLSAALLSLSLGAHAEEAQKIEVKDAKGNVVGTVEYNPETGKVEITGLPEGKYTVE
>custom_seq_1 my own sequence
MSTNPKPQRKTKRNTNRRPQDVKFPGGGQIVGGVYLLPRRGPRLGVRATRKTSERSQPRG
"""
QUERY = """>query
MKLVVLGAGGVGKSALTIQLIQNHFVDEYDPTIEDSYRKQVVIDGETCLLDILDTAGQEEYSAMRDQYMRTGEGF
"""
ACCESSIONS = "P0A9Q7\nA0A0H3JEF8, Q9Y6K9\nB2RID1\nnot_an_id\n"
NODES = ["P0A9Q7", "P0A9Q8", "P0A9Q9", "A0A0H3JEF8", "A0A0H3JEF9", "Q9Y6K9"]
EDGES = [("P0A9Q7", "P0A9Q8"), ("P0A9Q8", "P0A9Q9"), ("A0A0H3JEF8", "A0A0H3JEF9")]


def xgmml(title: str = "PF07476 SSN") -> str:
    nodes = "".join(f'  <node id="{n}" label="{n}"/>\n' for n in NODES)
    edges = "".join(f'  <edge id="e{i}" source="{a}" target="{b}"/>\n'
                    for i, (a, b) in enumerate(EDGES))
    return (f'<?xml version="1.0"?>\n<graph label="{title}" '
            f'xmlns="http://www.cs.rpi.edu/XGMML">\n{nodes}{edges}</graph>\n')


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """An input directory with uploads and a results directory with two parent jobs."""
    input_dir = tmp_path / "uploads"
    results = tmp_path / "results"
    (input_dir / "2026").mkdir(parents=True)
    (input_dir / "2026" / "query.fa").write_text(QUERY)
    (input_dir / "seqs.fasta").write_text(FASTA)
    (input_dir / "ids.txt").write_text(ACCESSIONS)
    (input_dir / "network.xgmml").write_text(xgmml())
    with zipfile.ZipFile(input_dir / "network.xgmml.zip", "w") as zf:
        zf.writestr("PF07476_full_ssn.xgmml", xgmml())
    (input_dir / "diagram.sqlite").write_bytes(b"SQLite format 3\x00")
    generate = results / "41"
    generate.mkdir(parents=True)
    (generate / "1.out.parquet").write_bytes(b"PAR1....PAR1")
    (generate / "all_sequences.fasta").write_text(FASTA)
    (generate / "accession_table.tab").write_text("uniprot_id\nP0A9Q7\nA0A0H3JEF8\n")
    (generate / "sequence_metadata.tab").write_text("UniProt_ID\tAttribute\tValue\n")
    identify = results / "42"
    identify.mkdir()
    (identify / "marker_ssn.xgmml").write_text(xgmml("ShortBRED Markers"))
    (identify / "markers.faa").write_text(">P0A9Q7_TM_0\nMAVTNVAELNALVERVKKAQ\n")
    (identify / "cdhit.tab").write_text("Cluster\tProtein\n1\tP0A9Q7\n")
    (identify / "stats.json").write_text('{"num_markers": 1}\n')
    return {"input_dir": input_dir, "results_dir": results}


def catalogue(**kwargs: Any) -> Catalogue:
    settings: dict[str, Any] = {
        "pipeline_dir": Path("/opt/EST/pipelines"), "config_dir": Path("/opt/EST/conf"),
        "command": None, "params": SITE, "overrides": {},
    }
    settings.update(kwargs)
    return Catalogue.from_settings(**settings)


def make(cls: type[Job], **values: Any) -> Job:
    base: dict[str, Any] = {"id": 7, "uuid": str(uuid.UUID(int=7)), "status": "new",
                            "isPublic": False, "efi_db_version": "efi_202406"}
    base.update(values)
    return cls(**base)


ROWS: dict[str, Callable[[], Job]] = {
    "est_generate_blast": lambda: make(
        m.EstGenerateBlastJob, id=101, jobName="PF07476 query", jobFilename="2026/query.fa",
        uploadedFilename="my query.fasta", allByAllBlastEValue=5, blastEValue=5,
        maxBlastSequences=1000, sequenceDatabase="uniref90", sequence_version="UniRef90",
        excludeFragments=True, taxSearch="phylum:Pseudomonadota;genus:Escherichia",
        taxSearchName="Enterobacteria", families="PF05544"),
    "est_generate_families": lambda: make(
        m.EstGenerateFamiliesJob, id=102, efi_db_version=None, families="PF07476, pf05544",
        domain=True, domainRegion="n-terminal", fraction=2, excludeFragments=False,
        sequence_version="uniprot", allByAllBlastEValue=10),
    "est_generate_fasta": lambda: make(
        m.EstGenerateFastaJob, id=103, jobFilename="seqs.fasta", uploadedFilename="seqs.fasta",
        sequence_version="uniprot", allByAllBlastEValue=5),
    "est_generate_accession": lambda: make(
        m.EstGenerateAccessionJob, id=104, jobFilename="ids.txt", domain=True,
        domainRegion="domain", domainFamily="PF07476", filterByFamilies="PF07476",
        excludeFragments=True, allByAllBlastEValue=5,
        taxSearch='{"conditions": [{"field": "superkingdom", "value": "Bacteria"}]}'),
    "est_ssn_finalization": lambda: make(
        m.EstSsnFinalizationJob, id=105, parentJob_id=41, alignmentScore=87, minLength=150,
        maxLength=500, excludeFragments=True, computeNeighborhoodConnectivity=True,
        jobName="PF07476 AS87"),
    "est_color_ssn": lambda: make(m.EstColorSsnJob, id=106, jobFilename="network.xgmml.zip",
                                  jobName="colored"),
    "est_neighborhood_connectivity": lambda: make(
        m.EstNeighborhoodConnectivityJob, id=107, jobFilename="network.xgmml"),
    "est_convergence_ratio": lambda: make(
        m.EstConvergenceRatioJob, id=108, jobFilename="network.xgmml", alignmentScore=20),
    "est_cluster_analysis": lambda: make(
        m.EstClusterAnalysisJob, id=109, jobFilename="network.xgmml.zip", minNumSequences=3,
        maxNumSequences=750, makeWeblogo=True, makeHmms=True, makeLengthHistograms=False,
        computeConsensusResidues=True, consensusResidues="C,H", pidThresholds="80, 90"),
    "gnt_gnn": lambda: make(m.GntGnnJob, id=110, jobFilename="network.xgmml.zip",
                            neighborhood_size=10, cooccurrence=0.2),
    "gnt_diagram_blast": lambda: make(
        m.GntDiagramBlastJob, id=111, jobFilename="2026/query.fa", neighborhoodSize=10,
        blastEValue=5, maxBlastSequences=200, sequenceDatabase="uniprot"),
    "gnt_diagram_fasta": lambda: make(m.GntDiagramFastaJob, id=112, jobFilename="seqs.fasta",
                                      neighborhoodSize=15),
    "gnt_diagram_sequence_id": lambda: make(
        m.GntDiagramSequenceIdJob, id=113, jobFilename="ids.txt", neighborhoodSize=20),
    "gnt_view_diagram": lambda: make(m.GntViewDiagramJob, id=114, jobFilename="diagram.sqlite"),
    "cgfp_identify": lambda: make(
        m.CgfpIdentifyJob, id=115, jobFilename="network.xgmml.zip", referenceDatabase="uniref90",
        cdhitSequenceIdentity=85, searchType="diamond", minLength=100),
    "cgfp_quantify": lambda: make(m.CgfpQuantifyJob, id=116, parentJob_id=42,
                                  metagenomes="SRS011061, SRS011084", searchType="diamond"),
    "taxonomy_accession": lambda: make(
        m.TaxonomyAccessionJob, id=117, jobFilename="ids.txt", sequence_version="uniref50",
        excludeFragments=True, filterByFamilies="PF07476", taxSearch="superkingdom:Bacteria"),
    "taxonomy_families": lambda: make(
        m.TaxonomyFamiliesJob, id=118, filterByFamilies="PF07476,PF05544", minLength=100,
        maxLength=1000, excludeFragments=True),
    "taxonomy_fasta": lambda: make(m.TaxonomyFastaJob, id=119, jobFilename="seqs.fasta",
                                   excludeFragments=False),
}


def prepare(job: Job, site: dict[str, Path], cat: Catalogue | None = None) -> PreparedJob:
    cat = cat or catalogue()
    return cat.prepare(job, job_dir=site["results_dir"] / str(job.id),
                       input_dir=site["input_dir"], results_dir=site["results_dir"])


def normalised(params: object, job_dir: Path) -> Any:
    return json.loads(json.dumps(params).replace(str(job_dir.absolute()), "{job_dir}"))


def stage(prepared: PreparedJob, job_dir: Path) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    for name, source in prepared.inputs.items():
        (job_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, job_dir / name)
    for name, text in prepared.extra_files.items():
        (job_dir / name).write_text(text)
    (job_dir / "params.json").write_text(prepared.params_json())


def test_rows_cover_every_job_type() -> None:
    """The table of realistic rows has one row per job type of the model."""
    assert sorted(ROWS) == sorted(JOB_CLASSES)
    assert len(ROWS) == 19


def test_every_parameter_column_is_used_or_explained() -> None:
    """Each entry reads every parameter column of its class, or says why not."""
    cat = catalogue()
    assert cat.job_types() == tuple(sorted(JOB_CLASSES))
    for job_type, cls in JOB_CLASSES.items():
        entry = cat.entry(job_type)
        implicit = {"id", "efi_db_version"}
        missing = set(parameter_columns(cls)) - implicit - entry.columns_used() - set(entry.unused)
        assert not missing, f"{job_type}: {missing}"


@pytest.mark.parametrize("job_type", sorted(JOB_CLASSES))
def test_params_match_golden(job_type: str, site: dict[str, Path]) -> None:
    """A realistic row of each job type gives exactly the reviewed params.json."""
    job = ROWS[job_type]()
    prepared = prepare(job, site)
    got = normalised(prepared.params, site["results_dir"] / str(job.id))
    golden = GOLDEN / f"{job_type}.json"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(golden.read_text())
    assert json.loads(prepared.params_json()) == prepared.params


@pytest.mark.parametrize("job_type", sorted(set(JOB_CLASSES) - {"gnt_view_diagram"}))
def test_standin_runs_on_prepared_params(job_type: str, site: dict[str, Path]) -> None:
    """The stand-in accepts each prepared job, runs its command and writes stats.json."""
    cat = catalogue(command=STANDIN_COMMAND)
    job = ROWS[job_type]()
    job_dir = site["results_dir"] / str(job.id)
    prepared = prepare(job, site, cat)
    stage(prepared, job_dir)
    proc = subprocess.run(list(prepared.command), cwd=job_dir, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Submitted process >" in proc.stdout
    stats = read_stats(job_dir)
    update = stats_to_columns(type(job), stats, cat.result_columns(job_type))
    assert update.errors == ()
    assert set(update.columns) <= set(cat.result_columns(job_type).values())


def test_generate_then_finalize_chain(site: dict[str, Path]) -> None:
    """A finalization reads what the stand-in's generate job wrote into the results dir."""
    cat = catalogue(command=STANDIN_COMMAND)
    generate = ROWS["est_generate_fasta"]()
    generate.id = 50
    gen_dir = site["results_dir"] / "50"
    prepared = prepare(generate, site, cat)
    stage(prepared, gen_dir)
    subprocess.run(list(prepared.command), cwd=gen_dir, check=True, capture_output=True)
    stats = read_stats(gen_dir)
    update = stats_to_columns(type(generate), stats, cat.result_columns("est_generate_fasta"))
    assert update.columns["numFastaHeaders"] == 3
    assert update.columns["numMatchedIds"] == 2
    assert update.columns["numUnmatchedIds"] == 1
    final = make(m.EstSsnFinalizationJob, id=51, parentJob_id=50, alignmentScore=20)
    final_dir = site["results_dir"] / "51"
    prepared = prepare(final, site, cat)
    assert prepared.inputs["parent/all_sequences.fasta"] == (gen_dir / "all_sequences.fasta")
    stage(prepared, final_dir)
    proc = subprocess.run(list(prepared.command), cwd=final_dir, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert (final_dir / "full_ssn.xgmml.zip").is_file()
    assert (final_dir / "job.finish").is_file()


def test_identify_then_quantify_chain(site: dict[str, Path]) -> None:
    """cgfp_quantify reads the identify job's directory as written by the stand-in."""
    cat = catalogue(command=STANDIN_COMMAND)
    identify = ROWS["cgfp_identify"]()
    identify.id = 60
    prepared = prepare(identify, site, cat)
    stage(prepared, site["results_dir"] / "60")
    subprocess.run(list(prepared.command), cwd=site["results_dir"] / "60", check=True,
                   capture_output=True)
    quantify = make(m.CgfpQuantifyJob, id=61, parentJob_id=60, metagenomes="SRS011061")
    prepared = prepare(quantify, site, cat)
    assert prepared.params["identify_dir"].endswith("/61/parent")
    assert prepared.params["ssn_input"].endswith("/61/parent/marker_ssn.xgmml")
    stage(prepared, site["results_dir"] / "61")
    proc = subprocess.run(list(prepared.command), cwd=site["results_dir"] / "61",
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((site["results_dir"] / "61" / "stats.json").read_text())["num_markers"] > 0


# -- the command -------------------------------------------------------------------------------


def test_default_command_is_est_run_template_with_lowercase_c(site: dict[str, Path]) -> None:
    """The default command adds the config with -c (never -C) and runs the real script."""
    prepared = prepare(ROWS["est_generate_families"](), site)
    assert prepared.command == (
        "nextflow", "-c", "/opt/EST/conf/est/slurm.config", "run", "/opt/EST/pipelines/est/est.nf",
        "-params-file", "params.json", "-w", "work", "-ansi-log", "false", "-offline",
        "-with-report", "report.html", "-with-timeline", "timeline.html")
    assert "-C" not in DEFAULT_COMMAND
    assert prepared.pipeline == "est"


def test_no_config_dir_drops_the_config_pair(site: dict[str, Path]) -> None:
    """Without a config directory the command has no -c pair."""
    prepared = prepare(ROWS["gnt_gnn"](), site, catalogue(config_dir=None))
    assert prepared.command[:3] == ("nextflow", "run", "/opt/EST/pipelines/gnt/gnt.nf")
    assert "-c" not in prepared.command


def test_configured_command_substitutes_placeholders(site: dict[str, Path]) -> None:
    """A site's command gets configuration values in its placeholders, literal braces kept."""
    cat = catalogue(nextflow="/usr/bin/nf", command=[
        "{nextflow}", "-c", "{config}", "run", "{pipeline}", "--name={pipeline_name}",
        "-params-file", "{job_dir}/{params_file}", "{{literal}}"])
    job = ROWS["gnt_gnn"]()
    prepared = prepare(job, site, cat)
    job_dir = (site["results_dir"] / str(job.id)).absolute()
    assert prepared.command == (
        "/usr/bin/nf", "-c", "/opt/EST/conf/gnt/slurm.config", "run",
        "/opt/EST/pipelines/gnt/gnt.nf", "--name=gnt", "-params-file",
        f"{job_dir}/params.json", "{literal}")


@pytest.mark.parametrize("command", [
    ["nextflow", "{jobName}"], ["{pipeline.parent}"], ["{0}"], ["{config!r}"], ["{unclosed"],
])
def test_unknown_placeholder_is_a_catalogue_error(command: list[str]) -> None:
    """A command template naming anything but the known placeholders fails at start-up."""
    with pytest.raises(CatalogueError, match=r"pipelines\.command"):
        catalogue(command=command)


def test_pipeline_placeholder_needs_a_pipeline_dir() -> None:
    """{pipeline} without pipeline_dir, or no command and no pipeline_dir, fails at start-up."""
    with pytest.raises(CatalogueError, match="pipeline_dir"):
        catalogue(pipeline_dir=None)
    with pytest.raises(CatalogueError, match="pipeline_dir"):
        catalogue(pipeline_dir=None, command=["nextflow", "run", "{pipeline}"])


def test_shell_metacharacters_stay_in_params_and_out_of_the_command(
        site: dict[str, Path]) -> None:
    """Row text is passed verbatim in params.json and never reaches the command."""
    evil = "x; rm -rf / #$(id) `id` && echo '\"pwned\"'"
    job = make(m.GntGnnJob, id=120, jobFilename="network.xgmml", neighborhood_size=10,
               cooccurrence=0.5, jobName=evil)
    prepared = prepare(job, site)
    assert prepared.params["job_name"] == evil
    assert json.loads(prepared.params_json())["job_name"] == evil
    assert not any("rm -rf" in arg or "$(id)" in arg for arg in prepared.command)


# -- uploads -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "../../etc/passwd", "/etc/passwd", "a\x00b", "", "   ", "sub/../../x", "..",
    "missing.fasta", "2026",
])
def test_bad_upload_names_are_job_errors(value: str, site: dict[str, Path]) -> None:
    """jobFilename must name an existing file strictly inside the input directory."""
    job = make(m.EstGenerateFastaJob, id=121, jobFilename=value)
    with pytest.raises(JobInputError, match="jobFilename") as info:
        prepare(job, site)
    assert info.value.column == "jobFilename"


def test_symlink_leaving_the_input_dir_is_rejected(site: dict[str, Path], tmp_path: Path) -> None:
    """A symbolic link in the input directory that points outside it is refused."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    (site["input_dir"] / "link.fasta").symlink_to(secret)
    job = make(m.EstGenerateFastaJob, id=122, jobFilename="link.fasta")
    with pytest.raises(JobInputError, match="leaves the input directory"):
        prepare(job, site)


def test_symlink_inside_the_input_dir_is_fine(site: dict[str, Path]) -> None:
    """A link that stays inside the input directory resolves to its target."""
    (site["input_dir"] / "alias.fasta").symlink_to(site["input_dir"] / "seqs.fasta")
    prepared = prepare(make(m.EstGenerateFastaJob, id=123, jobFilename="alias.fasta"), site)
    assert prepared.inputs == {"input/seqs.fasta": site["input_dir"].resolve() / "seqs.fasta"}


def test_upload_is_staged_under_input_with_a_sanitised_name(site: dict[str, Path]) -> None:
    """The staged copy keeps the base name, cleaned, under input/; params hold its absolute path."""
    (site["input_dir"] / "my seqs;(1).fasta").write_text(FASTA)
    job = make(m.EstGenerateFastaJob, id=124, jobFilename="my seqs;(1).fasta")
    prepared = prepare(job, site)
    assert list(prepared.inputs) == ["input/my_seqs__1_.fasta"]
    job_dir = (site["results_dir"] / "124").absolute()
    assert prepared.params["input_file"] == f"{job_dir}/input/my_seqs__1_.fasta"
    assert prepared.params["final_output_dir"] == str(job_dir)


# -- required values -----------------------------------------------------------------------------


@pytest.mark.parametrize(("job", "column"), [
    (lambda: make(m.EstGenerateFamiliesJob, id=130), "families"),
    (lambda: make(m.EstGenerateFamiliesJob, id=130, families="  "), "families"),
    (lambda: make(m.GntGnnJob, id=131, jobFilename="network.xgmml", cooccurrence=0.2),
     "neighborhood_size"),
    (lambda: make(m.GntGnnJob, id=131, jobFilename="network.xgmml", neighborhood_size=10),
     "cooccurrence"),
    (lambda: make(m.EstColorSsnJob, id=132), "jobFilename"),
    (lambda: make(m.GntGnnJob, id=131, neighborhood_size=10, cooccurrence=0.2), "jobFilename"),
    (lambda: make(m.EstSsnFinalizationJob, id=133, parentJob_id=41), "alignmentScore"),
    (lambda: make(m.EstSsnFinalizationJob, id=133, alignmentScore=87), "parentJob_id"),
    (lambda: make(m.EstSsnFinalizationJob, id=133, alignmentScore=87, parentJob_id=99),
     "parentJob_id"),
    (lambda: make(m.EstSsnFinalizationJob, id=133, alignmentScore=87, parentJob_id=42),
     "parentJob_id"),
    (lambda: make(m.CgfpQuantifyJob, id=134, parentJob_id=42), "metagenomes"),
    (lambda: make(m.CgfpQuantifyJob, id=134, metagenomes="SRS011061"), "parentJob_id"),
    (lambda: make(m.TaxonomyFamiliesJob, id=135), "filterByFamilies"),
    (lambda: make(m.EstClusterAnalysisJob, id=136, jobFilename="network.xgmml",
                  computeConsensusResidues=True, consensusResidues="C"), "pidThresholds"),
    (lambda: make(m.EstGenerateFastaJob, id=137, jobFilename="seqs.fasta", efi_db_version=""),
     None),
])
def test_missing_required_values_name_the_column(job: Callable[[], Job], column: str | None,
                                                 site: dict[str, Path]) -> None:
    """A row without a value EST requires is a JobInputError naming the column."""
    cat = catalogue(params={k: v for k, v in SITE.items() if k != "efi_db"}) \
        if column is None else catalogue()
    with pytest.raises(JobInputError) as info:
        prepare(job(), site, cat)
    expected = column or "efi_db_version"
    assert info.value.column == expected
    assert expected in str(info.value)


@pytest.mark.parametrize(("values", "column", "text"), [
    ({"neighborhood_size": 25}, "neighborhood_size", "at most 20"),
    ({"neighborhood_size": 0}, "neighborhood_size", "at least 1"),
    ({"cooccurrence": 1.5}, "cooccurrence", "at most 1"),
    ({"neighborhood_size": "ten"}, "neighborhood_size", "whole number"),
])
def test_out_of_range_values_are_job_errors(values: dict[str, Any], column: str, text: str,
                                            site: dict[str, Path]) -> None:
    """Values outside what EST's scripts accept are refused before submission."""
    row: dict[str, Any] = {"jobFilename": "network.xgmml", "neighborhood_size": 10,
                           "cooccurrence": 0.2, **values}
    with pytest.raises(JobInputError, match=text) as info:
        prepare(make(m.GntGnnJob, id=140, **row), site)
    assert info.value.column == column


@pytest.mark.parametrize(("cls", "values", "column"), [
    (m.EstGenerateFamiliesJob, {"families": "PF07476; SSF1234"}, "families"),
    (m.EstGenerateFamiliesJob, {"families": "PF07476", "sequence_version": "uniref100"},
     "sequence_version"),
    (m.EstGenerateFamiliesJob, {"families": "PF07476", "domain": True, "domainRegion": "middle"},
     "domainRegion"),
    (m.EstGenerateFamiliesJob, {"families": "PF07476", "fraction": 0}, "fraction"),
    (m.EstGenerateFamiliesJob, {"families": "PF07476", "allByAllBlastEValue": -5},
     "allByAllBlastEValue"),
    (m.EstGenerateFamiliesJob, {"families": "PF07476", "taxSearch": "genus:E'; DROP--"},
     "taxSearch"),
    (m.EstGenerateFamiliesJob, {"families": "PF07476", "taxSearch": "planet:Mars"},
     "taxSearch"),
    (m.EstGenerateFamiliesJob, {"families": "PF07476", "taxSearch": "[{"}, "taxSearch"),
    (m.CgfpIdentifyJob, {"jobFilename": "network.xgmml", "referenceDatabase": "nr"},
     "referenceDatabase"),
    (m.CgfpIdentifyJob, {"jobFilename": "network.xgmml", "referenceDatabase": "uniprot",
                         "searchType": "usearch"}, "searchType"),
])
def test_invalid_values_are_job_errors(cls: type[Job], values: dict[str, Any], column: str,
                                       site: dict[str, Path]) -> None:
    """Values EST would misread are refused, naming the column."""
    with pytest.raises(JobInputError) as info:
        prepare(make(cls, id=141, **values), site)
    assert info.value.column == column


# -- conversions -----------------------------------------------------------------------------


def test_taxonomy_filter_file_is_written_for_est(site: dict[str, Path]) -> None:
    """taxSearch becomes a user-filter entry and the JSON file EST reads."""
    job = ROWS["est_generate_blast"]()
    prepared = prepare(job, site)
    job_dir = (site["results_dir"] / str(job.id)).absolute()
    assert f"user-filter={job_dir}/taxonomy_filter.json" in prepared.params["filter"]
    data = json.loads(prepared.extra_files["taxonomy_filter.json"])
    assert data == [{"conditions": [{"field": "phylum", "value": "Pseudomonadota"},
                                    {"field": "genus", "value": "Escherichia"}],
                     "name": "Enterobacteria", "operator": "OR"}]


def test_evalue_exponents_become_evalues(site: dict[str, Path]) -> None:
    """An e-value column holds an exponent: 5 means 1e-5."""
    params = prepare(ROWS["est_generate_blast"](), site).params
    assert params["blast_evalue"] == "1e-5"
    assert params["import_blast_evalue"] == "1e-5"
    params = prepare(ROWS["est_convergence_ratio"](), site).params
    assert params["blast_evalue"] == "1e-20"


def test_efi_db_comes_from_the_row_before_the_site(site: dict[str, Path]) -> None:
    """efi_db is the row's efi_db_version when set, else the site's efi_db."""
    row = make(m.EstGenerateFastaJob, id=150, jobFilename="seqs.fasta",
               efi_db_version="efi_202501")
    assert prepare(row, site).params["efi_db"] == "efi_202501"
    row = make(m.EstGenerateFastaJob, id=151, jobFilename="seqs.fasta", efi_db_version=None)
    assert prepare(row, site).params["efi_db"] == "efi_202406"


def test_job_id_is_a_string_and_multiplex_false(site: dict[str, Path]) -> None:
    """EST's scripts write job_id as a string; create_est always writes multiplex false."""
    params = prepare(ROWS["est_generate_fasta"](), site).params
    assert params["job_id"] == "103"
    assert params["multiplex"] is False


def test_view_diagram_runs_no_pipeline(site: dict[str, Path]) -> None:
    """gnt_view_diagram stages its upload and asks for no pipeline run."""
    prepared = prepare(ROWS["gnt_view_diagram"](), site)
    assert prepared.runs_pipeline is False
    assert prepared.command == ()
    assert prepared.params == {}
    assert list(prepared.inputs) == ["input/diagram.sqlite"]


def test_site_params_reach_only_the_pipelines_that_read_them(site: dict[str, Path]) -> None:
    """duckdb_temp_dir goes to est, not to gnt; the refdb table resolves per row."""
    assert prepare(ROWS["est_generate_fasta"](), site).params["duckdb_temp_dir"] == \
        "/scratch/duckdb"
    assert "duckdb_temp_dir" not in prepare(ROWS["gnt_gnn"](), site).params
    identify = prepare(ROWS["cgfp_identify"](), site).params
    assert identify["sb_search_refdb"] == "/db/shortbred/uniref90"
    assert identify["sb_cdhit_sid"] == 0.85


def test_unknown_site_param_is_a_catalogue_error() -> None:
    """A site parameter no pipeline reads is refused at start-up (a typo, most likely)."""
    with pytest.raises(CatalogueError, match=r"pipelines\.params\.duckdb_tmp_dir"):
        catalogue(params={**SITE, "duckdb_tmp_dir": "/x"})
    with pytest.raises(CatalogueError, match=r"pipelines\.params\.fasta_db"):
        catalogue(params={**SITE, "fasta_db": {"a": "b"}})


def test_relocate_params_rewrites_the_job_dir_prefix(site: dict[str, Path]) -> None:
    """A connector can move a job: every job-dir path, filter entries included, is rewritten."""
    job = ROWS["est_generate_blast"]()
    prepared = prepare(job, site)
    job_dir = site["results_dir"] / str(job.id)
    moved = relocate_params(prepared.params, job_dir.absolute(), "/scratch/efi/101")
    assert moved["final_output_dir"] == "/scratch/efi/101"
    assert moved["input_file"] == "/scratch/efi/101/input/query.fa"
    assert "user-filter=/scratch/efi/101/taxonomy_filter.json" in moved["filter"]
    assert str(job_dir.absolute()) not in json.dumps(moved)
    assert moved["efi_config"] == "/opt/efi/efi.config"


# -- overrides ----------------------------------------------------------------------------------


def test_override_changes_script_config_params_and_columns(site: dict[str, Path]) -> None:
    """A site can change the script, the config, add, rename and remove parameters."""
    cat = catalogue(overrides={"gnt_gnn": {
        "script": "gnt/gnt_v2.nf", "config": "gnt/cluster.config",
        "params": {"sb_extra": 3, "cooc_threshold": 0.5},
        "columns": {"jobName": "", "cooccurrence": "cooc"},
        "remove": ["efi_config"],
    }})
    job = ROWS["gnt_gnn"]()
    job.jobName = "named"
    prepared = prepare(job, site, cat)
    assert prepared.params["sb_extra"] == 3
    assert prepared.params["cooc"] == 0.2
    assert prepared.params["cooc_threshold"] == 0.5
    assert "job_name" not in prepared.params
    assert "efi_config" not in prepared.params
    assert "/opt/EST/pipelines/gnt/gnt_v2.nf" in prepared.command
    assert "/opt/EST/conf/gnt/cluster.config" in prepared.command


def test_override_adds_a_column_parameter(site: dict[str, Path]) -> None:
    """A column the entry does not read can be passed under a name of the site's choice."""
    cat = catalogue(overrides={"cgfp_identify": {"columns": {"minLength": "min_seq_len"}}})
    assert prepare(ROWS["cgfp_identify"](), site, cat).params["min_seq_len"] == 100


def test_override_changes_result_keys() -> None:
    """results = {stats_key = column} adds or drops a mapping."""
    cat = catalogue(overrides={"est_generate_fasta": {
        "results": {"num_family": "numFamilyIds", "num_headers": ""}}})
    mapping = cat.result_columns("est_generate_fasta")
    assert mapping["num_family"] == "numFamilyIds"
    assert "num_headers" not in mapping


@pytest.mark.parametrize(("overrides", "text"), [
    ({"est_generate_everything": {"params": {"a": 1}}}, "unknown job type"),
    ({"gnt_gnn": {"columns": {"nosuchColumn": "x"}}}, "no column 'nosuchColumn'"),
    ({"gnt_gnn": {"columns": {"families": "families"}}}, "no column 'families'"),
    ({"gnt_gnn": {"results": {"x": "nosuchColumn"}}}, "no column 'nosuchColumn'"),
    ({"gnt_gnn": {"results": {"x": "jobName"}}}, "not one a result may write"),
    ({"gnt_gnn": {"paramz": {}}}, "unknown key"),
    ({"gnt_gnn": {"params": "x"}}, "expected a table"),
    ({"est_generate_families": {"columns": {"excludeFragments": "frag"}}}, "filter list"),
])
def test_bad_overrides_are_catalogue_errors(overrides: dict[str, Any], text: str) -> None:
    """Overrides naming unknown job types, columns or keys fail at start-up."""
    with pytest.raises(CatalogueError, match=text):
        catalogue(overrides=overrides)


def test_default_catalogue_runs_the_standin(site: dict[str, Path]) -> None:
    """Catalogue.default() has every job type and the stand-in command."""
    cat = Catalogue.default()
    assert len(cat.job_types()) == 19
    job = make(m.GntGnnJob, id=160, jobFilename="network.xgmml", neighborhood_size=5,
               cooccurrence=0.1)
    prepared = prepare(job, site, cat)
    assert prepared.command == (sys.executable, "-m", "efi_job_manager.standin", "gnt",
                                "params.json")
    assert cat.pipeline_name("gnt_gnn") == "gnt"


def test_domain_region_only_with_domain(site: dict[str, Path]) -> None:
    """Like create_est, domain_region and domain_family are written only when domain is set."""
    job = make(m.EstGenerateAccessionJob, id=170, jobFilename="ids.txt", domain=False,
               domainRegion="c-terminal", domainFamily="PF07476")
    params = prepare(job, site).params
    assert params["domain"] is False
    assert "domain_region" not in params
    assert "domain_family" not in params
