"""The Slurm parsers and command builders, on outputs a real Slurm 22.05 printed.

The files in ``data/`` are verbatim copies (see ``data/README.md``); the captures asked sacct
for ``JobID,JobName,State,ExitCode,Reason,Start,End,Elapsed``, hence `CAPTURE_FIELDS`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from efi_connector_slurm.commands import (
    SACCT_FIELDS,
    find_job_command,
    find_job_sacct_command,
    sacct_command,
    scancel_command,
    scontrol_show_job_command,
    squeue_command,
    validate_job_id,
)
from efi_connector_slurm.parsing import (
    SqueueMemo,
    classify_sbatch_error,
    map_slurm_state,
    parse_exit_code,
    parse_find_job,
    parse_sacct,
    parse_sbatch_output,
    parse_scontrol_show_job,
    parse_slurm_time,
    parse_squeue,
)
from efi_job_manager.connector import PermanentError, SchedulerStatus, TransientError
from efi_job_manager.status import SchedulerState as S

DATA = Path(__file__).parent / "data"
CAPTURE_FIELDS = ("JobID", "JobName", "State", "ExitCode", "Reason", "Start", "End", "Elapsed")


def data(name: str) -> str:
    return (DATA / name).read_text()


def capture_sacct(name: str) -> dict[str, SchedulerStatus]:
    return parse_sacct(data(name), CAPTURE_FIELDS)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- sacct: every scenario capture --------------------------------------------------------------


def test_sacct_success_is_completed_with_times() -> None:
    """A job that succeeded: COMPLETED, exit 0, its start and end times."""
    status = capture_sacct("sacct-success.txt")["1"]
    assert status.state is S.COMPLETED
    assert (status.exit_code, status.signal, status.reason) == (0, 0, None)
    assert status.started == at("2026-11-25T02:11:35")
    assert status.ended == at("2026-11-25T02:11:35")
    assert status.raw == data("sacct-success.txt").strip()


def test_sacct_exit3_is_failed_with_exit_code() -> None:
    """``exit 3``: FAILED 3:0 → FAILED, exit code 3, reason EXIT_CODE 3."""
    status = capture_sacct("sacct-exit3.txt")["2"]
    assert status.state is S.FAILED
    assert (status.exit_code, status.signal, status.reason) == (3, 0, "EXIT_CODE 3")


def test_sacct_timeout_reporting_0_0_is_failed_timeout() -> None:
    """TIMEOUT with ExitCode 0:0 is still a failure, with the reason TIMEOUT."""
    statuses = capture_sacct("sacct-timeout.txt")
    assert set(statuses) == {"8", "9"}
    for status in statuses.values():
        assert status.state is S.FAILED
        assert status.reason == "TIMEOUT"
        assert status.exit_code == 0


def test_sacct_over_memory_is_failed_signal_9() -> None:
    """Over --mem without cgroups: FAILED 0:9 → FAILED, reason SIGNAL 9."""
    status = capture_sacct("sacct-over-memory.txt")["3"]
    assert status.state is S.FAILED
    assert (status.exit_code, status.signal, status.reason) == (0, 9, "SIGNAL 9")


def test_sacct_kill9_is_failed_signal_9() -> None:
    """The batch script killed with kill -9 ends the same way as a memory kill."""
    status = capture_sacct("sacct-kill9.txt")["6"]
    assert (status.state, status.reason, status.signal) == (S.FAILED, "SIGNAL 9", 9)


def test_sacct_cancelled_by_root() -> None:
    """``CANCELLED by 0`` → CANCELLED, saying who."""
    status = capture_sacct("sacct-scancel-by-root.txt")["4"]
    assert (status.state, status.reason) == (S.CANCELLED, "CANCELLED by 0")
    assert status.raw.split("|")[2] == "CANCELLED by 0"


def test_sacct_cancelled_by_uid_1001_over_ssh() -> None:
    """The jobs efijm submitted over ssh: completed, exit 3, and cancelled by uid 1001."""
    statuses = capture_sacct("sacct-efijm-over-ssh.txt")
    assert statuses["14"].state is S.COMPLETED
    assert (statuses["15"].state, statuses["15"].exit_code) == (S.FAILED, 3)
    assert (statuses["16"].state, statuses["16"].reason) == (S.CANCELLED, "CANCELLED by 1001")


def test_sacct_pending_job_cancelled_keeps_cancelled() -> None:
    """A job cancelled while pending (reason PartitionConfig) is CANCELLED, not FAILED."""
    status = capture_sacct("sacct-two-nodes-cancelled.txt")["7"]
    assert (status.state, status.reason) == (S.CANCELLED, "CANCELLED by 0")


def test_sacct_held_then_released_completes() -> None:
    """The held job, once released, is COMPLETED (sacct names it ``allocation``)."""
    assert capture_sacct("sacct-held-released.txt")["5"].state is S.COMPLETED


@pytest.mark.parametrize(
    "name", ["sacct-held-absent.txt", "sacct-two-nodes-pending-absent.txt", "sacct-unknown-id.txt"]
)
def test_sacct_prints_nothing_gives_no_status(name: str) -> None:
    """Held, pending-forever and unknown jobs can all be absent from sacct: no key, no guess."""
    assert data(name) == ""
    assert capture_sacct(name) == {}


def test_sacct_with_slurmctld_down_still_reports_running_and_pending() -> None:
    """sacct answers from slurmdbd while slurmctld is down; ``Unknown`` times are None."""
    statuses = capture_sacct("sacct-slurmctld-down.txt")
    running, held = statuses["17"], statuses["18"]
    assert (running.state, running.reason) == (S.RUNNING, None)
    assert running.started == at("2026-11-25T02:15:09")
    assert running.ended is None
    assert (held.state, held.reason) == (S.QUEUED, "JobHeldUser")
    assert (held.started, held.ended) == (None, None)


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        (
            "sacct-exit3-steps.txt",
            ("JobID", "JobName", "State", "ExitCode", "DerivedExitCode"),
            {"2": (S.FAILED, "EXIT_CODE 3")},
        ),
        (
            "sacct-timeout-steps.txt",
            ("JobID", "JobName", "State", "ExitCode", "Timelimit", "Elapsed"),
            {"8": (S.FAILED, "TIMEOUT"), "9": (S.FAILED, "TIMEOUT")},
        ),
        (
            "sacct-over-memory-steps.txt",
            ("JobID", "JobName", "State", "ExitCode", "MaxRSS", "ReqMem"),
            {"3": (S.FAILED, "SIGNAL 9")},
        ),
    ],
)
def test_sacct_steps_are_ignored(
    name: str, fields: tuple[str, ...], expected: dict[str, tuple[S, str]]
) -> None:
    """Without -X sacct adds ``N.batch`` lines (``CANCELLED 0:15``, ``CANCELLED by 0``):
    only the job's own line counts."""
    statuses = parse_sacct(data(name), fields)
    assert {k: (v.state, v.reason) for k, v in statuses.items()} == expected


