"""`MountedTransport`: this host reaches the cluster's ``remote_dir`` through a mount.

A site whose web host mounts the cluster's scratch at another path (the cluster's
``/scratch/efi`` is ``/mnt/hpc/scratch/efi`` here) sets ``remote_dir`` to the cluster's path and
``remote_dir_mount`` to this host's. The connector computes every path as the cluster sees
it: the batch script's lines and what the scheduler is given (``--chdir``, the output
files, slurmrestd's ``current_directory``) stay the cluster's. This transport translates at
the one place where this host touches those files: a path it copies to or from, writes, or
passes as a whole argument to a program (``sbatch <script>``, ``grep -l <files>``,
``mkdir -p <dir>``), is moved from ``remote_dir`` to the mount; a line of a program's
output that starts with the mount is moved back, so that what `grep -l` prints is found
among the paths the connector asked about.

Only whole arguments and line starts are translated: an ``--option=path`` argument is meant
for the cluster and is left alone. `make_transport` builds the transport a destination's
settings choose (this one, `LocalTransport` or `SshTransport`).
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence
from pathlib import Path

import attrs

from efi_connector_slurm.config import SlurmSettings
from efi_job_manager.toolkit import CommandResult, LocalTransport, SshTransport, Transport

__all__ = ["MountedTransport", "PathMap", "make_transport"]

_COMMAND_TIMEOUT = 60.0  # LocalTransport's own defaults: every caller here passes its own
_TRANSFER_TIMEOUT = 3600.0


@attrs.frozen
class PathMap:
    """One directory seen at two paths: ``cluster`` on the cluster, ``here`` on this host.

    Both are absolute, without a trailing slash.
    """

    cluster: str
    here: str

    def to_here(self, path: str) -> str:
        """``path`` as this host sees it, when it is ``cluster`` or below it; else unchanged."""
        return _moved(path, self.cluster, self.here)

    def to_cluster(self, path: str) -> str:
        """``path`` as the cluster sees it, when it is ``here`` or below it; else unchanged."""
        return _moved(path, self.here, self.cluster)

    def output_to_cluster(self, text: str) -> str:
        """A program's output with every line that starts with a path under ``here`` moved."""
        if self.here not in text:
            return text
        return "".join(self.to_cluster(line) for line in text.splitlines(keepends=True))


def _moved(path: str, old: str, new: str) -> str:
    if path == old:
        return new
    prefix = old if old.endswith("/") else old + "/"
    if path.startswith(prefix):
        return posixpath.join(new, path[len(prefix):])
    return path


class MountedTransport(LocalTransport):
    """`LocalTransport` for a host that sees the cluster's ``remote_dir`` at another path.

    Args:
        paths: The directory's two paths.
        env: As `LocalTransport`.
        passthrough: As `LocalTransport`.
        env_setup: As `LocalTransport`.
    """

    def __init__(self, paths: PathMap, *, env: dict[str, str] | None = None,
                 passthrough: Sequence[str] = (), env_setup: str | None = None) -> None:
        super().__init__(env=env, passthrough=passthrough, env_setup=env_setup)
        self.paths = paths

    @property
    def description(self) -> str:
        """``local, <cluster path> mounted at <path here>``."""
        return f"local, {self.paths.cluster} mounted at {self.paths.here}"

    def run(self, argv: Sequence[str], *, timeout: float = _COMMAND_TIMEOUT, check: bool = False,
            input: str | None = None, cwd: str | None = None) -> CommandResult:
        """Run a program here with its whole-path arguments moved to the mount."""
        moved = [self.paths.to_here(arg) for arg in argv]
        result = super().run(moved, timeout=timeout, check=check, input=input,
                             cwd=None if cwd is None else self.paths.to_here(cwd))
        return attrs.evolve(result, argv=tuple(argv),
                            stdout=self.paths.output_to_cluster(result.stdout))

    def put(self, local: Path, remote: str, *, timeout: float = _TRANSFER_TIMEOUT) -> None:
        """Copy into the mount; see `LocalTransport.put`."""
        super().put(local, self.paths.to_here(remote), timeout=timeout)

    def get(self, remote: str, local: Path, *, exclude: Sequence[str] = (),
            timeout: float = _TRANSFER_TIMEOUT) -> None:
        """Copy from the mount; see `LocalTransport.get`."""
        super().get(self.paths.to_here(remote), local, exclude=exclude, timeout=timeout)

    def write_text(self, remote: str, text: str, *, timeout: float = _COMMAND_TIMEOUT) -> None:
        """Write a file in the mount; see `LocalTransport.write_text`."""
        super().write_text(self.paths.to_here(remote), text, timeout=timeout)


def make_transport(settings: SlurmSettings) -> Transport:
    """The transport the settings choose: here, here through a mount, or over SSH."""
    s = settings
    if s.transport == "local":
        env = {"SLURM_CONF": s.slurm_conf} if s.slurm_conf else None
        # sbatch exports its environment to the job: only an allow-list, never secrets
        passthrough = ("SLURM_CONF", *s.env_passthrough)
        if s.remote_dir_mount is not None:
            assert s.remote_dir is not None  # parse_settings requires it  # noqa: S101
            return MountedTransport(PathMap(s.remote_dir, s.remote_dir_mount), env=env,
                                    passthrough=passthrough, env_setup=s.env_setup)
        return LocalTransport(env=env, passthrough=passthrough, env_setup=s.env_setup)
    setup = s.env_setup
    if s.slurm_conf:
        export = f"export SLURM_CONF={shlex.quote(s.slurm_conf)}"
        setup = f"{export}\n{setup}" if setup else export
    assert s.host is not None  # parse_settings requires it for ssh  # noqa: S101
    return SshTransport(
        s.host,
        user=s.user,
        port=s.port,
        identity_file=s.identity_file,
        known_hosts=s.known_hosts,
        strict_host_key_checking=s.strict_host_key_checking,
        config_file=s.ssh_config,
        env_setup=setup,
    )
