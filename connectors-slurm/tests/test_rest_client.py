"""The REST client's failures, on real sockets: nothing that goes wrong is a job's fault.

The daemon's own answers (tokens refused, queries it cannot parse, Slurm's errors) are tested
against the lab's slurmrestd in ``test_rest_lab.py``; here, what a site has in front of it or
instead of it: no daemon on the socket, a daemon that does not answer, a proxy's error page.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from efi_connector_slurm.rest import RestClient, TokenSource
from efi_job_manager.toolkit import ConnectionFailed, TransientError

SECRET = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl"


class _Proxy(http.server.BaseHTTPRequestHandler):
    """What a reverse proxy in front of slurmrestd answers: 502 and an HTML page while the
    daemon is down; 401 when its own authentication refuses the request."""

    def do_GET(self) -> None:
        status = 401 if self.path.startswith("/auth") else 502
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        body = b"<html><body><h1>%d</h1></body></html>" % status
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.headers_seen.append(dict(self.headers))  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Proxy)
    server.headers_seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: http.server.HTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


def test_a_token_comes_from_the_environment_or_a_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable, or the file (as ``scontrol token`` prints it, read at each request)."""
    monkeypatch.setenv("EFI_TEST_JWT", f"  {SECRET}\n")
    assert TokenSource("efijm", env="EFI_TEST_JWT").token() == SECRET
    file = tmp_path / "jwt"
    file.write_text(f"SLURM_JWT={SECRET}\n")
    tokens = TokenSource("efijm", file=file)
    assert tokens.token() == SECRET
    file.write_text("SLURM_JWT=renewed\n")
    assert tokens.token() == "renewed"


def test_a_missing_token_is_a_site_fault_that_says_where(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EFI_TEST_JWT", raising=False)
    with pytest.raises(TransientError, match=r"EFI_TEST_JWT.*scontrol token username=efijm"):
        TokenSource("efijm", env="EFI_TEST_JWT").token()
    with pytest.raises(TransientError, match="cannot read the slurmrestd token file"):
        TokenSource("efijm", file=tmp_path / "absent").token()
    (tmp_path / "two").write_text("one two\n")
    with pytest.raises(TransientError, match="no slurmrestd token in the file"):
        TokenSource("efijm", file=tmp_path / "two").token()


def test_no_daemon_on_the_socket_is_transient(tmp_path: Path) -> None:
    client = RestClient(f"unix:{tmp_path / 'slurmrestd.sock'}", None, timeout=5)
    # ConnectionFailed (a TransientError): the manager skips the destination for the cycle
    with pytest.raises(ConnectionFailed, match=r"cannot reach slurmrestd at unix:.*: GET "
                                               r"/slurm/v0.0.38/ping: cannot be reached"):
        client.get("/slurm/v0.0.38/ping")
    client.close()


def test_a_daemon_that_does_not_answer_times_out_as_transient(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A listening socket nobody reads from: the request waits for the timeout, no longer."""
    monkeypatch.setenv("EFI_TEST_JWT", SECRET)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = RestClient(f"http://127.0.0.1:{port}", TokenSource("efijm", env="EFI_TEST_JWT"),
                            timeout=0.5)
        with pytest.raises(TransientError, match="no answer within"):
            client.get("/slurm/v0.0.38/ping")
        client.close()


def test_a_proxy_error_page_is_transient_and_the_token_stays_out_of_the_message(
        proxy: http.server.HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFI_TEST_JWT", SECRET)
    client = RestClient(_url(proxy), TokenSource("efijm", env="EFI_TEST_JWT"), timeout=5)
    with pytest.raises(TransientError) as caught:
        client.get("/slurm/v0.0.38/jobs")
    message = str(caught.value)
    assert "HTTP 502, not JSON" in message
    assert "<h1>502</h1>" in message
    assert SECRET not in message
    sent = proxy.headers_seen[0]  # type: ignore[attr-defined]
    assert (sent["X-SLURM-USER-NAME"], sent["X-SLURM-USER-TOKEN"]) == ("efijm", SECRET)
    client.close()


def test_a_proxys_401_says_the_token_was_refused(proxy: http.server.HTTPServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFI_TEST_JWT", SECRET)
    client = RestClient(_url(proxy), TokenSource("efijm", env="EFI_TEST_JWT"), timeout=5)
    with pytest.raises(TransientError, match=r"the token was refused \(HTTP 401\).*scontrol token"):
        client.get("/auth/slurm/v0.0.38/ping")
    client.close()


def test_a_url_needs_a_token_source() -> None:
    with pytest.raises(ValueError, match="a token source is needed over TCP"):
        RestClient("http://127.0.0.1:6820", None, timeout=5)
