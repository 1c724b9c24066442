"""The stand-in pipeline: validates params.json like EST and writes EST-named outputs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from efi_job_manager.dev.standin import RUNS, SCHEMAS, main

NETWORK = """<?xml version="1.0"?>
<graph label="PF07476" xmlns="http://www.cs.rpi.edu/XGMML">
  <node id="P0A9Q7" label="P0A9Q7"/>
  <node id="P0A9Q8" label="P0A9Q8"/>
  <node id="P0A9Q9" label="P0A9Q9"/>
  <node id="A0A0H3JEF8" label="A0A0H3JEF8"/>
  <node id="A0A0H3JEF9" label="A0A0H3JEF9"/>
  <node id="Q9Y6K9" label="Q9Y6K9"/>
  <edge id="1" source="P0A9Q7" target="P0A9Q8"/>
  <edge id="2" source="P0A9Q8" target="P0A9Q9"/>
  <edge id="3" source="A0A0H3JEF8" target="A0A0H3JEF9"/>
</graph>
"""
FASTA = ">sp|P0A9Q7|ADHE_ECOLI x\nMAVTNVAELNALVERVKK\n>tr|A0A0H3JEF8|X y\nMKKLLLSAALLSLSLGAH\n" \
        ">mine\nMSTNPKPQRKTKRNTNRR\n"


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A job directory with an uploaded SSN and FASTA file."""
    d = tmp_path / "results" / "7"
    (d / "input").mkdir(parents=True)
    (d / "input" / "network.xgmml").write_text(NETWORK)
    with zipfile.ZipFile(d / "input" / "network.xgmml.zip", "w") as zf:
        zf.writestr("ssn.xgmml", NETWORK)
    (d / "input" / "seqs.fasta").write_text(FASTA)
    return d


def base(job_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"final_output_dir": str(job_dir), "efi_config": "/opt/efi/efi.config",
            "efi_db": "efi_202406", "job_id": "7", **extra}


def gnt(job_dir: Path, **extra: Any) -> dict[str, Any]:
    return base(job_dir, ssn_input=str(job_dir / "input" / "network.xgmml.zip"),
                fasta_db="/db/combined.fasta", nb_size=10, cooc_threshold=0.2, **extra)


def est(job_dir: Path, **extra: Any) -> dict[str, Any]:
    params = base(job_dir, fasta_db="/db/combined.fasta", import_mode="fasta", multiplex=False,
                  input_file=str(job_dir / "input" / "seqs.fasta"))
    params.update(extra)
    return params


def run(job_dir: Path, pipeline: str, params: dict[str, Any] | str,
        **env: str) -> subprocess.CompletedProcess[str]:
    text = params if isinstance(params, str) else json.dumps(params)
    (job_dir / "params.json").write_text(text)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EFI_STANDIN_")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "efi_job_manager.dev.standin", pipeline,
                           "params.json"], cwd=job_dir, capture_output=True, text=True,
                          env=environ, timeout=120, check=False)


