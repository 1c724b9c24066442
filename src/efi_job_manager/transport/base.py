"""The `Transport` interface: run an argument list, copy files both ways, write a file."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from efi_job_manager.transport.results import CommandResult

DEFAULT_TIMEOUT = 60.0
"""Seconds a command may run before it is killed."""
DEFAULT_TRANSFER_TIMEOUT = 3600.0
"""Seconds a `Transport.put` or `Transport.get` may take before it is killed."""


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

        A directory's entries are copied into ``remote`` and merged with what is there
        (``rsync -a dir/a dir/b … remote/``); ``remote`` is created with its parents if
        missing and otherwise keeps its own owner and mode (never those of ``local``).
        A file becomes ``remote`` (its parent directories are created).

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

