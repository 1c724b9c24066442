"""A host that sees the cluster's ``remote_dir`` through a mount at another path.

The cluster's path here does not exist on this machine at all, so every file the connector
touches must go through the mount, while the batch script and ``params.json`` name only the
cluster's paths. (The lab test of this layout, with Slurm running the jobs, is the
``shared`` mode of ``test_connector_lab.py``.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from efi_connector_slurm import SlurmConnector, parse_settings
from efi_connector_slurm.mount import MountedTransport, PathMap
from efi_connector_slurm.sitecheck import way_in
from efi_job_manager.connector import JobSpec

CLUSTER = "/nonexistent-cluster/scratch/efi"


def _job(root: Path, job_id: int = 42) -> JobSpec:
    job_dir = root / "results" / str(job_id)
    job_dir.mkdir(parents=True)
    (job_dir / "seqs.fasta").write_text(">a\nMK\n")
    params = {"final_output_dir": str(job_dir), "fasta_file": str(job_dir / "seqs.fasta")}
    (job_dir / "params.json").write_text(json.dumps(params))
    return JobSpec(job_id, "est_generate_fasta", job_dir,
                   ("/bin/echo", f"{job_dir}/params.json"), params, "est")


def test_paths_move_between_the_two_views_only_at_the_directory() -> None:
    paths = PathMap("/scratch/efi", "/mnt/hpc/efi")
    assert paths.to_here("/scratch/efi") == "/mnt/hpc/efi"
    assert paths.to_here("/scratch/efi/42/slurm-7.err") == "/mnt/hpc/efi/42/slurm-7.err"
    assert paths.to_here("/scratch/efi-other/42") == "/scratch/efi-other/42"
    assert paths.to_here("--chdir=/scratch/efi/42") == "--chdir=/scratch/efi/42"
    assert paths.to_cluster("/mnt/hpc/efi/42") == "/scratch/efi/42"
    assert paths.output_to_cluster("/mnt/hpc/efi/1/a.err\nother /mnt/hpc/efi\n") == (
        "/scratch/efi/1/a.err\nother /mnt/hpc/efi\n")


def test_the_transport_touches_only_the_mount(tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    mount.mkdir()
    transport = MountedTransport(PathMap(CLUSTER, str(mount)))
    transport.write_text(f"{CLUSTER}/1/a.err", "oom-kill event\n")
    assert (mount / "1" / "a.err").read_text() == "oom-kill event\n"
    found = transport.run(["grep", "-l", "oom", "--", f"{CLUSTER}/1/a.err", f"{CLUSTER}/2/b"])
    assert found.stdout.splitlines() == [f"{CLUSTER}/1/a.err"]
    assert found.argv[-1] == f"{CLUSTER}/2/b"  # as the connector asked
    back = tmp_path / "back"
    transport.get(f"{CLUSTER}/1", back)
    assert (back / "a.err").is_file()
    assert "mounted at" in transport.description


def test_a_job_is_staged_through_the_mount_and_runs_at_the_clusters_paths(
        tmp_path: Path) -> None:
    mount = tmp_path / "mount"
    connector = SlurmConnector({"remote_dir": CLUSTER, "remote_dir_mount": str(mount)})
    spec = _job(tmp_path)
    assert connector.prepare_job_environment(spec) == f"{CLUSTER}/42/params.json"
    staged = mount / "42"
    assert (staged / "seqs.fasta").read_text() == ">a\nMK\n"
    assert json.loads((staged / "params.json").read_text()) == {
        "final_output_dir": f"{CLUSTER}/42", "fasta_file": f"{CLUSTER}/42/seqs.fasta"}
    script = (staged / "efi-job.sbatch").read_text()
    assert f"#SBATCH --chdir={CLUSTER}/42\n" in script
    assert f"/bin/echo {CLUSTER}/42/params.json\n" in script
    assert str(mount) not in script
    (staged / "stats.json").write_text('{"num_ids": 1}')  # what the job leaves
    assert connector.retrieve_job_results(spec) == spec.job_dir
    assert (spec.job_dir / "stats.json").read_text() == '{"num_ids": 1}'
    assert json.loads((spec.job_dir / "params.json").read_text())["final_output_dir"] == str(
        spec.job_dir)  # the manager's own params.json is not the cluster's


@pytest.mark.parametrize(("settings", "message"), [
    ({"remote_dir_mount": "/mnt/x"}, "nothing without remote_dir"),
    ({"transport": "ssh", "host": "h", "remote_dir": "/s", "remote_dir_mount": "/mnt/x"},
     "nothing with transport 'ssh'"),
    ({"remote_dir": "/s", "remote_dir_mount": "mnt/x"}, "an absolute path"),
])
def test_a_mount_needs_the_local_transport_and_remote_dir(settings: dict[str, object],
                                                          message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_settings(settings)


@pytest.mark.parametrize(("settings", "expected"), [
    ({}, "Slurm's commands on this host; files in place"),
    ({"transport": "ssh", "host": "login", "user": "efi", "remote_dir": "/s"},
     "Slurm's commands over SSH (ssh://efi@login); files over SSH (ssh://efi@login) in /s"),
    ({"remote_dir": "/s"}, "Slurm's commands on this host; files copied into /s, on a file "
     "system shared at the same path"),
    ({"api": "rest", "rest_url": "http://h:6820", "rest_user": "efi",
      "rest_token_file": "/etc/efi/jwt", "remote_dir": "/s", "remote_dir_mount": "/mnt/s"},
     "Slurm's REST API at http://h:6820 as efi (token from the file /etc/efi/jwt); files in "
     "/s (the cluster's path), copied through its mount here at /mnt/s"),
    ({"api": "rest", "rest_url": "unix:/run/s.sock"},
     "Slurm's REST API at unix:/run/s.sock (local authentication: jobs run as the daemon's "
     "user); files in place"),
    ({"api": "rest", "rest_url": "http://h:6820", "rest_user": "efi",
      "rest_token_env": "SLURM_JWT"}, "as efi (token from $SLURM_JWT)"),
])
def test_check_names_the_way_in_the_settings_chose(settings: dict[str, object],
                                                   expected: str) -> None:
    connector = SlurmConnector(settings)
    assert expected in connector.describe()
    assert connector.describe() == way_in(connector.settings, connector.transport.description)
    connector.close()
