"""Typed resources: the converters, `Resources`, ``[resources]``, the manager's specs, retries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from engine_site import Site, fasta_job, make_site, run_until

from efi_connector_local import LocalConnector
from efi_job_manager.catalogue import STANDIN_COMMAND
from efi_job_manager.cli import main
from efi_job_manager.config import ConfigError, ResourceProfiles, Settings
from efi_job_manager.connector import JobSpec, Resources
from efi_job_manager.jobdir import JobDirectory
from efi_job_manager.manager import Destination, JobManager
from efi_job_manager.repository import JobRepository, make_engine
from efi_job_manager.units import (
    check_queue,
    format_duration,
    format_memory,
    format_slurm_time,
    parse_memory,
    parse_slurm_time,
    parse_time_limit,
)

# -- the converters ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90 * 60), (90, 90 * 60), ("5:30", 330), ("01:00:00", 3600), ("2-12", 216000),
    ("1-02:03", 93780), ("1-02:03:04", 93784), ("UNLIMITED", None), ("infinite", None)])
def test_slurm_times_in_every_form_sbatch_takes(text: str | int, seconds: int | None) -> None:
    assert parse_slurm_time(text) == seconds


@pytest.mark.parametrize("text", ["", "1h", "1:2:3:4", "-5", "1.5", True])
def test_what_is_no_slurm_time_is_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="not a Slurm time limit"):
        parse_slurm_time(text)


@pytest.mark.parametrize(("text", "mib"), [
    ("80M", 80), ("80", 80), (80, 80), ("32G", 32768), ("32GB", 32768), ("2048K", 2),
    ("1K", 1), ("1T", 1048576), ("4 g", 4096)])
def test_memory_sizes_are_mib_with_k_m_g_t_units(text: str | int, mib: int) -> None:
    assert parse_memory(text) == mib


@pytest.mark.parametrize("text", ["", "1.5G", "0", 0, "-1G", "lots", "32X", True])
def test_what_is_no_memory_size_is_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="not a memory size"):
        parse_memory(text)


def test_time_limits_take_durations_and_slurm_clocks_and_print_for_people() -> None:
    assert [parse_time_limit(v) for v in ("2h", "1h30m", 7200, "90", "24:00:00", "1-12")] == [
        7200, 5400, 7200, 90, 86400, 129600]
    for bad in ("0", "UNLIMITED", "soon", "1-x"):
        with pytest.raises(ValueError, match=r"invalid time limit|not a Slurm time"):
            parse_time_limit(bad)
    assert [format_duration(s) for s in (7200, 5400, 129600, 45, 93784, 1.5, 0)] == [
        "2h", "1h30m", "1d12h", "45s", "1d2h3m4s", "1.5s", "0s"]
    assert format_slurm_time(93784) == "1-02:03:04"
    assert format_slurm_time(59.5) == "00:01:00"
    assert format_memory(32768) == "32G"
    assert format_memory(500) == "500M"
    assert check_queue(" efi,big ") == "efi,big"
    for bad in ("", "a b", "efi;id", "-x", "$(id)"):
        with pytest.raises(ValueError, match=r"not a queue name"):
            check_queue(bad)


# -- Resources -----------------------------------------------------------------------------


def test_resources_overlay_round_trip_and_show() -> None:
    base = Resources(time=3600, memory=1024, queue="efi")
    top = Resources(memory=2048, cpus=4)
    merged = base.overlay(top)
    assert merged == Resources(time=3600.0, memory=2048, cpus=4, queue="efi")
    assert base.overlay(None) is base
    assert Resources().empty
    assert not top.empty
    assert merged.to_json() == {"time": 3600, "memory": 2048, "cpus": 4, "queue": "efi"}
    assert Resources.from_json(merged.to_json()) == merged
    assert Resources.from_json(Resources(time=1.5).to_json()) == Resources(time=1.5)
    assert merged.describe() == {"time": "1h", "memory": "2G", "cpus": "4", "queue": "efi"}
    assert merged.show("memory") == "2G"
    assert top.show("time") is None
    assert str(Resources(time=5400, memory=500)) == "time 1h30m, memory 500M"
    assert str(Resources()) == "none"


def test_an_older_versions_note_of_slurm_strings_is_read(caplog: pytest.LogCaptureFixture,
                                                          tmp_path: Path) -> None:
    """{"time": "01:00:00", "memory": "80M"}: what versions before typed resources wrote."""
    assert Resources.from_json({"time": "01:00:00", "memory": "80M"}) == Resources(
        time=3600, memory=80)
    assert Resources.from_json({"time": "90", "memory": "2G", "cpus": "8",
                                "partition": "efi"}) == Resources(
        time=5400, memory=2048, cpus=8, queue="efi")
    assert Resources.from_json({"qos": "long", "time": "1-0"}) == Resources(time=86400)
    assert "'qos' is no resource" in caplog.text
    with pytest.raises(ValueError, match="not a memory size"):
        Resources.from_json({"memory": "a lot"})
    jd = JobDirectory(tmp_path, 7)
    assert jd.resources() == Resources()
    jd.write_json(".efi/resources.json", {"time": "02:00:00", "memory": "80M"})
    assert jd.resources() == Resources(time=7200, memory=80)
    jd.record_resources(Resources(time=7200, memory=160))
    assert json.loads((jd.path / ".efi" / "resources.json").read_text()) == {
        "time": 7200, "memory": 160}
    assert jd.resources() == Resources(time=7200, memory=160)
    jd.write_json(".efi/resources.json", {"memory": "a lot"})
    assert jd.resources() == Resources()
    assert "resource overrides in .efi/resources.json left out" in caplog.text


def test_profiles_default_then_pipeline_then_job_type() -> None:
    profiles = ResourceProfiles({
        "default": Resources(time=3600, memory=1024, cpus=1, queue="efi"),
        "est": Resources(memory=32768, cpus=2),
        "est_generate_fasta": Resources(cpus=4),
    })
    assert profiles.for_job("est", "est_generate_fasta") == Resources(
        time=3600, memory=32768, cpus=4, queue="efi")
    assert profiles.for_job("gnt", "gnt_gnn") == Resources(time=3600, memory=1024, cpus=1,
                                                            queue="efi")
    assert ResourceProfiles().for_job("est", "est_generate_fasta") == Resources()


# -- [resources] in the site's file --------------------------------------------------------


def test_the_resources_section_is_read_with_units() -> None:
    settings = Settings.from_mapping({"resources": {
        "default": {"time": "2h", "memory": "4G", "queue": "efi"},
        "est": {"memory": 32768, "cpus": 2, "time": "1-12:00"},
        "est_generate_fasta": {"memory": "500M", "time": 600},
    }}, environ={"EFI_JOB_MANAGER_RESOURCES__GNT__CPUS": "8"})
    profiles = settings.resource_profiles.profiles
    assert profiles["default"] == Resources(time=7200, memory=4096, queue="efi")
    assert profiles["est"] == Resources(time=129600, memory=32768, cpus=2)
    assert profiles["est_generate_fasta"] == Resources(time=600, memory=500)
    assert profiles["gnt"] == Resources(cpus=8)
    assert settings.redacted()["resources"]["est"]["memory"] == 32768


def test_bad_resource_values_are_reported_each_with_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"resources": {
            "default": {"time": "soon", "memory": "1.5G", "cpus": 0, "queue": "a b"},
            "est": {"partition": "efi", "gpus": 1},
        }}, environ={}, source="site.toml")
    assert caught.value.messages == [
        'site.toml: resources.default.time = "soon": expected a time limit: a duration such '
        'as "2h", "1h30m" or seconds, or a Slurm time such as "24:00:00", "1-12:00"',
        'site.toml: resources.default.memory = "1.5G": expected a memory size: MiB as an '
        'integer, or "32G", "500M"…',
        "site.toml: resources.default.cpus = 0: expected an integer >= 1",
        'site.toml: resources.default.queue = "a b": expected a partition or queue name (or '
        "a comma list), without spaces, quotes or shell characters",
        "site.toml: unknown key resources.est.gpus (did you mean resources.est.cpus?); known "
        "keys: cpus, memory, queue, time",
        "site.toml: unknown key resources.est.partition (the partition is queue here); known "
        "keys: cpus, memory, queue, time",
    ]


def write_site(tmp_path: Path, extra: str, destination: str = "") -> Path:
    command = ", ".join(f'"{p}"' for p in STANDIN_COMMAND)
    (tmp_path / "jobs.sqlite").touch()  # an empty file is an empty SQLite database
    path = tmp_path / "efi.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "jobs.sqlite"}"\n'
        '[manager]\nresults_dir = "results"\ninput_dir = "uploads"\n'
        + (destination or '[destinations.default]\nconnector = "local"\n'
           f'settings = {{ state_dir = "{tmp_path}/state" }}\n')
        + f'[pipelines]\ncommand = [{command}]\n'
        'params = { efi_config = "/opt/efi.config", fasta_db = "/db/uniprot" }\n'
        '[pipelines.efi_db]\ndefault = "efi_202406"\n' + extra)
    return path


def test_an_unknown_resource_profile_name_is_refused_with_a_hint(tmp_path: Path) -> None:
    """A [resources] name is default, a pipeline short name or a job type; "did you mean"."""
    path = write_site(tmp_path, '[resources.estt]\ncpus = 2\n[resources.est_generate_fastaa]\n'
                                'cpus = 2\n[resources.est]\ncpus = 1\n[resources.default]\n'
                                'cpus = 1\n[resources.cgfp_quantify]\ncpus = 3\n')
    with pytest.raises(ConfigError) as caught:
        JobManager.from_settings(Settings.load(path, environ={}))
    first, second = caught.value.messages
    assert first.startswith(f"{path}: unknown resource profile resources.estt (did you mean "
                            "resources.est?); known resource profiles: ")
    assert "default, " in first
    assert second.startswith(f"{path}: unknown resource profile resources.est_generate_fastaa "
                             "(did you mean resources.est_generate_fasta?)")


# -- the manager: every spec gets them -----------------------------------------------------


class RecordingConnector(LocalConnector):
    """The local connector, remembering the resources of every spec it submits."""

    submitted: list[Resources]

    def submit_job(self, spec: JobSpec, params_path: str) -> str:
        self.submitted.append(spec.resources)
        return super().submit_job(spec, params_path)


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    yield from make_site(tmp_path, database_url)


def test_a_spec_gets_the_sites_profiles_then_a_retrys_overrides(site: Site) -> None:
    """default < pipeline < job type < the job directory's note (an older version's too)."""
    site.insert(fasta_job(1))
    connector = RecordingConnector({"state_dir": str(site.root / "recording"),
                                    "env": {"EFI_STANDIN_FAIL": "3"}})
    connector.submitted = []
    manager = site.manager(
        destinations={"default": Destination("default", connector)},
        resources=ResourceProfiles({
            "default": Resources(time=3600, memory=1024, queue="efi"),
            "est": Resources(memory=4096, cpus=2),
            "est_generate_fasta": Resources(cpus=4),
            "gnt": Resources(memory=1)}))
    run_until(manager, lambda: site.status(1) == "failed")
    assert connector.submitted == [Resources(time=3600, memory=4096, cpus=4, queue="efi")]
    # A note written by a version before typed resources, then a retry that keeps it.
    (site.results / "1" / ".efi" / "resources.json").write_text(
        '{"time": "02:00:00", "memory": "80M"}')
    assert manager.retry(1) == {}
    run_until(manager, lambda: site.status(1) == "failed")
    assert connector.submitted[1] == Resources(time=7200, memory=80, cpus=4, queue="efi")


# -- jobs retry says what changed, from what the failed run used ----------------------------


@pytest.mark.parametrize(("destination", "extra"), [
    ("memory = \"40M\"", ""),                           # the connector's own default
    ("memory = \"1G\"", "[resources.est]\nmemory = \"40M\"\n"),  # the site's profile wins
])
def test_jobs_retry_prints_what_the_failed_run_used_and_what_the_retry_gets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        destination: str, extra: str) -> None:
    monkeypatch.delenv("EFI_JOB_MANAGER_CONFIG", raising=False)
    (tmp_path / "uploads").mkdir()
    path = write_site(tmp_path, extra, (
        '[destinations.default]\nconnector = "slurm"\n'
        f'settings = {{ {destination}, max_memory = "4G" }}\n'))
    assert main(["--config", str(path), "init-db"]) == 0
    repo = JobRepository(make_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}"))
    repo.insert([{"id": 1, "uuid": "u1", "status": "failed", "isPublic": False,
                  "job_type": "est_generate_fasta", "jobFilename": "seqs.fasta",
                  "allByAllBlastEValue": 5, "user_id": 3, "schedulerJobId": 7}])
    repo.close()
    jd = JobDirectory(tmp_path / "results", 1)
    jd.path.mkdir(parents=True)
    jd.record_failure("OUT_OF_MEMORY", datetime(2026, 11, 1), scheduler_id="7",
                      scheduler_reason="OUT_OF_MEMORY")
    capsys.readouterr()
    assert main(["--config", str(path), "jobs", "retry", "1"]) == 0
    assert capsys.readouterr().out == "job 1 is new again\n  memory: 40M -> 80M\n"
    assert jd.resources() == Resources(memory=80)