def test_sacct_lab_output_of_sacct_command() -> None:
    """What the lab printed for `sacct_command`: every scenario, array tasks kept as text."""
    statuses = parse_sacct(data("lab-sacct-fields.txt"))
    assert {k: (v.state, v.reason, v.exit_code) for k, v in statuses.items()} == {
        "13": (S.COMPLETED, None, 0),
        "14": (S.FAILED, "EXIT_CODE 3", 3),
        "15_1": (S.COMPLETED, None, 0),
        "15_2": (S.COMPLETED, None, 0),
        "16": (S.QUEUED, "JobHeldUser", 0),
        "17": (S.CANCELLED, "CANCELLED by 0", 0),
        "18": (S.COMPLETED, None, 0),
    }
    cancelled = statuses["17"]
    assert cancelled.submitted == at("2026-11-26T05:06:40")
    assert cancelled.started == at("2026-11-26T05:06:41")
    assert cancelled.ended == at("2026-11-26T05:06:43")
    assert statuses["16"].started is None


def test_sacct_malformed_lines_do_not_hide_the_good_ones(caplog: pytest.LogCaptureFixture) -> None:
    """A truncated line, garbage and a bad id are skipped with a warning; the rest is read."""
    good = data("lab-sacct-fields.txt").splitlines()
    text = "\n".join(
        [
            good[0],
            "14|efi-102|FAILED",  # truncated
            "this is not sacct output",
            "x1|efi|COMPLETED|0:0|None|Unknown|Unknown|Unknown",  # not a job id
            good[3],
            "",
            "19|efi-9|WEIRD_NEW_STATE|0:0|None|Unknown|Unknown|Unknown",
        ]
    )
    with caplog.at_level(logging.WARNING, logger="efi_connector_slurm.parsing"):
        statuses = parse_sacct(text)
    assert statuses["13"].state is S.COMPLETED
    assert statuses["17"].state is S.CANCELLED
    assert statuses["19"].state is S.UNKNOWN
    assert "14" not in statuses
    assert len(statuses) == 3
    warnings = [r.getMessage() for r in caplog.records]
    assert any("malformed sacct line" in w and "14|efi-102|FAILED" in w for w in warnings)
    assert any("unreadable job id" in w for w in warnings)
    assert any("WEIRD_NEW_STATE" in w for w in warnings)


