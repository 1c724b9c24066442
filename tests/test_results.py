"""Reading stats.json and converting its values into result columns."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from efi_job_manager import models as m
from efi_job_manager.catalogue import Catalogue
from efi_job_manager.results import ResultError, StatsUpdate, read_stats, stats_to_columns

# stats.json of an EST family job with UniRef, as merge_stats writes it (import + conv ratio)
EST_STATS: dict[str, Any] = {
    "num_ids": 14031, "num_full_family": 14031, "num_uniref90_in_family": 8420,
    "num_uniref50_in_family": 4209, "num_filter_fraction": 7015, "num_filter_fragment": 312,
    "num_filter_taxonomy": 1200, "convergence_ratio": 0.084261, "num_blast_edges": 1234567,
    "num_unique_ids": 5504,
}


def columns(job_type: str) -> dict[str, str]:
    return dict(Catalogue.default().result_columns(job_type))


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "stats.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return tmp_path


def test_read_stats_returns_the_object(tmp_path: Path) -> None:
    """A valid stats.json is returned as a dict."""
    assert read_stats(write(tmp_path, json.dumps(EST_STATS))) == EST_STATS


@pytest.mark.parametrize(("content", "text"), [
    (None, "wrote no stats.json"),
    ("{", "invalid JSON"),
    ("", "invalid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('"text"', "expected a JSON object"),
    ('{"convergence_ratio": NaN}', "NaN"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_read_stats_errors_are_result_errors(tmp_path: Path, content: str | bytes | None,
                                             text: str) -> None:
    """Missing, broken or non-object stats.json is the job's fault: ResultError."""
    if content is not None:
        write(tmp_path, content)
    with pytest.raises(ResultError, match=text):
        read_stats(tmp_path)


def test_real_est_keys_fill_the_right_columns() -> None:
    """EST's keys land in the family job's columns with the columns' types."""
    update = stats_to_columns(m.EstGenerateFamiliesJob, EST_STATS,
                              columns("est_generate_families"))
    assert update == StatsUpdate(
        columns={"numImportedIds": 14031, "numFullFamilyIds": 14031,
                 "numFractionFiltered": 7015, "numFragmentFiltered": 312,
                 "numTaxonomyFiltered": 1200, "outputConvergenceRatio": 0.084261,
                 "numBlastEdges": 1234567, "numComputedIds": 5504},
        ignored=("num_uniref90_in_family", "num_uniref50_in_family"), errors=())


def test_color_ssn_keys_fill_the_right_columns() -> None:
    """Cluster statistics fill the colour columns, the sequence source as text."""
    stats = {"num_ssn_clusters": 12, "num_ssn_singletons": 40, "num_ssn_nodes": 230,
             "num_ssn_accession_ids": 1800, "ssn_sequence_source": "UniRef90"}
    update = stats_to_columns(m.EstColorSsnJob, stats, columns("est_color_ssn"))
    assert update.columns == {"numSsnClusters": 12, "numSsnSingletons": 40,
                              "numSsnMetanodes": 230, "numSsnAccessionIds": 1800,
                              "colorSsnSequenceSoure": "UniRef90"}
    assert update.errors == ()


def test_accession_and_fasta_keys() -> None:
    """num_matched, num_unmatched, num_foreign and num_headers fill their columns."""
    update = stats_to_columns(m.EstGenerateAccessionJob,
                              {"num_ids": 5, "num_matched": 4, "num_unmatched": 1,
                               "num_foreign": 2},
                              columns("est_generate_accession"))
    assert update.columns == {"numImportedIds": 5, "numMatchedIds": 4, "numUnmatchedIds": 1,
                              "numForeignIds": 2}
    update = stats_to_columns(m.EstGenerateFastaJob, {"num_headers": 3},
                              columns("est_generate_fasta"))
    assert update.columns == {"numFastaHeaders": 3}


def test_unknown_keys_are_ignored_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """A key without a column is ignored and logged once at INFO."""
    with caplog.at_level(logging.INFO, logger="efi_job_manager.results"):
        update = stats_to_columns(m.EstGenerateFamiliesJob,
                                  {"num_ids": 3, "num_filter_length": 9, "weird": [1]},
                                  columns("est_generate_families"))
    assert update.ignored == ("num_filter_length", "weird")
    assert update.columns == {"numImportedIds": 3}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("'num_filter_length'" in msg for msg in messages)
    assert any("'weird'" in msg for msg in messages)


@pytest.mark.parametrize(("key", "value", "column", "expected"), [
    ("num_ids", 12.0, "numImportedIds", 12),
    ("num_ids", "12", "numImportedIds", 12),
    ("num_ids", " 12 ", "numImportedIds", 12),
    ("num_ids", "1.2e3", "numImportedIds", 1200),
    ("convergence_ratio", 1, "outputConvergenceRatio", 1.0),
    ("convergence_ratio", "0.5", "outputConvergenceRatio", 0.5),
    ("num_ids", None, "numImportedIds", None),
])
def test_values_convert_to_the_column_type(key: str, value: Any, column: str,
                                           expected: Any) -> None:
    """Integral floats and numeric strings become ints; null writes NULL."""
    update = stats_to_columns(m.EstGenerateFamiliesJob, {key: value},
                              columns("est_generate_families"))
    assert update.errors == ()
    assert update.columns == {column: expected}
    assert type(update.columns[column]) is type(expected)


@pytest.mark.parametrize(("key", "value"), [
    ("num_ids", "lots"),
    ("num_ids", 12.5),
    ("num_ids", True),
    ("num_ids", [1, 2]),
    ("num_ids", 2**40),
    ("convergence_ratio", "n/a"),
    ("convergence_ratio", {"a": 1}),
    ("convergence_ratio", "inf"),
])
def test_non_numeric_for_numeric_is_an_error(key: str, value: Any) -> None:
    """A value that does not fit a numeric column is an error naming key, column and value."""
    update = stats_to_columns(m.EstGenerateFamiliesJob, {key: value, "num_blast_edges": 10},
                              columns("est_generate_families"))
    assert update.columns == {"numBlastEdges": 10}
    (error,) = update.errors
    assert repr(key) in error
    column = "numImportedIds" if key == "num_ids" else "outputConvergenceRatio"
    assert repr(column) in error
    assert repr(value)[:20] in error


def test_text_longer_than_the_column_is_an_error() -> None:
    """A string result longer than its String column is refused, not truncated."""
    update = stats_to_columns(m.EstColorSsnJob, {"ssn_sequence_source": "x" * 33},
                              columns("est_color_ssn"))
    assert update.columns == {}
    assert "32 characters" in update.errors[0]


def test_object_into_a_text_column_is_kept_as_json() -> None:
    """A structured value for a Text column is stored as JSON text."""
    update = stats_to_columns(m.EstSsnFinalizationJob,
                              {"files": {"full_ssn.xgmml.zip": {"num_nodes": 3}}},
                              {"files": "resultFileStats"})
    assert update.columns == {"resultFileStats": '{"full_ssn.xgmml.zip": {"num_nodes": 3}}'}


def test_mapping_to_a_non_result_column_is_an_error() -> None:
    """A mapping that points at a parameter column is refused (results never write those)."""
    update = stats_to_columns(m.EstGenerateFamiliesJob, {"x": 1}, {"x": "families"})
    assert update.columns == {}
    assert "not a result column" in update.errors[0]
