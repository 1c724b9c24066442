"""Run an argument list, copy files and directories: on this machine or over SSH.

This module is for connector authors (the Slurm connector uses it), not for the
core loop. One small interface, `Transport`, has two implementations:

- `LocalTransport` runs programs with `subprocess` (argument lists only, never a
  shell) and copies with rsync when it is installed, `shutil` otherwise.
- `SshTransport` uses the system OpenSSH client. Every invocation shares one
  connection through a ControlMaster socket in a private directory, so a
  manager's cycle pays the SSH handshake (~230 ms) once, not per command.
  Files travel with rsync over the same options, or scp when rsync is missing.

Every subprocess of the project's SSH path goes through here. Arguments are
never interpolated into a command line: the remote command is built with
`shlex.join`, so shell metacharacters in an argument reach the remote program
unchanged. The one exception is the operator's *environment setup line*
(``env_setup``, e.g. ``module load slurm``), which is configuration and is passed
to the remote shell as written.

Errors:

- A program that runs and exits non-zero is not an error: its `CommandResult`
  carries the exit status. With ``check=True`` it raises `CommandFailed` (a
  `PermanentError`) with the result attached.
- The way to the machine failing (SSH exit status 255: connection refused or
  timed out, unknown host name, authentication refused; a timeout of any
  command) raises `TransientError` subclasses (`ConnectionFailed`,
  `CommandTimeout`): nothing happened, try again later.
- A host key that does not match ``known_hosts`` raises `HostKeyError` (a
  `PermanentError`): retrying cannot help, an operator must check the key.

Argument lists are logged at ``DEBUG`` only; standard input (which may carry
parameters) and key contents never are.
"""

from __future__ import annotations

import abc
import contextlib
import fnmatch
import logging
import os
import posixpath
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import attrs

from efi_job_manager.connector import PermanentError, TransientError, pipeline_environment

__all__ = [
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "ConnectionFailed",
    "HostKeyError",
    "LocalTransport",
    "SshTransport",
    "Transport",
]

log = logging.getLogger(__name__)

TransferMethod = Literal["auto", "rsync", "scp"]
"""How `SshTransport` copies files: rsync when both ends have it (``auto``), or one of them."""

DEFAULT_TIMEOUT = 60.0
"""Seconds a command may run before it is killed."""
DEFAULT_TRANSFER_TIMEOUT = 3600.0
"""Seconds a `Transport.put` or `Transport.get` may take before it is killed."""

# ssh appends ".XXXXXXXXXXXXXXXX" (17 characters) to the ControlPath while it creates the
# socket, and %C is 40 hex digits; a Unix socket path holds at most 104 bytes on the BSDs and
# macOS (108 on Linux). So the control directory may be at most 104 - 1 - 40 - 17 - 1 long.
_MAX_CONTROL_DIR_LENGTH = 45
_KILL_GRACE_S = 5.0
_STDERR_IN_MESSAGE = 600

# What ssh prints when the host key is not the one in known_hosts (or is missing from it).
_HOST_KEY_MARKERS = (
    "host key verification failed",
    "remote host identification has changed",
    "host key is known for",
    "host key for",
    "no matching host key type",
)
# rsync exit codes that mean the connection (not the copy) failed: socket I/O, protocol data
# stream (the ssh under it died), timeouts, and ssh's own 255.
_RSYNC_CONNECTION_CODES = frozenset({10, 12, 30, 35, 255})
_SSH_FAILURE = 255


# -- results and errors -----------------------------------------------------------------------


@attrs.frozen
class CommandResult:
    """What one command did.

    Attributes:
        argv: The argument list that was run (on the remote machine for SSH; not the ``ssh``
            command line around it).
        returncode: Its exit status (127: the program was not found).
        stdout: Its standard output, decoded as UTF-8 (undecodable bytes replaced).
        stderr: Its standard error, decoded likewise.
        duration: Seconds from start to end, connection included.

    """

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        """Whether the command exited with status 0."""
        return self.returncode == 0

    def check(self, where: str = "") -> Self:
        """Return this result if the command succeeded.

        Args:
            where: Where it ran (a transport's `Transport.description`), for the message.

        Returns:
            This result, so that ``transport.run(argv).check().stdout`` reads well.

        Raises:
            CommandFailed: The command exited with a non-zero status.

        """
        if self.returncode != 0:
            raise CommandFailed(self, where)
        return self


def _tail(text: str, limit: int = _STDERR_IN_MESSAGE) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def _program(argv: Sequence[str]) -> str:
    return argv[0] if argv else "<empty command>"


class CommandFailed(PermanentError):
    """A command ran and exited with a non-zero status (``check=True``).

    The message names the program, not its arguments (they may hold anything).

    Attributes:
        result: The command's `CommandResult` (exit status, output).
        where: The transport's description.

    """

    def __init__(self, result: CommandResult, where: str = "") -> None:
        self.result = result
        self.where = where
        place = f" on {where}" if where else ""
        detail = _tail(result.stderr) or _tail(result.stdout) or "no output"
        super().__init__(
            f"{_program(result.argv)} exited with status {result.returncode}{place}: {detail}"
        )

    def __reduce__(self) -> tuple[type[CommandFailed], tuple[CommandResult, str]]:
        return (type(self), (self.result, self.where))