def test_sacct_job_name_with_separator() -> None:
    """A job name holding ``|`` does not shift the other fields."""
    line = "42|a|b|c|FAILED|2:0|None|Unknown|Unknown|Unknown"
    status = parse_sacct(line)["42"]
    assert (status.state, status.reason) == (S.FAILED, "EXIT_CODE 2")


def test_sacct_duplicates_last_record_wins() -> None:
    """With --duplicates a requeued job has several records; the last one is current."""
    text = (
        "7|j|NODE_FAIL|0:0|None|Unknown|Unknown|Unknown\n"
        "7|j|RUNNING|0:0|None|Unknown|Unknown|Unknown\n"
    )
    assert parse_sacct(text)["7"].state is S.RUNNING


def test_sacct_fields_must_name_job_and_state() -> None:
    with pytest.raises(ValueError, match="JobID and State"):
        parse_sacct("", ("JobID", "ExitCode"))


# -- squeue -------------------------------------------------------------------------------------


def test_squeue_held_job_is_queued_with_reason() -> None:
    """``sbatch --hold``: PENDING JobHeldUser → QUEUED, reason JobHeldUser."""
    status = parse_squeue(data("squeue-held.txt"))["5"]
    assert (status.state, status.reason) == (S.QUEUED, "JobHeldUser")
    assert status.raw == "5|held|PENDING|JobHeldUser"


def test_a_users_listing_gives_only_the_jobs_asked_for() -> None:
    """``squeue --me`` lists the user's other jobs too: only the wanted ones are read, a job
    name holding ``|`` included, each with its whole line."""
    listing = ("7|efi-7-a|RUNNING|None\n8|someone else's|PENDING|Priority\n"
               "9|efi|odd|name|PENDING|JobHeldUser\n10.batch|x|RUNNING|None\n")
    found = parse_squeue(listing, {"7", "9"})
    assert sorted(found) == ["7", "9"]
    assert (found["7"].state, found["7"].raw) == (S.RUNNING, "7|efi-7-a|RUNNING|None")
    assert (found["9"].state, found["9"].reason) == (S.QUEUED, "JobHeldUser")
    assert sorted(parse_squeue(listing)) == ["7", "8", "9"]  # a step is no job


