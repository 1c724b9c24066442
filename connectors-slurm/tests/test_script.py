"""The pure parts of the Slurm connector: settings, units, the batch script, staging on disk.

Nothing here needs Slurm: prepare/retrieve are exercised with the local transport and a
``remote_dir`` in a temporary directory (the same code path as a shared filesystem).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from efi_connector_slurm import SlurmConnector, parse_settings, render_batch_script
from efi_connector_slurm.commands import (
    find_job_command,
    find_job_sacct_command,
    memory_kill_grep_command,
    sacct_workdir_command,
    sbatch_command,
)
from efi_connector_slurm.config import PROFILE_KEYS, SETTING_KEYS, Profile
from efi_connector_slurm.connector import ATTEMPT_FILE
from efi_connector_slurm.parsing import (
    accounting_unavailable,
    parse_partitions,
    parse_workdirs,
)
from efi_connector_slurm.script import cluster_command, quote, retry_resources
from efi_connector_slurm.units import (
    format_memory,
    format_time,
    parse_memory,
    parse_time,
    scale_memory,
    scale_time,
)
from efi_job_manager.connector import JobSpec, PermanentError, Resources
from efi_job_manager.toolkit import ConfigError
from efi_job_manager.transport import LocalTransport

OVER_MEMORY_OUTPUT = (
    "allocated 314572800\n"
    "slurmstepd-localhost: error: StepId=3.batch exceeded memory limit (325804032 > 52428800), "
    "being killed\n"
    "slurmstepd-localhost: error: Exceeded job memory limit\n"
    "slurmstepd-localhost: error: *** JOB 3 ON localhost CANCELLED AT 2026-11-25T02:11:40 ***\n"
)
SLURMDBD_DOWN = (
    "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection "
    "to host:localhost:6819: Connection refused\n"
    "sacct: error: Sending PersistInit msg: Connection refused\n"
    "sacct: error: Problem talking to the database: Connection refused\n"
)


def spec(job_dir: Path, command: tuple[str, ...] = ("run", "it"), **kwargs: Any) -> JobSpec:
    values: dict[str, Any] = {"job_type": "est_generate_fasta", "pipeline": "est"}
    values.update(kwargs)
    return JobSpec(42, job_dir=job_dir, command=command, **values)


def sbatch_lines(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines()
            if line.startswith("#SBATCH ")]


# -- settings ---------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = parse_settings({})
    assert settings.transport == "local"
    assert settings.chunk_size == 500
    assert settings.sacct_lookback == 30 * 86400
    assert settings.command_timeout == 60
    assert settings.retrieve_exclude == ("work/",)
    assert (settings.retry_time_factor, settings.retry_memory_factor) == (2.0, 2.0)
    assert settings.strict_host_key_checking is True
    assert settings.remote_dir is None


@pytest.mark.parametrize(("config", "named"), [
    ({"partitions": "efi"}, "unknown key partitions (did you mean partition?)"),
    ({"transport": "slurm"}, 'transport = "slurm"'),
    ({"port": "22"}, 'port = "22"'),
    ({"port": 70000}, "port = 70000"),
    ({"chunk_size": 0}, "chunk_size = 0"),
    ({"chunk_size": True}, "chunk_size = true"),
    ({"time": "soon"}, 'time = "soon"'),
    ({"memory": "1.5G"}, 'memory = "1.5G"'),
    ({"cpus": 0}, "cpus = 0"),
    ({"partition": "efi; rm -rf /"}, 'partition = "efi; rm -rf /"'),
    ({"extra_sbatch": "--hold"}, 'extra_sbatch = "--hold"'),
    ({"extra_sbatch": ["--hold\n#SBATCH --uid=0"]},
     'extra_sbatch[0] = "--hold\\n#SBATCH --uid=0"'),
    ({"extra_sbatch": ["hold"]}, 'extra_sbatch[0] = "hold"'),
    ({"extra_sbatch": ["--job-name=mine"]}, "sets itself"),
    ({"extra_sbatch": ["--output /tmp/x"]}, "sets itself"),
    ({"profiles": {"est": {"mem": "32G"}}},
     "unknown key profiles.est.mem (did you mean profiles.est.memory?)"),
    ({"profiles": {"est": {"memory": "lots"}}}, 'profiles.est.memory = "lots"'),
    ({"profiles": {"est": "big"}}, 'profiles.est = "big"'),
    ({"sacct_lookback": -1}, "sacct_lookback = -1"),
    ({"retry_time_factor": 0.5}, "retry_time_factor = 0.5"),
    ({"retrieve_exclude": "work/"}, 'retrieve_exclude = "work/"'),
    ({"strict_host_key_checking": "maybe"}, 'strict_host_key_checking = "maybe"'),
    ({"remote_dir": "relative/dir"}, 'remote_dir = "relative/dir"'),
    ({"remote_dir": "/with space"}, 'remote_dir = "/with space"'),
    ({"transport": "ssh", "remote_dir": "/scratch"}, "host is required but missing"),
    ({"transport": "ssh", "host": "login"}, "remote_dir is required but missing"),
])
def test_invalid_settings_name_the_key_the_value_and_the_expectation(
        config: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match="slurm connector setting") as caught:
        SlurmConnector(config)
    assert named in str(caught.value)


def test_a_full_configuration_is_accepted() -> None:
    settings = parse_settings({
        "transport": "ssh", "host": "login.example.org", "user": "efi", "port": 2222,
        "identity_file": "/keys/id", "known_hosts": "/keys/known_hosts",
        "ssh_config": "/keys/config", "strict_host_key_checking": "accept-new",
        "env_setup": "module load slurm", "remote_dir": "/scratch/efi/", "partition": "efi",
        "account": "efi", "qos": "normal", "time": 60, "memory": 4096, "cpus": 2,
        "extra_sbatch": ["--exclusive"], "chunk_size": 100, "sacct_lookback": 86400,
        "command_timeout": 30, "retrieve_exclude": ["work/", "*.tmp"],
        "retry_time_factor": 1.5, "retry_memory_factor": 3, "slurm_conf": "/etc/slurm.conf",
        "max_time": "7-0", "max_memory": "256G",
        "profiles": {"est": {"memory": "32G", "cpus": 2, "max_memory": "128G"}},
    })
    assert settings.remote_dir == "/scratch/efi"
    assert settings.defaults.time == "60"
    assert settings.profiles["est"] == Profile(memory="32G", cpus=2, max_memory="128G")


def test_durations_take_the_cores_forms() -> None:
    """command_timeout and sacct_lookback read "5s", "2d" like the core's durations."""
    settings = parse_settings({"command_timeout": "5s", "sacct_lookback": "1d12h"})
    assert (settings.command_timeout, settings.sacct_lookback) == (5.0, 129600.0)
    assert parse_settings({"command_timeout": 30}).command_timeout == 30.0
    with pytest.raises(ValueError, match=r'command_timeout = "0s": expected a duration > 0'):
        parse_settings({"command_timeout": "0s"})