class ConnectionFailed(TransientError):
    """The machine could not be reached (ssh exit status 255, or a copy's connection broke).

    Attributes:
        host: The transport's description (``ssh://user@host:port``).
        detail: What ssh (or rsync, scp) printed.

    """

    def __init__(self, host: str, detail: str) -> None:
        self.host = host
        self.detail = detail
        super().__init__(f"cannot reach {host}: {detail or 'ssh failed without a message'}")

    def __reduce__(self) -> tuple[type[ConnectionFailed], tuple[str, str]]:
        return (type(self), (self.host, self.detail))


class HostKeyError(PermanentError):
    """The server's host key is unknown or differs from the one in ``known_hosts``.

    Retrying cannot help: an operator must check the key (and the ``known_hosts`` file
    named in the message) before anything connects again.

    Attributes:
        host: The transport's description.
        known_hosts: The known hosts file in use, if one was configured.
        detail: What ssh printed.

    """

    def __init__(self, host: str, known_hosts: str | None, detail: str) -> None:
        self.host = host
        self.known_hosts = known_hosts
        self.detail = detail
        where = known_hosts or "~/.ssh/known_hosts (or the UserKnownHostsFile of the ssh config)"
        super().__init__(
            f"host key verification failed for {host}: check the server's host key and the "
            f"known_hosts file {where}; ssh said: {detail or 'nothing'}"
        )

    def __reduce__(self) -> tuple[type[HostKeyError], tuple[str, str | None, str]]:
        return (type(self), (self.host, self.known_hosts, self.detail))


class CommandTimeout(TransientError):
    """A command ran longer than its timeout and was killed.

    Attributes:
        argv: The command's argument list.
        timeout: The timeout in seconds.
        host: The transport's description.

    """

    def __init__(self, argv: Sequence[str], timeout: float, host: str) -> None:
        self.argv = tuple(argv)
        self.timeout = timeout
        self.host = host
        super().__init__(
            f"{_program(self.argv)} did not finish within {timeout:g} s on {host}; it was killed"
        )

    def __reduce__(self) -> tuple[type[CommandTimeout], tuple[tuple[str, ...], float, str]]:
        return (type(self), (self.argv, self.timeout, self.host))


# -- running a local process ------------------------------------------------------------------


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


# -- exclude patterns (for the copies that rsync does not make) ---------------------------------


def _excluded(relative: str, is_dir: bool, patterns: Sequence[str]) -> bool:
    """Whether a path (relative to the copy's root, ``/``-separated) matches a pattern.

    The common forms of rsync's ``--exclude`` are understood: ``name`` and ``*.ext`` match
    the last component anywhere, ``name/`` only directories, ``a/b`` the end of the path,
    ``/a/b`` the path from the root.
    """
    parts = relative.split("/")
    for raw in patterns:
        pattern = raw
        if pattern.endswith("/"):
            if not is_dir:
                continue
            pattern = pattern.rstrip("/")
        if not pattern:
            continue
        if pattern.startswith("/"):
            if fnmatch.fnmatchcase(relative, pattern.lstrip("/")):
                return True
        elif "/" in pattern:
            depth = pattern.count("/") + 1
            if len(parts) >= depth and fnmatch.fnmatchcase("/".join(parts[-depth:]), pattern):
                return True
        elif fnmatch.fnmatchcase(parts[-1], pattern):
            return True
    return False


def _ignore_function(
    root: Path, patterns: Sequence[str]
) -> Callable[[str, list[str]], set[str]] | None:
    if not patterns:
        return None

    def ignore(directory: str, names: list[str]) -> set[str]:
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        return {
            name
            for name in names
            if _excluded(prefix + name, os.path.isdir(os.path.join(directory, name)), patterns)
        }

    return ignore


def _remove_excluded(root: Path, patterns: Sequence[str]) -> None:
    """Delete what matches ``patterns`` under ``root`` (after a copy that could not skip it)."""
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        for name in list(dirnames):
            if _excluded(prefix + name, True, patterns):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
                dirnames.remove(name)
        for name in filenames:
            if _excluded(prefix + name, False, patterns):
                Path(directory, name).unlink(missing_ok=True)


