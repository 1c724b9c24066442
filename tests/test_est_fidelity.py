"""params.json against EST's own scripts, and the stand-in against EST's own output.

The goldens in ``tests/golden/params/<case>.json`` were written by EST's
``bin/create_*_nextflow_params.py`` (run by ``scripts/est_reference.py``) for the
call the product makes for each case's row; ``est-reference.json`` records the
calls. The product must write exactly EST's file, apart from the differences
``tests/golden/params/README.md`` lists with their reasons.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import golden_cases
import pytest

from efi_job_manager import models
from efi_job_manager.catalogue import Catalogue, EfiDatabases, PreparedJob
from efi_job_manager.catalogue.estscripts import RUNNER_KEYS
from efi_job_manager.catalogue.jobtypes import JOB_TYPES
from efi_job_manager.dev.standin import SCHEMAS, validate

GOLDEN = Path(__file__).parent / "golden" / "params"
CASES = golden_cases
MANIFEST: dict[str, Any] = json.loads((GOLDEN / "est-reference.json").read_text())
README = (GOLDEN / "README.md").read_text()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The uploads and parent results the cases read."""
    root: Path = tmp_path_factory.mktemp("golden-site")
    return CASES.make_site(root)


def catalogue() -> Catalogue:
    """The golden site's catalogue."""
    return Catalogue.from_settings(
        pipeline_dir=Path(CASES.PIPELINE_DIR), config_dir=Path(CASES.CONFIG_DIR), command=None,
        params=CASES.SITE_PARAMS, overrides={}, efi_db=EfiDatabases(**CASES.EFI_DB))


def prepare(name: str, site: tuple[Path, Path], job_dir: Path | None = None) -> PreparedJob:
    """Prepare a case's row (for its fictional job directory unless one is given)."""
    job_type, row = CASES.CASES[name]
    job = models.JOB_CLASSES[job_type](uuid=f"golden-{name}", status="new", isPublic=False,
                                       **row)
    return catalogue().prepare(job, job_dir=job_dir or Path(CASES.job_dir(name)),
                               input_dir=site[0], results_dir=site[1])


def golden(name: str) -> dict[str, Any]:
    """EST's own params for a case."""
    loaded: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return loaded


def placeholder(value: Any, job_dir: str) -> Any:
    """Write a job directory as ``{job_dir}``, as the goldens do."""
    return json.loads(json.dumps(value).replace(job_dir, "{job_dir}"))


def additions(name: str) -> dict[str, Any]:
    """The documented keys the product adds to EST's file for a case."""
    job_type, row = CASES.CASES[name]
    added = {k: v for k, v in CASES.SITE_PARAMS.items() if k in JOB_TYPES[job_type].additions}
    if job_type == "est_ssn_finalization" and row.get("computeNeighborhoodConnectivity") \
            is not None:
        added["compute_ssn_nc_factor"] = row["computeNeighborhoodConnectivity"]
    return added


@pytest.mark.parametrize("name", sorted(CASES.CASES))
def test_params_equal_what_est_writes(name: str, site: tuple[Path, Path]) -> None:
    """The product's params equal EST's script output, but for the listed differences."""
    prepared = prepare(name, site)
    ours = placeholder(dict(prepared.params), CASES.job_dir(name))
    est = {k: v for k, v in golden(name).items() if k not in RUNNER_KEYS}
    expected = {**est, **additions(name)}
    assert ours == expected
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in expected.items()}


@pytest.mark.parametrize("name", sorted(CASES.CASES))
def test_est_was_run_with_the_call_the_product_makes(name: str, site: tuple[Path, Path]) -> None:
    """The golden is stale if the product's call changed since EST's script wrote it."""
    call = prepare(name, site).est_call
    assert call is not None
    recorded = MANIFEST["cases"][name]
    assert call.script.name == recorded["script"]
    assert [a.replace(CASES.job_dir(name), "{job_dir}") for a in call.argv()] == recorded["argv"]
    assert dict(call.extras) == recorded["render_inputs"]


def test_every_job_type_with_a_pipeline_has_a_realistic_and_a_minimal_golden() -> None:
    """Goldens cover every job type that runs a pipeline."""
    running = {t for t, jt in JOB_TYPES.items() if jt.build is not None}
    for job_type in running:
        assert f"{job_type}-realistic" in CASES.CASES
        assert f"{job_type}-minimal" in CASES.CASES
    assert {jt for jt, _ in CASES.CASES.values()} == running