def test_every_problem_is_reported_at_once() -> None:
    """One ConfigError names every wrong and unknown key, one line each."""
    with pytest.raises(ConfigError) as caught:
        parse_settings({"port": "22", "partitoin": "efi", "command_timeout": "soon",
                        "profiles": {"est": {"cpus": 0, "memroy": "1G"}}})
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.problems) == 5
    assert all(line.startswith("slurm connector settings: ") for line in lines)
    text = str(caught.value)
    assert 'port = "22": expected a port number' in text
    assert 'command_timeout = "soon": expected a duration' in text
    assert "profiles.est.cpus = 0" in text
    assert "unknown key partitoin (did you mean partition?)" in text
    assert "unknown key profiles.est.memroy (did you mean profiles.est.memory?)" in text


def test_the_documented_keys_are_the_declared_ones() -> None:
    """SETTING_KEYS and PROFILE_KEYS come from the classes, with what each key expects."""
    assert set(PROFILE_KEYS) < set(SETTING_KEYS)
    assert "profiles" in SETTING_KEYS
    assert "defaults" not in SETTING_KEYS
    assert SETTING_KEYS["port"] == "a port number from 1 to 65535"


# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("5", 300), ("1:30", 90), ("1:00:00", 3600), ("1-0", 86400), ("1-2:3", 93780),
    ("1-2:3:4", 93784), ("0", 0), ("UNLIMITED", None), ("infinite", None), (90, 5400),
])
def test_parse_time(text: str | int, seconds: int | None) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(("text", "mib"), [
    ("32G", 32768), ("32GB", 32768), ("500M", 500), ("100", 100), ("2048K", 2), ("1T", 1048576),
    (64, 64),
])
def test_parse_memory(text: str | int, mib: int) -> None:
    assert parse_memory(text) == mib


