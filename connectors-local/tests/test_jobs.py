"""Jobs run through the local connector as real processes: outcomes, cancel, restart, crash."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from efi_job_manager.status import SchedulerState

if TYPE_CHECKING:
    from conftest import Jobs

PYTHON = sys.executable


def test_successful_command_completes_with_its_output(jobs: Jobs) -> None:
    """A command that exits 0 is COMPLETED; it ran in the job dir and its stdout is kept."""
    code = "open('result.txt', 'w').write('done'); print('hello from the job')"
    spec = jobs.spec(1, [PYTHON, "-c", code])
    sid = jobs.submit(spec)

    status = jobs.wait_terminal(sid)

    assert status.state is SchedulerState.COMPLETED
    assert status.exit_code == 0
    assert status.reason is None
    assert (spec.job_dir / "result.txt").read_text() == "done"
    assert (spec.job_dir / "stdout.log").read_text() == "hello from the job\n"
    assert status.submitted is not None
    assert status.started is not None
    assert status.ended is not None
    assert status.submitted <= status.started <= status.ended


def test_nonzero_exit_fails_with_exit_code(jobs: Jobs) -> None:
    """A command that exits 3 is FAILED with exit_code 3 and reason ``EXIT_CODE 3``."""
    sid = jobs.submit(
        jobs.spec(1, [PYTHON, "-c", "import sys; sys.stderr.write('bad'); sys.exit(3)"])
    )

    status = jobs.wait_terminal(sid)

    assert status.state is SchedulerState.FAILED
    assert status.exit_code == 3
    assert status.signal is None
    assert status.reason == "EXIT_CODE 3"


def test_stderr_goes_to_stderr_log(jobs: Jobs) -> None:
    """The command's standard error is kept in ``stderr.log`` in the job's directory."""
    spec = jobs.spec(1, [PYTHON, "-c", "import sys; sys.stderr.write('oops\\n')"])
    jobs.wait_terminal(jobs.submit(spec))

    assert (spec.job_dir / "stderr.log").read_text() == "oops\n"


def test_missing_program_fails_with_a_reason(jobs: Jobs) -> None:
    """A command that does not exist is FAILED (exit code 127) with the error as reason."""
    spec = jobs.spec(1, ["efi-no-such-program-xyz", "--flag"])
    sid = jobs.submit(spec)

    status = jobs.wait_terminal(sid)

    assert status.state is SchedulerState.FAILED
    assert status.exit_code == 127
    assert status.reason is not None
    assert status.reason.startswith("EXIT_CODE 127")
    assert "efi-no-such-program-xyz" in status.reason
    assert "efi-no-such-program-xyz" in (spec.job_dir / "stderr.log").read_text()


def test_program_that_is_not_executable_fails_with_126(jobs: Jobs, tmp_path: Path) -> None:
    """A command file without execute permission is FAILED with exit code 126."""
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    sid = jobs.submit(jobs.spec(1, [str(script)]))

    status = jobs.wait_terminal(sid)

    assert status.state is SchedulerState.FAILED
    assert status.exit_code == 126


def test_cancel_running_job_kills_its_whole_group(jobs: Jobs) -> None:
    """Cancelling a running job ends as CANCELLED and leaves no live process in its group."""
    code = "import subprocess; subprocess.run(['sleep', '60'])"  # a grandchild in the group
    sid = jobs.submit(jobs.spec(1, [PYTHON, "-c", code]))
    jobs.wait_running(sid)
    pgid = jobs.pid(sid)
    jobs.wait_until(lambda: len(jobs.live_group_members(pgid)) >= 3, what="sleep to start")

    jobs.connector.cancel_jobs([sid])

    assert jobs.live_group_members(pgid) == []
    status = jobs.wait_terminal(sid)
    assert status.state is SchedulerState.CANCELLED


def test_cancel_kills_a_command_that_ignores_sigterm(jobs: Jobs) -> None:
    """A command that ignores SIGTERM is killed with SIGKILL after kill_grace: CANCELLED."""
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open('ready', 'w').close()\n"
        "time.sleep(60)"
    )
    spec = jobs.spec(1, [PYTHON, "-c", code])
    connector = jobs.new_connector(kill_grace=0.5)
    sid = jobs.submit(spec, connector)
    jobs.wait_until((spec.job_dir / "ready").exists, what="the command to start")
    pgid = jobs.pid(sid)

    connector.cancel_jobs([sid])

    assert jobs.live_group_members(pgid) == []
    assert jobs.wait_terminal(sid).state is SchedulerState.CANCELLED


def test_cancel_of_finished_job_is_a_noop(jobs: Jobs) -> None:
    """Cancelling a job that has already ended succeeds and leaves its status unchanged."""
    sid = jobs.submit(jobs.spec(1, [PYTHON, "-c", "pass"]))
    assert jobs.wait_terminal(sid).state is SchedulerState.COMPLETED

    jobs.connector.cancel_jobs([sid])

    assert jobs.connector.get_job_status(sid).state is SchedulerState.COMPLETED


def test_cancel_of_unknown_ids_is_a_noop(jobs: Jobs) -> None:
    """Cancelling ids the connector never handed out succeeds and returns at once."""
    jobs.connector.cancel_jobs(["424242", "not-an-id"])


def test_new_instance_reports_running_then_finished_job(jobs: Jobs) -> None:
    """A new connector on the same state_dir (a restart) reports a job the old one started."""
    spec = jobs.spec(1, jobs.WAIT_FOR_GO)
    sid = jobs.submit(spec)
    jobs.wait_running(sid)
    del jobs.connector

    restarted = jobs.new_connector()
    running = restarted.get_job_status(sid)
    assert running.state is SchedulerState.RUNNING
    assert running.started is not None

    (spec.job_dir / "go").touch()
    assert jobs.wait_terminal(sid, jobs.new_connector()).state is SchedulerState.COMPLETED


def test_new_instance_can_cancel_a_job_started_by_another(jobs: Jobs) -> None:
    """Cancelling works from a connector instance that did not start the job."""
    sid = jobs.submit(jobs.spec(1, jobs.WAIT_FOR_GO))
    jobs.wait_running(sid)
    pgid = jobs.pid(sid)

    jobs.new_connector().cancel_jobs([sid])

    assert jobs.live_group_members(pgid) == []
    assert jobs.wait_terminal(sid).state is SchedulerState.CANCELLED


def test_find_job_after_a_crash(jobs: Jobs) -> None:
    """After the submitting instance is gone, a new one finds the job's id by its name."""
    spec = jobs.spec(7, jobs.WAIT_FOR_GO)
    sid = jobs.submit(spec)
    del jobs.connector

    assert list(jobs.new_connector().find_job(spec)) == [sid]


