"""Job statuses through the lab's slurmrestd: the live listing, accounting, and either one down.

The lab must be up (``tests/slurm/cluster.sh up``); these tests fail, never skip, when it is
not. The jobs are submitted with root's sbatch; the reader asks slurmrestd's unix socket
(local authentication, as the lab's user, who may see every user's jobs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from slurm_lab import Lab

from efi_connector_slurm.rest import RestClient
from efi_connector_slurm.rest.statuses import RestStatusReader
from efi_job_manager.status import SchedulerState as S
from efi_job_manager.toolkit import TransientError


@pytest.fixture
def reader(lab: Lab) -> Iterator[RestStatusReader]:
    client = RestClient(f"unix:{lab.env['EFI_SLURM_REST_SOCKET']}", None, timeout=30)
    yield RestStatusReader(client, chunk_size=2)  # two ids a request: the chunks are used
    client.close()


@pytest.fixture
def jobs(lab: Lab) -> Iterator[dict[str, str]]:
    """Four jobs: held, ``true``, ``exit 3``, and ``sleep 60`` cancelled by root."""
    made: dict[str, str] = {}
    for kind, extra, command in [("held", ["--hold"], "true"), ("ok", [], "true"),
                                 ("exit3", [], "exit 3"), ("cancelled", [], "sleep 60")]:
        made[kind] = lab.run(["sbatch", "--parsable", f"--job-name=efi-rest-{kind}",
                              f"--chdir={lab.scratch}", "--output=/dev/null", *extra,
                              f"--wrap={command}"]).stdout.strip().split(";")[0]
    yield made
    lab.run(["scancel", *made.values()], check=False)


def _until_ended(reader: RestStatusReader, ids: list[str]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        statuses = reader.read(ids)
        if all(statuses[i].state.is_terminal for i in ids) or time.monotonic() > deadline:
            return dict(statuses)
        time.sleep(0.5)


def test_each_end_is_told_and_an_unknown_id_is_unknown(lab: Lab, reader: RestStatusReader,
                                                       jobs: dict[str, str]) -> None:
    time.sleep(1)
    lab.run(["scancel", jobs["cancelled"]])
    ended = [jobs["ok"], jobs["exit3"], jobs["cancelled"]]
    _until_ended(reader, ended)
    statuses = reader.read([*jobs.values(), "999999999", "12_3"])
    held = statuses[jobs["held"]]
    assert (held.state, held.reason) == (S.QUEUED, "JobHeldUser")
    assert statuses[jobs["ok"]].state is S.COMPLETED
    failed = statuses[jobs["exit3"]]
    assert (failed.state, failed.exit_code, failed.reason) == (S.FAILED, 3, "EXIT_CODE 3")
    cancelled = statuses[jobs["cancelled"]]
    assert (cancelled.state, cancelled.reason) == (S.CANCELLED, "CANCELLED by root")
    assert (statuses["999999999"].state, statuses["999999999"].reason) == (
        S.UNKNOWN, "absent from the jobs listing and accounting")
    assert (statuses["12_3"].state, statuses["12_3"].reason) == (S.UNKNOWN, "not a Slurm job id")


def test_with_accounting_down_the_listing_answers(lab: Lab, reader: RestStatusReader,
                                                  jobs: dict[str, str]) -> None:
    """slurmdbd stopped: live jobs and the ended ones slurmctld still holds are answered."""
    _until_ended(reader, [jobs["exit3"]])
    with lab.stopped("slurmdbd"):
        statuses = reader.read([jobs["held"], jobs["exit3"], "999999999"])
    assert statuses[jobs["held"]].state is S.QUEUED
    assert (statuses[jobs["exit3"]].state, statuses[jobs["exit3"]].exit_code) == (S.FAILED, 3)
    unknown = statuses["999999999"]
    assert unknown.state is S.UNKNOWN
    assert (unknown.reason or "").startswith("absent from the jobs listing; accounting failed")


def test_slurmrestd_down_is_transient(lab: Lab, reader: RestStatusReader,
                                      jobs: dict[str, str]) -> None:
    with lab.stopped("slurmrestd"), pytest.raises(TransientError, match="cannot be reached"):
        reader.read([jobs["held"]])
    assert reader.read([jobs["held"]])[jobs["held"]].state is S.QUEUED
