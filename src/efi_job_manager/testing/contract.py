"""The connector contract as tests: a class any connector package's test suite subclasses."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import attrs
import pytest

from efi_job_manager.connector import BaseConnector, JobOutcome, JobSpec, SchedulerStatus
from efi_job_manager.status import SchedulerState

__all__ = ["ConnectorContract", "ContractJobs"]

_ACTIVE = (SchedulerState.QUEUED, SchedulerState.RUNNING)


@attrs.define
class ContractJobs:
    """Job specs with fresh ids, submissions, waiting, and cancelling what is left at the end."""

    root: Path
    shell: Callable[[str], tuple[str, ...]]
    timeout: float
    submitted: list[tuple[BaseConnector, str]] = attrs.Factory(list)

    def spec(self, script: str, *, claim: str | None = None, job_id: int | None = None) -> JobSpec:
        """A job running the shell ``script`` in its directory, with ``params.json`` staged.

        Job ids are random and large, so that the name ``efi-<id>-<claim>`` is new to a
        scheduler that outlives the test.
        """
        job_id = job_id or random.randint(10**8, 10**9)  # noqa: S311 - not a secret
        job_dir = self.root / str(job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        params = {"final_output_dir": str(job_dir), "job_id": str(job_id)}
        (job_dir / "params.json").write_text(json.dumps(params))
        return JobSpec(job_id, "est_generate_fasta", job_dir, self.shell(script), params,
                       "est", claim=claim or uuid.uuid4().hex[:8])

    def submit(self, connector: BaseConnector, spec: JobSpec) -> str:
        """Prepare and submit ``spec``; return the scheduler id."""
        scheduler_id = connector.submit_job(spec, connector.prepare_job_environment(spec))
        self.submitted.append((connector, scheduler_id))
        return scheduler_id

    def wait(self, connector: BaseConnector, scheduler_id: str,
             until: Callable[[SchedulerStatus], bool] = lambda s: s.state.is_terminal,
             ) -> SchedulerStatus:
        """Poll the batch status of ``scheduler_id`` until ``until`` holds; fail on timeout."""
        deadline = time.monotonic() + self.timeout
        seen: SchedulerStatus | None = None
        while time.monotonic() < deadline:
            seen = connector.get_job_statuses([scheduler_id])[scheduler_id]
            if until(seen):
                return seen
            time.sleep(0.3)
        pytest.fail(f"job {scheduler_id}: still {seen!r} after {self.timeout:.0f} s")

    def cleanup(self) -> None:
        """Cancel every job submitted through this helper (errors ignored)."""
        for connector, scheduler_id in self.submitted:
            try:
                connector.cancel_jobs([scheduler_id])
            except Exception:  # noqa: S112 - best effort; the test already ended
                continue


class ConnectorContract:
    """What every connector must do, as pytest tests; subclass it in a connector's tests.

    A subclass provides the ``make_connector`` fixture: a factory that builds a new
    connector with the same settings each time it is called (two instances stand for
    the manager before and after a restart). Jobs are shell scripts run in the job's
    directory (`shell_command`); results must come back to ``spec.job_dir``.

    Class attributes describe what the connector can do; the defaults are what a
    connector for a batch scheduler does.
    """

    #: Seconds a short job may take from submission to its end on this connector.
    job_timeout: ClassVar[float] = 60.0
    #: An id in this connector's format that it never handed out.
    unknown_scheduler_id: ClassVar[str] = "999999999"
    #: Whether `BaseConnector.find_job` can find a submission by name (else it returns ()).
    finds_jobs_by_name: ClassVar[bool] = True
    #: Whether jobs run after `BaseConnector.submit_job` returns (False: it runs them to
    #: the end itself, so a running job cannot be cancelled).
    runs_in_background: ClassVar[bool] = True

    def shell_command(self, script: str) -> tuple[str, ...]:
        """The command that runs the shell ``script`` where this connector runs jobs."""
        return ("/bin/sh", "-c", script)

    @pytest.fixture
    def make_connector(self) -> Callable[[], BaseConnector]:
        """Override: return a factory of connectors sharing one configuration."""
        pytest.fail("a ConnectorContract subclass must define the make_connector fixture",
                    pytrace=False)

    @pytest.fixture
    def connectors(self, make_connector: Callable[[], BaseConnector]
                   ) -> Iterator[Callable[[], BaseConnector]]:
        """``make_connector``, closing every connector it built at the end."""
        built: list[BaseConnector] = []

        def make() -> BaseConnector:
            built.append(make_connector())
            return built[-1]

        yield make
        for connector in built:
            connector.close()

    @pytest.fixture
    def connector(self, connectors: Callable[[], BaseConnector]) -> BaseConnector:
        """One connector of ``make_connector``."""
        return connectors()

    @pytest.fixture
    def jobs(self, tmp_path: Path) -> Iterator[ContractJobs]:
        """Specs, submission and waiting; cancels what the test left running."""
        helper = ContractJobs(tmp_path / "results", self.shell_command, self.job_timeout)
        yield helper
        helper.cleanup()

    # -- the tests ----------------------------------------------------------------------

    def test_is_a_base_connector_with_a_display_name(self, connector: BaseConnector) -> None:
        """The connector derives from BaseConnector and names itself for logs and check."""
        assert isinstance(connector, BaseConnector)
        assert isinstance(connector.display_name, str)
        assert connector.display_name.strip()
        way = connector.describe()  # printed by check: one line, without contacting anyone
        assert isinstance(way, str)
        assert "\n" not in way

    def test_prepare_is_idempotent(self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """Preparing a job twice (a crash between the two) gives the same params path."""
        spec = jobs.spec("true")
        first = connector.prepare_job_environment(spec)
        assert isinstance(first, str)
        assert first
        assert connector.prepare_job_environment(spec) == first

    def test_a_job_that_succeeds_completes_and_its_outputs_come_back(
            self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """Submit returns an opaque non-empty string; the job completes; outputs return."""
        spec = jobs.spec("echo contract > out.txt")
        scheduler_id = jobs.submit(connector, spec)
        assert isinstance(scheduler_id, str)
        assert scheduler_id.strip()
        status = jobs.wait(connector, scheduler_id)
        assert status.state is SchedulerState.COMPLETED, status
        for _ in range(2):  # may be called again for the same job
            where = connector.retrieve_job_results(spec)
            assert Path(where) == spec.job_dir
            assert (spec.job_dir / "out.txt").read_text() == "contract\n"

    def test_a_job_that_fails_is_failed_with_its_exit_code(
            self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """A command exiting 3 is FAILED with exit code 3, never COMPLETED."""
        scheduler_id = jobs.submit(connector, jobs.spec("exit 3"))
        status = jobs.wait(connector, scheduler_id)
        assert status.state is SchedulerState.FAILED, status
        assert status.exit_code == 3, status

    def test_batch_status_answers_every_id_asked_for(
            self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """Every id asked for is a key of the answer, known or not."""
        first = jobs.submit(connector, jobs.spec("true"))
        second = jobs.submit(connector, jobs.spec("exit 4"))
        for sid in (first, second):
            jobs.wait(connector, sid)
        asked = [first, second, self.unknown_scheduler_id]
        statuses = connector.get_job_statuses(asked)
        assert set(statuses) == set(asked)
        assert statuses[first].state is SchedulerState.COMPLETED
        assert statuses[second].state is SchedulerState.FAILED
        assert connector.get_job_statuses([]) == {}

    def test_an_unknown_id_is_unknown_never_ended(self, connector: BaseConnector) -> None:
        """An id the connector never handed out is UNKNOWN, alone or in a batch."""
        sid = self.unknown_scheduler_id
        assert connector.get_job_statuses([sid])[sid].state is SchedulerState.UNKNOWN
        assert connector.get_job_status(sid).state is SchedulerState.UNKNOWN

    def test_single_status_agrees_with_the_batch(
            self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """`get_job_status` says what `get_job_statuses` says."""
        scheduler_id = jobs.submit(connector, jobs.spec("exit 5"))
        batch = jobs.wait(connector, scheduler_id)
        single = connector.get_job_status(scheduler_id)
        assert (single.state, single.exit_code) == (batch.state, batch.exit_code)

    def test_cancel_ends_a_job_and_is_idempotent(
            self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """Cancelling twice, an ended job or an unknown id raises nothing; the job ends."""
        connector.cancel_jobs([])
        ended = jobs.submit(connector, jobs.spec("true"))
        jobs.wait(connector, ended)
        if self.runs_in_background:
            scheduler_id = jobs.submit(connector, jobs.spec("sleep 300"))
            jobs.wait(connector, scheduler_id, lambda s: s.state in _ACTIVE)
        else:
            scheduler_id = jobs.submit(connector, jobs.spec("true"))
        connector.cancel_jobs([scheduler_id, ended, self.unknown_scheduler_id])
        connector.cancel_jobs([scheduler_id])
        status = jobs.wait(connector, scheduler_id)
        expected = SchedulerState.CANCELLED if self.runs_in_background else \
            SchedulerState.COMPLETED
        assert status.state is expected, status
        assert jobs.wait(connector, ended).state is SchedulerState.COMPLETED

    def test_a_submitted_job_is_queued_or_running_until_it_ends(
            self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """While it runs, a job is QUEUED or RUNNING: never UNKNOWN, never ended early."""
        if not self.runs_in_background:
            scheduler_id = jobs.submit(connector, jobs.spec("true"))
            assert jobs.wait(connector, scheduler_id).state is SchedulerState.COMPLETED
            return
        scheduler_id = jobs.submit(connector, jobs.spec("sleep 300"))
        status = jobs.wait(connector, scheduler_id, lambda s: s.state is not
                           SchedulerState.UNKNOWN)
        assert status.state in _ACTIVE, status

    def test_find_job_finds_this_claims_submission_only(
            self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """A lost submission is found by name; another claim of the same row is not."""
        spec = jobs.spec("true")
        scheduler_id = jobs.submit(connector, spec)
        jobs.wait(connector, scheduler_id)
        found = list(connector.find_job(spec))
        other = list(connector.find_job(attrs.evolve(spec, claim=uuid.uuid4().hex[:8])))
        if self.finds_jobs_by_name:
            assert found == [scheduler_id]
        else:
            assert found == []
        assert other == []

    def test_a_new_instance_knows_the_jobs_of_the_previous_one(
            self, connectors: Callable[[], BaseConnector], jobs: ContractJobs) -> None:
        """After a restart (a new instance, same settings) status, lookup and results work."""
        before = connectors()
        spec = jobs.spec("echo again > out.txt")
        scheduler_id = jobs.submit(before, spec)
        before.close()
        after = connectors()
        assert jobs.wait(after, scheduler_id).state is SchedulerState.COMPLETED
        if self.finds_jobs_by_name:
            assert list(after.find_job(spec)) == [scheduler_id]
        after.retrieve_job_results(spec)
        assert (spec.job_dir / "out.txt").read_text() == "again\n"

    def test_a_batch_is_staged_and_submitted_with_one_outcome_per_job(
            self, connector: BaseConnector, jobs: ContractJobs) -> None:
        """`prepare_jobs` and `submit_jobs`: one outcome per job, in order; each job its own.

        Three jobs in one batch each get a params path and a distinct scheduler id, each
        id is this job's (its exit code, its outputs, found by its name), and an empty
        batch does nothing.
        """
        assert connector.prepare_jobs([]) == []
        assert connector.submit_jobs([]) == []
        specs = [jobs.spec(f"echo {n} > out.txt; exit {n}") for n in (0, 6, 7)]
        staged = connector.prepare_jobs(specs)
        assert [o.job_id for o in staged] == [s.job_id for s in specs]
        assert all(isinstance(o, JobOutcome) and o.value and o.error is None for o in staged)
        submitted = connector.submit_jobs([(s, str(o.value)) for s, o in zip(specs, staged,
                                                                               strict=True)])
        assert [o.job_id for o in submitted] == [s.job_id for s in specs]
        ids = [str(o.value) for o in submitted]
        jobs.submitted += [(connector, sid) for sid in ids]
        assert all(o.error is None for o in submitted), submitted
        assert len(set(ids)) == 3
        for n, spec, sid in zip((0, 6, 7), specs, ids, strict=True):
            status = jobs.wait(connector, sid)
            assert status.state is (SchedulerState.COMPLETED if n == 0 else
                                    SchedulerState.FAILED), status
            assert (status.exit_code or 0) == n, status
            connector.retrieve_job_results(spec)
            assert (spec.job_dir / "out.txt").read_text() == f"{n}\n"
            if self.finds_jobs_by_name:
                assert list(connector.find_job(spec)) == [sid]

    def test_close_may_be_called_twice(self, connector: BaseConnector) -> None:
        """Closing is idempotent."""
        connector.close()
        connector.close()
