"""Who may read a job's directory: the group and mode of what the results directory holds.

EFI-Web serves results and failure reasons from the results directory as its own user (the
web server's), not the manager's. `SharePolicy` gives every file and directory of a job's
directory the configured group (``[manager] results_group``) and mode
(``[manager] results_mode``), whoever wrote it: the manager (``params.json``,
``failure.json``, the notes, the staged inputs) or the pipeline on the cluster (what a copy
brought back, which keeps the cluster's modes). A directory gets the mode's read bits as
search bits too (``0640`` → ``0750``) and, with a group, the setgid bit, so that what the
pipeline writes there later takes the group; a file keeps its owner's execute bit as the
mode's matching bits. Ownership is never changed, only the group.

Symbolic links are never followed: a link's own group is set where the system allows, and
its target is left alone. The manager calls `SharePolicy.apply` after staging a job, after
its results came back and after its reason was written.
"""

from __future__ import annotations

import errno
import grp
import os
import stat
from pathlib import Path

import attrs

__all__ = ["SharePolicy", "parse_mode", "resolve_group"]

_PERMISSIONS = 0o777
_READ_BITS = 0o444
# O_NONBLOCK: a FIFO a pipeline left is opened without waiting for a writer (then skipped)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def parse_mode(text: str | int) -> int:
    """A file mode from ``"0640"``, ``"640"`` or ``0o640``: permission bits only.

    Raises:
        ValueError: not octal, or bits beyond ``0777`` (setuid, setgid, sticky).
    """
    value = text if isinstance(text, int) else int(str(text), 8)
    if isinstance(value, bool) or not 0 <= value <= _PERMISSIONS:
        raise ValueError(f"{text!r}: a file mode is 0000 to 0777 (e.g. \"0640\")")
    if not value & 0o400:
        raise ValueError(f"{text!r}: the owner (the manager) must keep reading its files")
    return value


def resolve_group(name: str) -> int:
    """The group id of ``name`` (a group name, or a number).

    Raises:
        ValueError: no such group on this host.
    """
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ValueError(f"no group {name!r} on this host") from None


@attrs.frozen
class SharePolicy:
    """The group and mode a job directory's entries get (None: leave that as it is).

    Attributes:
        group: The group id.
        mode: The files' permission bits; directories get them plus search bits.
    """

    group: int | None = None
    mode: int | None = None

    @property
    def active(self) -> bool:
        """Whether there is anything to apply."""
        return self.group is not None or self.mode is not None

    def directory_mode(self) -> int | None:
        """A directory's mode: the files' mode, read bits searchable too; setgid with a group."""
        if self.mode is None:
            return None
        searchable = self.mode | ((self.mode & _READ_BITS) >> 2)
        return searchable | (stat.S_ISGID if self.group is not None else 0)

    def file_mode(self, current: int) -> int | None:
        """A file's mode: the configured mode, executable where the owner could execute it."""
        if self.mode is None:
            return None
        if current & stat.S_IXUSR:
            return self.mode | ((self.mode & _READ_BITS) >> 2)
        return self.mode

    def apply(self, job_dir: Path) -> int:
        """Give ``job_dir`` and everything below it the group and mode; no link is followed.

        The walk holds each directory open (`os.fwalk`) and changes each entry through a
        descriptor opened with ``O_NOFOLLOW`` relative to it, so a pipeline that swaps an
        entry for a link while the walk runs cannot redirect a change outside the job.

        Returns:
            How many entries were changed.

        Raises:
            OSError: an entry could not be changed (not the owner, not in the group…); the
                entries before it were.
        """
        if not self.active:
            return 0
        changed = 0
        top = True
        for _root, dirs, files, dir_fd in os.fwalk(job_dir, follow_symlinks=False):
            if top:
                changed += self._one(".", dir_fd)
                top = False
            for name in (*dirs, *files):
                changed += self._one(name, dir_fd)
        return changed

    def _one(self, name: str, dir_fd: int) -> int:
        try:
            fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:  # removed meanwhile (a pipeline still running)
            return 0
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a link: its target is none of this job's business
                return 0
            raise
        try:
            info = os.fstat(fd)
            changed = 0
            if self.group is not None and info.st_gid != self.group:
                os.fchown(fd, -1, self.group)
                changed = 1
            if stat.S_ISDIR(info.st_mode):
                wanted = self.directory_mode()
            elif stat.S_ISREG(info.st_mode):
                wanted = self.file_mode(info.st_mode)
            else:
                return changed
            if wanted is not None and stat.S_IMODE(info.st_mode) != wanted:
                os.fchmod(fd, wanted)
                changed = 1
            return changed
        finally:
            os.close(fd)
