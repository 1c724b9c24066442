"""The one atomic-write helper: whole files, permissions from the umask, nothing left behind."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from efi_job_manager.jobdir import JobDirectory
from efi_job_manager.toolkit import atomic_write_text


@pytest.fixture
def umask_027() -> Iterator[int]:
    """Run with umask 027 (group may read, others nothing)."""
    before = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(before)


def test_a_written_file_follows_the_umask_so_the_web_server_group_can_read_it(
        tmp_path: Path, umask_027: int) -> None:
    """Not 0600: the mode a plain write would give (0640 under umask 027)."""
    target = tmp_path / "a" / "params.json"
    atomic_write_text(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask_027


def test_the_job_directorys_files_and_copies_follow_the_umask(
        tmp_path: Path, umask_027: int) -> None:
    """params.json, a staged upload and failure.json: all readable by the group."""
    upload = tmp_path / "seqs.fasta"
    upload.write_text(">a\nMA\n")
    upload.chmod(0o600)
    (tmp_path / "results" / "7").mkdir(parents=True)
    jd = JobDirectory(tmp_path / "results", 7)
    jd.stage({"x": 1}, {"input/seqs.fasta": upload}, {})
    jd.record_failure("EXIT_CODE 3", datetime(2026, 12, 1))
    for name in ("params.json", "input/seqs.fasta", "failure.json"):
        mode = stat.S_IMODE((jd.path / name).stat().st_mode)
        assert mode == 0o640, (name, oct(mode))


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    """A write that fails half-way keeps the old content whole and cleans up after itself."""
    target = tmp_path / "note.json"
    atomic_write_text(target, "old")

    with pytest.raises(TypeError):
        atomic_write_text(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["note.json"]