@pytest.mark.parametrize("bad", ["1.5G", "G", "-1", "0", "lots"])
def test_bad_memory(bad: str) -> None:
    with pytest.raises(ValueError, match="memory size"):
        parse_memory(bad)


def test_format_and_scale() -> None:
    assert format_time(93784) == "1-02:03:04"
    assert format_time(300) == "00:05:00"
    assert format_memory(2048) == "2G"
    assert format_memory(100) == "100M"
    assert scale_time("1:00:00", 2) == "02:00:00"
    assert scale_time("20:00:00", 2, "1-0") == "1-00:00:00"
    assert scale_time("UNLIMITED", 2) == "UNLIMITED"
    assert scale_memory("50M", 2) == "100M"
    assert scale_memory("32G", 2, "48G") == "48G"
    assert scale_memory("64G", 2, "48G") == "64G"  # a cap below the current value never lowers it


def test_retry_resources_scale_only_what_ran_out() -> None:
    """Typed: the changed field alone, capped; nothing at the cap or for other failures."""
    profile = Profile(max_time="10:00:00", max_memory="64G")
    used = Resources(time=6 * 3600, memory=32 * 1024, queue="efi")
    assert retry_resources(profile, used, "TIMEOUT", time_factor=2, memory_factor=2) == (
        Resources(time=10 * 3600))
    assert retry_resources(profile, used, "OUT_OF_MEMORY", time_factor=2,
                           memory_factor=3) == Resources(memory=64 * 1024)
    assert retry_resources(profile, used, "EXIT_CODE 3", time_factor=2,
                           memory_factor=2) is None
    at_cap = Resources(time=10 * 3600, memory=64 * 1024)
    assert retry_resources(profile, at_cap, "TIMEOUT", time_factor=2, memory_factor=2) is None
    assert retry_resources(profile, at_cap, "OUT_OF_MEMORY", time_factor=2,
                           memory_factor=2) is None
    assert retry_resources(Profile(), Resources(time=90), "TIMEOUT", time_factor=1.5,
                           memory_factor=2) == Resources(time=180)  # up to a whole minute


# -- the batch script -------------------------------------------------------------------------


def test_script_layout(tmp_path: Path) -> None:
    settings = parse_settings({"partition": "efi", "cpus": 2, "memory": "32GB"})
    script = render_batch_script(spec(tmp_path / "42"), settings)
    lines = script.splitlines()
    directory = str(tmp_path / "42")
    assert lines[0] == "#!/bin/bash"
    assert sbatch_lines(script) == [
        "--job-name=efi-42", "--partition=efi", "--mem=32GB", "--cpus-per-task=2",
        f"--output={directory}/slurm-%j.out", f"--error={directory}/slurm-%j.err",
        f"--chdir={directory}",
    ]
    assert lines[-2:] == ["set -euo pipefail", "run it"]


