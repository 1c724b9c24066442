"""The REST parsers on what the lab's real slurmrestd 22.05.8 answered.

``data/rest/*.json`` were written by ``tests/slurm/capture_rest.py``: each holds the HTTP
status, the content type and the body as slurmrestd sent them. The jobs were: held, running
(``sleep``), ``echo done``, ``exit 3``, cancelled by their user while running, and one whose
options were only ``#SBATCH`` lines. Their ids are read from the submission answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from efi_connector_slurm.parsing import (
    accounting_failure,
    parse_rest_accounting,
    parse_rest_jobs,
    parse_rest_submit,
    rest_cancel_error,
    rest_failure,
)
from efi_job_manager.status import SchedulerState as S
from efi_job_manager.toolkit import PermanentError, TransientError

DATA = Path(__file__).parent / "data" / "rest"


def answer(name: str) -> tuple[int, dict[str, Any]]:
    record = json.loads((DATA / f"{name}.json").read_text())
    assert record["content_type"].startswith("application/json"), record
    return record["status"], json.loads(record["body"])


def job_id(kind: str) -> str:
    return str(answer(f"submit-{kind}")[1]["job_id"])


def test_the_live_listing_gives_each_state_and_the_exit_code_of_its_wait_status() -> None:
    statuses = parse_rest_jobs(answer("jobs")[1])
    held, running = statuses[job_id("held")], statuses[job_id("running")]
    assert (held.state, held.reason) == (S.QUEUED, "JobHeldUser")
    assert running.state is S.RUNNING
    assert statuses[job_id("ok")].state is S.COMPLETED
    failed = statuses[job_id("exit3")]  # exit_code 768: the wait status of exit 3
    assert (failed.state, failed.exit_code, failed.reason) == (S.FAILED, 3, "EXIT_CODE 3")
    cancelled = statuses[job_id("cancelled")]  # exit_code 15: ended by SIGTERM
    assert (cancelled.state, cancelled.signal) == (S.CANCELLED, 15)
    assert json.loads(failed.raw)["job_state"] == "FAILED"


def test_only_the_jobs_asked_for_are_read() -> None:
    wanted = {job_id("ok"), job_id("exit3"), "999999999"}
    assert set(parse_rest_jobs(answer("jobs")[1], wanted)) == wanted - {"999999999"}
    status, document = answer("job-unknown")
    assert status == 500
    assert parse_rest_jobs(document) == {}


def test_slurmrestd_reads_no_sbatch_line() -> None:
    """A fact the connector must build on: over REST, every option is a job property.

    The script said ``--job-name``, ``--partition=efi``, ``--time=7`` and ``--hold``; the job
    got no name, the default partition, no time limit, and ran at once.
    """
    listing = answer("jobs")[1]["jobs"]
    job = next(j for j in listing if str(j["job_id"]) == job_id("sbatch-lines"))
    assert (job["name"], job["partition"], job["time_limit"]) == ("", "debug", None)
    assert job["job_state"] == "COMPLETED"


def test_accounting_names_the_canceller_and_does_not_trust_a_failed_jobs_zero() -> None:
    """22.05.8 reports the job that exited 3 as FAILED with return code 0 (sacct: 3:0)."""
    status, document = answer("db-jobs-by-name")
    assert status == 200
    statuses = parse_rest_accounting(document)
    failed = statuses[job_id("exit3")]
    assert (failed.state, failed.exit_code, failed.reason) == (S.FAILED, None, "FAILED")
    cancelled = statuses[job_id("cancelled")]
    assert (cancelled.state, cancelled.reason) == (S.CANCELLED, "CANCELLED by efijm")
    assert statuses[job_id("ok")].state is S.COMPLETED
    assert statuses[job_id("running")].state is S.RUNNING
    assert job_id("held") not in statuses  # never started: not in accounting yet
    assert accounting_failure(document) is None


def test_an_accounting_query_that_matches_nothing_is_an_answer_not_a_failure() -> None:
    document = answer("db-jobs-nothing")[1]
    assert parse_rest_accounting(document) == {}
    assert accounting_failure(document) is None
    assert "Nothing found" in (rest_failure(document) or "")


def test_a_submission_gives_the_job_id_even_with_a_held_notice() -> None:
    status, document = answer("submit-held")
    assert status == 200
    assert document["errors"]  # 2042: "Job is in held state, pending scheduler release"
    assert parse_rest_submit(status, document) == str(document["job_id"])


@pytest.mark.parametrize(("name", "message"), [
    ("submit-bad-partition", "Invalid partition name specified"),
    ("submit-no-script", "Job script not specified"),
])
def test_a_refused_submission_is_permanent_with_slurms_message(name: str, message: str) -> None:
    status, document = answer(name)
    assert status == 500
    with pytest.raises(PermanentError, match=message):
        parse_rest_submit(status, document)


@pytest.mark.parametrize("name", ["ping-bad-token", "ping-expired-token"])
def test_a_refused_token_is_named_and_transient(name: str) -> None:
    """Not a 401: HTTP 500 and an "Unspecified error" of slurm_load_ctl_conf."""
    status, document = answer(name)
    assert status == 500
    assert "a token that is wrong or expired" in (rest_failure(document) or "")
    with pytest.raises(TransientError, match="wrong or expired"):
        parse_rest_submit(status, document)


def test_a_refused_token_in_the_listing_and_accounting_says_so() -> None:
    """The status calls: slurmctld's listing gives HTTP 500 "Unspecified error" of
    slurm_load_jobs; slurmdbd's accounting HTTP 200 with error 1007 and no jobs."""
    status, listing = answer("jobs-bad-token")
    assert status == 500
    assert "a token that is wrong or expired, or slurmctld down" in (rest_failure(listing) or "")
    status, accounting = answer("db-jobs-bad-token")
    assert status == 200
    assert accounting["jobs"] == []
    assert "refused slurmrestd's token" in (accounting_failure(accounting) or "")


def test_cancelling_a_job_slurmctld_no_longer_holds_is_no_failure() -> None:
    status, document = answer("cancel-unknown")
    assert status == 500
    assert document["errors"][0]["error_number"] == 2017
    assert rest_cancel_error(document) is None
    assert rest_cancel_error(answer("cancel")[1]) is None
    assert "wrong or expired" in (rest_cancel_error(answer("ping-bad-token")[1]) or "")


def test_a_query_slurmrestd_cannot_parse_says_why() -> None:
    status, document = answer("query-not-parsed")
    assert status == 500
    assert "Unable to parse time format" in (accounting_failure(document) or "")