def test_find_job_returns_every_submission_oldest_first(jobs: Jobs) -> None:
    """Two submissions under the same name are both found, oldest first; others are not."""
    spec = jobs.spec(7, [PYTHON, "-c", "pass"])
    first = jobs.submit(spec)
    jobs.submit(jobs.spec(8, [PYTHON, "-c", "pass"]))
    second = jobs.submit(spec)

    assert list(jobs.new_connector().find_job(spec)) == [first, second]
    assert list(jobs.connector.find_job(jobs.spec(9, ["true"]))) == []


def test_resubmission_in_same_dir_does_not_see_the_old_exit(jobs: Jobs) -> None:
    """A job submitted again in the same directory is judged by its own run only."""
    failing = jobs.spec(1, [PYTHON, "-c", "import sys; sys.exit(1)"])
    assert jobs.wait_terminal(jobs.submit(failing)).state is SchedulerState.FAILED

    again = jobs.spec(1, jobs.WAIT_FOR_GO)
    sid = jobs.submit(again)

    assert jobs.connector.get_job_status(sid).state in (
        SchedulerState.QUEUED,
        SchedulerState.RUNNING,
    )
    (again.job_dir / "go").touch()
    assert jobs.wait_terminal(sid).state is SchedulerState.COMPLETED


def test_killed_wrapper_is_failed_not_running_forever(jobs: Jobs) -> None:
    """SIGKILL to the wrapper while the command runs ends as FAILED (LOST), and the
    command does not outlive it."""
    sid = jobs.submit(jobs.spec(1, jobs.WAIT_FOR_GO))
    jobs.wait_running(sid)
    pgid = jobs.pid(sid)

    os.kill(pgid, signal.SIGKILL)

    status = jobs.wait_terminal(sid)
    assert status.state is SchedulerState.FAILED
    assert status.reason is not None
    assert status.reason.startswith(("LOST", "SIGNAL"))
    jobs.wait_until(lambda: jobs.live_group_members(pgid) == [], what="the command to end")


def test_shell_metacharacters_reach_the_program_verbatim(jobs: Jobs, tmp_path: Path) -> None:
    """Arguments are passed as a list: metacharacters arrive unchanged, nothing is run."""
    pwned = tmp_path / "pwned"
    args = [f"; touch {pwned} #", "$(id)", "`id`", "a b", "'quoted'", "x && touch pwned"]
    code = "import json, sys; json.dump(sys.argv[1:], open('args.json', 'w'))"
    spec = jobs.spec(1, [PYTHON, "-c", code, *args])

    assert jobs.wait_terminal(jobs.submit(spec)).state is SchedulerState.COMPLETED

    assert json.loads((spec.job_dir / "args.json").read_text()) == args
    assert not pwned.exists()
    assert not (spec.job_dir / "pwned").exists()


def test_env_setting_reaches_the_job(jobs: Jobs) -> None:
    """Variables from the ``env`` setting are in the job's environment."""
    connector = jobs.new_connector(env={"EFI_TEST_VALUE": "42 $(id)"})
    code = "import os; print(os.environ['EFI_TEST_VALUE'])"
    spec = jobs.spec(1, [PYTHON, "-c", code])

    assert jobs.wait_terminal(jobs.submit(spec, connector)).state is SchedulerState.COMPLETED
    assert (spec.job_dir / "stdout.log").read_text() == "42 $(id)\n"


def test_ids_are_increasing_digit_strings(jobs: Jobs) -> None:
    """Scheduler ids are strings of digits, increasing with each submission."""
    ids = [jobs.submit(jobs.spec(n, [PYTHON, "-c", "pass"])) for n in range(1, 4)]

    assert all(sid.isdigit() for sid in ids)
    assert [int(sid) for sid in ids] == sorted(int(sid) for sid in ids)
    assert len(set(ids)) == 3


def test_unknown_id_is_unknown(jobs: Jobs) -> None:
    """An id the connector never handed out (or not an id at all) is UNKNOWN."""
    for sid in ("99999", "../../etc/passwd", ""):
        assert jobs.connector.get_job_status(sid).state is SchedulerState.UNKNOWN


def test_get_job_statuses_answers_every_id(jobs: Jobs) -> None:
    """The batched call has a status for every id asked for, known or not."""
    sid = jobs.submit(jobs.spec(1, [PYTHON, "-c", "pass"]))
    jobs.wait_terminal(sid)

    statuses = jobs.connector.get_job_statuses([sid, "99999"])

    assert statuses[sid].state is SchedulerState.COMPLETED
    assert statuses["99999"].state is SchedulerState.UNKNOWN