def test_profile_precedence_defaults_pipeline_job_type_retry_resources(tmp_path: Path) -> None:
    settings = parse_settings({
        "partition": "debug", "account": "lab", "time": "1:00:00", "memory": "1G", "cpus": 1,
        "extra_sbatch": ["--exclusive"],
        "profiles": {
            "est": {"partition": "efi", "memory": "32G", "cpus": 2, "extra_sbatch": ["--nice=5"]},
            "est_generate_fasta": {"memory": "48G", "qos": "long"},
        },
    })
    options = sbatch_lines(render_batch_script(spec(tmp_path), settings))
    assert options[1:8] == ["--partition=efi", "--account=lab", "--qos=long",
                            "--time=1:00:00", "--mem=48G", "--cpus-per-task=2", "--exclusive"]
    assert options[8] == "--nice=5"
    other = spec(tmp_path, job_type="cgfp_quantify", pipeline="cgfp")
    assert sbatch_lines(render_batch_script(other, settings))[1:6] == [
        "--partition=debug", "--account=lab", "--time=1:00:00", "--mem=1G", "--cpus-per-task=1"]
    overridden = spec(tmp_path, resources=Resources(memory=200 * 1024, cpus=8, time=7200))
    options = sbatch_lines(render_batch_script(overridden, settings))
    assert options[4:7] == ["--time=02:00:00", "--mem=200G", "--cpus-per-task=8"]


def test_the_specs_resources_win_over_every_profile_of_the_connector(tmp_path: Path) -> None:
    """spec.resources (the site's [resources], then a retry's) beat the connector's defaults
    and its profiles, job type's included; what they leave unset comes from the profiles."""
    settings = parse_settings({
        "partition": "debug", "account": "lab", "time": "1:00:00", "memory": "1G",
        "profiles": {"est_generate_fasta": {"memory": "48G", "cpus": 4, "time": "2-0"}},
    })
    site = spec(tmp_path, resources=Resources(time=90 * 60, memory=500, queue="efi,big"))
    assert sbatch_lines(render_batch_script(site, settings))[1:6] == [
        "--partition=efi,big", "--account=lab", "--time=01:30:00", "--mem=500M",
        "--cpus-per-task=4"]
    connector = SlurmConnector({"partition": "debug", "memory": "40M", "time": "UNLIMITED",
                                "profiles": {"est": {"cpus": 2}}})
    assert connector.resources_for(spec(tmp_path)) == Resources(memory=40, cpus=2,
                                                                queue="debug")
    assert connector.resources_for(site) == Resources(time=5400, memory=500, cpus=2,
                                                      queue="efi,big")


@pytest.mark.parametrize("values", [{"memory": 0}, {"cpus": -1}, {"cpus": True},
                                    {"queue": "efi;id"}, {"queue": "--wrap=x"},
                                    {"queue": "a b"}, {"time": -5}, {"time": float("inf")}])
def test_bad_resources_never_reach_a_batch_script(values: dict[str, Any]) -> None:
    """The contract's Resources refuses them when made: no batch script can carry one."""
    with pytest.raises(ValueError, match=r"expected|not a queue name"):
        Resources(**values)


def test_shell_metacharacters_in_the_command_are_data(tmp_path: Path) -> None:
    """The rendered script, run by bash, passes every argument verbatim and runs nothing else."""
    canary = tmp_path / "pwned"
    nasty = (f"x'; touch {canary}; echo $(touch {canary}) `touch {canary}` \"$HOME\" "
             "\n#SBATCH --uid=0 ; * ?")
    command = (sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))",
               nasty, "", "a b")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    script = render_batch_script(spec(job_dir, command), parse_settings({}))
    assert sbatch_lines(script)[-1] == f"--chdir={job_dir}"  # nothing injected as an option
    assert script.splitlines()[-2] == "set -euo pipefail"  # the command is one line
    (tmp_path / "run.sh").write_text(script)
    done = subprocess.run(["bash", str(tmp_path / "run.sh")], capture_output=True, text=True,
                          check=True, cwd=job_dir)
    assert json.loads(done.stdout) == [nasty, "", "a b"]
    assert not canary.exists()


