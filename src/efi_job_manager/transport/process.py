"""Running a program on this machine: an argument list, a timeout, and its whole group killed.

The programs `LocalTransport` runs, and the ssh, rsync and scp of `SshTransport`, are all
started by `_execute` (only the ``ssh -O exit`` that closes a master connection is not).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence

from efi_job_manager.connector import PermanentError
from efi_job_manager.transport.results import CommandResult, CommandTimeout, _program

log = logging.getLogger("efi_job_manager.transport")

_KILL_GRACE_S = 5.0


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, str):
        raise TypeError("argv must be a sequence of arguments, not one string")
    args = tuple(argv)
    if not args:
        raise ValueError("argv is empty: there is no program to run")
    for arg in args:
        if not isinstance(arg, str):
            raise TypeError(f"every argument must be a str, not {type(arg).__name__}: {arg!r}")
    return args


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the process group the child leads (it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _execute(
    command: Sequence[str],
    *,
    shown: Sequence[str],
    where: str,
    timeout: float | None,
    input: str | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    tool: bool = False,
) -> CommandResult:
    """Run ``command`` here and wait for it; ``shown`` is the argv reported in the result.

    The child leads a session of its own, so on a timeout (or an interrupt) it and every
    process it started in its group are killed, not only the first one.

    A program that cannot be started gives status 127 or 126, as in a shell; but when it
    is one of our ``tool`` s (ssh, rsync, scp) that is an installation problem:
    `PermanentError`.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:  # program (or cwd) missing, not executable: a shell says 127/126
        if tool:
            raise PermanentError(f"cannot run {command[0]} here (is it installed?): {exc}") from exc
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        return CommandResult(tuple(shown), code, "", str(exc), time.monotonic() - start)
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        _reap(proc)
        log.debug("%s: %s timed out after %s s and was killed", where, _program(shown), timeout)
        raise CommandTimeout(shown, timeout or 0.0, where) from None
    except BaseException:
        _kill_group(proc)
        _reap(proc)
        raise
    return CommandResult(tuple(shown), proc.returncode, stdout, stderr, time.monotonic() - start)


def _reap(proc: subprocess.Popen[str]) -> None:
    """Wait for a killed child without reading the rest of its output.

    Its pipes are closed first: a process outside the killed group may still hold their
    other ends (an ssh ControlMaster is handed the client's stdout and stderr and keeps them
    until the remote command ends), and the output of a killed command is not wanted.
    """
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_KILL_GRACE_S)