def _merge_tree(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``, merging into ``target`` if it is already there."""
    if not target.exists():
        source.replace(target)
        return
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(source, ignore_errors=True)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path`` and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as for a plain write.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- the interface ----------------------------------------------------------------------------


class Transport(abc.ABC):
    """Run commands and move files on the machine where jobs are submitted.

    A transport can be used as a context manager; `close` is then called on exit.
    Implementations are safe to use from several threads.
    """

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """Where commands run, for logs and messages (``local``, ``ssh://efi@login:22``).

        Never holds a secret.
        """

    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = False,
        input: str | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run one program with its arguments and wait for it.

        Each argument reaches the program exactly as given: nothing is interpreted by a
        shell (no globbing, no ``$(...)``, no word splitting).

        Args:
            argv: The program and its arguments.
            timeout: Seconds before the command is killed.
            check: Raise `CommandFailed` when the program exits with a non-zero status.
            input: Text for the program's standard input (none: it reads end-of-file).
            cwd: The directory to run it in.

        Returns:
            The exit status, output and duration.

        Raises:
            CommandTimeout: It did not finish within ``timeout`` and was killed
                (a `TransientError`).
            ConnectionFailed: The machine could not be reached (a `TransientError`).
            HostKeyError: The host key does not match ``known_hosts`` (a `PermanentError`).
            CommandFailed: ``check`` is true and the program exited with a non-zero status.
            ValueError: ``argv`` is empty.

        """

    @abc.abstractmethod
    def put(self, local: Path, remote: str, *, timeout: float = DEFAULT_TRANSFER_TIMEOUT) -> None:
        """Copy a local file or directory (recursively) to ``remote``.

        A directory's contents are merged into ``remote`` (which is created, with its
        parents); a file becomes ``remote`` (its parent directories are created).

        Args:
            local: The file or directory to copy.
            remote: The target path on the transport's machine.
            timeout: Seconds before the copy is killed.

        Raises:
            FileNotFoundError: ``local`` does not exist.
            CommandFailed: The copy failed (disk full, permission denied…).
            CommandTimeout: It did not finish within ``timeout``.
            ConnectionFailed: The machine could not be reached.
            HostKeyError: The host key does not match ``known_hosts``.

        """

    @abc.abstractmethod
    def get(
        self,
        remote: str,
        local: Path,
        *,
        exclude: Sequence[str] = (),
        timeout: float = DEFAULT_TRANSFER_TIMEOUT,
    ) -> None:
        """Copy a directory (or a file) from the transport's machine to ``local``.

        A directory's contents are merged into ``local`` (created with its parents).

        Args:
            remote: The directory or file to bring back.
            local: Where to put it.
            exclude: rsync ``--exclude`` patterns (``"work/"``: every directory named
                ``work``; ``"*.tmp"``; ``"/top-level-only"``).
            timeout: Seconds before the copy is killed.

        Raises:
            FileNotFoundError: ``remote`` does not exist.
            CommandFailed: The copy failed.
            CommandTimeout: It did not finish within ``timeout``.
            ConnectionFailed: The machine could not be reached.
            HostKeyError: The host key does not match ``known_hosts``.

        """

    @abc.abstractmethod
    def write_text(self, remote: str, text: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Write a text file atomically: readers see the old file or the new one, never half.

        The text goes to a temporary file in the same directory, which is then renamed
        over ``remote``; parent directories are created. Meant for batch scripts and
        parameter files. Permissions follow the umask.

        Args:
            remote: The file's path on the transport's machine.
            text: Its new contents (written as UTF-8).
            timeout: Seconds before the write is abandoned.

        Raises:
            CommandFailed: It could not be written.
            CommandTimeout: It did not finish within ``timeout``.
            ConnectionFailed: The machine could not be reached.
            HostKeyError: The host key does not match ``known_hosts``.

        """

    def close(self) -> None:
        """Release connections. Safe to call more than once; the transport stays usable."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


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


# -- on this machine --------------------------------------------------------------------------


class LocalTransport(Transport):
    """Run programs and copy files on this machine.

    Programs run with `subprocess` from an argument list, never through a shell (unless
    ``env_setup`` is set, see below). Copies use rsync when it is installed (and
    ``use_rsync`` allows), `shutil` otherwise; copying a path onto itself does nothing.

    Programs get `efi_job_manager.connector.pipeline_environment`: the manager's
    variables on an allow-list (``PATH``, ``HOME``, locale… and ``passthrough``), never
    its own settings and secrets, since a submitted job inherits them.

    Args:
        env: Extra environment variables for the programs (e.g. ``SLURM_CONF``).
        passthrough: More of this process's variables to pass on (names or patterns).
        env_setup: An operator's environment setup line (``module load slurm``) run before
            each command by ``/bin/sh``; the argument list is handed to the shell as
            positional parameters (``exec "$@"``), so it is never re-parsed. It is
            configuration and is passed as written.
        use_rsync: Copy with rsync (``None``: when it is installed).

    """

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        passthrough: Sequence[str] = (),
        env_setup: str | None = None,
        use_rsync: bool | None = None,
    ) -> None:
        self._env = dict(env) if env else {}
        self._passthrough = tuple(passthrough)
        self._env_setup = env_setup.strip() if env_setup and env_setup.strip() else None
        rsync = shutil.which("rsync")
        if use_rsync and rsync is None:
            raise ValueError("use_rsync=True but rsync is not installed here")
        self._rsync = rsync if use_rsync is not False else None

    @property
    def description(self) -> str:
        """``local``: commands run on this machine."""
        return "local"

    def _environment(self) -> dict[str, str]:
        return pipeline_environment(self._env, self._passthrough)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = False,
        input: str | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run one program here; see `Transport.run`.

        A program that is not found gives status 127, one that cannot be executed 126 (as a
        shell would), not an exception.

        Args:
            argv: The program and its arguments.
            timeout: Seconds before it (and the processes it started) is killed.
            check: Raise `CommandFailed` on a non-zero exit status.
            input: Text for its standard input.
            cwd: The directory to run it in.

        Returns:
            The exit status, output and duration.

        Raises:
            CommandTimeout: It did not finish within ``timeout`` and was killed.
            CommandFailed: ``check`` is true and it exited with a non-zero status.
            ValueError: ``argv`` is empty.

        """
        args = _check_argv(argv)
        command: tuple[str, ...] = args
        if self._env_setup is not None:
            command = ("/bin/sh", "-c", f'{{ {self._env_setup}\n}} && exec "$@"', "sh", *args)
        log.debug("local: running %s", shlex.join(args))
        result = _execute(
            command,
            shown=args,
            where=self.description,
            timeout=timeout,
            input=input,
            cwd=cwd,
            env=self._environment(),
        )
        log.debug("local: %s exited %d in %.3f s", args[0], result.returncode, result.duration)
        if check:
            result.check(self.description)
        return result

    def put(self, local: Path, remote: str, *, timeout: float = DEFAULT_TRANSFER_TIMEOUT) -> None:
        """Copy a file or a directory here; see `Transport.put`.

        Args:
            local: The file or directory to copy.
            remote: The target path.
            timeout: Seconds before an rsync copy is killed.

        Raises:
            FileNotFoundError: ``local`` does not exist.
            ValueError: ``remote`` is inside the directory ``local``.
            CommandFailed: rsync failed.
            CommandTimeout: rsync did not finish within ``timeout``.

        """
        self._copy(Path(local), Path(remote), (), timeout)

    def get(
        self,
        remote: str,
        local: Path,
        *,
        exclude: Sequence[str] = (),
        timeout: float = DEFAULT_TRANSFER_TIMEOUT,
    ) -> None:
        """Copy a directory or a file here; see `Transport.get`.

        Args:
            remote: The directory or file to copy.
            local: Where to put it.
            exclude: rsync ``--exclude`` patterns.
            timeout: Seconds before an rsync copy is killed.

        Raises:
            FileNotFoundError: ``remote`` does not exist.
            ValueError: ``local`` is inside the directory ``remote``.
            CommandFailed: rsync failed.
            CommandTimeout: rsync did not finish within ``timeout``.

        """
        self._copy(Path(remote), Path(local), tuple(exclude), timeout)

    def _copy(self, source: Path, target: Path, exclude: Sequence[str], timeout: float) -> None:
        if not source.exists() and not source.is_symlink():
            raise FileNotFoundError(f"{source} does not exist")
        real_source, real_target = os.path.realpath(source), os.path.realpath(target)
        if real_source == real_target:
            log.debug("local: %s is already in place", source)
            return
        is_dir = source.is_dir()
        if is_dir and Path(real_target).is_relative_to(real_source):
            raise ValueError(f"cannot copy {source} into itself ({target})")
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._rsync is not None:
            command = [self._rsync, "-a", "--partial"]
            command += [f"--exclude={pattern}" for pattern in exclude]
            command += [f"{source}/", f"{target}/"] if is_dir else [str(source), str(target)]
            log.debug("local: %s", shlex.join(command))
            _execute(
                command, shown=command, where=self.description, timeout=timeout, tool=True
            ).check(self.description)
        elif is_dir:
            shutil.copytree(
                source,
                target,
                symlinks=True,
                dirs_exist_ok=True,
                ignore=_ignore_function(source, exclude),
            )
        else:
            shutil.copy2(source, target)

    def write_text(self, remote: str, text: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Write a file here atomically (temporary file, fsync, rename); see `Transport.write_text`.

        Args:
            remote: The file's path.
            text: Its contents.
            timeout: Unused here (a local write does not hang on a network).

        Raises:
            OSError: The file could not be written.

        """
        _write_atomically(Path(remote), text)


# -- over SSH ---------------------------------------------------------------------------------


def _escape_tokens(path: str) -> str:
    """Escape ``%`` for ssh options that expand ``%`` tokens (ControlPath, IdentityFile…)."""
    return path.replace("%", "%%")


def _check_word(name: str, value: str) -> str:
    if not value or value.startswith("-") or any(c.isspace() for c in value):
        raise ValueError(f"{name} must be a non-empty word not starting with '-', got {value!r}")
    return value


def _check_option_path(name: str, value: str) -> str:
    if any(c.isspace() for c in value) or '"' in value or "'" in value:
        raise ValueError(f"{name} must not contain spaces or quotes (ssh splits it): {value!r}")
    return value


# The remote half of `SshTransport.write_text`: $1 is the target; the text arrives on stdin.
_WRITE_SCRIPT = r"""set -e
target=$1
dir=$(dirname -- "$target")
mkdir -p -- "$dir"
tmp=$(mktemp -- "$target.XXXXXXXXXX.tmp")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chmod "$(printf '%o' $((0666 & ~$(umask))))" "$tmp"
mv -f -- "$tmp" "$target"
trap - EXIT
"""

# What `SshTransport.get` asks first: is the remote path a directory, a file, or missing?
_KIND_SCRIPT = 'if [ -d "$1" ]; then echo dir; elif [ -e "$1" ]; then echo file; else echo none; fi'


def _close_master(exit_command: list[str], control_dir: Path, owned: bool) -> None:
    """Ask a ControlMaster to exit and remove its directory (errors ignored)."""
    if control_dir.is_dir() and any(control_dir.iterdir()):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                exit_command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_KILL_GRACE_S * 2,
                check=False,
            )
    if owned:
        shutil.rmtree(control_dir, ignore_errors=True)


class SshTransport(Transport):
    """Run programs and copy files on another machine with the system OpenSSH client.

    Every ``ssh`` is called as::

        ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=N
            -o ServerAliveInterval=15 -o ServerAliveCountMax=3
            -o ControlMaster=auto -o ControlPath=<control_dir>/%C -o ControlPersist=60s
            [-F config] [-i key] [-p port] [-o UserKnownHostsFile=…] [extra options]
            [user@]host -- <remote command>

    so the first command opens a master connection and the next ones reuse it until
    `close` (or ``control_persist`` of idleness). rsync (``-e "ssh <the same options>"``)
    and scp use the same connection.

    The remote command is the argument list joined with `shlex.join`; the remote login
    shell must be a POSIX shell (sh, bash, zsh, ksh). The remote exit status 255 is ssh's
    own: it is reported as `ConnectionFailed`, so remote programs should not use it.

    Args:
        host: The host name, an alias of the ssh config, or an address.
        user: The remote user (default: ssh's, from the config or the local user).
        port: The server's port (default: ssh's).
        identity_file: The private key file (its path is logged, never its contents).
        known_hosts: The known hosts file (``UserKnownHostsFile``).
        strict_host_key_checking: ``True`` (``yes``: refuse unknown or changed keys, the
            default), ``False`` (``no``), or one of ssh's words (``accept-new``).
        config_file: An ssh client config file (``-F``), e.g. for host aliases.
        env_setup: An operator's environment setup line (the first job manager's
            ``SOURCE_ENV_CMD``, e.g. ``module load slurm``) run by the remote shell before
            each command of `run`: the remote command becomes ``{ <env_setup>
            } && <quoted argv>``. It is configuration, passed as written (not quoted).
        control_dir: The directory of the ControlMaster socket (default: a new private
            directory under ``$XDG_RUNTIME_DIR`` or ``/tmp``, removed by `close`). Created
            with mode 0700; at most 45 characters (Unix socket paths are short).
        control_persist: How long an idle master connection stays open (``60s``).
        connect_timeout: Seconds to wait for the connection.
        extra_options: More ssh options, passed as given (``["-o", "ProxyJump=bastion"]``);
            use ``-o`` forms, which scp and rsync's ssh understand too.
        transfer: ``auto`` (rsync when both ends have it, scp otherwise), ``rsync`` or ``scp``.

    Raises:
        ValueError: An argument is malformed (a host starting with ``-``, a control
            directory too long for a socket path…).

    """

    def __init__(
        self,
        host: str,
        *,
        user: str | None = None,
        port: int | None = None,
        identity_file: str | os.PathLike[str] | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        strict_host_key_checking: bool | str = True,
        config_file: str | os.PathLike[str] | None = None,
        env_setup: str | None = None,
        control_dir: Path | None = None,
        control_persist: str = "60s",
        connect_timeout: int = 10,
        extra_options: Sequence[str] = (),
        transfer: TransferMethod = "auto",
    ) -> None:
        self.host = _check_word("host", host)
        self.user = _check_word("user", user) if user is not None else None
        if self.user is not None and "@" in self.user:
            raise ValueError(f"user must not contain '@': {user!r}")
        if port is not None and not 0 < int(port) < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {port!r}")
        self.port = int(port) if port is not None else None
        self.identity_file = os.fspath(identity_file) if identity_file is not None else None
        self.known_hosts = (
            _check_option_path("known_hosts", os.fspath(known_hosts))
            if known_hosts is not None
            else None
        )
        self.config_file = os.fspath(config_file) if config_file is not None else None
        if isinstance(strict_host_key_checking, bool):
            self._strict = "yes" if strict_host_key_checking else "no"
        elif strict_host_key_checking in {"yes", "no", "accept-new", "off", "ask"}:
            self._strict = strict_host_key_checking
        else:
            raise ValueError(
                "strict_host_key_checking must be a bool or yes/no/accept-new/off/ask, "
                f"not {strict_host_key_checking!r}"
            )
        self.env_setup = env_setup.strip() if env_setup and env_setup.strip() else None
        if int(connect_timeout) <= 0:
            raise ValueError(
                f"connect_timeout must be a positive number of seconds: {connect_timeout!r}"
            )
        self.connect_timeout = int(connect_timeout)
        self.control_persist = _check_word("control_persist", control_persist)
        if isinstance(extra_options, str):
            raise TypeError("extra_options must be a sequence of arguments, not one string")
        self.extra_options = tuple(extra_options)
        if transfer not in ("auto", "rsync", "scp"):
            raise ValueError(f"transfer must be auto, rsync or scp, not {transfer!r}")
        self.transfer = transfer
        if control_dir is not None:
            text = _check_option_path("control_dir", os.fspath(control_dir))
            if len(os.path.abspath(text)) > _MAX_CONTROL_DIR_LENGTH:
                raise ValueError(
                    f"control_dir {text!r} is too long for a Unix socket path: use at most "
                    f"{_MAX_CONTROL_DIR_LENGTH} characters (e.g. a directory under /tmp)"
                )
            self._given_control_dir: Path | None = Path(os.path.abspath(text))
        else:
            self._given_control_dir = None
        self._lock = threading.RLock()
        self._control_dir: Path | None = None
        self._finalizer: weakref.finalize[[list[str], Path, bool], SshTransport] | None = None
        self._remote_rsync: bool | None = None
        self._local_rsync = shutil.which("rsync")
        self._local_scp = shutil.which("scp")

    # -- description and options ----------------------------------------------------------

    @property
    def target(self) -> str:
        """``user@host`` (or ``host``): the destination given to ssh."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def description(self) -> str:
        """``ssh://[user@]host[:port]``: where commands run (no secrets)."""
        port = f":{self.port}" if self.port is not None else ""
        return f"ssh://{self.target}{port}"

    def _ensure_control_dir(self) -> Path:
        with self._lock:
            if self._control_dir is not None and self._control_dir.is_dir():
                return self._control_dir
            if self._given_control_dir is not None:
                directory = self._given_control_dir
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                if directory.stat().st_mode & 0o077:
                    if directory.stat().st_uid != os.getuid():
                        raise PermanentError(
                            f"control_dir {directory} is not private (mode 0700) and not ours"
                        )
                    directory.chmod(0o700)
                owned = False
            else:
                base = os.environ.get("XDG_RUNTIME_DIR", "")
                if not (
                    base
                    and os.path.isabs(base)
                    and os.path.isdir(base)
                    and os.access(base, os.W_OK)
                    and len(base) <= _MAX_CONTROL_DIR_LENGTH - 20
                ):
                    base = "/tmp"  # noqa: S108 - a private (0700) mkdtemp directory
                directory = Path(tempfile.mkdtemp(prefix="efijm-ssh-", dir=base))
                owned = True
            self._control_dir = directory  # before _ssh_command, which asks for it
            self._finalizer = weakref.finalize(
                self, _close_master, self._ssh_command("-O", "exit"), directory, owned
            )
            return directory

    def _options(self, *, scp: bool = False) -> list[str]:
        """The ssh options of every invocation (``-P`` for the port when ``scp``)."""
        control_dir = self._ensure_control_dir()
        options = [
            "-o", "BatchMode=yes",
            "-o", f"StrictHostKeyChecking={self._strict}",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={_escape_tokens(str(control_dir))}/%C",
            "-o", f"ControlPersist={self.control_persist}",
        ]  # fmt: skip
        if self.config_file is not None:
            options += ["-F", self.config_file]
        if self.identity_file is not None:
            options += ["-i", _escape_tokens(self.identity_file)]
        if self.port is not None:
            options += ["-P" if scp else "-p", str(self.port)]
        if self.known_hosts is not None:
            options += ["-o", f"UserKnownHostsFile={_escape_tokens(self.known_hosts)}"]
        options += self.extra_options
        return options

    def _ssh_command(self, *args: str) -> list[str]:
        return ["ssh", *self._options(), *args, self.target]

    def _remote_spec(self, path: str) -> str:
        """``[user@]host:path`` for rsync and scp (an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}:{path}"

    def remote_command(
        self, argv: Sequence[str], *, cwd: str | None = None, env_setup: bool = True
    ) -> str:
        """The command line the remote shell runs for ``argv`` (each argument quoted).

        Args:
            argv: The program and its arguments.
            cwd: A directory to change to first.
            env_setup: Put the environment setup line (if any) in front.

        Returns:
            ``[{ <env_setup> NEWLINE } && ][cd <cwd> && ]<quoted argv>``.

        Raises:
            ValueError: ``argv`` is empty.

        """
        command = shlex.join(_check_argv(argv))
        if cwd is not None:
            command = f"cd {shlex.quote(cwd)} && {command}"
        if env_setup and self.env_setup is not None:
            # Braces and a newline: a comment or a ';' in the setup line cannot swallow or
            # detach the command.
            command = f"{{ {self.env_setup}\n}} && {command}"
        return command

    # -- errors ---------------------------------------------------------------------------

    def _raise_for_connection(self, stderr: str, *, program: str = "ssh") -> None:
        lower = stderr.lower()
        if any(marker in lower for marker in _HOST_KEY_MARKERS):
            # ssh's banner is long: keep the lines that say what is wrong and where.
            lines = [
                line.strip()
                for line in stderr.splitlines()
                if any(m in line.lower() for m in (*_HOST_KEY_MARKERS, "offending", "known_hosts"))
            ]
            raise HostKeyError(
                self.description, self.known_hosts, "; ".join(lines) or _tail(stderr)
            )
        log.debug("%s: %s could not connect: %s", self.description, program, _tail(stderr))
        raise ConnectionFailed(self.description, _tail(stderr))

    # -- commands -------------------------------------------------------------------------

    def _run_remote(
        self,
        remote: str,
        *,
        shown: tuple[str, ...],
        timeout: float,
        input: str | None = None,
    ) -> CommandResult:
        self._ensure_control_dir()
        command = [*self._ssh_command(), "--", remote]
        log.debug("%s: running %s", self.description, shlex.join(shown))
        result = _execute(
            command, shown=shown, where=self.description, timeout=timeout, input=input, tool=True
        )
        if result.returncode == _SSH_FAILURE:
            self._raise_for_connection(result.stderr)
        log.debug(
            "%s: %s exited %d in %.3f s",
            self.description,
            _program(shown),
            result.returncode,
            result.duration,
        )
        return result

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = False,
        input: str | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run one program on the remote machine; see `Transport.run`.

        On a timeout the local ssh is killed; the remote program loses its connection
        (it gets end-of-file and a broken pipe) but no signal.

        Args:
            argv: The program and its arguments, each reaching it unchanged.
            timeout: Seconds before it is killed (the connection included).
            check: Raise `CommandFailed` on a non-zero exit status.
            input: Text for its standard input.
            cwd: The remote directory to run it in.

        Returns:
            The remote exit status, output and duration.

        Raises:
            ConnectionFailed: ssh failed (exit status 255): refused, timed out, unknown
                host, authentication refused (a `TransientError`).
            HostKeyError: The host key is unknown or changed (a `PermanentError`).
            CommandTimeout: It did not finish within ``timeout`` (a `TransientError`).
            CommandFailed: ``check`` is true and it exited with a non-zero status.
            ValueError: ``argv`` is empty.

        """
        args = _check_argv(argv)
        result = self._run_remote(
            self.remote_command(args, cwd=cwd), shown=args, timeout=timeout, input=input
        )
        if check:
            result.check(self.description)
        return result

    def _run_plain(
        self, argv: Sequence[str], *, timeout: float, input: str | None = None
    ) -> CommandResult:
        """Run a helper command (mkdir, test, the write script) without ``env_setup``."""
        args = _check_argv(argv)
        return self._run_remote(
            self.remote_command(args, env_setup=False), shown=args, timeout=timeout, input=input
        )

    def is_master_running(self) -> bool:
        """Whether a ControlMaster connection is open (``ssh -O check``).

        Returns:
            True when the master answers.

        """
        if self._control_dir is None or not self._control_dir.is_dir():
            return False
        command = self._ssh_command("-O", "check")
        result = _execute(command, shown=command, where=self.description, timeout=10.0, tool=True)
        return result.returncode == 0

    def write_text(self, remote: str, text: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Write a remote file atomically (``mktemp`` next to it, then ``mv``).

        The text travels on standard input, never on a command line.

        Args:
            remote: The remote file's path.
            text: Its contents.
            timeout: Seconds before the write is abandoned.

        Raises:
            CommandFailed: It could not be written (permission denied, disk full…).
            CommandTimeout: It did not finish within ``timeout``.
            ConnectionFailed: The machine could not be reached.
            HostKeyError: The host key does not match ``known_hosts``.

        """
        self._run_plain(
            ["sh", "-c", _WRITE_SCRIPT, "sh", remote], timeout=timeout, input=text
        ).check(self.description)

    # -- copies ---------------------------------------------------------------------------

    def _use_rsync(self, timeout: float) -> bool:
        if self.transfer == "scp":
            return False
        if self._local_rsync is None:
            if self.transfer == "rsync":
                raise PermanentError("transfer='rsync' but rsync is not installed here")
            log.debug("%s: rsync is not installed here: copying with scp", self.description)
            return False
        if self._remote_rsync is None:
            probe = self._run_plain(["rsync", "--version"], timeout=min(timeout, 30.0))
            self._remote_rsync = probe.returncode == 0
            if not self._remote_rsync:
                log.info("%s has no rsync: copying with scp", self.description)
        if not self._remote_rsync and self.transfer == "rsync":
            raise PermanentError(f"transfer='rsync' but {self.description} has no rsync")
        return self._remote_rsync

    def _rsync_command(self, exclude: Sequence[str] = ()) -> list[str]:
        # rsync splits the -e string itself (spaces separate, quotes group): quote each part.
        shell = shlex.join(["ssh", *self._options()])
        command = [self._local_rsync or "rsync", "-a", "--partial", "-e", shell]
        command += [f"--exclude={pattern}" for pattern in exclude]
        return command

    def _transfer(self, command: list[str], timeout: float) -> None:
        """Run rsync or scp here; sort connection failures from failed copies."""
        self._ensure_control_dir()
        log.debug("%s: %s", self.description, shlex.join(command))
        result = _execute(
            command, shown=command, where=self.description, timeout=timeout, tool=True
        )
        if result.returncode == 0:
            return
        lower = result.stderr.lower()
        if any(marker in lower for marker in _HOST_KEY_MARKERS):
            self._raise_for_connection(result.stderr, program=command[0])
        is_rsync = command[0] != self._local_scp and Path(command[0]).name == "rsync"
        connection_codes = _RSYNC_CONNECTION_CODES if is_rsync else {_SSH_FAILURE}
        if result.returncode in connection_codes and "command not found" not in lower:
            self._raise_for_connection(result.stderr, program=command[0])
        raise CommandFailed(result, self.description)

    def put(self, local: Path, remote: str, *, timeout: float = DEFAULT_TRANSFER_TIMEOUT) -> None:
        """Copy a local file or directory to the remote machine; see `Transport.put`.

        rsync (``-a --partial``) when both ends have it, scp (``-r -p``) otherwise; the
        remote directory (for a directory) or parent directory (for a file) is created.

        Args:
            local: The file or directory to copy.
            remote: The target path there.
            timeout: Seconds before the copy is killed.

        Raises:
            FileNotFoundError: ``local`` does not exist.
            CommandFailed: The copy failed.
            CommandTimeout: It did not finish within ``timeout``.
            ConnectionFailed: The machine could not be reached.
            HostKeyError: The host key does not match ``known_hosts``.

        """
        local = Path(local)
        if not local.exists():
            raise FileNotFoundError(f"{local} does not exist")
        is_dir = local.is_dir()
        made = remote if is_dir else posixpath.dirname(remote.rstrip("/"))
        if made:
            self._run_plain(["mkdir", "-p", "--", made], timeout=min(timeout, 60.0)).check(
                self.description
            )
        if self._use_rsync(timeout):
            command = self._rsync_command()
            if is_dir:
                command += [f"{local}/", self._remote_spec(remote.rstrip("/") + "/")]
            else:
                command += [str(local), self._remote_spec(remote)]
        else:
            command = ["scp", "-p", "-q", *self._options(scp=True)]
            if is_dir:
                entries = sorted(str(entry) for entry in local.iterdir())
                if not entries:
                    return
                command += ["-r", *entries, self._remote_spec(remote.rstrip("/") + "/")]
            else:
                command += [str(local), self._remote_spec(remote)]
        self._transfer(command, timeout)

    def get(
        self,
        remote: str,
        local: Path,
        *,
        exclude: Sequence[str] = (),
        timeout: float = DEFAULT_TRANSFER_TIMEOUT,
    ) -> None:
        """Bring a remote directory (or file) back; see `Transport.get`.

        With scp (no rsync on one end) the excluded paths cannot be skipped: they are
        copied, then deleted here, and a warning is logged.

        Args:
            remote: The remote directory or file.
            local: Where to put it (a directory's contents merge into it).
            exclude: rsync ``--exclude`` patterns (``"work/"``).
            timeout: Seconds before the copy is killed.

        Raises:
            FileNotFoundError: ``remote`` does not exist.
            CommandFailed: The copy failed.
            CommandTimeout: It did not finish within ``timeout``.
            ConnectionFailed: The machine could not be reached.
            HostKeyError: The host key does not match ``known_hosts``.

        """
        local = Path(local)
        exclude = tuple(exclude)
        kind = (
            self._run_plain(["sh", "-c", _KIND_SCRIPT, "sh", remote], timeout=min(timeout, 60.0))
            .check(self.description)
            .stdout.strip()
        )
        if kind == "none":
            raise FileNotFoundError(f"{self.description}:{remote} does not exist")
        is_dir = kind == "dir"
        local.parent.mkdir(parents=True, exist_ok=True)
        if self._use_rsync(timeout):
            command = self._rsync_command(exclude)
            if is_dir:
                local.mkdir(exist_ok=True)
                command += [self._remote_spec(remote.rstrip("/") + "/"), f"{local}/"]
            else:
                command += [self._remote_spec(remote), str(local)]
            self._transfer(command, timeout)
            return
        if not is_dir:
            self._transfer(
                [
                    "scp",
                    "-p",
                    "-q",
                    *self._options(scp=True),
                    self._remote_spec(remote),
                    str(local),
                ],
                timeout,
            )
            return
        if exclude:
            log.warning(
                "%s: copying %s with scp, which cannot exclude %s: they are copied, then "
                "deleted here",
                self.description,
                remote,
                ", ".join(exclude),
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{local.name}.get-", dir=local.parent))
        try:
            copy = staging / "copy"
            self._transfer(
                [
                    "scp",
                    "-p",
                    "-q",
                    "-r",
                    *self._options(scp=True),
                    self._remote_spec(remote.rstrip("/")),
                    str(copy),
                ],
                timeout,
            )
            if exclude:
                _remove_excluded(copy, exclude)
            _merge_tree(copy, local)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- the end --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the master connection (``ssh -O exit``) and remove its directory if ours.

        Errors are ignored; calling it again does nothing. The transport stays usable: the
        next command opens a new connection.
        """
        with self._lock:
            finalizer, self._finalizer = self._finalizer, None
            self._control_dir = None
        if finalizer is not None:
            finalizer()