@pytest.mark.parametrize("arg", ["plain", "", "a b", "it's", "$(id)", "a\nb", "\r\t\x7f\\'x"])
def test_quote_round_trips_through_bash(arg: str) -> None:
    done = subprocess.run(["bash", "-c", f"printf %s {quote(arg)}"], capture_output=True,
                          check=True)
    assert done.stdout.decode() == arg
    assert "\n" not in quote(arg)


def test_empty_command_and_unusable_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid command"):
        render_batch_script(spec(tmp_path, ()), parse_settings({}))
    with pytest.raises(ValueError, match="#SBATCH"):
        render_batch_script(spec(tmp_path / "a dir"), parse_settings({}))


def test_env_is_exported_quoted_after_env_setup_and_checked(tmp_path: Path) -> None:
    settings = parse_settings({"env_setup": "module load java",
                               "env": {"NXF_HOME": "/opt/nf home", "X": "$(id)\nls"}})
    script = render_batch_script(spec(tmp_path), settings)
    assert ("module load java\nexport NXF_HOME='/opt/nf home'\nexport X=$'$(id)\\x0als'\n"
            "set -euo pipefail\n") in script
    for env, key in [({"1X": "a"}, "env.1X"), ({"A B": "a"}, "env.\"A B\""),
                     ({"EFI_JOB_MANAGER_DB_PASSWORD": "x"}, "env.EFI_JOB_MANAGER_DB_PASSWORD"),
                     ({"X": 3}, "env.X")]:
        with pytest.raises(ValueError, match=re.escape(key)):
            parse_settings({"env": env})


def test_remote_dir_relocates_the_command_and_the_directories(tmp_path: Path) -> None:
    job_dir = tmp_path / "results" / "42"
    settings = parse_settings({"remote_dir": "/scratch/efi", "env_setup": "module load slurm"})
    command = ("tool", f"--in={job_dir}/input/x.fa", str(job_dir), "/elsewhere")
    assert cluster_command(spec(job_dir, command), settings) == (
        "tool", "--in=/scratch/efi/42/input/x.fa", "/scratch/efi/42", "/elsewhere")
    script = render_batch_script(spec(job_dir, command), settings)
    assert "--chdir=/scratch/efi/42" in sbatch_lines(script)
    assert "module load slurm\nset -euo pipefail\n" in script


# -- command builders and parsers added for the connector -------------------------------------


def test_new_commands() -> None:
    assert sbatch_command("/d/efi-job.sbatch") == ["sbatch", "--parsable", "/d/efi-job.sbatch"]
    with pytest.raises(ValueError, match="batch script"):
        sbatch_command("--wrap=id")
    argv = sacct_workdir_command(["3", "4"], datetime(2026, 11, 1))
    assert argv[-4:] == ["--format", "JobID,WorkDir", "-j", "3,4"]
    assert find_job_command("efi-1", user="efijm")[-1] == "--user=efijm"
    assert find_job_sacct_command("efi-1", datetime(2026, 11, 1), user="root")[-2:] == [
        "--user", "root"]
    with pytest.raises(ValueError, match="user name"):
        find_job_command("efi-1", user="-a")


def test_memory_kill_grep_finds_slurmstepd_lines_only(tmp_path: Path) -> None:
    killed, fine, quoted = tmp_path / "k.out", tmp_path / "f.out", tmp_path / "q.out"
    killed.write_text(OVER_MEMORY_OUTPUT)
    fine.write_text("all good\n")
    quoted.write_text("the user wrote: exceeded memory limit\n")  # not from slurmstepd
    argv = memory_kill_grep_command([str(killed), str(fine), str(quoted), str(tmp_path / "no")])
    done = LocalTransport().run(argv)
    assert done.stdout.splitlines() == [str(killed)]


