"""Run an argument list, copy files and directories: on this machine or over SSH.

This package is for connector authors (the Slurm connector uses it), not for the
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

The package's modules, one idea each:

- `results`: `CommandResult` and the errors.
- `process`: running a local process (argument checks, timeouts, killing its group).
- `trees`: the local copies rsync does not make (exclude patterns, merging, atomic writes).
- `base`: the `Transport` interface and its default timeouts.
- `local`: `LocalTransport`.
- `ssh_connection`: `SshConnection`, the ssh command line and its ControlMaster connection.
- `ssh`: `SshTransport`, commands, remote writes and copies (rsync or scp) over it.

All of them log to the ``efi_job_manager.transport`` logger.
"""

from efi_job_manager.transport.base import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from efi_job_manager.transport.base import DEFAULT_TRANSFER_TIMEOUT as DEFAULT_TRANSFER_TIMEOUT
from efi_job_manager.transport.base import Transport
from efi_job_manager.transport.local import LocalTransport
from efi_job_manager.transport.results import (
    CommandFailed,
    CommandResult,
    CommandTimeout,
    ConnectionFailed,
    HostKeyError,
)
from efi_job_manager.transport.ssh import SshTransport
from efi_job_manager.transport.ssh_connection import TransferMethod as TransferMethod

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
