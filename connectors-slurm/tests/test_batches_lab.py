"""`SlurmConnector.prepare_jobs` and ``submit_jobs`` against the real Slurm lab, locally and
over SSH: a batch is staged in one transfer and submitted in one remote call, each job once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from efi_connector_slurm.archive import UNPACK_SCRIPT
from efi_connector_slurm.connector import ATTEMPT_FILE
from efi_job_manager import retry
from efi_job_manager.connector import PermanentError, Resources, TransientError

if TYPE_CHECKING:
    from conftest import Lab, Recording, Slurm

    from efi_connector_slurm import SlurmConnector

SH = "/bin/sh"
BATCH = 20


@pytest.mark.parametrize("mode", ["local", "ssh"])
def test_a_batch_is_one_transfer_and_one_call_and_each_job_is_submitted_once(
        slurm: Slurm, mode: str, recorded: Callable[[SlurmConnector], Recording],
        record_property: Callable[[str, object], None]) -> None:
    """20 held jobs, one asking for a partition that does not exist: 19 ids, each the only
    job of its name at the scheduler; that one job fails alone with Slurm's message. Over
    SSH the staging is one unpack command and remote_dir keeps its mode."""
    connector = slurm.connector(mode, extra_sbatch=["--hold"], partition="efi")
    remote = connector.settings.remote_dir
    if remote is not None:
        connector.transport.run(["mkdir", "-p", remote], check=True)
        connector.transport.run(["chmod", "2775", remote], check=True)
    recording = recorded(connector)
    specs = [slurm.spec((SH, "-c", "true")) for _ in range(BATCH - 1)]
    bad = slurm.spec((SH, "-c", "true"), resources=Resources(queue="nosuch"))
    specs.insert(7, bad)

    began = time.perf_counter()
    staged = connector.prepare_jobs(specs)
    prepared_in = time.perf_counter() - began
    assert [o.job_id for o in staged] == [s.job_id for s in specs]
    assert all(o.value is not None for o in staged), staged
    staging_calls = list(recording.calls)
    recording.calls.clear()

    began = time.perf_counter()
    outcomes = connector.submit_jobs([(s, str(o.value)) for s, o in zip(specs, staged,
                                                                         strict=True)])
    submitted_in = time.perf_counter() - began
    ids = [o.value for o in outcomes if o.value is not None]
    slurm.submitted.extend(ids)
    record_property("prepare_seconds", round(prepared_in, 3))
    record_property("submit_seconds", round(submitted_in, 3))
    print(f"{mode}: {BATCH} jobs prepared in {prepared_in:.3f} s ({len(staging_calls)} calls),"
          f" submitted in {submitted_in:.3f} s ({len(recording.calls)} calls)")

    assert [o.job_id for o in outcomes] == [s.job_id for s in specs]
    assert recording.count("sbatch-batch") == 1
    assert len(recording.calls) == 1
    refused = outcomes[7]
    assert isinstance(refused.error, PermanentError)
    assert "Invalid partition name specified" in str(refused.error)
    assert len(ids) == BATCH - 1
    assert len(set(ids)) == len(ids)
    for spec, outcome in zip(specs, outcomes, strict=True):
        expected = [] if outcome.value is None else [outcome.value]
        assert slurm.lab.names(spec.name) == expected
        assert f'"{outcome.value}"' in (spec.job_dir / ATTEMPT_FILE).read_text() or (
            outcome.value is None)
    if mode == "ssh":
        assert staging_calls == [("run", "sh", "-c", UNPACK_SCRIPT, "sh", remote)]
        mode_bits = connector.transport.run(["stat", "-c", "%a", str(remote)], check=True)
        assert mode_bits.stdout.strip() == "2775"
    else:
        assert [call[0] for call in staging_calls] == ["write_text"] * BATCH


def test_slurmctld_down_submits_nothing_twice_and_the_rest_go_back(
        slurm: Slurm, lab: Lab, recorded: Callable[[SlurmConnector], Recording]) -> None:
    """With slurmctld stopped, the first sbatch fail transiently: those jobs are 'maybe
    submitted', the scripts not yet started are never run (not attempted), and the hold
    keeps the next batch from trying."""
    connector = slurm.connector("local", extra_sbatch=["--hold"], submit_parallel=2)
    specs = [slurm.spec((SH, "-c", "true")) for _ in range(6)]
    jobs = [(s, str(o.value)) for s, o in zip(specs, connector.prepare_jobs(specs),
                                                  strict=True)]
    recording = recorded(connector)
    with lab.stopped("slurmctld"), retry.testing(attempts=1):
        outcomes = connector.submit_jobs(jobs)
        again = connector.submit_jobs(jobs)
    assert recording.count("sbatch-batch") == 1
    tried = [o for o in outcomes if o.attempted]
    assert 1 <= len(tried) <= 2 + 2  # the first wave, and what started before the stop
    assert all(isinstance(o.error, TransientError) for o in outcomes)
    assert [o.attempted for o in outcomes[len(tried):]] == [False] * (6 - len(tried))
    assert not any(o.attempted for o in again)
    for spec in specs:
        assert slurm.lab.names(spec.name) == []
