"""`StatusReader` without a cluster: which commands it runs for which answers.

The answers are what the lab's Slurm 22.05 printed (``tests/slurm/``'s captures and the
squeue listing format of `commands.squeue_listing_command`), and the message squeue prints
for an option it does not know (measured: ``squeue --mee`` → ``squeue: unrecognized option
'--mee'``), as a Slurm before 20.11 says of ``--me``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from efi_connector_slurm.config import parse_settings
from efi_connector_slurm.statuses import StatusReader
from efi_job_manager.status import SchedulerState as S
from efi_job_manager.transport import CommandResult, Transport


class Scripted(Transport):
    """Answers each command with what ``answer(argv)`` gives; records every argv."""

    def __init__(self, answer: Callable[[Sequence[str]], tuple[int, str, str]]) -> None:
        self.answer = answer
        self.runs: list[tuple[str, ...]] = []

    @property
    def description(self) -> str:
        return "scripted"

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.runs.append(tuple(argv))
        code, out, err = self.answer(argv)
        return CommandResult(tuple(argv), code, out, err, 0.0)

    def put(self, local: Path, remote: str, **kwargs: Any) -> None:
        raise AssertionError("no file is copied to read statuses")

    def get(self, remote: str, local: Path, **kwargs: Any) -> None:
        raise AssertionError("no file is copied to read statuses")

    def write_text(self, remote: str, text: str, **kwargs: Any) -> None:
        raise AssertionError("no file is written to read statuses")


SETTINGS = parse_settings({})


def test_before_slurm_20_11_squeue_is_asked_by_id_and_the_listing_not_again() -> None:
    """``--me`` unknown: squeue by job id, this time and from then on."""
    def answer(argv: Sequence[str]) -> tuple[int, str, str]:
        if "--me" in argv:
            return 1, "", ("squeue: unrecognized option '--me'\n"
                           'Try "squeue --help" for more information\n')
        if argv[0] == "squeue":
            return 0, "41|efi-1-a|PENDING|JobHeldUser\n", ""
        return 0, "", ""  # sacct: nothing yet

    transport = Scripted(answer)
    reader = StatusReader(lambda: None)
    for _ in range(2):
        statuses = reader.read(transport, SETTINGS, ["41"])
        assert (statuses["41"].state, statuses["41"].reason) == (S.QUEUED, "JobHeldUser")
    squeues = [argv for argv in transport.runs if argv[0] == "squeue"]
    assert sum("--me" in argv for argv in squeues) == 1
    assert [argv[-1] for argv in squeues if "--me" not in argv] == ["--jobs=41,41"] * 2


def test_a_failing_listing_falls_back_to_sacct_for_every_job() -> None:
    """slurmctld down: the listing fails, sacct answers for all, nothing else is tried."""
    def answer(argv: Sequence[str]) -> tuple[int, str, str]:
        if argv[0] == "squeue":
            return 1, "", "squeue: error: Unable to contact slurm controller (connect failure)\n"
        # a line as sacct printed it while slurmctld was down (data/sacct-slurmctld-down.txt)
        return 0, "41|survivor|RUNNING|0:0|None|2026-11-25T02:15:09|Unknown|00:00:30\n", ""

    transport = Scripted(answer)
    statuses = StatusReader(lambda: None).read(transport, SETTINGS, ["41", "42"])
    assert statuses["41"].state is S.RUNNING
    assert statuses["42"].state is S.UNKNOWN
    assert "squeue failed" in (statuses["42"].reason or "")
    assert [argv[0] for argv in transport.runs] == ["squeue", "sacct"]
