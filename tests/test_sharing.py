"""Results the web server can read: ``results_group`` and ``results_mode``.

The manager runs here as root under a strict umask (077, as a hardened daemon might); the
web server is played by ``nobody``, given only the configured group, who must read every file
of a finished and of a failed job, while a user outside the group reads none.
"""

from __future__ import annotations

import grp
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from another_user import read_as
from engine_site import Site, fasta_job, make_site, run_until

from efi_job_manager.config.engine import structure_settings
from efi_job_manager.config.sections import ManagerSettings
from efi_job_manager.sharing import SharePolicy, parse_mode

WEB_GROUP = "nogroup"  # Debian's; present on every machine these tests run on
OTHER_GROUP = "daemon"


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A directory every user can reach (pytest's own tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="efi-share-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def site(open_root: Path) -> Iterator[Site]:
    yield from make_site(open_root, f"sqlite:///{open_root / 'efi.db'}")


def test_modes_are_read_as_octal_with_the_owner_reading() -> None:
    assert parse_mode("0640") == parse_mode("640") == parse_mode(0o640) == 0o640
    for bad in ("0240", "4755", "rw-r-----", "0999", 800):
        with pytest.raises(ValueError, match=r"0777|owner|base 8"):
            parse_mode(bad)
    settings = structure_settings(ManagerSettings, {"results_mode": "0640",
                                                    "results_group": WEB_GROUP}, where="t")
    assert (settings.results_mode, settings.results_group) == (0o640, WEB_GROUP)


def test_a_tree_gets_the_group_and_modes_and_no_link_is_followed(tmp_path: Path) -> None:
    job = tmp_path / "42"
    (job / "out" / "deep").mkdir(parents=True)
    (job / "out" / "deep" / "x.txt").write_text("x")
    (job / "run.sh").write_text("#!/bin/sh\n")
    (job / "run.sh").chmod(0o700)
    (job / "secret.txt").write_text("s")
    (job / "secret.txt").chmod(0o600)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the job's")
    outside.chmod(0o600)
    (job / "link").symlink_to(outside)
    os.mkfifo(job / "fifo")  # opened without blocking, then left alone
    gid = grp.getgrnam(WEB_GROUP).gr_gid
    policy = SharePolicy(gid, 0o640)
    assert policy.apply(job) > 0
    for path, mode in [(job, 0o2750), (job / "out", 0o2750), (job / "out" / "deep", 0o2750),
                       (job / "out" / "deep" / "x.txt", 0o640), (job / "run.sh", 0o750),
                       (job / "secret.txt", 0o640)]:
        info = path.lstat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (mode, gid), path
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert outside.stat().st_gid != gid
    assert policy.apply(job) == 0  # nothing left to change
    assert SharePolicy().apply(job) == 0


def test_a_link_in_place_of_the_job_directory_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "42").symlink_to(target)
    SharePolicy(None, 0o644).apply(tmp_path / "42")
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def _job_files(job_dir: Path) -> list[Path]:
    return [p for p in job_dir.rglob("*") if p.is_file() and not p.is_symlink()]


def test_the_web_servers_group_reads_every_result_and_reason_and_others_none(
        site: Site, strict_umask: None) -> None:
    manager = site.manager(results_group=WEB_GROUP, results_mode=0o640)
    site.insert(fasta_job(1), fasta_job(2, jobFilename="missing.fasta"))
    run_until(manager, lambda: site.status(1) == "finished" and site.status(2) == "failed")
    site.results.chmod(0o755)  # the operator's: the manager does not change it
    files = {n: _job_files(site.results / str(n)) for n in (1, 2)}
    assert {p.name for p in files[1]} >= {"params.json", "stats.json", "seqs.fasta"}
    assert {p.name for p in files[2]} >= {"failure.json"}
    for path in files[1] + files[2]:
        assert read_as(WEB_GROUP, path).returncode == 0, (path, read_as(WEB_GROUP, path).stderr)
        assert read_as(OTHER_GROUP, path).returncode != 0, path
    assert "missing.fasta" in read_as(WEB_GROUP, site.results / "2" / "failure.json").stdout


def test_without_the_settings_the_umask_decides(site: Site, strict_umask: None) -> None:
    manager = site.manager()
    site.insert(fasta_job(1))
    run_until(manager, lambda: site.status(1) == "finished")
    stats = site.results / "1" / "stats.json"
    assert stat.S_IMODE(stats.stat().st_mode) == 0o600
    assert read_as(WEB_GROUP, site.results / "1" / "params.json").returncode != 0


def test_an_unknown_group_is_refused_when_the_manager_is_made(site: Site) -> None:
    with pytest.raises(ValueError, match="no group 'no-such-group-here'"):
        site.manager(results_group="no-such-group-here")