def test_every_difference_is_documented() -> None:
    """Each key the product adds or drops is named in the goldens' README with its reason."""
    for key in sorted(RUNNER_KEYS | {"compute_ssn_nc_factor"}
                      | {k for name in CASES.CASES for k in additions(name)}):
        assert f"`{key}`" in README, key


def test_every_script_the_goldens_used_is_listed_with_its_source() -> None:
    """The README names the EST file (and how it was found) behind every golden."""
    for script in MANIFEST["scripts"]:
        assert script in README, script


def _materialize(name: str, site: tuple[Path, Path], job_dir: Path) -> PreparedJob:
    """Stage a case's files into a real job directory, as the manager would."""
    prepared = prepare(name, site, job_dir)
    for rel, source in prepared.inputs.items():
        (job_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, job_dir / rel)
    for rel, content in prepared.extra_files.items():
        (job_dir / rel).write_text(content)
    return prepared


@pytest.mark.parametrize("name", sorted(CASES.CASES))
def test_the_standin_accepts_what_est_writes(name: str, site: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    """EST's own params file for every case runs in the stand-in (no error, no warning)."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    prepared = _materialize(name, site, job_dir)
    est = json.loads(json.dumps(golden(name)).replace("{job_dir}", str(job_dir)))
    schema = SCHEMAS[prepared.pipeline]
    errors, warnings = validate(schema, est)
    assert errors == []
    errors, _ = validate(schema, dict(prepared.params))
    assert errors == []
    if name != "est_ssn_finalization-user-taxonomy":
        assert warnings == []


# -- the stand-in refuses what EST's pipelines cannot run ----------------------------------


def _tax_file(job_dir: Path, **condition: Any) -> str:
    path = job_dir / "near_miss_filter.json"
    path.write_text(json.dumps({"operator": "OR", "conditions": [
        {"field": "genus", "value": "Escherichia", **condition}]}))
    return f"user-filter={path}"


Change = dict[str, Any]
_FILE = "<file>"

#: ``(case, change, key the message names)``; in a change None removes the key and a
#: ``(<file>, condition)`` value writes a user taxonomy filter with that condition.
NEAR_MISSES: list[tuple[str, Change, str]] = [
    ("est_generate_families-minimal", {"import_mode": "accession"}, "import_mode"),
    ("est_generate_fasta-minimal", {"import_mode": "view"}, "import_mode"),
    ("est_generate_families-realistic", {"filter": ["excludeFragments=1"]}, "filter"),
    ("est_generate_families-realistic", {"filter": ["fraction=0"]}, "filter"),
    ("est_generate_families-realistic", {"filter": ["family=PF0747"]}, "filter"),
    ("est_generate_families-realistic", {"filter": "fragments"}, "filter"),
    ("est_generate_families-realistic", {"filter": ["predef-filter=mammals"]}, "filter"),
    ("est_generate_blast-realistic", {"filter": (_FILE, {"field": "superkingdom"})}, "filter"),
    ("est_generate_blast-realistic", {"filter": (_FILE, {"field": "order"})}, "filter"),
    ("est_generate_blast-realistic", {"filter": (_FILE, {"negate": True})}, "filter"),
    ("est_generate_blast-realistic", {"filter": (_FILE, {"value": "E' OR 1=1"})}, "filter"),
    ("est_generate_families-minimal", {"families": None}, "families"),
    ("est_generate_families-minimal", {"families": "PF07476, PF05544"}, "families"),
    ("est_generate_blast-minimal", {"import_blast_fasta_db": None}, "import_blast_fasta_db"),
    ("est_generate_fasta-minimal", {"input_file": None}, "input_file"),
    ("est_generate_fasta-minimal", {"input_file": "/nonexistent/seqs.fasta"}, "input_file"),
    ("est_generate_fasta-minimal", {"multiplex": "false"}, "multiplex"),
    ("est_generate_families-minimal", {"domain": "true"}, "domain"),
    ("est_generate_fasta-minimal", {"sequence_version": "UniRef90"}, "sequence_version"),
    ("est_generate_accession-realistic", {"domain_family": "IPR000001"}, "domain_family"),
    ("est_generate_fasta-realistic", {"blast_evalue": "five"}, "blast_evalue"),
    ("est_generate_fasta-realistic", {"num_fasta_shards": "64"}, "num_fasta_shards"),
    ("est_generate_fasta-minimal", {"exclude_fragments": True}, "exclude_fragments"),
    ("est_generate_fasta-minimal", {"fasta_db": None}, "fasta_db"),
    ("est_generate_fasta-minimal", {"efi_db": None}, "efi_db"),
    ("taxonomy_fasta-minimal", {"fasta_db": None}, "fasta_db"),
    ("taxonomy_families-realistic", {"filter": ["min_seq_length=abc"]}, "filter"),
    ("est_ssn_finalization-minimal", {"db_version": None}, "db_version"),
    ("est_ssn_finalization-minimal", {"threshold_metric": "alignment_length"},
     "threshold_metric"),
    ("est_ssn_finalization-minimal", {"threshold_min_val": "87"}, "threshold_min_val"),
    ("est_ssn_finalization-realistic", {"min_length": "abc"}, "min_length"),
    ("est_ssn_finalization-realistic", {"min_length": "600"}, "min_length"),
    ("est_ssn_finalization-minimal", {"blast_parquet": None}, "blast_parquet"),
    ("est_ssn_finalization-realistic", {"compute_ssn_nc_factor": "true"},
     "compute_ssn_nc_factor"),
    ("est_color_ssn-minimal", {"ssn_input": None}, "ssn_input"),
    ("gnt_gnn-minimal", {"cooc_threshold": 20}, "cooc_threshold"),
    ("gnt_gnn-minimal", {"nb_size": 21}, "nb_size"),
    ("gnt_gnn-minimal", {"nb_size": "10"}, "nb_size"),
    ("gnt_diagram_fasta-minimal", {"import_mode": "family"}, "import_mode"),
    ("gnt_diagram_blast-minimal", {"import_blast_fasta_db": None}, "import_blast_fasta_db"),
    ("est_cluster_analysis-realistic", {"conserved_residues": "C,H"}, "conserved_residues"),
    ("est_cluster_analysis-realistic", {"pid_thresholds": "80,90"}, "pid_thresholds"),
    ("est_cluster_analysis-realistic", {"make_hmms": "true"}, "make_hmms"),
    ("est_cluster_analysis-realistic", {"min_msa_sequences": 800}, "min_msa_sequences"),
    ("est_convergence_ratio-minimal", {"fasta_db": None}, "fasta_db"),
    ("cgfp_identify-realistic", {"sb_cdhit_sid": 85}, "sb_cdhit_sid"),
    ("cgfp_identify-realistic", {"sb_identify_method": "hmm"}, "sb_identify_method"),
    ("cgfp_identify-minimal", {"sb_search_refdb": None}, "sb_search_refdb"),
    ("cgfp_quantify-realistic", {"metagenome_ids": "SRS011061,SRS011084"}, "metagenome_ids"),
    ("cgfp_quantify-minimal", {"identify_dir": "/nonexistent/identify"}, "identify_dir"),
    ("cgfp_quantify-minimal", {"shortbred_src_dir": None}, "shortbred_src_dir"),
    ("est_neighborhood_connectivity-minimal", {"colour": "blue"}, "colour"),
]


def _near_miss(name: str, change: Change, site: tuple[Path, Path],
               job_dir: Path) -> tuple[str, dict[str, Any]]:
    job_dir.mkdir()
    prepared = _materialize(name, site, job_dir)
    params = json.loads(json.dumps(golden(name)).replace("{job_dir}", str(job_dir)))
    for key, value in change.items():
        if value is None:
            params.pop(key, None)
        elif isinstance(value, tuple):
            params[key] = [_tax_file(job_dir, **value[1])]
        else:
            params[key] = value
    return prepared.pipeline, params


@pytest.mark.parametrize(("name", "change", "key"), NEAR_MISSES,
                         ids=[f"{n}:{k}" for n, _, k in NEAR_MISSES])
def test_the_standin_refuses_each_near_miss(name: str, change: Change, key: str,
                                            site: tuple[Path, Path], tmp_path: Path) -> None:
    """One change to EST's own params that its pipeline cannot run: refused, naming the key."""
    pipeline, params = _near_miss(name, change, site, tmp_path / "job")
    errors, _ = validate(SCHEMAS[pipeline], params)
    assert errors, f"accepted: {change}"
    assert any(e.startswith(f"{key}:") for e in errors), errors


def test_a_refused_params_file_ends_the_run_with_status_2(site: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    """The stand-in's command prints the reason and exits 2 without writing results."""
    job_dir = tmp_path / "job"
    pipeline, params = _near_miss("est_generate_blast-realistic",
                                  {"filter": (_FILE, {"field": "superkingdom"})}, site, job_dir)
    (job_dir / "params.json").write_text(json.dumps(params))
    proc = subprocess.run([sys.executable, "-m", "efi_job_manager.dev.standin", pipeline,
                           "params.json"], cwd=job_dir, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    assert "ERROR ~ filter: taxonomy field 'superkingdom' is not a column" in proc.stderr
    assert not (job_dir / "stats.json").exists()
