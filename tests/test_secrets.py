"""The manager's secrets never reach a pipeline, a log line or a printed setting."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_site import Site, fasta_job, make_site, run_until

from efi_connector_local import LocalConnector
from efi_job_manager.config import Settings
from efi_job_manager.manager import Destination

SECRETS = {
    "EFI_JOB_MANAGER_DATABASE__PASSWORD": "db-s3cret-1",
    "EFI_JOB_MANAGER_NOTIFY__EMAIL__PASSWORD": "mail-s3cret-2",
    "PGPASSWORD": "pg-s3cret-3",
    "AWS_SECRET_ACCESS_KEY": "aws-s3cret-4",
}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A fresh SQLite site."""
    yield from make_site(tmp_path, f"sqlite:///{tmp_path / 'jobs.sqlite'}")


def test_a_pipeline_gets_an_allow_list_of_the_managers_environment(
        site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """PATH and the site's own variables reach the job; the manager's secrets do not."""
    caplog.set_level(logging.DEBUG)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SITE_MODULEPATH", "/opt/modules")
    connector = LocalConnector({"state_dir": str(site.root / "state"),
                                "env": {"SITE_TOKEN_FOR_JOBS": "given-by-the-site"},
                                "env_passthrough": ["SITE_*"]})
    site.insert(fasta_job(1))
    manager = site.manager(destinations={"default": Destination("default", connector)},
                           command=("sh", "-c", "env > job-env.txt && "
                                    "echo '{{\"num_ids\": 1}}' > stats.json"))
    run_until(manager, lambda: site.status(1) == "finished")
    seen = dict(line.split("=", 1) for line in
                (site.results / "1" / "job-env.txt").read_text().splitlines() if "=" in line)
    assert "PATH" in seen
    assert seen["SITE_TOKEN_FOR_JOBS"] == "given-by-the-site"
    assert seen["SITE_MODULEPATH"] == "/opt/modules"
    for name, value in SECRETS.items():
        assert name not in seen
        assert value not in "\n".join(seen.values())
        assert value not in caplog.text


@pytest.mark.parametrize("url", [
    "mysql+pymysql://efi:p@ss@w0rd@db.example.org/efi_web",
    "postgresql+psycopg://efi:s3cr%40t@db.example.org:5432/efi",
])
def test_a_password_holding_at_signs_is_used_whole_and_never_printed(url: str) -> None:
    """An unencoded '@' in a URL's password: the whole password is used and masked."""
    settings = Settings.from_mapping({"database": {"url": url}}, environ={})
    password = settings.database.sqlalchemy_url.password
    assert settings.database.sqlalchemy_url.host == "db.example.org"
    assert password in ("p@ss@w0rd", "s3cr@t")
    shown = settings.database.masked_url + repr(settings) + str(settings.redacted())
    for piece in ("p@ss", "ss@w0rd", "w0rd", "s3cr"):
        assert piece not in shown
