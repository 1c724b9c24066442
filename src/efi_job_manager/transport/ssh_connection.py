"""The ssh side of `SshTransport`: its arguments, its command line, its master connection.

`SshConnection` checks the arguments, builds the options every ``ssh`` (and the ssh under
rsync and scp) is called with, keeps the ControlMaster socket in a private directory,
quotes the remote command, runs it, and turns ssh's own failures (exit status 255) into
`ConnectionFailed` or `HostKeyError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from efi_job_manager.connector import PermanentError
from efi_job_manager.transport.process import _KILL_GRACE_S, _check_argv, _execute
from efi_job_manager.transport.results import (
    CommandResult,
    ConnectionFailed,
    HostKeyError,
    _program,
    _tail,
)

log = logging.getLogger("efi_job_manager.transport")

TransferMethod = Literal["auto", "rsync", "scp"]
"""How `SshTransport` copies files: rsync when both ends have it (``auto``), or one of them."""

# ssh appends ".XXXXXXXXXXXXXXXX" (17 characters) to the ControlPath while it creates the
# socket, and %C is 40 hex digits; a Unix socket path holds at most 104 bytes on the BSDs and
# macOS (108 on Linux). So the control directory may be at most 104 - 1 - 40 - 17 - 1 long.
_MAX_CONTROL_DIR_LENGTH = 45

# What ssh prints when the host key is not the one in known_hosts (or is missing from it).
_HOST_KEY_MARKERS = (
    "host key verification failed",
    "remote host identification has changed",
    "host key is known for",
    "host key for",
    "no matching host key type",
)
_SSH_FAILURE = 255


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


class SshConnection:
    """How `SshTransport` reaches its machine: checked arguments, ssh options, the master.

    Its arguments are `SshTransport`'s, documented there. It is not a `Transport` by
    itself: `SshTransport` adds running, writing and copying on top.
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
        self._finalizer: weakref.finalize[[list[str], Path, bool], SshConnection] | None = None
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
