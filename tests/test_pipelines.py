"""The pipeline catalogue: rows become EST's params.json, staged files and a safe command.

Whether the params equal what EST's own scripts write is ``test_est_fidelity.py``; this
file covers the catalogue's own behaviour: which columns are read, bad rows, the EFI
database mapping, uploads, parent jobs, commands, site values and overrides.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import golden_cases
import pytest

from efi_job_manager import models as m
from efi_job_manager.catalogue import (
    DEFAULT_COMMAND,
    STANDIN_COMMAND,
    Catalogue,
    CatalogueError,
    EfiDatabases,
    JobInputError,
    PreparedJob,
)
from efi_job_manager.catalogue.jobtypes import JOB_TYPES
from efi_job_manager.catalogue.rowvalues import RowReader
from efi_job_manager.models import JOB_CLASSES, Job, parameter_columns
from efi_job_manager.results import read_stats, stats_to_columns
from efi_job_manager.toolkit import relocate_params

CASES = golden_cases
SITE: dict[str, Any] = CASES.SITE_PARAMS


@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    """An input directory with uploads and a results directory with two parent jobs."""
    input_dir, results = CASES.make_site(tmp_path)
    return {"input_dir": input_dir, "results_dir": results}


def catalogue(**kwargs: Any) -> Catalogue:
    """The golden site's catalogue, with some settings changed."""
    settings: dict[str, Any] = {
        "pipeline_dir": Path(CASES.PIPELINE_DIR), "config_dir": Path(CASES.CONFIG_DIR),
        "command": None, "params": SITE, "overrides": {},
        "efi_db": EfiDatabases(**CASES.EFI_DB),
    }
    settings.update(kwargs)
    return Catalogue.from_settings(**settings)


def make(cls: type[Job], **values: Any) -> Job:
    """A row of a job class."""
    base: dict[str, Any] = {"id": 7, "uuid": str(uuid.uuid4()), "status": "new",
                            "isPublic": False, "efi_db_version": "2025_04"}
    base.update(values)
    return cls(**base)


def case(name: str, **changes: Any) -> Job:
    """A golden case's row, with some columns changed."""
    job_type, row = CASES.CASES[name]
    return make(JOB_CLASSES[job_type], **{**row, **changes})


def prepare(job: Job, site: dict[str, Path], cat: Catalogue | None = None) -> PreparedJob:
    """Prepare a row for a job directory in the results directory."""
    cat = cat or catalogue()
    return cat.prepare(job, job_dir=site["results_dir"] / str(job.id),
                       input_dir=site["input_dir"], results_dir=site["results_dir"])


def stage(prepared: PreparedJob, job_dir: Path) -> None:
    """Stage a prepared job as the manager does."""
    job_dir.mkdir(parents=True, exist_ok=True)
    for name, source in prepared.inputs.items():
        (job_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, job_dir / name)
    for name, text in prepared.extra_files.items():
        (job_dir / name).write_text(text)
    (job_dir / "params.json").write_text(prepared.params_json())


# -- which columns are read ------------------------------------------------------------------


