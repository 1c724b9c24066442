"""Reading what the batch submission script prints: one record per batch script, then an end.

The script (`efi_connector_slurm.sbatch_batch`) runs ``sbatch --parsable`` for each batch
script it is given and prints, in the order of its arguments, three lines per script::

    efi-sbatch <index> <return code>      (or: efi-sbatch <index> skipped)
    efi-sbatch-out <sbatch's stdout, its line breaks made spaces>
    efi-sbatch-err <sbatch's stderr, the same>

then ``efi-sbatch-end <count>``. Lines before the first record (an ``env_setup`` that
talks) are ignored; a record that cannot be read is logged and left out, so that its job
counts as unanswered.
"""

from __future__ import annotations

import attrs

from efi_connector_slurm.parsing.errors import classify_sbatch_error
from efi_connector_slurm.parsing.lines import log
from efi_job_manager.toolkit import PermanentError, TransientError

__all__ = [
    "END_TAG",
    "RECORD_TAG",
    "SKIPPED",
    "STDERR_TAG",
    "STDOUT_TAG",
    "SbatchBatch",
    "SbatchRecord",
    "classify_record",
    "parse_sbatch_batch",
]

#: The first word of a record's first line: ``efi-sbatch <index> <return code | skipped>``.
RECORD_TAG = "efi-sbatch"
#: The first word of a record's second line, before sbatch's stdout.
STDOUT_TAG = "efi-sbatch-out"
#: The first word of a record's third line, before sbatch's stderr.
STDERR_TAG = "efi-sbatch-err"
#: The first word of the last line, before the number of scripts the script was given.
END_TAG = "efi-sbatch-end"
#: The return code field of a script whose sbatch was not run (the stop rule).
SKIPPED = "skipped"

#: Above this a shell's return code is not sbatch's own answer: 126/127 (not runnable, not
#: found), 128+n (killed by signal n), 255.
_SHELL_CODES = 125


@attrs.frozen
class SbatchRecord:
    """What the script reports for one batch script.

    Attributes:
        index: The script's position among the arguments (0 for the first).
        returncode: sbatch's exit status as the shell saw it; None when sbatch was not run.
        stdout: sbatch's standard output on one line.
        stderr: sbatch's standard error on one line.
    """

    index: int
    returncode: int | None
    stdout: str = ""
    stderr: str = ""

    @property
    def skipped(self) -> bool:
        """Whether sbatch was not run for this script (an earlier one failed transiently)."""
        return self.returncode is None

    @property
    def ok(self) -> bool:
        """Whether sbatch ran and exited 0."""
        return self.returncode == 0


@attrs.frozen
class SbatchBatch:
    """The script's whole answer.

    Attributes:
        records: The records read, by index.
        complete: Whether the end line was printed, with the number of scripts expected.
    """

    records: dict[int, SbatchRecord]
    complete: bool


def parse_sbatch_batch(stdout: str, count: int) -> SbatchBatch:
    """Read the records of the script's ``stdout``; ``count`` scripts were given.

    Only a newline ends a line (the script made every other line break a space). A record
    whose index is out of range, repeated or unreadable is logged and skipped.
    """
    lines = stdout.split("\n")
    records: dict[int, SbatchRecord] = {}
    complete = False
    at = 0
    while at < len(lines):
        tag, _, rest = lines[at].partition(" ")
        at += 1
        if tag == END_TAG:
            complete = rest.strip() == str(count)
            continue
        if tag != RECORD_TAG:
            continue
        record = _record(rest, lines[at : at + 2], count)
        if record is None or record.index in records:
            log.warning("skipping an unreadable sbatch batch record: %r", lines[at - 1 : at + 2])
            continue
        records[record.index] = record
        at += 2
    return SbatchBatch(records, complete)


def _record(header: str, body: list[str], count: int) -> SbatchRecord | None:
    fields = header.split()
    if len(fields) != 2 or not fields[0].isdigit() or int(fields[0]) >= count:
        return None
    if fields[1] == SKIPPED:
        returncode = None
    elif fields[1].isdigit():
        returncode = int(fields[1])
    else:
        return None
    if len(body) != 2:
        return None
    texts = []
    for tag, line in zip((STDOUT_TAG, STDERR_TAG), body, strict=True):
        found, _, text = line.partition(" ")
        if found != tag:
            return None
        texts.append(text.strip())
    return SbatchRecord(int(fields[0]), returncode, texts[0], texts[1])


def classify_record(record: SbatchRecord) -> type[TransientError] | type[PermanentError]:
    """Tell whether a failed sbatch of the batch is worth trying again.

    As `classify_sbatch_error`, except that any return code above 125 is transient: the
    script sees a signal as 128+n, not as subprocess's negative code. The script's stop
    rule uses the same test.
    """
    code = record.returncode or 0
    if code > _SHELL_CODES:
        return TransientError
    return classify_sbatch_error(code, record.stderr)