def test_a_listing_reuses_the_status_of_an_unchanged_line_only() -> None:
    """With a memo, the next listing reads only its new or changed lines: an unchanged line's
    status is the same object; a job that started is read afresh; a job no longer asked
    for, or gone from the listing, is neither answered nor remembered."""
    memo: SqueueMemo = {}
    first = parse_squeue("7|efi-7-a|PENDING|JobHeldUser\n8|efi-8-b|PENDING|Priority\n"
                         "9|efi-9-c|PENDING|Priority\n", {"7", "8", "9"}, memo)
    assert set(memo) == {"7|efi-7-a|PENDING|JobHeldUser", "8|efi-8-b|PENDING|Priority",
                         "9|efi-9-c|PENDING|Priority"}
    second = parse_squeue("7|efi-7-a|PENDING|JobHeldUser\n8|efi-8-b|RUNNING|None\n"
                          "9|efi-9-c|PENDING|Priority\n10|efi-10-d|PENDING|Priority\n",
                          {"7", "8", "10"}, memo)
    assert second["7"] is first["7"]
    assert (second["8"].state, second["8"].raw) == (S.RUNNING, "8|efi-8-b|RUNNING|None")
    assert (second["10"].state, second["10"].reason) == (S.QUEUED, "Priority")
    assert sorted(second) == ["10", "7", "8"]
    assert set(memo) == {"7|efi-7-a|PENDING|JobHeldUser", "8|efi-8-b|RUNNING|None",
                         "10|efi-10-d|PENDING|Priority"}
    third = parse_squeue("7|efi-7-a|PENDING|JobHeldUser\n", {"7", "8"}, memo)
    assert third == {"7": first["7"]}
    assert set(memo) == {"7|efi-7-a|PENDING|JobHeldUser"}


def test_squeue_pending_reasons_and_running() -> None:
    """Pending (reason None, PartitionNodeLimit), running, and held beside running."""
    pending = parse_squeue(data("squeue-pending.txt"))["1"]
    assert (pending.state, pending.reason) == (S.QUEUED, None)
    never = parse_squeue(data("squeue-two-nodes.txt"))["7"]
    assert (never.state, never.reason) == (S.QUEUED, "PartitionNodeLimit")
    running = parse_squeue(data("squeue-running.txt"))
    assert {k: v.state for k, v in running.items()} == {"8": S.RUNNING, "9": S.RUNNING}
    survivors = parse_squeue(data("squeue-survivors.txt"))
    assert {k: v.state for k, v in survivors.items()} == {"17": S.RUNNING, "18": S.QUEUED}


def test_squeue_ended_job_absent() -> None:
    """Without --states=all an ended job is simply not listed: no status, no guess."""
    assert parse_squeue(data("squeue-ended-empty.txt")) == {}


def test_squeue_states_all_from_the_lab() -> None:
    """`squeue_command`'s ``--states=all`` output: ended jobs too, FAILED keeps Slurm's reason."""
    statuses = parse_squeue(data("lab-squeue-states-all.txt"))
    assert {k: (v.state, v.reason) for k, v in statuses.items()} == {
        "13": (S.COMPLETED, None),
        "14": (S.FAILED, "NonZeroExitCode"),
        "15_1": (S.COMPLETED, None),
        "15_2": (S.COMPLETED, None),
        "16": (S.QUEUED, "JobHeldUser"),
        "17": (S.CANCELLED, "CANCELLED"),
        "18": (S.COMPLETED, None),
    }


@pytest.mark.parametrize(
    "name", ["squeue-unknown-id.stderr.txt", "squeue-slurmctld-down.stderr.txt"]
)
def test_squeue_error_text_is_no_job(name: str) -> None:
    """Error text (stderr) fed to the parser yields nothing, never a made-up status."""
    assert parse_squeue(data(name)) == {}


def test_squeue_single_id_is_passed_twice() -> None:
    """One id alone makes squeue exit 1 when it is unknown; two ids make it exit 0."""
    assert squeue_command(["999999"]) == [
        "squeue",
        "--noheader",
        "--states=all",
        "--format=%i|%j|%T|%r",
        "--jobs=999999,999999",
    ]
    assert squeue_command(["8", "9", "8"])[-1] == "--jobs=8,9"


# -- scontrol show job -o -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "job_id", "expected"),
    [
        ("scontrol-success.txt", "1", (S.COMPLETED, None, 0, 0)),
        ("scontrol-exit3.txt", "2", (S.FAILED, "EXIT_CODE 3", 3, 0)),
        ("scontrol-over-memory.txt", "3", (S.FAILED, "SIGNAL 9", 0, 9)),
        ("scontrol-scancel.txt", "4", (S.CANCELLED, "CANCELLED", 0, 15)),
        ("scontrol-held.txt", "5", (S.QUEUED, "JobHeldUser", 0, 0)),
        ("scontrol-timeout.txt", "8", (S.FAILED, "TIMEOUT", 0, 15)),
    ],
)
def test_scontrol_show_job(
    name: str, job_id: str, expected: tuple[S, str | None, int, int]
) -> None:
    """Each scenario's ``scontrol show job -o`` line (TIMEOUT and scancel say 0:15 here)."""
    statuses = parse_scontrol_show_job(data(name))
    assert list(statuses) == [job_id]
    status = statuses[job_id]
    assert (status.state, status.reason, status.exit_code, status.signal) == expected
    assert status.submitted is not None