def test_every_parameter_column_is_read_or_explained(site: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each job type reads every parameter column of its class, or says why not."""
    read: dict[str, set[str]] = {}
    real_init = RowReader.__init__

    def spy(self: RowReader, values: Any, job_type: str) -> None:
        real_init(self, values, job_type)
        read.setdefault(job_type, set())
        self.read = read[job_type]

    monkeypatch.setattr(RowReader, "__init__", spy)
    cat = catalogue()
    for name in CASES.CASES:
        prepare(case(name), site, cat)
    prepare(make(m.GntViewDiagramJob, id=200, jobFilename="diagram.sqlite"), site, cat)
    assert cat.job_types() == tuple(sorted(JOB_CLASSES))
    for job_type, cls in JOB_CLASSES.items():
        unused = set(JOB_TYPES[job_type].unused)
        missing = set(parameter_columns(cls)) - read[job_type] - unused
        assert not missing, f"{job_type}: {missing}"
        assert not unused & read[job_type], f"{job_type}: read although declared unused"


@pytest.mark.parametrize("name", sorted(n for n in CASES.CASES if n.endswith("-realistic")))
def test_standin_runs_on_prepared_params(name: str, site: dict[str, Path]) -> None:
    """The stand-in runs each prepared job; its stats.json fills the job's result columns."""
    cat = catalogue(command=STANDIN_COMMAND)
    job = case(name)
    job_dir = site["results_dir"] / str(job.id)
    prepared = prepare(job, site, cat)
    stage(prepared, job_dir)
    proc = subprocess.run(list(prepared.command), cwd=job_dir, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Submitted process >" in proc.stdout
    update = stats_to_columns(type(job), read_stats(job_dir), cat.result_columns(job.job_type))
    assert update.errors == ()
    assert set(update.columns) <= set(cat.result_columns(job.job_type).values())


def test_generate_then_finalize_chain(site: dict[str, Path]) -> None:
    """A finalization reads what the stand-in's generate job wrote into the results dir."""
    cat = catalogue(command=STANDIN_COMMAND)
    generate = case("est_generate_fasta-minimal", id=50)
    gen_dir = site["results_dir"] / "50"
    prepared = prepare(generate, site, cat)
    stage(prepared, gen_dir)
    subprocess.run(list(prepared.command), cwd=gen_dir, check=True, capture_output=True)
    update = stats_to_columns(type(generate), read_stats(gen_dir),
                              cat.result_columns("est_generate_fasta"))
    assert update.columns["numFastaHeaders"] == 2
    final = make(m.EstSsnFinalizationJob, id=51, parentJob_id=50, alignmentScore=20)
    final_dir = site["results_dir"] / "51"
    prepared = prepare(final, site, cat)
    assert prepared.inputs["parent/all_sequences.fasta"] == (gen_dir / "all_sequences.fasta")
    stage(prepared, final_dir)
    proc = subprocess.run(list(prepared.command), cwd=final_dir, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert (final_dir / "full_ssn.xgmml.zip").is_file()


def test_identify_then_quantify_chain(site: dict[str, Path]) -> None:
    """cgfp_quantify reads the identify job's directory as written by the stand-in."""
    cat = catalogue(command=STANDIN_COMMAND)
    prepared = prepare(case("cgfp_identify-realistic", id=60), site, cat)
    stage(prepared, site["results_dir"] / "60")
    subprocess.run(list(prepared.command), cwd=site["results_dir"] / "60", check=True,
                   capture_output=True)
    prepared = prepare(make(m.CgfpQuantifyJob, id=61, parentJob_id=60, metagenomes="SRS011061"),
                       site, cat)
    assert prepared.params["identify_dir"].endswith("/61/parent")
    assert prepared.params["ssn_input"].endswith("/61/parent/marker_ssn.xgmml")
    stage(prepared, site["results_dir"] / "61")
    proc = subprocess.run(list(prepared.command), cwd=site["results_dir"] / "61",
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((site["results_dir"] / "61" / "stats.json").read_text())["num_markers"] > 0


# -- the command -------------------------------------------------------------------------------


def test_default_command_is_est_run_template_with_lowercase_c(site: dict[str, Path]) -> None:
    """The default command adds EST's executor config with -c (never -C)."""
    prepared = prepare(case("est_generate_families-minimal"), site)
    assert prepared.command == (
        "nextflow", "-c", "/opt/EST/conf/slurm.config", "run", "/opt/EST/pipelines/est/est.nf",
        "-params-file", "params.json", "-w", "work", "-ansi-log", "false", "-offline",
        "-with-report", "report.html", "-with-timeline", "timeline.html")
    assert "-C" not in DEFAULT_COMMAND
    assert prepared.pipeline == "est"


def test_no_config_dir_drops_the_config_pair(site: dict[str, Path]) -> None:
    """Without a config directory the command has no -c pair."""
    prepared = prepare(case("gnt_gnn-realistic"), site, catalogue(config_dir=None))
    assert prepared.command[:3] == ("nextflow", "run", "/opt/EST/pipelines/gnt/gnt.nf")
    assert "-c" not in prepared.command


def test_configured_command_substitutes_placeholders(site: dict[str, Path]) -> None:
    """A site's command gets configuration values in its placeholders, literal braces kept."""
    cat = catalogue(nextflow="/usr/bin/nf", command=[
        "{nextflow}", "-c", "{config}", "run", "{pipeline}", "--name={pipeline_name}",
        "-params-file", "{job_dir}/{params_file}", "{{literal}}"])
    job = case("gnt_gnn-realistic")
    prepared = prepare(job, site, cat)
    job_dir = (site["results_dir"] / str(job.id)).absolute()
    assert prepared.command == (
        "/usr/bin/nf", "-c", "/opt/EST/conf/slurm.config", "run",
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


def test_shell_metacharacters_never_reach_the_command_and_titles_are_made_quotable(
        site: dict[str, Path]) -> None:
    """Row text never reaches the command; a job name EST quotes in a shell loses its quotes."""
    evil = "x; rm -rf / #$(id) `id` && echo '\"pwned\"'"
    prepared = prepare(case("est_ssn_finalization-minimal", jobName=evil), site)
    title = prepared.params["job_name"]
    assert not set("\"'`$\\") & set(title)
    assert "rm -rf" in title
    assert not any("rm -rf" in arg or "$(id)" in arg for arg in prepared.command)


# -- uploads and parents -----------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "../../etc/passwd", "/etc/passwd", "a\x00b", "", "   ", "sub/../../x", "..",
    "missing.fasta", "2026",
])
def test_bad_upload_names_are_job_errors(value: str, site: dict[str, Path]) -> None:
    """jobFilename must name an existing file strictly inside the input directory."""
    with pytest.raises(JobInputError, match="jobFilename") as info:
        prepare(make(m.EstGenerateFastaJob, id=121, jobFilename=value), site)
    assert info.value.column == "jobFilename"


def test_symlink_leaving_the_input_dir_is_rejected(site: dict[str, Path], tmp_path: Path) -> None:
    """A symbolic link in the input directory that points outside it is refused."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    (site["input_dir"] / "link.fasta").symlink_to(secret)
    with pytest.raises(JobInputError, match="leaves the input directory"):
        prepare(make(m.EstGenerateFastaJob, id=122, jobFilename="link.fasta"), site)


def test_symlink_inside_the_input_dir_is_fine(site: dict[str, Path]) -> None:
    """A link that stays inside the input directory resolves to its target."""
    (site["input_dir"] / "alias.fasta").symlink_to(site["input_dir"] / "seqs.fasta")
    prepared = prepare(make(m.EstGenerateFastaJob, id=123, jobFilename="alias.fasta"), site)
    assert prepared.inputs == {"input/seqs.fasta": site["input_dir"].resolve() / "seqs.fasta"}


def test_upload_is_staged_under_input_with_a_sanitised_name(site: dict[str, Path]) -> None:
    """The staged copy keeps the base name, cleaned, under input/; params hold its path."""
    (site["input_dir"] / "my seqs;(1).fasta").write_text(CASES.FASTA)
    prepared = prepare(make(m.EstGenerateFastaJob, id=124, jobFilename="my seqs;(1).fasta"), site)
    assert list(prepared.inputs) == ["input/my_seqs__1_.fasta"]
    job_dir = (site["results_dir"] / "124").absolute()
    assert prepared.params["input_file"] == f"{job_dir}/input/my_seqs__1_.fasta"
    assert prepared.params["final_output_dir"] == str(job_dir)


# -- bad rows --------------------------------------------------------------------------------


@pytest.mark.parametrize(("job", "column"), [
    (make(m.EstGenerateFamiliesJob, id=130), "families"),
    (make(m.EstGenerateFamiliesJob, id=130, families="  "), "families"),
    (make(m.EstColorSsnJob, id=132), "jobFilename"),
    (make(m.EstSsnFinalizationJob, id=133, parentJob_id=41), "alignmentScore"),
    (make(m.EstSsnFinalizationJob, id=133, alignmentScore=87), "parentJob_id"),
    (make(m.EstSsnFinalizationJob, id=133, alignmentScore=87, parentJob_id=99), "parentJob_id"),
    (make(m.EstSsnFinalizationJob, id=133, alignmentScore=87, parentJob_id=42), "parentJob_id"),
    (make(m.CgfpQuantifyJob, id=134, parentJob_id=42), "metagenomes"),
    (make(m.CgfpQuantifyJob, id=134, metagenomes="SRS011061"), "parentJob_id"),
    (make(m.TaxonomyFamiliesJob, id=135), "filterByFamilies"),
    (make(m.EstClusterAnalysisJob, id=136, jobFilename="network.xgmml",
          computeConsensusResidues=True, consensusResidues="C"), "pidThresholds"),
])
def test_missing_required_values_name_the_column(job: Job, column: str,
                                                 site: dict[str, Path]) -> None:
    """A row without a value EST requires is a JobInputError naming the column."""
    with pytest.raises(JobInputError) as info:
        prepare(job, site)
    assert info.value.column == column
    assert column in str(info.value)


@pytest.mark.parametrize(("name", "values", "column"), [
    ("gnt_gnn-minimal", {"neighborhood_size": 25}, "neighborhood_size"),
    ("gnt_gnn-minimal", {"neighborhood_size": 0}, "neighborhood_size"),
    ("gnt_gnn-minimal", {"neighborhood_size": "ten"}, "neighborhood_size"),
    ("gnt_gnn-minimal", {"cooccurrence": 150}, "cooccurrence"),
    ("gnt_gnn-minimal", {"cooccurrence": -0.1}, "cooccurrence"),
    ("est_generate_families-minimal", {"families": "PF07476; SSF1234"}, "families"),
    ("est_generate_families-minimal", {"sequence_version": "uniref100"}, "sequence_version"),
    ("est_generate_families-minimal", {"domain": True, "domainRegion": "middle"},
     "domainRegion"),
    ("est_generate_families-minimal", {"fraction": 0}, "fraction"),
    ("est_generate_families-minimal", {"allByAllBlastEValue": -5}, "allByAllBlastEValue"),
    ("est_generate_families-minimal", {"taxSearch": '{"conditions": [{"field": "genus", '
                                                    '"value": "E\'; DROP--"}]}'}, "taxSearch"),
    ("est_generate_families-minimal", {"taxSearch": '{"conditions": [{"field": "planet", '
                                                    '"value": "Mars"}]}'}, "taxSearch"),
    ("est_generate_families-minimal", {"taxSearch": "phylum:Pseudomonadota"}, "taxSearch"),
    ("est_generate_families-minimal", {"taxSearch": '{"conditions": []}'}, "taxSearch"),
    ("est_generate_families-minimal", {"taxSearchName": "mammals"}, "taxSearchName"),
    ("est_generate_families-minimal", {"taxSearch": "[" * 100_000}, "taxSearch"),
    ("est_generate_families-minimal", {"taxSearch": '{"conditions": ' + "[" * 20_000
                                                    + "]" * 20_000 + "}"}, "taxSearch"),
    ("est_generate_accession-minimal", {"domain": True, "domainFamily": "IPR000001"},
     "domainFamily"),
    ("est_generate_accession-minimal", {"filterByFamilies": "CL0123"}, "filterByFamilies"),
    ("est_ssn_finalization-minimal", {"minLength": 600, "maxLength": 500}, "minLength"),
    ("est_cluster_analysis-minimal", {"computeConsensusResidues": True,
                                      "consensusResidues": "C,His", "pidThresholds": "80"},
     "consensusResidues"),
    ("est_cluster_analysis-minimal", {"computeConsensusResidues": True,
                                      "consensusResidues": "C", "pidThresholds": "80,120"},
     "pidThresholds"),
    ("est_convergence_ratio-minimal", {"alignmentScore": -1}, "alignmentScore"),
    ("cgfp_identify-minimal", {"referenceDatabase": "nr"}, "referenceDatabase"),
    ("cgfp_identify-minimal", {"searchType": "usearch"}, "searchType"),
    ("cgfp_quantify-minimal", {"metagenomes": "SRS1,../etc"}, "metagenomes"),
    ("gnt_diagram_blast-minimal", {"sequenceDatabase": "nr"}, "sequenceDatabase"),
    ("taxonomy_families-minimal", {"minLength": 0}, "minLength"),
])
def test_invalid_values_are_job_errors(name: str, values: dict[str, Any], column: str,
                                       site: dict[str, Path]) -> None:
    """Values EST's scripts or pipelines would refuse or misread fail the job, naming the column."""
    with pytest.raises(JobInputError) as info:
        prepare(case(name, **values), site)
    assert info.value.column == column


# -- conversions -------------------------------------------------------------------------------


def test_user_taxonomy_filter_is_written_with_est_field_names(site: dict[str, Path]) -> None:
    """taxSearch (EFI-Web's stored object) becomes EST's filter file, with EST's columns."""
    job = case("est_generate_families-user-taxonomy")
    prepared = prepare(job, site)
    job_dir = (site["results_dir"] / str(job.id)).absolute()
    assert prepared.params["filter"] == [f"user-filter={job_dir}/taxonomy_filter.json"]
    assert json.loads(prepared.extra_files["taxonomy_filter.json"]) == {
        "operator": "AND", "conditions": [
            {"field": "domain", "value": "Eukaryota"},
            {"field": "tax_order", "value": "Hypocreales", "negate": "true", "exact": "false"}]}


def test_predefined_taxonomy_filter_and_its_site_list(site: dict[str, Path]) -> None:
    """taxSearchName alone names one of EST's predefined filters; a site may list its own."""
    job = case("est_generate_families-minimal", taxSearchName="fungi")
    assert prepare(job, site).params["filter"] == ["predef-filter=fungi"]
    cat = catalogue(predefined_taxonomy_filters=["plants"])
    with pytest.raises(JobInputError, match="plants"):
        prepare(job, site, cat)
    plants = case("est_generate_families-minimal", taxSearchName="plants")
    assert prepare(plants, site, cat).params["filter"] == ["predef-filter=plants"]


@pytest.mark.parametrize(("value", "expected"), [(20, 0.2), (33, 0.33), (0.35, 0.35), (1, 1.0),
                                                 (100, 1.0)])
def test_cooccurrence_is_a_percent_or_a_fraction(value: float, expected: float,
                                                 site: dict[str, Path]) -> None:
    """EFI-Web's form asks for a percent; EST wants a fraction: above 1 is a percent."""
    params = prepare(case("gnt_gnn-minimal", cooccurrence=value), site).params
    assert params["cooc_threshold"] == expected


def test_evalue_exponents_become_evalues(site: dict[str, Path]) -> None:
    """An e-value column holds an exponent: 5 means 1e-5."""
    params = prepare(case("est_generate_blast-realistic"), site).params
    assert (params["blast_evalue"], params["import_blast_evalue"]) == ("1e-5", "1e-10")
    assert prepare(case("est_convergence_ratio-realistic"), site).params["blast_evalue"] == \
        "1e-12"


def test_view_diagram_runs_no_pipeline(site: dict[str, Path]) -> None:
    """gnt_view_diagram stages its upload and asks for no pipeline run."""
    prepared = prepare(make(m.GntViewDiagramJob, id=114, jobFilename="diagram.sqlite"), site)
    assert (prepared.runs_pipeline, prepared.command, prepared.params) == (False, (), {})
    assert prepared.est_call is None
    assert list(prepared.inputs) == ["input/diagram.sqlite"]


# -- the EFI database ----------------------------------------------------------------------


@pytest.mark.parametrize(("version", "expected"), [
    (None, "efi_202406"), ("", "efi_202406"), ("2025_04", "efi_202504"),
    ("sqlite-2024", "/data/efi/efi_202406.sqlite"), ("2026_01", "efi_2026_01"),
])
def test_efi_db_version_picks_the_site_database(version: str | None, expected: str,
                                                site: dict[str, Path]) -> None:
    """No version: the default; a listed version: its database; others: the template."""
    job = case("est_generate_fasta-minimal", efi_db_version=version)
    assert prepare(job, site).params["efi_db"] == expected


@pytest.mark.parametrize("version", ["../../../root", "efi db", "2025;rm", "a" * 80])
def test_unsafe_efi_db_versions_fail_the_job(version: str, site: dict[str, Path]) -> None:
    """A version that is not a plain label fails the job, naming the column."""
    with pytest.raises(JobInputError) as info:
        prepare(case("est_generate_fasta-minimal", efi_db_version=version), site)
    assert info.value.column == "efi_db_version"


def test_a_version_the_site_does_not_know_fails_the_job(site: dict[str, Path]) -> None:
    """Without a template only listed versions run; without a default a row needs a version."""
    cat = catalogue(efi_db=EfiDatabases(versions={"2025_04": "efi_202504"}))
    with pytest.raises(JobInputError, match=r"2024_06.*not an EFI database this site has"):
        prepare(case("est_generate_fasta-minimal", efi_db_version="2024_06"), site, cat)
    with pytest.raises(JobInputError, match=r"pipelines\.efi_db\.default") as info:
        prepare(case("est_generate_fasta-minimal", efi_db_version=None), site, cat)
    assert info.value.column == "efi_db_version"


@pytest.mark.parametrize(("efi_db", "text"), [
    (EfiDatabases(), "pipelines.efi_db: set default"),
    (EfiDatabases(template="efi_{version}"), "efi_db_version"),
    (EfiDatabases(template="efi"), "efi_db_version"),
    (EfiDatabases(default="efi; rm -rf /"), "not a database name"),
])
def test_bad_efi_db_settings_are_catalogue_errors(efi_db: EfiDatabases, text: str) -> None:
    """The mapping is checked at start-up."""
    with pytest.raises(CatalogueError, match=text):
        catalogue(efi_db=efi_db)


# -- site values -----------------------------------------------------------------------------


def test_site_values_reach_only_the_pipelines_that_read_them(site: dict[str, Path]) -> None:
    """duckdb_temp_dir goes to est, not to gnt; the refdb table resolves per row."""
    assert prepare(case("est_generate_fasta-minimal"), site).params["duckdb_temp_dir"] == \
        "/scratch/duckdb"
    assert "duckdb_temp_dir" not in prepare(case("gnt_gnn-minimal"), site).params
    identify = prepare(case("cgfp_identify-realistic"), site).params
    assert (identify["sb_search_refdb"], identify["sb_cdhit_sid"]) == (
        "/db/shortbred/uniprot", 0.85)


@pytest.mark.parametrize(("params", "text"), [
    ({**SITE, "duckdb_tmp_dir": "/x"}, r"pipelines\.params\.duckdb_tmp_dir"),
    ({**SITE, "fasta_db": {"a": "b"}}, r"pipelines\.params\.fasta_db"),
    ({**SITE, "efi_db": "efi_202406"}, r"pipelines\.efi_db"),
    ({k: v for k, v in SITE.items() if k != "efi_config"}, r"pipelines\.params\.efi_config"),
    ({k: v for k, v in SITE.items() if k != "fasta_db"}, r"pipelines\.params\.fasta_db"),
])
def test_bad_site_values_are_catalogue_errors(params: dict[str, Any], text: str) -> None:
    """Unknown, misshapen, moved or missing site values are refused at start-up."""
    with pytest.raises(CatalogueError, match=text):
        catalogue(params=params)


def test_relocate_params_rewrites_the_job_dir_prefix(site: dict[str, Path]) -> None:
    """A connector can move a job: every job-dir path, filter entries included, is rewritten."""
    job = case("est_generate_blast-realistic")
    prepared = prepare(job, site)
    job_dir = (site["results_dir"] / str(job.id)).absolute()
    moved = relocate_params(prepared.params, job_dir, "/scratch/efi/101")
    assert moved["final_output_dir"] == "/scratch/efi/101"
    assert moved["input_file"] == "/scratch/efi/101/input/query.fa"
    assert "user-filter=/scratch/efi/101/taxonomy_filter.json" in moved["filter"]
    assert str(job_dir) not in json.dumps(moved)
    assert moved["efi_config"] == "/opt/efi/efi.config"


# -- overrides ----------------------------------------------------------------------------------


def test_override_changes_script_config_and_params(site: dict[str, Path]) -> None:
    """A site can change the workflow, the config, add and remove parameters."""
    cat = catalogue(overrides={"gnt_gnn": {
        "script": "gnt/gnt_v2.nf", "config": "gnt/cluster.config",
        "params": {"sb_extra": 3, "cooc_threshold": 0.5}, "remove": ["efi_config"],
        "pipeline_name": "gnt2"}})
    prepared = prepare(case("gnt_gnn-realistic"), site, cat)
    assert (prepared.params["sb_extra"], prepared.params["cooc_threshold"]) == (3, 0.5)
    assert "efi_config" not in prepared.params
    assert "/opt/EST/pipelines/gnt/gnt_v2.nf" in prepared.command
    assert "/opt/EST/conf/gnt/cluster.config" in prepared.command
    assert prepared.pipeline == cat.pipeline_name("gnt_gnn") == "gnt2"


def test_override_changes_result_keys() -> None:
    """results = {stats_key = column} adds or drops a mapping."""
    cat = catalogue(overrides={"est_generate_fasta": {
        "results": {"num_family": "numFamilyIds", "num_headers": ""}}})
    mapping = cat.result_columns("est_generate_fasta")
    assert mapping["num_family"] == "numFamilyIds"
    assert "num_headers" not in mapping


@pytest.mark.parametrize(("overrides", "text"), [
    ({"est_generate_everything": {"params": {"a": 1}}}, "unknown job type"),
    ({"gnt_gnn": {"columns": {"cooccurrence": "cooc"}}}, "EST script arguments"),
    ({"gnt_gnn": {"results": {"x": "nosuchColumn"}}}, "not a column a result may write"),
    ({"gnt_gnn": {"results": {"x": "jobName"}}}, "not a column a result may write"),
    ({"gnt_gnn": {"paramz": {}}}, "unknown key"),
    ({"gnt_gnn": {"params": "x"}}, "expected a table"),
    ({"gnt_gnn": {"remove": "efi_db"}}, "list of parameter names"),
])
def test_bad_overrides_are_catalogue_errors(overrides: dict[str, Any], text: str) -> None:
    """Overrides naming unknown job types, columns or keys fail at start-up."""
    with pytest.raises(CatalogueError, match=text):
        catalogue(overrides=overrides)


def test_default_catalogue_runs_the_standin(site: dict[str, Path]) -> None:
    """Catalogue.default() has every job type and the stand-in command."""
    cat = Catalogue.default()
    assert len(cat.job_types()) == 19
    prepared = prepare(case("gnt_gnn-realistic"), site, cat)
    assert prepared.command == (sys.executable, "-m", "efi_job_manager.dev.standin", "gnt",
                                "params.json")
    assert prepared.params["efi_db"] == "efi_2025_04"
