"""The wrapper that runs one job's command and records how it ended.

Run as ``python -m efi_connector_local.wrapper --job-dir DIR --run-dir DIR
[--cancel-marker FILE] [--detach] -- COMMAND [ARG...]``. The command is executed
directly from its argument list (never through a shell) in ``--job-dir`` with standard
input from ``/dev/null``, standard output in ``<job-dir>/stdout.log`` and standard
error in ``<job-dir>/stderr.log``.

Files written in ``--run-dir`` (each atomically):

- ``wrapper.json`` when the wrapper starts: its pid, start time (``/proc`` ticks) and
  the wall-clock time;
- ``exit.json`` when the command has ended: ``exit_code`` (None if a signal ended it),
  ``signal``, ``received_signal`` (a signal the wrapper itself got and passed on),
  ``error`` (why the command could not start), ``started`` and ``ended``.

A command that cannot be started is recorded like a shell would report it: exit code
127 (not found) or 126 (not executable), with the error in ``exit.json`` and
``stderr.log``. SIGTERM, SIGINT and SIGHUP received by the wrapper are passed on to
the command, whose end is then recorded as usual. If ``--cancel-marker`` names a file
that exists when the wrapper starts, the command is not started at all.

With ``--detach`` the wrapper first forks: the child starts a new session (so it leads
the job's process group, which has its pid) and carries on, while the parent prints
``<pid> <start ticks>`` of the child on standard output and exits at once. The process
that launched the wrapper thus has a child that ends immediately and never leaves a
zombie behind; the wrapper itself is adopted and reaped by init.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from efi_connector_local.files import (
    EXIT_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    WRAPPER_FILE,
    WRAPPER_LOG,
    format_time,
    utc_now,
    write_json_atomic,
)
from efi_connector_local.processes import read_stat

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1
_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    args = list(argv)
    if "--" not in args:
        raise SystemExit("efi_connector_local.wrapper: missing '--' before the command")
    split = args.index("--")
    parser = argparse.ArgumentParser(prog="python -m efi_connector_local.wrapper")
    parser.add_argument("--job-dir", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--cancel-marker", type=Path)
    parser.add_argument("--detach", action="store_true")
    options = parser.parse_args(args[:split])
    command = args[split + 1 :]
    if not command:
        parser.error("no command after '--'")
    return options, command


def main(argv: Sequence[str] | None = None) -> int:
    """Run the wrapper with the arguments ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The process exit status: the command's exit code, 128 + n if signal n ended
        it; with ``--detach``, 0 in the parent once the child has started.
    """
    options, command = _parse(sys.argv[1:] if argv is None else argv)
    run_dir: Path = options.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if options.detach and _detach(run_dir):
        return 0
    return _run(options.job_dir, run_dir, options.cancel_marker, command)


def _detach(run_dir: Path) -> bool:
    """Fork; return True in the parent (after reporting the child), False in the child."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as ready:
            ok = ready.read(1) == b"1"  # the child has its own session and closed our stdout
        stat = read_stat(pid)
        if not ok or stat is None:
            sys.stderr.write("efi_connector_local.wrapper: the detached wrapper did not start\n")
            os._exit(1)
        sys.stdout.write(f"{pid} {stat.start_ticks}\n")
        sys.stdout.flush()
        return True
    os.close(read_end)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(run_dir / WRAPPER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    os.write(write_end, b"1")
    os.close(write_end)
    return False


class _Signals:
    """Signals received by the wrapper, passed on to the command once it exists."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.child: subprocess.Popen[bytes] | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        self.forward()

    def forward(self) -> None:
        child, signum = self.child, self.received
        if child is not None and signum is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)


def _die_with_parent() -> Callable[[], None]:
    """Return a pre-exec hook that makes the command get SIGTERM if the wrapper dies."""
    parent = os.getpid()
    try:
        prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def hook() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the wrapper died before the hook ran
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def _run(job_dir: Path, run_dir: Path, cancel_marker: Path | None, command: list[str]) -> int:
    signals = _Signals()
    for signum in _FORWARDED_SIGNALS:
        signal.signal(signum, signals.handle)
    me = read_stat(os.getpid())
    write_json_atomic(
        run_dir / WRAPPER_FILE,
        {
            "pid": os.getpid(),
            "start_ticks": me.start_ticks if me else None,
            "started": format_time(utc_now()),
        },
    )
    outcome: dict[str, Any] = {
        "exit_code": None,
        "signal": None,
        "received_signal": None,
        "error": None,
        "started": None,
        "ended": None,
    }
    if signals.received is not None or (cancel_marker is not None and cancel_marker.exists()):
        outcome.update(
            received_signal=signals.received,
            error="cancelled before the command started",
            ended=format_time(utc_now()),
        )
        write_json_atomic(run_dir / EXIT_FILE, outcome)
        return 128 + (signals.received or signal.SIGTERM)

    try:
        out = open(job_dir / STDOUT_FILE, "wb")  # noqa: SIM115 - closed below
        err = open(job_dir / STDERR_FILE, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        outcome.update(
            exit_code=126,
            error=f"cannot open the job's log files: {exc}",
            ended=format_time(utc_now()),
        )
        write_json_atomic(run_dir / EXIT_FILE, outcome)
        return 126
    with out, err:
        outcome["started"] = format_time(utc_now())
        try:
            child = subprocess.Popen(
                command,
                cwd=job_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                close_fds=True,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - the wrapper has one thread
            )
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            message = f"cannot start {command[0]!r}: {exc}"
            err.write(f"efi-connector-local: {message}\n".encode())
            outcome.update(exit_code=code, error=message, ended=format_time(utc_now()))
            write_json_atomic(run_dir / EXIT_FILE, outcome)
            return code
        signals.child = child
        signals.forward()  # a signal that came while the command was being started
        returncode = child.wait()

    outcome.update(
        exit_code=returncode if returncode >= 0 else None,
        signal=-returncode if returncode < 0 else None,
        received_signal=signals.received,
        ended=format_time(utc_now()),
    )
    write_json_atomic(run_dir / EXIT_FILE, outcome)
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    sys.exit(main())