def test_scontrol_times_and_unknown() -> None:
    """SubmitTime is read; a held job's StartTime/EndTime ``Unknown`` are None."""
    held = parse_scontrol_show_job(data("scontrol-held.txt"))["5"]
    assert held.submitted == at("2026-11-25T02:11:45")
    assert (held.started, held.ended) == (None, None)
    done = parse_scontrol_show_job(data("scontrol-timeout.txt"))["8"]
    assert (done.started, done.ended) == (at("2026-11-25T02:11:56"), at("2026-11-25T02:13:00"))


def test_scontrol_several_lines_names_with_spaces_arrays_and_garbage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "\n".join(
        [
            data("scontrol-exit3.txt").strip(),
            "JobId=31 ArrayJobId=30 ArrayTaskId=1 JobName=my job JobState=RUNNING Reason=None "
            "ExitCode=0:0 SubmitTime=2026-11-25T02:11:36 StartTime=Unknown EndTime=Unknown",
            "slurm_load_jobs error: Invalid job id specified",
        ]
    )
    with caplog.at_level(logging.WARNING):
        statuses = parse_scontrol_show_job(text)
    assert set(statuses) == {"2", "30_1"}
    assert statuses["30_1"].state is S.RUNNING
    assert any("unreadable scontrol line" in r.getMessage() for r in caplog.records)


def test_scontrol_unknown_id_error_yields_nothing() -> None:
    assert parse_scontrol_show_job(data("scontrol-unknown-id.stderr.txt")) == {}


# -- map_slurm_state: DESIGN.md §5, row by row --------------------------------------------------

QUEUED = ["PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"]
RUNNING = ["RUNNING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "STOPPED"]
FAILED_BY_NAME = [
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "BOOT_FAIL",
    "PREEMPTED",
    "DEADLINE",
    "SPECIAL_EXIT",
    "REVOKED",
]


@pytest.mark.parametrize("state", QUEUED)
def test_map_queued_keeps_pending_reason(state: str) -> None:
    status = map_slurm_state(state, 0, 0, "Priority")
    assert (status.state, status.reason, status.raw) == (S.QUEUED, "Priority", state)


@pytest.mark.parametrize("state", RUNNING)
def test_map_running(state: str) -> None:
    """Allocated states, COMPLETING included, are never final."""
    status = map_slurm_state(state, 0, 0, "None")
    assert (status.state, status.reason) == (S.RUNNING, None)
    assert not status.state.is_terminal


def test_map_completed() -> None:
    status = map_slurm_state("COMPLETED", 0, 0, "None")
    assert (status.state, status.reason, status.exit_code) == (S.COMPLETED, None, 0)


@pytest.mark.parametrize(
    ("exit_code", "signal", "reason"), [(2, 0, "EXIT_CODE 2"), (0, 9, "SIGNAL 9")]
)
def test_map_completed_with_nonzero_exit_is_failed(
    exit_code: int, signal: int, reason: str
) -> None:
    status = map_slurm_state("COMPLETED", exit_code, signal, None)
    assert (status.state, status.reason) == (S.FAILED, reason)


@pytest.mark.parametrize("state", FAILED_BY_NAME)
def test_map_failed_states_name_the_reason(state: str) -> None:
    """TIMEOUT can report 0:0; every one of these is FAILED with its own name as reason."""
    status = map_slurm_state(state, 0, 0, "None")
    assert (status.state, status.reason) == (S.FAILED, state)


@pytest.mark.parametrize(
    ("exit_code", "signal", "slurm_reason", "reason"),
    [
        (3, 0, "NonZeroExitCode", "EXIT_CODE 3"),
        (0, 9, "JobLaunchFailure", "SIGNAL 9"),
        (1, 9, None, "EXIT_CODE 1"),
        (None, None, "NonZeroExitCode", "NonZeroExitCode"),
        (None, None, None, "FAILED"),
        (0, 0, "None", "FAILED"),
    ],
)
def test_map_failed_reason(
    exit_code: int | None, signal: int | None, slurm_reason: str | None, reason: str
) -> None:
    status = map_slurm_state("FAILED", exit_code, signal, slurm_reason)
    assert (status.state, status.reason) == (S.FAILED, reason)
    assert (status.exit_code, status.signal) == (exit_code, signal)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("CANCELLED", "CANCELLED"),
        ("CANCELLED+", "CANCELLED"),
        ("CANCELLED by 0", "CANCELLED by 0"),
        ("CANCELLED by 1001", "CANCELLED by 1001"),
        ("CANCELLED+ by 1001", "CANCELLED by 1001"),
    ],
)
def test_map_cancelled(state: str, reason: str) -> None:
    status = map_slurm_state(state, 0, 0, None)
    assert (status.state, status.reason, status.raw) == (S.CANCELLED, reason, state)