def test_new_parsers() -> None:
    assert parse_workdirs("3|/scratch/a\n3.batch|/x\n4|/odd|dir\n5|\n") == {
        "3": "/scratch/a", "4": "/odd|dir"}
    assert parse_partitions("debug*\nefi\nefi\n") == ["debug", "efi"]
    assert accounting_unavailable(SLURMDBD_DOWN)
    assert accounting_unavailable("sacct: error: Slurm accounting storage is disabled")
    assert not accounting_unavailable("sacct: error: Invalid field requested: \"Foo\"")


# -- prepare and retrieve without Slurm (local transport) -------------------------------------


def staged_job(tmp_path: Path) -> JobSpec:
    job_dir = tmp_path / "results" / "42"
    (job_dir / "input").mkdir(parents=True)
    (job_dir / "input" / "seqs.fasta").write_text(">a\nMA\n")
    (job_dir / "taxonomy_filter.json").write_text("{}")
    (job_dir / "unrelated.txt").write_text("not staged")
    (job_dir / ".efi").mkdir()
    (job_dir / ".efi" / "destination.json").write_text('{"destination": "default"}')
    params = {"final_output_dir": str(job_dir), "fasta_file": f"{job_dir}/input/seqs.fasta",
              "filter": [f"user-filter={job_dir}/taxonomy_filter.json"], "n": 3}
    (job_dir / "params.json").write_text(json.dumps(params))
    return spec(job_dir, ("run", "params.json"), params=params,
                input_files={"input/seqs.fasta": job_dir / "input" / "seqs.fasta"})


def test_prepare_in_place_writes_only_the_script(tmp_path: Path) -> None:
    job = staged_job(tmp_path)
    connector = SlurmConnector({"partition": "efi"})
    assert connector.prepare_job_environment(job) == str(job.job_dir / "params.json")
    script = (job.job_dir / "efi-job.sbatch").read_text()
    assert script == connector.render_job(job)
    assert "--partition=efi" in sbatch_lines(script)
    assert connector.retrieve_job_results(job) == job.job_dir
    record = json.loads((job.job_dir / ATTEMPT_FILE).read_text())
    assert record["cluster_dir"] == str(job.job_dir)
    assert record["resources"] == {"partition": "efi"}


def test_prepare_refuses_a_job_without_params(tmp_path: Path) -> None:
    connector = SlurmConnector({})
    with pytest.raises(PermanentError, match=r"params\.json"):
        connector.prepare_job_environment(spec(tmp_path / "none"))


def test_prepare_in_another_directory_stages_relocated_params_and_inputs(
        tmp_path: Path) -> None:
    job = staged_job(tmp_path)
    remote = tmp_path / "scratch"
    connector = SlurmConnector({"remote_dir": str(remote)})
    params_path = connector.prepare_job_environment(job)
    there = remote / "42"
    assert params_path == str(there / "params.json")
    params = json.loads((there / "params.json").read_text())
    assert params["final_output_dir"] == str(there)
    assert params["fasta_file"] == f"{there}/input/seqs.fasta"
    assert params["filter"] == [f"user-filter={there}/taxonomy_filter.json"]
    assert (there / "input" / "seqs.fasta").read_text() == ">a\nMA\n"
    assert (there / "taxonomy_filter.json").exists()
    assert not (there / "unrelated.txt").exists()
    assert not (there / ".efi").exists()
    assert f"--chdir={there}" in sbatch_lines((there / "efi-job.sbatch").read_text())
    assert connector.prepare_job_environment(job) == params_path  # idempotent

    # The job ran: outputs, a work dir, and a params.json with cluster paths.
    (there / "stats.json").write_text('{"num_ids": 2}')
    (there / "slurm-7.out").write_text("log")
    (there / "work" / "ab").mkdir(parents=True)
    (there / "work" / "ab" / "huge").write_text("x")
    (there / ".efi").mkdir()
    (there / ".efi" / "destination.json").write_text("{}")
    assert connector.retrieve_job_results(job) == job.job_dir
    assert (job.job_dir / "stats.json").read_text() == '{"num_ids": 2}'
    assert (job.job_dir / "slurm-7.out").exists()
    assert not (job.job_dir / "work").exists()
    assert json.loads((job.job_dir / "params.json").read_text())["final_output_dir"] == str(
        job.job_dir)
    assert (job.job_dir / ".efi" / "destination.json").read_text() == (
        '{"destination": "default"}')


