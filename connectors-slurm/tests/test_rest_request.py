"""A job's submission over REST carries every option of its batch script as a job property.

The pure translation first; then the reference: on the lab, the same job submitted with
``sbatch`` (which reads the ``#SBATCH`` lines) and through slurmrestd (which reads only the
properties) must come out the same in ``scontrol show job``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from slurm_lab import Lab, new_ids, write_token

from efi_connector_slurm import SlurmConnector, parse_settings
from efi_connector_slurm.parsing import parse_rest_submit, scontrol_fields
from efi_connector_slurm.rest import RestClient, TokenSource
from efi_connector_slurm.rest.request import REST_OPTIONS, job_submission, rest_extra_options
from efi_connector_slurm.script import batch_script
from efi_job_manager.connector import JobSpec, Resources

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def _spec(tmp_path: Path, job_id: int = 41, **kwargs: object) -> JobSpec:
    return JobSpec(job_id, "est_generate_fasta", tmp_path / str(job_id),
                   ("/bin/echo", "a b", "$(x)"), pipeline="est", claim="c0ffee00",
                   **kwargs)  # type: ignore[arg-type]


def test_every_option_of_the_script_is_a_property(tmp_path: Path) -> None:
    settings = parse_settings({
        "partition": "debug", "account": "efi", "time": "00:10:00", "memory": "50M",
        "profiles": {"est": {"partition": "efi", "cpus": 2, "extra_sbatch": ["--hold"]}},
    })
    spec = _spec(tmp_path, resources=Resources(time=90.0))
    body = job_submission(spec, settings, "/scratch/41", ENV)
    assert body["script"] == batch_script(spec, settings, "/scratch/41")[0]
    assert body["job"] == {
        "name": "efi-41-c0ffee00", "partition": "efi", "account": "efi",
        "time_limit": 2,  # 90 s, rounded up to whole minutes as Slurm counts them
        "memory_per_node": 50, "cpus_per_task": 2, "hold": True,
        "current_working_directory": "/scratch/41",
        "standard_output": "/scratch/41/slurm-%j.out",
        "standard_error": "/scratch/41/slurm-%j.err",
        "environment": ENV,
    }


def test_an_unlimited_time_is_no_limit(tmp_path: Path) -> None:
    settings = parse_settings({"time": "UNLIMITED"})
    assert "time_limit" not in job_submission(_spec(tmp_path), settings, "/s/41", ENV)["job"]


def test_known_extra_options_become_properties_and_others_are_refused() -> None:
    assert rest_extra_options(["--gres=gpu:1", "--nice=10", "--exclusive"]) == {
        "gres": "gpu:1", "nice": 10, "exclusive": True}
    with pytest.raises(ValueError, match=r"'--export=ALL' cannot be sent to slurmrestd.*--hold"):
        rest_extra_options(["--export=ALL"])
    with pytest.raises(ValueError, match="--nice needs a whole number"):
        rest_extra_options(["--nice=low"])
    with pytest.raises(ValueError, match="--hold takes no value"):
        rest_extra_options(["--hold=yes"])
    assert set(REST_OPTIONS) >= {"--hold", "--gres", "--constraint"}


_COMPARED = ("JobName", "Partition", "TimeLimit", "NumCPUs", "MinMemoryNode", "StdOut",
             "StdErr", "WorkDir", "JobState", "Reason", "UserId")


def test_sbatch_and_slurmrestd_make_the_same_job_of_it(lab: Lab, tmp_path: Path) -> None:
    """The reference: sbatch reading the script's #SBATCH lines, as the command-line connector
    submits; then the same script and the properties through slurmrestd-jwt."""
    scratch = lab.scratch / f"rest-{new_ids()[0]}"
    scratch.mkdir()
    scratch.chmod(0o777)
    settings = parse_settings({"partition": "debug", "time": "00:07:00", "memory": "60M",
                               "profiles": {"est": {"partition": "efi", "cpus": 2,
                                                    "extra_sbatch": ["--hold"]}}})
    shown: list[dict[str, str]] = []
    write_token(lab.env, tmp_path / "jwt", seconds=300)
    client = RestClient(lab.env["EFI_SLURM_REST_URL"],
                        TokenSource("efijm", file=tmp_path / "jwt"), timeout=30)
    ids: list[str] = []
    try:
        spec = _spec(tmp_path, job_id=new_ids()[0])
        body = job_submission(spec, settings, str(scratch), ENV)
        script = scratch / "efi-job.sbatch"
        script.write_text(body["script"])
        script.chmod(0o644)
        ids.append(lab.run(["su", "efijm", "-c", f"sbatch --parsable {script}"]
                           ).stdout.strip().split(";")[0])
        answer = client.post("/slurm/v0.0.38/job/submit", body)
        ids.append(parse_rest_submit(answer.status, answer.document))
        for sid in ids:
            fields = scontrol_fields(lab.run(["scontrol", "show", "job", "-o", sid]).stdout)
            # the output files name the job's own id (%j): compared as written (only there:
            # a job id can also be part of the job's name, efi-334596893 for job 893)
            shown.append({key: fields.get(key, "").replace(f"slurm-{sid}.", "slurm-%j.")
                          for key in _COMPARED})
    finally:
        if ids:
            lab.run(["scancel", *ids], check=False)
        client.close()
    by_sbatch, by_rest = shown
    assert by_sbatch == by_rest, json.dumps(shown, indent=1)
    assert (by_rest["JobName"], by_rest["Partition"], by_rest["TimeLimit"]) == (
        spec.name, "efi", "00:07:00")
    assert (by_rest["NumCPUs"], by_rest["MinMemoryNode"], by_rest["Reason"]) == (
        "2", "60M", "JobHeldUser")
    assert by_rest["StdOut"] == f"{scratch}/slurm-%j.out"


@pytest.mark.parametrize(("settings", "message"), [
    ({"api": "rest"}, "rest_url is required"),
    ({"api": "rest", "rest_url": "http://h:6820"}, "rest_user is required"),
    ({"api": "rest", "rest_url": "http://h:6820", "rest_user": "efi"},
     "rest_token_env or rest_token_file"),
    ({"api": "rest", "rest_url": "http://h:6820", "rest_user": "efi", "rest_token_env": "T",
      "rest_token_file": "/etc/efi/jwt"}, "not both"),
    ({"api": "rest", "rest_url": "ftp://h"}, "expected http://host:port"),
    ({"rest_url": "unix:/run/slurmrestd.sock"}, "nothing with api 'commands'"),
    ({"api": "rest", "rest_url": "unix:/run/s.sock", "extra_sbatch": ["--export=ALL"]},
     "extra_sbatch: extra_sbatch '--export=ALL' cannot be sent to slurmrestd"),
    ({"api": "rest", "rest_url": "unix:/run/s.sock",
      "profiles": {"est": {"extra_sbatch": ["--begin=now"]}}},
     "profiles.est.extra_sbatch: extra_sbatch '--begin=now' cannot be sent"),
])
def test_rest_settings_are_checked_when_the_connector_is_made(settings: dict[str, object],
                                                              message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SlurmConnector(settings)


def test_a_unix_socket_needs_no_token_and_the_file_is_not_shown() -> None:
    connector = SlurmConnector({"api": "rest", "rest_url": "unix:/run/slurmrestd.sock"})
    assert connector.rest is not None
    assert connector.rest.description == "slurmrestd at unix:/run/slurmrestd.sock"
    connector.close()
    with pytest.raises(ValueError, match="not both") as caught:
        parse_settings({"api": "rest", "rest_url": "http://h:1", "rest_user": "efi",
                        "rest_token_env": "T", "rest_token_file": "/secret/jwt"})
    assert "/secret/jwt" not in str(caught.value)
