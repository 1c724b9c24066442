"""`LocalTransport`: run programs and copy files on this machine."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from efi_job_manager.connector import pipeline_environment
from efi_job_manager.jobfiles import atomic_write_text
from efi_job_manager.transport.base import DEFAULT_TIMEOUT, DEFAULT_TRANSFER_TIMEOUT, Transport
from efi_job_manager.transport.process import _check_argv, _execute
from efi_job_manager.transport.results import CommandResult
from efi_job_manager.transport.trees import _copy_entries, _ignore_function

log = logging.getLogger("efi_job_manager.transport")


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
        self._copy(Path(local), Path(remote), (), timeout, into=True)

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

    def _copy(self, source: Path, target: Path, exclude: Sequence[str], timeout: float, *,
              into: bool = False) -> None:
        """Copy ``source`` to ``target``; ``into``: a directory's entries, not the directory."""
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
        if is_dir and into:
            target.mkdir(exist_ok=True)
            if self._rsync is None:
                _copy_entries(source, target)
                return
            sources = sorted(str(entry) for entry in source.absolute().iterdir())
            if not sources:
                return
        elif is_dir:
            sources = [f"{source}/"]
        else:
            sources = [str(source)]
        if self._rsync is not None:
            command = [self._rsync, "-a", "--no-owner", "--no-group", "--partial"]
            command += [f"--exclude={pattern}" for pattern in exclude]
            command += [*sources, f"{target}/" if is_dir else str(target)]
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
        atomic_write_text(Path(remote), text)
