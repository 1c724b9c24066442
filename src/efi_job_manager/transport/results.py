"""What a command did (`CommandResult`) and the transports' errors.

A program that exits non-zero is a result, not an error; `CommandFailed` is raised only when
asked (``check``). The others say the way to the machine failed: `ConnectionFailed` and
`CommandTimeout` are transient (`TransientError`), `HostKeyError` is not (`PermanentError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import attrs

from efi_job_manager.connector import PermanentError, TransientError

_STDERR_IN_MESSAGE = 600


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

