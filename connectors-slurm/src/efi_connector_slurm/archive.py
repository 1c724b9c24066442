"""Job directories as one tar archive built in memory, unpacked on the cluster side by one command.

`stage_jobs` sends a small batch this way over SSH: one remote command, no local staging tree.
"""

from __future__ import annotations

import base64
import errno
import io
import os
import stat
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from efi_job_manager.toolkit import PermanentError

__all__ = [
    "ARCHIVE_LIMIT",
    "UNPACK_SCRIPT",
    "Archive",
    "TooBig",
    "unpack_command",
    "unpack_timeout",
]

ARCHIVE_LIMIT = 16 * 1024 * 1024
"""The largest payload (bytes of inputs, parameter files and batch scripts) that one transfer
sends as an archive; a bigger one goes by local staging tree and `Transport.put`. The archive
and its base64 text are held in memory."""

#: The cluster side: ``$1`` is the directory that takes the job directories, the archive comes
#: base64-encoded on standard input. Owners and modes are not taken from the archive (even as
#: root): the files belong to the remote user and the remote umask applies.
UNPACK_SCRIPT = ('mkdir -p -- "$1" && base64 -d | '
                 'tar -x -f - -C "$1" --no-same-owner --no-same-permissions')

_DIR_MODE = 0o775  # the job directory and the texts: as a plain mkdir or write, umask applied
_FILE_MODE = 0o664
# O_NONBLOCK: a FIFO is opened without waiting for a writer (then refused, unread).
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_SLOW_LINK = 256 * 1024  # bytes per second an unpack may take on top of the command timeout


class TooBig(Exception):
    """The job would take the archive's payload past its limit (nothing of it was added)."""


@attrs.define
class Archive:
    """Job directories gathered for one transfer, as tar blocks, with their payload counted.

    Attributes:
        limit: The payload it may carry (`ARCHIVE_LIMIT` when it was made).
        payload: The bytes of file contents (texts and inputs) added so far.
        mtime: The modification time of the job directories and texts (when it was made).
    """

    limit: int = attrs.field(factory=lambda: ARCHIVE_LIMIT)
    payload: int = 0
    mtime: int = attrs.field(factory=lambda: int(time.time()))
    _blocks: list[bytes] = attrs.field(factory=list, init=False)
    _names: set[str] = attrs.field(factory=set, init=False)

    def __contains__(self, name: object) -> bool:
        """Whether a job directory of this name was added."""
        return name in self._names

    def add_job(self, name: str, texts: Mapping[str, str], job_dir: Path,
                inputs: Sequence[str]) -> None:
        """Add the job directory ``name``: ``texts`` (file name → text) and ``inputs``.

        Each input (a name in ``job_dir``) is read without following links: a link is added
        as the link itself, a directory with its contents; files and directories keep their
        permission bits and modification time. All or nothing: on an error the archive is
        unchanged.

        Raises:
            TooBig: the payload would pass ``limit``.
            PermanentError: an input is not a regular file, a directory or a link.
            OSError: an input cannot be read.
        """
        blocks = [_header(_info(name, tarfile.DIRTYPE, _DIR_MODE, self.mtime))]
        payload = self.payload
        for file_name, text in texts.items():
            data = text.encode("utf-8")
            payload += len(data)
            blocks.append(_file_blocks(_info(f"{name}/{file_name}", tarfile.REGTYPE,
                                             _FILE_MODE, self.mtime), data))
        if payload > self.limit:
            raise TooBig(name)
        root = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for entry in inputs:
                payload = self._add_entry(blocks, payload, root, entry, parent=name,
                                          shown=job_dir)
        finally:
            os.close(root)
        self._blocks += blocks
        self._names.add(name)
        self.payload = payload

    def _add_entry(self, blocks: list[bytes], payload: int, dir_fd: int, entry: str, *,
                   parent: str, shown: Path) -> int:
        """Add ``entry`` of the directory ``dir_fd`` as ``parent/entry``; the payload after it."""
        arcname, path = f"{parent}/{entry}", shown / entry
        try:
            fd = os.open(entry, _OPEN_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            link = _info(arcname, tarfile.SYMTYPE, 0o777,
                         int(os.stat(entry, dir_fd=dir_fd, follow_symlinks=False).st_mtime))
            link.linkname = os.readlink(entry, dir_fd=dir_fd)
            blocks.append(_header(link))
            return payload
        try:
            status = os.fstat(fd)
            info = _info(arcname, tarfile.REGTYPE, stat.S_IMODE(status.st_mode),
                         int(status.st_mtime))
            if stat.S_ISDIR(status.st_mode):
                info.type = tarfile.DIRTYPE
                blocks.append(_header(info))
                for child in sorted(os.listdir(fd)):
                    payload = self._add_entry(blocks, payload, fd, child, parent=arcname,
                                              shown=path)
                return payload
            if not stat.S_ISREG(status.st_mode):
                raise PermanentError(f"{path} is not a regular file, a directory or a link: "
                                     "it cannot be staged")
            if payload + status.st_size > self.limit:
                raise TooBig(arcname)
            with io.FileIO(fd, closefd=False) as stream:
                data = stream.readall()
        finally:
            os.close(fd)
        if payload + len(data) > self.limit:  # it grew since fstat
            raise TooBig(arcname)
        blocks.append(_file_blocks(info, data))
        return payload + len(data)

    def encoded(self) -> str:
        """The tar archive, base64-encoded (one line)."""
        archive = b"".join([*self._blocks, bytes(2 * tarfile.BLOCKSIZE)])  # the end marker
        return base64.b64encode(archive).decode("ascii")


def unpack_command(parent: str) -> list[str]:
    """The command that unpacks an `Archive` (on its standard input) into ``parent``."""
    return ["sh", "-c", UNPACK_SCRIPT, "sh", parent]


def unpack_timeout(command_timeout: float, text: str) -> float:
    """Seconds an unpack of ``text`` may take: the command timeout, and time for a slow link."""
    return command_timeout + len(text) / _SLOW_LINK


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, mtime
    return info


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file_blocks(info: tarfile.TarInfo, data: bytes) -> bytes:
    """A file's header, its data, and the padding to a whole block."""
    info.size = len(data)
    return _header(info) + data + bytes(-len(data) % tarfile.BLOCKSIZE)