@pytest.mark.parametrize("state", ["", "WEIRD_NEW_STATE", "COMPLETED?", "by 0", "42"])
def test_map_unknown_keeps_raw_text(state: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        status = map_slurm_state(state, None, None, None)
    assert (status.state, status.raw) == (S.UNKNOWN, state)
    assert any(repr(state) in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("code", "state"),
    [("PD", S.QUEUED), ("R", S.RUNNING), ("CG", S.RUNNING), ("CD", S.COMPLETED),
     ("F", S.FAILED), ("TO", S.FAILED), ("OOM", S.FAILED), ("CA", S.CANCELLED)],
)  # fmt: skip
def test_map_compact_codes(code: str, state: S) -> None:
    assert map_slurm_state(code).state is state


def test_map_trailing_plus_on_any_state() -> None:
    assert map_slurm_state("FAILED+", 4, 0).reason == "EXIT_CODE 4"
    assert map_slurm_state("running").state is S.RUNNING


# -- small readers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0:0", (0, 0)), ("3:0", (3, 0)), ("0:9", (0, 9)), ("", (None, None)), ("x", (None, None))],
)
def test_parse_exit_code(text: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_exit_code(text) == expected


@pytest.mark.parametrize("text", ["Unknown", "None", "N/A", "", "(null)", "yesterday"])
def test_parse_slurm_time_without_a_time(text: str) -> None:
    assert parse_slurm_time(text) is None


# -- sbatch -------------------------------------------------------------------------------------


def test_sbatch_output_captured() -> None:
    assert data("sbatch-parsable.txt") == "1\n"
    assert parse_sbatch_output(data("sbatch-parsable.txt")) == "1"


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [("1", "1"), ("14;cluster", "14"), ("123456\n", "123456"), ("Welcome!\n\n77\n", "77")],
)
def test_sbatch_output(stdout: str, job_id: str) -> None:
    assert parse_sbatch_output(stdout) == job_id


@pytest.mark.parametrize(
    "stdout", ["", "\n", "Submitted batch job", "abc", "12abc", "-1", "1;", "1 2"]
)
def test_sbatch_output_without_id_is_permanent(stdout: str) -> None:
    with pytest.raises(PermanentError, match="sbatch printed no job id"):
        parse_sbatch_output(stdout)


@pytest.mark.parametrize(
    "stderr",
    [
        "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
        "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
        "(connect failure)",
        "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
        "sbatch: error: Batch job submission failed: Resource temporarily unavailable",
        "sbatch: error: Batch job submission failed: Slurm backup controller in standby mode",
        "sbatch: error: Batch job submission failed: Zero Bytes were transmitted or received",
        "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed:"
        " Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
    ],
)
def test_sbatch_transient_errors(stderr: str) -> None:
    assert classify_sbatch_error(1, stderr) is TransientError


