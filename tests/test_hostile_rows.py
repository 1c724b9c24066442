"""No row can stop the site: whatever a row holds, it fails only itself.

Each test runs on SQLite, PostgreSQL and MariaDB (whose default collation compares
``'NEW'``, ``'new '`` and ``'new'`` as equal).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from engine_site import Site, fasta_job, make_site, run_until

from efi_job_manager.repository import JobRepository, make_engine


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """A fresh table, uploads and results on the current backend."""
    yield from make_site(tmp_path, database_url)


def reason(site: Site, job_id: int) -> str:
    """The reason recorded in a failed job's failure.json."""
    data = json.loads((site.results / str(job_id) / "failure.json").read_text())
    return str(data["reason"])


@pytest.mark.parametrize("variant", ["EST_GENERATE_FASTA", "est_generate_fasta ",
                                     "Est_Generate_Fasta", "", "est_generate_fasta\t"])
def test_a_job_type_variant_fails_itself_and_the_site_runs_on(
        site: Site, variant: str, database_backend: str) -> None:
    """A job_type that equals a known one only by collation fails with a reason; others run."""
    site.insert(fasta_job(1), fasta_job(2, job_type=variant))
    if database_backend == "mariadb" and variant.strip(" ").lower() == "est_generate_fasta":
        # the trap is live: the table's collation finds the variant with the known name
        engine = make_engine(site.url)
        with engine.connect() as conn:
            same = conn.execute(sa.text("SELECT COUNT(*) FROM Job WHERE job_type = "
                                        "'est_generate_fasta'")).scalar_one()
        engine.dispose()
        assert same == 2
    manager = site.manager()
    reports = run_until(manager, lambda: site.status(1) == "finished"
                        and site.status(2) == "failed")
    assert not any(r.errors for r in reports)
    assert "unknown job_type" in reason(site, 2)
    assert repr(variant) in reason(site, 2)


@pytest.mark.parametrize("variant", ["NEW", "new ", "New", "RUNNING", "running "])
def test_a_status_variant_is_left_alone(site: Site, variant: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """A status that is not exactly one of EFI-Web's is neither claimed nor polled (said once)."""
    site.insert(fasta_job(1), fasta_job(2, status=variant))
    manager = site.manager()
    run_until(manager, lambda: site.status(1) == "finished")
    for _ in range(2):
        report = manager.run_once()
        assert not report.errors
    assert site.status(2) == variant
    assert site.raw(2)["schedulerJobId"] is None
    warnings = [r for r in caplog.records if "does not know are left alone" in r.message]
    assert len(warnings) == 1
    assert repr(variant) in warnings[0].message
    repo = JobRepository(make_engine(site.url))
    assert repo.counts_by_status()[variant] == 1
    repo.close()


@pytest.mark.parametrize("content", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"num_ids": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b"\xff\xfe not text",
    b'{"num_ids": NaN}',
    b"x" * (5 * 1024 * 1024),
])
def test_a_hostile_stats_json_fails_its_job_only(site: Site, content: bytes) -> None:
    """stats.json too deep, too large, not text or not JSON fails that job with a reason."""
    (site.uploads / "hostile-1").write_bytes(content)
    (site.uploads / "hostile-2").write_bytes(b'{"num_ids": 3}')
    site.insert(fasta_job(1), fasta_job(2))
    manager = site.manager(command=(
        "sh", "-c", f'cat "{site.uploads}/hostile-$(basename "$PWD")" > stats.json'))
    reports = run_until(manager, lambda: site.status(1) == "failed"
                        and site.status(2) == "finished")
    assert not any(r.errors for r in reports)
    assert "stats.json" in reason(site, 1)


def test_a_stats_json_that_is_a_fifo_or_a_link_fails_its_job_without_blocking(
        site: Site, tmp_path: Path) -> None:
    """A stats.json that is a named pipe or a symbolic link is refused, never opened."""
    outside = tmp_path / "outside.json"
    outside.write_text('{"num_ids": 99}')
    site.insert(fasta_job(1), fasta_job(2))
    manager = site.manager(command=(
        "sh", "-c", f'case "$PWD" in */1) mkfifo stats.json ;; *) ln -s {outside} stats.json ;; '
                    f'esac'))
    reports = run_until(manager, lambda: site.status(1) == "failed"
                        and site.status(2) == "failed", timeout=30)
    assert not any(r.errors for r in reports)
    assert "not a regular file" in reason(site, 1)
    assert "symbolic link" in reason(site, 2)
    assert os.path.exists(outside)


def test_a_job_directory_that_is_a_link_fails_the_job_and_nothing_is_written_through_it(
        site: Site, tmp_path: Path) -> None:
    """A link planted at results/<id> is refused: the job fails, the link's target stays empty."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (site.results / "1").symlink_to(elsewhere)
    site.insert(fasta_job(1), fasta_job(2))
    manager = site.manager()
    run_until(manager, lambda: site.status(1) == "failed" and site.status(2) == "finished")
    assert list(elsewhere.iterdir()) == []
    assert (site.results / "1").is_symlink()


def test_a_pipeline_that_links_the_managers_folder_away_cannot_make_it_delete_outside(
        site: Site, tmp_path: Path) -> None:
    """A pipeline replacing .efi by a link to another folder: the manager removes nothing there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("unknown.json", "destination.json", "cancel.json"):
        (outside / name).write_text("{}")
    site.insert(fasta_job(1))
    manager = site.manager(command=(
        "sh", "-c", f"rm -rf .efi && ln -s {outside} .efi && echo '{{{{\"num_ids\": 1}}}}' > "
                    "stats.json"))
    run_until(manager, lambda: site.status(1) in ("finished", "failed"))
    for _ in range(2):
        manager.run_once()
    assert sorted(p.name for p in outside.iterdir()) == ["cancel.json", "destination.json",
                                                         "unknown.json"]