def test_retrieve_of_a_missing_directory_is_permanent(tmp_path: Path) -> None:
    connector = SlurmConnector({"remote_dir": str(tmp_path / "scratch")})
    with pytest.raises(PermanentError, match="does not exist"):
        connector.retrieve_job_results(spec(tmp_path / "results" / "42"))


def test_retry_resources_after_timeout_or_out_of_memory(tmp_path: Path) -> None:
    """The core's retry hook: double what ran out (from the profile or the last overrides),
    capped by max_time/max_memory; other failures ask for nothing."""
    connector = SlurmConnector({"time": "1:00:00", "memory": "1G", "max_time": "3:00:00",
                                "profiles": {"est": {"max_memory": "3G"}}})
    job = spec(tmp_path)
    timeout = {"scheduler_id": "100", "scheduler_reason": "TIMEOUT", "reason": "TIMEOUT"}
    oom = {"scheduler_id": "101", "scheduler_reason": "OUT_OF_MEMORY"}
    assert connector.retry_resources(job, timeout) == Resources(time=2 * 3600)
    again = spec(tmp_path, resources=Resources(time=2 * 3600))
    assert connector.retry_resources(again, timeout) == Resources(time=3 * 3600)
    capped = spec(tmp_path, resources=Resources(time=3 * 3600))
    assert connector.retry_resources(capped, timeout) is None
    assert connector.retry_resources(job, oom) == Resources(memory=2048)
    assert connector.retry_resources(spec(tmp_path, resources=Resources(memory=2048)),
                                     oom) == Resources(memory=3072)
    assert connector.retry_resources(job, {"reason": "OUT_OF_MEMORY (exit code 0)"}) == (
        Resources(memory=2048))
    assert connector.retry_resources(job, {"scheduler_reason": "EXIT_CODE 3"}) is None
    assert SlurmConnector({}).retry_resources(job, timeout) is None  # no time limit to double
    site = spec(tmp_path, resources=Resources(time=20 * 60, memory=100))  # the site's say
    assert connector.retry_resources(site, timeout) == Resources(time=40 * 60)
    assert connector.retry_resources(site, oom) == Resources(memory=200)


def test_prepare_records_previous_attempts_for_find_job(tmp_path: Path) -> None:
    job = staged_job(tmp_path)
    connector = SlurmConnector({})
    connector.prepare_job_environment(job)
    record = job.job_dir / ATTEMPT_FILE
    data = json.loads(record.read_text())
    assert (data["submitted"], data["previous"]) == ([], [])
    data["submitted"] = ["7", "8"]  # what submit_job records
    record.write_text(json.dumps(data))
    connector.prepare_job_environment(job)  # a new attempt (an operator's retry)
    data = json.loads(record.read_text())
    assert (data["submitted"], data["previous"]) == ([], ["7", "8"])


def test_a_note_left_where_older_versions_kept_it_is_still_read(tmp_path: Path) -> None:
    """A job staged before the note moved to .efi-slurm/: its submissions stay earlier ones."""
    job = staged_job(tmp_path)
    connector = SlurmConnector({})
    connector.prepare_job_environment(job)
    data = json.loads((job.job_dir / ATTEMPT_FILE).read_text())
    data["submitted"] = ["41"]
    legacy = job.job_dir / ".efi" / "slurm-attempt.json"
    legacy.parent.mkdir(exist_ok=True)
    legacy.write_text(json.dumps(data))
    (job.job_dir / ATTEMPT_FILE).unlink()
    connector.prepare_job_environment(job)  # the next attempt reads the old note
    data = json.loads((job.job_dir / ATTEMPT_FILE).read_text())
    assert (data["submitted"], data["previous"]) == ([], ["41"])
    assert ATTEMPT_FILE.startswith(".efi-slurm/")