@pytest.mark.parametrize(
    ("returncode", "stderr"),
    [
        (255, "ssh: connect to host 127.0.0.1 port 2222: Connection refused"),
        (255, ""),
        (-9, ""),
        (127, "bash: line 1: sbatch: command not found"),
    ],
)
def test_sbatch_transport_failures_are_transient(returncode: int, stderr: str) -> None:
    assert classify_sbatch_error(returncode, stderr) is TransientError


@pytest.mark.parametrize(
    "stderr",
    [
        "sbatch: error: invalid partition specified: nope\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified",
        "sbatch: error: Batch job submission failed: Invalid account or account/partition "
        "combination specified",
        "sbatch: error: Batch job submission failed: Invalid qos specification",
        "sbatch: error: QOSMaxWallDurationPerJobLimit\nsbatch: error: Batch job submission "
        "failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time "
        "limits)",
        "sbatch: error: Batch job submission failed: Requested node configuration is not available",
        "sbatch: error: Unable to open file /nope/job.sh",
        "",
    ],
)
def test_sbatch_permanent_errors(stderr: str) -> None:
    assert classify_sbatch_error(1, stderr) is PermanentError


# -- commands -----------------------------------------------------------------------------------


def test_sacct_command_shape() -> None:
    argv = sacct_command(["1", "2", "3", "2"], datetime(2026, 11, 25, 2, 11, 34))
    assert argv == [
        "sacct",
        "-X",
        "--parsable2",
        "--noheader",
        "--starttime",
        "2026-11-25T02:11:34",
        "--format",
        "JobID,JobName,State,ExitCode,Reason,Submit,Start,End",
        "-j",
        "1,2,3",
    ]
    assert argv[7].split(",") == list(SACCT_FIELDS)


def test_sacct_command_aware_time_becomes_local_time() -> None:
    when = datetime(2026, 11, 25, 2, 11, 34, tzinfo=UTC)
    local = when.astimezone().replace(tzinfo=None)
    assert sacct_command(["5"], when)[5] == local.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize(
    "ids", [[], ["-X"], ["1,2"], ["1 2"], [""], ["1.batch"], ["abc"], ["1;rm"]]
)
def test_commands_refuse_bad_ids(ids: list[str]) -> None:
    start = datetime.now() - timedelta(days=1)
    for build in (lambda i: sacct_command(i, start), squeue_command, scancel_command):
        with pytest.raises(ValueError, match="job id"):
            build(ids)


@pytest.mark.parametrize("job_id", ["1", "123456789", "15_2", "15+1"])
def test_valid_job_ids(job_id: str) -> None:
    assert validate_job_id(job_id) == job_id
    assert scontrol_show_job_command(job_id) == ["scontrol", "show", "job", "-o", job_id]


def test_scancel_command() -> None:
    assert scancel_command(["4", "16", "4"]) == ["scancel", "4", "16"]


def test_find_job_commands_and_parser() -> None:
    """Both listings of the lab, alone or joined: ids once each, oldest first."""
    assert find_job_command("efi-101") == [
        "squeue",
        "--noheader",
        "--states=all",
        "--format=%i|%j|%T|%r",
        "--name=efi-101",
    ]
    sacct_argv = find_job_sacct_command("efi-101", datetime(2026, 11, 26, 4, 6, 45))
    assert sacct_argv[-2:] == ["--name", "efi-101"]
    assert "-X" in sacct_argv
    squeue_out, sacct_out = data("lab-find-job-squeue.txt"), data("lab-find-job-sacct.txt")
    assert parse_find_job(squeue_out) == ["13", "18"]
    assert parse_find_job(sacct_out) == ["13", "18"]
    assert parse_find_job(sacct_out + squeue_out) == ["13", "18"]


def test_parse_find_job_orders_and_skips() -> None:
    text = "100|efi-1|PENDING|None\n9|efi-1|COMPLETED|None\n9.batch|batch\n15_2|x\n15_1|x\nbad\n"
    assert parse_find_job(text) == ["9", "15_1", "15_2", "100"]
    assert parse_find_job("") == []


@pytest.mark.parametrize("name", ["", "a,b", "a b", "a|b", "a\nb"])
def test_find_job_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="job name"):
        find_job_command(name)
