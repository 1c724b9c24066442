"""Trees copied here without rsync: exclude patterns and merged trees.

When rsync is missing, a copy understands rsync's common ``--exclude`` forms itself (for
`shutil.copytree`, and to clean up after scp), merges a copied tree into an existing one,
and copies a directory's entries into another. (Atomic writes are
`efi_job_manager.jobfiles.atomic_write_text`.)
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path


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


def _copy_entries(source: Path, target: Path) -> None:
    """Copy the entries of the directory ``source`` into the existing directory ``target``.

    ``target`` keeps its own mode and times (`shutil.copytree` would give it ``source``'s);
    links are copied as links.
    """
    with os.scandir(source) as entries:
        for entry in entries:
            destination = target / entry.name
            if entry.is_dir(follow_symlinks=False):
                shutil.copytree(entry.path, destination, symlinks=True, dirs_exist_ok=True)
                continue
            if entry.is_symlink() and destination.is_symlink():
                destination.unlink()  # os.symlink does not replace a link
            shutil.copy2(entry.path, destination, follow_symlinks=False)
