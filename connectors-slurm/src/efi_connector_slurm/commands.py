"""Slurm command lines, built as argument lists (pure: nothing here runs a program).

Each builder returns the argv of one Slurm client call; the transport runs it locally or over
SSH. The output formats asked for here are the ones `efi_connector_slurm.parsing` reads, so
the field lists live in this module and the parsers import them.

Job ids are checked before they reach a command line: a plain id (``123``), an array task
(``123_4``) or a heterogeneous job component (``123+1``). Anything else raises `ValueError`,
so a stray ``-x`` or ``1,2`` in a database row can never become an option or a second id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar

__all__ = [
    "MEMORY_KILL_PATTERN",
    "SACCT_FIELDS",
    "SQUEUE_FIELDS",
    "chunks",
    "find_job_command",
    "find_job_sacct_command",
    "memory_kill_grep_command",
    "sacct_command",
    "sacct_version_command",
    "sacct_workdir_command",
    "sbatch_command",
    "scancel_command",
    "scontrol_show_job_command",
    "sinfo_partitions_command",
    "squeue_command",
    "squeue_listing_command",
    "validate_job_id",
    "validate_job_name",
]

#: The ``sacct --format`` fields `parsing.parse_sacct` expects, in this order. ``JobName`` is
#: the only free text; the parser reads the fields after it from the end of the line.
SACCT_FIELDS: tuple[str, ...] = (
    "JobID",
    "JobName",
    "State",
    "ExitCode",
    "Reason",
    "Submit",
    "Start",
    "End",
)

#: The ``squeue --format`` fields `parsing.parse_squeue` expects: id, name, state (long form),
#: reason. ``%j`` (the name) is the only free text.
SQUEUE_FIELDS: tuple[str, ...] = ("%i", "%j", "%T", "%r")

_T = TypeVar("_T")

_JOB_ID = re.compile(r"\d+(?:_\d+|\+\d+)?")
_SQUEUE_FORMAT = "|".join(SQUEUE_FIELDS)


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is a Slurm job id this connector may put on a command line.

    Accepted: ``123``, an array task ``123_4``, a heterogeneous job component ``123+1``.

    Raises:
        ValueError: anything else (empty, an option, a list, spaces).
    """
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"not a Slurm job id: {job_id!r}")
    return job_id


def validate_job_name(name: str) -> str:
    """Return ``name`` if it can be passed to ``--name`` as one job name.

    Raises:
        ValueError: the name is empty, or holds a comma (``--name`` would read a list),
            whitespace, ``|`` (the parsers' field separator) or a control character.
    """
    if not name or any(c in name for c in ",|") or any(c.isspace() or ord(c) < 32 for c in name):
        raise ValueError(f"not usable as a Slurm job name for --name: {name!r}")
    return name


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Split ``items`` into runs of at most ``size``, in order: one command line per run."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _user_name(user: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]*\$?", user or ""):
        raise ValueError(f"not a user name: {user!r}")
    return user


def _id_list(ids: Iterable[str]) -> list[str]:
    """Check ``ids``, drop repeats keeping the order, and refuse an empty list."""
    seen: dict[str, None] = {}
    for job_id in ids:
        seen[validate_job_id(job_id)] = None
    if not seen:
        raise ValueError("no job ids given")
    return list(seen)


def _sacct_time(when: datetime) -> str:
    """Format ``when`` for ``sacct --starttime``.

    sacct reads the time in the cluster's local time zone. A naive datetime is passed as it
    is; an aware one is converted to this machine's local time first (exact when the cluster
    is this machine, otherwise the caller's margin must cover the difference).
    """
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def sacct_command(ids: Iterable[str], starttime: datetime) -> list[str]:
    """Return the ``sacct`` call that reports the allocations (``-X``) of ``ids``.

    Args:
        ids: Scheduler job ids; repeats are dropped. One call per chunk: the caller chunks.
        starttime: The earliest time a job of interest may have been submitted or started.
            Without ``--starttime`` sacct only shows jobs since midnight. sacct reads it in
            the cluster's local time: keep a margin (a day costs next to nothing).

    Returns:
        ``sacct -X --parsable2 --noheader --starttime <time> --format <SACCT_FIELDS> -j <ids>``

    Raises:
        ValueError: no ids, or one that is not a job id.
    """
    return [
        "sacct",
        "-X",
        "--parsable2",
        "--noheader",
        "--starttime",
        _sacct_time(starttime),
        "--format",
        ",".join(SACCT_FIELDS),
        "-j",
        ",".join(_id_list(ids)),
    ]


def squeue_listing_command() -> list[str]:
    """Return the ``squeue`` call that lists every job of the commands' user slurmctld holds.

    One call whatever the number of jobs: ``--me`` is the user the commands run as (Slurm
    20.11 and later), ``--states=all`` adds the jobs that ended less than ``MinJobAge`` ago, as
    in `squeue_command`. A non-zero exit means squeue could not answer.
    """
    return ["squeue", "--me", "--noheader", "--states=all", f"--format={_SQUEUE_FORMAT}"]


