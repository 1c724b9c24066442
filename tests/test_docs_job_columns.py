"""docs/job-columns.md is what the catalogue does, and what it says agrees with EST.

``scripts/job_columns.py`` derives each job type's columns by running the catalogue on
the golden rows and varying one column at a time; this test derives them again and
fails when the committed page differs. Some of what it derives is then checked against
what EST's own scripts were called with and wrote (``tests/golden/params``).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest
from project_scripts import load_script

from efi_job_manager.catalogue.jobtypes import JOB_TYPES
from efi_job_manager.models import JOB_CLASSES, parameter_columns

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "params"
MANIFEST: dict[str, Any] = json.loads((GOLDEN / "est-reference.json").read_text())

Derived = tuple[ModuleType, dict[str, Any]]


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> Derived:
    """Every job type's columns as the script derives them (at a scratch golden site)."""
    script = load_script("job_columns")
    with script.recorded_reads() as reads:
        runner = script.Runner(script.load_cases(), tmp_path_factory.mktemp("site"), reads)
        found: dict[str, Any] = script.derive(runner)
    return script, found


def test_the_page_is_what_the_catalogue_does(derived: Derived) -> None:
    """The committed page equals the page derived now."""
    script, found = derived
    expected = script.render(found)
    page = script.PAGE.read_text(encoding="utf-8") if script.PAGE.is_file() else ""
    if page != expected:
        diff = "\n".join(list(difflib.unified_diff(
            page.splitlines(), expected.splitlines(), "docs/job-columns.md (committed)",
            "docs/job-columns.md (derived now)", lineterm=""))[:40])
        pytest.fail(f"docs/job-columns.md is out of date; regenerate it with\n\n"
                    f"    {script.REGENERATE}\n\n{diff}", pytrace=False)


def test_every_parameter_column_is_on_the_page(derived: Derived) -> None:
    """Each job type's parameter columns are in its table or listed as unused, never both."""
    _, found = derived
    assert list(found) == list(JOB_TYPES)
    for job_type, cls in JOB_CLASSES.items():
        on_page = set(found[job_type].columns)
        unused = set(JOB_TYPES[job_type].unused)
        assert set(parameter_columns(cls)) <= on_page | unused, job_type
        assert not on_page & unused, job_type


def test_every_column_read_changes_something(derived: Derived) -> None:
    """A column the catalogue reads changes the call, a file or the staging: none is ignored."""
    script, found = derived
    for job_type, jc in found.items():
        for col in jc.columns.values():
            assert not script.becomes(jc, col).startswith("—"), (job_type, col.name)


class Fact(NamedTuple):
    """A column of a job type, whether it is required, and what EST made of a golden row's value.

    ``option`` is the EST option the column becomes; ``key`` and ``value`` are what EST's
    own script wrote into the params file for the golden ``case``.
    """

    job_type: str
    column: str
    required: bool
    option: str
    case: str
    key: str
    value: Any


FACTS = [
    Fact("est_generate_families", "families", True, "--families",
         "est_generate_families-minimal", "families", "PF07476"),
    Fact("est_generate_blast", "families", False, "--families",
         "est_generate_blast-realistic", "families", "PF05544"),
    Fact("est_generate_blast", "allByAllBlastEValue", False, "--blast-evalue",
         "est_generate_blast-realistic", "blast_evalue", "1e-5"),
    Fact("est_generate_families", "allByAllBlastEValue", False, "--blast-evalue",
         "est_generate_families-realistic", "blast_evalue", "1e-10"),
    Fact("est_ssn_finalization", "alignmentScore", True, "--threshold-min-val",
         "est_ssn_finalization-realistic", "threshold_min_val", 87.0),
    Fact("cgfp_quantify", "metagenomes", True, "--metagenome-ids",
         "cgfp_quantify-realistic", "metagenome_ids", ["SRS011061", "SRS011084"]),
    Fact("taxonomy_families", "filterByFamilies", True, "--families",
         "taxonomy_families-realistic", "families", "PF07476,PF05544"),
]


@pytest.mark.parametrize("fact", FACTS, ids=[f"{f.job_type}:{f.column}" for f in FACTS])
def test_known_facts_agree_with_est(derived: Derived, fact: Fact) -> None:
    """What the page says a column becomes is what EST's own script was given and wrote."""
    script, found = derived
    jc = found[fact.job_type]
    col = jc.columns[fact.column]
    assert bool(col.required_in) is fact.required
    if fact.required:
        assert col.required_in == jc.cases
        assert script.required(jc, col).startswith("**required**")
    else:
        assert script.required(jc, col).startswith("optional")
    assert f"`{fact.option}`" in script.own_keys(jc, col)
    # the golden row's value becomes the option value EST's script was run with…
    row, effects = jc.rows[fact.case]
    assert fact.column in row
    ours = [shown.removeprefix(f"{fact.option} ") for _, shown in effects[f"`{fact.option}`"]]
    argv = MANIFEST["cases"][fact.case]["argv"]
    assert ours == [argv[i + 1] for i, arg in enumerate(argv) if arg == fact.option]
    # …and this is what EST's script wrote for it
    assert json.loads((GOLDEN / f"{fact.case}.json").read_text())[fact.key] == fact.value
