"""`SshTransport`: run programs, write files and copy trees on another machine over ssh.

The connection (options, ControlMaster, quoting, ssh's failures) is `SshConnection`'s;
here are the `Transport` operations on top of it, and the choice between rsync and scp.
"""

from __future__ import annotations

import logging
import posixpath
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from efi_job_manager.connector import PermanentError
from efi_job_manager.transport.base import DEFAULT_TIMEOUT, DEFAULT_TRANSFER_TIMEOUT, Transport
from efi_job_manager.transport.process import _check_argv, _execute
from efi_job_manager.transport.results import CommandFailed, CommandResult
from efi_job_manager.transport.ssh_connection import (
    _HOST_KEY_MARKERS,
    _SSH_FAILURE,
    SshConnection,
)
from efi_job_manager.transport.trees import _merge_tree, _remove_excluded

log = logging.getLogger("efi_job_manager.transport")

# rsync exit codes that mean the connection (not the copy) failed: socket I/O, protocol data
# stream (the ssh under it died), timeouts, and ssh's own 255.
_RSYNC_CONNECTION_CODES = frozenset({10, 12, 30, 35, 255})

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


class SshTransport(SshConnection, Transport):
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
        # never the other side's owner and group: run as root, -a alone would give results
        # the cluster user's ids (and the results directory's group is the site's choice)
        command = [self._local_rsync or "rsync", "-a", "--no-owner", "--no-group", "--partial",
                   "-e", shell]
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
        remote directory (for a directory) or parent directory (for a file) is created. A
        directory's entries are named one by one (``rsync -a dir/a dir/b remote/``), so
        ``remote`` itself keeps its owner and mode.

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
        # Absolute paths: rsync and scp read a local "a:b" as a remote host's path.
        entries = sorted(str(entry) for entry in local.absolute().iterdir()) if is_dir else []
        if is_dir and not entries:
            return
        if self._use_rsync(timeout):
            command = self._rsync_command()
            if is_dir:
                command += [*entries, self._remote_spec(remote.rstrip("/") + "/")]
            else:
                command += [str(local.absolute()), self._remote_spec(remote)]
        else:
            command = ["scp", "-p", "-q", *self._options(scp=True)]
            if is_dir:
                command += ["-r", *entries, self._remote_spec(remote.rstrip("/") + "/")]
            else:
                command += [str(local.absolute()), self._remote_spec(remote)]
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