def squeue_command(ids: Iterable[str]) -> list[str]:
    """Return the ``squeue`` call that reports ``ids`` in every state slurmctld still holds.

    ``--states=all`` makes squeue also print jobs that ended less than ``MinJobAge`` ago
    (COMPLETED, FAILED…), not only pending and running ones.

    squeue exits 1 with ``Invalid job id specified`` when it is given a single id that
    slurmctld does not know, but exits 0 (printing nothing for it) when it is given two or
    more ids (verified on Slurm 22.05.8). A single id is therefore passed twice, so that a
    non-zero exit always means squeue could not answer (slurmctld down: a transient error),
    and a missing line means "not known to slurmctld" (UNKNOWN, never an ending).

    Raises:
        ValueError: no ids, or one that is not a job id.
    """
    job_ids = _id_list(ids)
    if len(job_ids) == 1:
        job_ids = job_ids * 2
    return [
        "squeue",
        "--noheader",
        "--states=all",
        f"--format={_SQUEUE_FORMAT}",
        f"--jobs={','.join(job_ids)}",
    ]


def scontrol_show_job_command(job_id: str) -> list[str]:
    """Return ``scontrol show job -o <id>``: one job on one line (scontrol takes one id only).

    scontrol exits 1 with ``Invalid job id specified`` for an id slurmctld no longer holds.

    Raises:
        ValueError: ``job_id`` is not a job id.
    """
    return ["scontrol", "show", "job", "-o", validate_job_id(job_id)]


def find_job_command(name: str, *, user: str | None = None) -> list[str]:
    """Return the ``squeue`` call listing every job slurmctld holds under the name ``name``.

    It sees pending (also held) and running jobs, and ended ones younger than ``MinJobAge``.
    Its output is read by `parsing.parse_find_job` (also together with the output of
    `find_job_sacct_command`, which sees older jobs but may miss held ones).

    With ``user``, only that user's jobs (``--user``): another installation submitting
    under the same names as another user is never mistaken for ours.

    Raises:
        ValueError: ``name`` is not usable with ``--name``, or ``user`` is not a user name.
    """
    argv = [
        "squeue",
        "--noheader",
        "--states=all",
        f"--format={_SQUEUE_FORMAT}",
        f"--name={validate_job_name(name)}",
    ]
    if user is not None:
        argv.append(f"--user={_user_name(user)}")
    return argv


def find_job_sacct_command(
    name: str, starttime: datetime, *, user: str | None = None
) -> list[str]:
    """Return the ``sacct`` call listing the jobs named ``name`` since ``starttime``.

    Accounting keeps jobs long after slurmctld forgot them, but a job held since its
    submission may be missing from it for a while: use it with `find_job_command`. Do not
    rely on the JobName column alone either: sacct was seen printing ``allocation`` there.

    With ``user``, only that user's jobs (``--user``; root sees every user's otherwise).

    Raises:
        ValueError: ``name`` is not usable with ``--name``, or ``user`` is not a user name.
    """
    argv = [
        "sacct",
        "-X",
        "--parsable2",
        "--noheader",
        "--starttime",
        _sacct_time(starttime),
        "--format",
        ",".join(SACCT_FIELDS),
        "--name",
        validate_job_name(name),
    ]
    if user is not None:
        argv += ["--user", _user_name(user)]
    return argv


def scancel_command(ids: Iterable[str]) -> list[str]:
    """Return ``scancel <id>...`` for ``ids`` (repeats dropped).

    scancel exits 0 and prints nothing for an id that is unknown or has already ended, so
    "already finished" needs no special case.

    Raises:
        ValueError: no ids, or one that is not a job id.
    """
    return ["scancel", *_id_list(ids)]


def sbatch_command(script: str) -> list[str]:
    """Return ``sbatch --parsable <script>``: the script carries every ``#SBATCH`` option.

    Raises:
        ValueError: ``script`` is empty or starts with ``-`` (it would be read as an option).
    """
    if not script or script.startswith("-"):
        raise ValueError(f"not a batch script path: {script!r}")
    return ["sbatch", "--parsable", script]


def sacct_workdir_command(ids: Iterable[str], starttime: datetime) -> list[str]:
    """Return the ``sacct`` call printing ``JobID|WorkDir`` for ``ids``.

    Read by `parsing.parse_workdirs`; the connector's jobs write ``slurm-<id>.out``/``.err``
    in their working directory.

    Raises:
        ValueError: no ids, or one that is not a job id.
    """
    return [
        "sacct",
        "-X",
        "--parsable2",
        "--noheader",
        "--starttime",
        _sacct_time(starttime),
        "--format",
        "JobID,WorkDir",
        "-j",
        ",".join(_id_list(ids)),
    ]


#: What slurmstepd writes into a job's output when it kills the job for its memory: without
#: cgroups ``StepId=N.batch exceeded memory limit (…), being killed`` and ``Exceeded job memory
#: limit``; with cgroups ``Detected 1 oom_kill event in StepId=…`` (or ``oom-kill``).
MEMORY_KILL_PATTERN = r"slurmstepd.*(exceeded (job )?memory limit|oom[-_]kill)"


def memory_kill_grep_command(files: Iterable[str]) -> list[str]:
    """Return the ``grep`` call listing which of ``files`` hold a slurmstepd memory-kill line.

    ``-l`` prints each matching file once; ``-s`` keeps quiet about missing files; grep
    exits 0 (some match), 1 (none) or 2 (an error, e.g. a missing file, with or without
    matches).

    Raises:
        ValueError: no files.
    """
    names = list(files)
    if not names:
        raise ValueError("no files given")
    return ["grep", "-l", "-s", "-i", "-E", MEMORY_KILL_PATTERN, "--", *names]


def sinfo_partitions_command() -> list[str]:
    """Return ``sinfo -h -o %P``: one partition per line, the default one marked ``*``."""
    return ["sinfo", "-h", "-o", "%P"]


def sacct_version_command() -> list[str]:
    """Return ``sacct --version`` (checks that the accounting client is installed)."""
    return ["sacct", "--version"]
