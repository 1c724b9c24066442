"""The REST client against the lab's two slurmrestd: local auth on a unix socket, JWT on TCP.

The lab must be up (``tests/slurm/cluster.sh up``); these tests fail, never skip, when it is
not. Each failure a site meets is a `TransientError` that says what happened, never a job's
fault: the daemon down, no token, a token slurmctld refuses, a path the daemon does not serve.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_lab import Lab, write_token

from efi_connector_slurm.parsing import parse_rest_jobs, rest_failure
from efi_connector_slurm.rest import RestClient, TokenSource
from efi_job_manager.toolkit import TransientError

PING = "/slurm/v0.0.38/ping"


@pytest.fixture
def token_file(lab: Lab, tmp_path: Path) -> Path:
    """A fresh token for the lab's user, as ``scontrol token`` prints it, in a 0600 file."""
    return write_token(lab.env, tmp_path / "jwt", seconds=600)


@pytest.fixture
def tcp(lab: Lab, token_file: Path) -> Iterator[RestClient]:
    client = RestClient(lab.env["EFI_SLURM_REST_URL"], TokenSource("efijm", file=token_file),
                        timeout=30)
    yield client
    client.close()


def _pinged(client: RestClient) -> list[str]:
    answer = client.get(PING)
    assert (answer.status, rest_failure(answer.document)) == (200, None)
    return [p["ping"] for p in answer.document["pings"]]


def test_both_ways_in_answer_a_ping(lab: Lab, tcp: RestClient) -> None:
    unix = RestClient(f"unix:{lab.env['EFI_SLURM_REST_SOCKET']}", None, timeout=30)
    assert _pinged(unix) == ["UP"]
    assert _pinged(tcp) == ["UP"]
    unix.close()


def test_a_renewed_token_file_is_read_at_the_next_request(lab: Lab, tcp: RestClient,
                                                          token_file: Path) -> None:
    good = token_file.read_text()
    token_file.write_text(good.strip()[:-6] + "AAAAAA\n")  # a signature slurmctld refuses
    refused = tcp.get(PING)
    assert refused.status == 500
    assert "a token that is wrong or expired" in (rest_failure(refused.document) or "")
    token_file.write_text(good)
    assert _pinged(tcp) == ["UP"]


def test_no_token_is_a_clear_site_fault(lab: Lab) -> None:
    client = RestClient(lab.env["EFI_SLURM_REST_URL"],
                        TokenSource("efijm", env="EFI_TEST_UNSET_JWT"), timeout=30)
    with pytest.raises(TransientError, match="no slurmrestd token in the environment variable"):
        client.get(PING)
    client.close()


def test_a_malformed_token_is_refused_by_name(lab: Lab, tmp_path: Path) -> None:
    """slurmctld refuses it; slurmrestd says so as HTTP 500 and an "Unspecified error"."""
    file = tmp_path / "jwt"
    file.write_text("not-a-token\n")
    client = RestClient(lab.env["EFI_SLURM_REST_URL"], TokenSource("efijm", file=file),
                        timeout=30)
    answer = client.get(PING)
    assert answer.status == 500
    assert "wrong or expired" in (rest_failure(answer.document) or "")
    client.close()


def test_a_path_the_daemon_does_not_serve_is_not_json(tcp: RestClient) -> None:
    with pytest.raises(TransientError, match=r"HTTP 404, not JSON: 'Unable find requested URL"):
        tcp.get("/slurm/v0.0.38/nothing-here")


def test_the_daemon_down_is_transient_and_back_up_it_answers(lab: Lab, tcp: RestClient) -> None:
    with lab.stopped("slurmrestd-jwt"), pytest.raises(TransientError, match="cannot be reached"):
        tcp.get(PING)
    assert _pinged(tcp) == ["UP"]


def test_a_live_listing_over_the_socket_reads_the_labs_jobs(lab: Lab) -> None:
    """A held job submitted here is QUEUED (JobHeldUser) in slurmrestd's listing."""
    job = lab.run(["sbatch", "--parsable", "--hold", "--job-name=efi-rest-listing",
                   "--output=/dev/null", "--wrap=true"]).stdout.strip().split(";")[0]
    unix = RestClient(f"unix:{lab.env['EFI_SLURM_REST_SOCKET']}", None, timeout=30)
    try:
        statuses = parse_rest_jobs(unix.get("/slurm/v0.0.38/jobs").document, {job})
        assert (statuses[job].state.value, statuses[job].reason) == ("queued", "JobHeldUser")
    finally:
        lab.run(["scancel", job])
        unix.close()