def test_gnt_writes_outputs_and_cluster_stats(job_dir: Path) -> None:
    """A valid GNT run exits 0, prints progress and counts the SSN's clusters."""
    proc = run(job_dir, "gnt", gnt(job_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("N E X T F L O W")
    assert "Submitted process > create_gnns" in proc.stdout
    stats = json.loads((job_dir / "stats.json").read_text())
    assert stats["num_ssn_clusters"] == 2
    assert stats["num_ssn_singletons"] == 1
    assert stats["num_ssn_nodes"] == 6
    for name in ("ssn_cluster_gnn.xgmml.zip", "pfam_family_gnn.xgmml.zip",
                 "color_ssn.xgmml.zip"):
        with zipfile.ZipFile(job_dir / name) as zf:
            assert b"<graph" in zf.read(zf.namelist()[0])
    with sqlite3.connect(job_dir / "gnd.sqlite") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM attributes").fetchone()
    db.close()
    assert count == 6


def test_est_counts_fasta_headers(job_dir: Path) -> None:
    """An EST FASTA run reports EST's import and convergence keys from the input."""
    proc = run(job_dir, "est", est(job_dir))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((job_dir / "stats.json").read_text())
    assert stats["num_headers"] == 3
    assert stats["num_matched"] == 2
    assert stats["num_unmatched"] == 1
    assert {"convergence_ratio", "num_blast_edges", "num_unique_ids"} <= set(stats)
    for name in ("all_sequences.fasta", "accession_table.tab", "sequence_metadata.tab",
                 "1.out.parquet", "import_stats.json", "sunburst_tax.json"):
        assert (job_dir / name).is_file(), name
    assert (job_dir / "1.out.parquet").read_bytes().startswith(b"PAR1")


def test_est_family_filters_report_their_counts(job_dir: Path) -> None:
    """Family import with filters writes num_ids and one num_filter_* per filter."""
    params = base(job_dir, fasta_db="/db/combined.fasta", import_mode="family",
                  families="PF07476,PF05544", sequence_version="uniref90", multiplex=False,
                  filter=["fraction=2", "fragments"])
    proc = run(job_dir, "est", params)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((job_dir / "stats.json").read_text())
    assert {"num_ids", "num_full_family", "num_uniref90_in_family", "num_filter_fraction",
            "num_filter_fragment"} <= set(stats)
    assert stats["num_filter_fraction"] > 0


def test_output_is_deterministic(job_dir: Path) -> None:
    """The same params give the same stats.json."""
    assert run(job_dir, "est", est(job_dir)).returncode == 0
    first = (job_dir / "stats.json").read_text()
    assert run(job_dir, "est", est(job_dir)).returncode == 0
    assert (job_dir / "stats.json").read_text() == first


@pytest.mark.parametrize(("pipeline", "change", "message"), [
    ("est", {"import_mode": "accession"}, "import_mode: 'accession' is not one of"),
    ("est", {"filter": ['"fraction=2"']}, "not EST's filter syntax"),
    ("est", {"efi_config": None}, "efi_config: required by est/est.nf and missing"),
    ("est", {"job_id": 7.5}, "job_id: expected a job id"),
    ("gnt", {"nb_size": 0}, "nb_size: 0 is below the minimum 1"),
    ("gnt", {"cooc_threshold": 1.5}, "cooc_threshold: 1.5 is above the maximum 1"),
])
def test_rejects_what_est_would_reject(job_dir: Path, pipeline: str, change: dict[str, Any],
                                       message: str) -> None:
    """Invalid params exit with 2 and an ERROR line naming the problem; nothing is written.

    (The full table of near-misses, built from EST's own params files, is in
    ``test_est_fidelity.py``.)
    """
    params = (est if pipeline == "est" else gnt)(job_dir)
    for key, value in change.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    proc = run(job_dir, pipeline, params)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "ERROR ~" in proc.stderr
    assert not (job_dir / "stats.json").exists()


def test_user_filter_file_is_checked(job_dir: Path) -> None:
    """A user-filter file must be EST's taxonomy filter: its columns, no quotes in values."""
    tax = job_dir / "taxonomy_filter.json"
    tax.write_text(json.dumps({"conditions": [{"field": "genus", "value": "Escherichia"}]}))
    assert run(job_dir, "est", est(job_dir, filter=[f"user-filter={tax}"])).returncode == 0
    tax.write_text(json.dumps([{"conditions": [{"field": "genus", "value": "E' OR 1=1"}]}]))
    proc = run(job_dir, "est", est(job_dir, filter=[f"user-filter={tax}"]))
    assert proc.returncode == 2
    assert "quote" in proc.stderr


def test_unknown_keys_can_be_allowed_with_a_warning(job_dir: Path) -> None:
    """EFI_STANDIN_ALLOW_UNKNOWN=1 behaves like Nextflow: warn and run."""
    proc = run(job_dir, "gnt", gnt(job_dir, colour="blue"), EFI_STANDIN_ALLOW_UNKNOWN="1")
    assert proc.returncode == 0, proc.stderr
    assert "WARN: colour: unknown parameter" in proc.stderr


def test_forced_failure_exits_with_that_code(job_dir: Path) -> None:
    """EFI_STANDIN_FAIL makes the run fail with that status and write no results."""
    proc = run(job_dir, "gnt", gnt(job_dir), EFI_STANDIN_FAIL="3")
    assert proc.returncode == 3
    assert "terminated with an error exit status (3)" in proc.stderr
    assert not (job_dir / "stats.json").exists()


def test_delay_keeps_the_job_running(job_dir: Path) -> None:
    """EFI_STANDIN_DELAY makes the run last at least that long."""
    started = time.monotonic()
    proc = run(job_dir, "neighborhoodconnectivity",
               base(job_dir, ssn_input=str(job_dir / "input" / "network.xgmml")),
               EFI_STANDIN_DELAY="0.8")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 0.8
    assert (job_dir / "ssn.xgmml.zip").is_file()


@pytest.mark.parametrize("env", [{"EFI_STANDIN_DELAY": "soon"}, {"EFI_STANDIN_FAIL": "300"},
                                 {"EFI_STANDIN_DELAY": "-1"}])
def test_bad_environment_is_rejected(job_dir: Path, env: dict[str, str]) -> None:
    """Unusable EFI_STANDIN_* values are refused with exit status 2."""
    assert run(job_dir, "gnt", gnt(job_dir), **env).returncode == 2


def test_empty_input_fails_like_est(job_dir: Path) -> None:
    """A FASTA file without sequences makes the run fail (status 1), as EST would."""
    (job_dir / "input" / "empty.fasta").write_text(">header only\n")
    proc = run(job_dir, "est", est(job_dir, input_file=str(job_dir / "input" / "empty.fasta")))
    assert proc.returncode == 1
    assert "No FASTA sequences were retrieved" in proc.stderr


def test_not_an_ssn_fails_like_est(job_dir: Path) -> None:
    """An ssn_input that is not XGMML fails the run."""
    proc = run(job_dir, "colorssn", base(job_dir, ssn_input=str(job_dir / "input" / "seqs.fasta"),
                                         fasta_db="/db"))
    assert proc.returncode == 1
    assert "not an XGMML network" in proc.stderr


@pytest.mark.parametrize(("argv", "text"), [
    ([], "usage"),
    (["nopipe", "params.json"], "unknown pipeline"),
    (["gnt", "missing.json"], "cannot read the params file"),
])
def test_bad_command_lines(argv: list[str], text: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """Wrong arguments exit with 2 and say why."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert text in capsys.readouterr().err


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_params_file_must_be_a_json_object(job_dir: Path, text: str) -> None:
    """A params file that is not a JSON object is rejected."""
    assert run(job_dir, "gnt", text).returncode == 2


def test_every_pipeline_has_a_schema_and_a_run() -> None:
    """The eleven EST pipelines are known to both halves of the stand-in."""
    assert set(SCHEMAS) == set(RUNS) == {
        "est", "generatessn", "colorssn", "neighborhoodconnectivity", "convergenceratio",
        "clusteranalysis", "gnt", "gnd", "taxonomy", "cgfpidentify", "cgfpquantify"}
    for schema in SCHEMAS.values():
        assert "final_output_dir" in schema.required
