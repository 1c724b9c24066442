"""What ``/proc`` says about a process: alive or not, and whether it is still the same one.

A pid alone does not identify a process: once it has ended the kernel may give the
number to another. A job's process is therefore identified by its pid *and* its start
time (field 22 of ``/proc/<pid>/stat``, in clock ticks since boot), which never changes
for a process and differs for any later process with the same pid.
"""

from __future__ import annotations

import os

import attrs

__all__ = [
    "ProcessId",
    "group_alive",
    "group_exists",
    "group_members",
    "is_alive",
    "read_stat",
]


@attrs.frozen
class ProcessId:
    """A process as the connector records it.

    Attributes:
        pid: The process id; the wrapper is a session leader, so it is also the id of
            the job's process group.
        start_ticks: Field 22 of ``/proc/<pid>/stat`` when the process was recorded.
    """

    pid: int
    start_ticks: int


@attrs.frozen
class ProcStat:
    """The two fields of ``/proc/<pid>/stat`` the connector needs.

    Attributes:
        state: The one-letter state (``R``, ``S``, ``Z`` for a zombie…).
        start_ticks: The start time in clock ticks since boot (field 22).
    """

    state: str
    start_ticks: int


def read_stat(pid: int) -> ProcStat | None:
    """Return the state and start time of ``pid``, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or
    # parentheses: the fields that follow start after the *last* closing parenthesis.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return ProcStat(state=fields[0], start_ticks=int(fields[19]))
    except (IndexError, ValueError):
        return None


def is_alive(proc: ProcessId) -> bool:
    """Whether ``proc`` is still running.

    False when the pid is gone, belongs to a later process (another start time), or is
    a zombie (ended, waiting for its parent to collect it).
    """
    stat = read_stat(proc.pid)
    return (
        stat is not None and stat.start_ticks == proc.start_ticks and stat.state not in ("Z", "X")
    )


def group_exists(pgid: int) -> bool:
    """Whether any process (zombies included) is still in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Return the pids of the live (not zombie) processes in the process group ``pgid``.

    Scans ``/proc``; used only while cancelling, where a handful of calls is the cost.
    """
    if not group_exists(pgid):
        return []
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def group_alive(proc: ProcessId) -> bool:
    """Whether the process group led by ``proc`` still has a live member (zombies do not count).

    The wrapper leads its job's group, so the group id is the wrapper's pid. While any
    member is left the kernel does not hand that number to a new process; so if the
    pid now belongs to a process with another start time, the job's group has ended
    and the number was reused: False. A wrapper that is gone while the command it
    started lingers still counts as a live group.
    """
    stat = read_stat(proc.pid)
    if stat is not None and stat.start_ticks != proc.start_ticks:
        return False
    return bool(group_members(proc.pid))
