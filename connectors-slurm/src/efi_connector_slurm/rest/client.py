"""Slurm's REST daemon, ``slurmrestd``, reached over HTTP: one request, and what a failure means.

`RestClient` sends a request to slurmrestd at ``http://host:port`` (JWT: a token and the
user it belongs to in ``X-SLURM-USER-NAME``/``X-SLURM-USER-TOKEN``) or on a unix socket
(``unix:/path``; slurmrestd's local authentication takes the caller's uid, no token), and
returns a `RestAnswer`: the HTTP status and the JSON object, ``errors`` included. What an
error means depends on the request: slurmrestd 22.05 answers a cancel of a job it does not
know with HTTP 500 and a JSON error, a refused submission with Slurm's message.

Nothing that goes wrong here is a job's fault. The daemon down or not answering in time, a
token refused (expired, wrong, missing: HTTP 401/403), and an answer that is not a JSON
object (a proxy's 502 page, a 400 "Unable to parse query.") each raise a `TransientError`
whose message says which, so that the destination pauses and resumes by itself. The token
is read from its `TokenSource` for each request (a renewed file is picked up) and never
appears in a message or a log line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import httpx

from efi_job_manager.toolkit import ConnectionFailed, TransientError

__all__ = ["API_VERSION", "RestAnswer", "RestClient", "TokenSource"]

#: The OpenAPI plugin versions requested: Slurm 22.05's (``openapi/v0.0.38``, ``dbv0.0.38``).
API_VERSION: Final = "v0.0.38"

_UNIX_PREFIX = "unix:"
# How much of an answer that is not JSON a message quotes.
_QUOTE = 200


@attrs.frozen
class TokenSource:
    """Where a JWT for slurmrestd comes from: an environment variable or a file, never config.

    Attributes:
        user: The Slurm user the token was made for (``X-SLURM-USER-NAME``).
        env: The environment variable holding the token (``SLURM_JWT``, as ``scontrol
            token`` prints it), read at each request.
        file: A file holding the token (``SLURM_JWT=`` before it is allowed), read at each
            request so that a renewed token is used without a restart.
    """

    user: str
    env: str | None = None
    file: Path | None = None

    def token(self) -> str:
        """The current token.

        Raises:
            TransientError: the variable is unset or empty, or the file cannot be read: a site
                fault, said without the token itself.
        """
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8")
            except OSError as exc:
                raise TransientError(f"cannot read the slurmrestd token file {self.file}: "
                                     f"{exc.strerror or exc}") from None
            where = f"the file {self.file}"
        else:
            text = os.environ.get(self.env or "", "")
            where = f"the environment variable {self.env}"
        token = text.strip().removeprefix("SLURM_JWT=").strip()
        if not token or any(c.isspace() for c in token):
            raise TransientError(f"no slurmrestd token in {where}: set it to what "
                                 f"`scontrol token username={self.user}` prints")
        return token


@attrs.frozen
class RestAnswer:
    """What slurmrestd answered: the HTTP status and the JSON object.

    Attributes:
        status: The HTTP status code.
        document: The JSON object (``meta``, ``errors`` and the request's own keys).
    """

    status: int
    document: dict[str, Any]

    @property
    def errors(self) -> list[str]:
        """The ``error`` texts of the answer's ``errors`` list (``description`` when none)."""
        found = self.document.get("errors")
        texts: list[str] = []
        for entry in found if isinstance(found, list) else []:
            if isinstance(entry, dict):
                text = entry.get("error") or entry.get("description")
                texts.append(str(text) if text else json.dumps(entry, sort_keys=True))
        return texts


class RestClient:
    """Requests to one slurmrestd, with the token (for TCP) and a timeout.

    Args:
        url: ``http://host:port`` or ``https://host:port`` (JWT), or ``unix:/path`` (local
            authentication).
        tokens: Where the token comes from; required for a URL; on a unix socket only when
            slurmrestd asks for tokens there too (else its local authentication is used).
        timeout: Seconds a request may take.
    """

    def __init__(self, url: str, tokens: TokenSource | None, timeout: float) -> None:
        """Prepare the connection pool; nothing is sent yet."""
        self.url = url
        self.tokens = tokens
        if url.startswith(_UNIX_PREFIX):
            socket = url[len(_UNIX_PREFIX):]
            self._http = httpx.Client(transport=httpx.HTTPTransport(uds=socket),
                                      base_url="http://slurmrestd", timeout=timeout)
        else:
            if tokens is None:
                raise ValueError(f"slurmrestd at {url}: a token source is needed over TCP")
            self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

    @property
    def description(self) -> str:
        """Where requests go, for messages: ``slurmrestd at <url>``."""
        return f"slurmrestd at {self.url}"

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def get(self, path: str, params: Mapping[str, str] | None = None) -> RestAnswer:
        """``GET path`` (``/slurm/v0.0.38/jobs``…)."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any]) -> RestAnswer:
        """``POST path`` with a JSON body."""
        return self.request("POST", path, body=body)

    def delete(self, path: str) -> RestAnswer:
        """``DELETE path``."""
        return self.request("DELETE", path)

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                body: Mapping[str, Any] | None = None) -> RestAnswer:
        """Send one request; the answer, whatever its HTTP status, when it is a JSON object.

        Raises:
            TransientError: not reached or no answer in time, the token refused (401/403),
                or an answer that is not a JSON object.
        """
        headers = {"Accept": "application/json"}
        if self.tokens is not None:
            headers["X-SLURM-USER-NAME"] = self.tokens.user
            headers["X-SLURM-USER-TOKEN"] = self.tokens.token()
        where = f"{method} {path} on {self.description}"
        try:
            answer = self._http.request(method, path, params=params, json=body,
                                        headers=headers)
        except httpx.TimeoutException:  # ConnectionFailed: the manager skips it this cycle
            raise ConnectionFailed(self.description, f"{method} {path}: no answer within "
                                   f"{self._timeout():.0f} s") from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(self.description, f"{method} {path}: cannot be reached "
                                   f"({type(exc).__name__}: {exc})") from None
        if answer.status_code in (401, 403):
            raise TransientError(
                f"{where}: the token was refused (HTTP {answer.status_code}): it may have "
                "expired, or be for another user or cluster; renew it with `scontrol token`")
        try:
            document = json.loads(answer.content)
        except ValueError:
            raise TransientError(f"{where}: HTTP {answer.status_code}, not JSON: "
                                 f"{_quote(answer.text)}") from None
        if not isinstance(document, dict):
            raise TransientError(f"{where}: HTTP {answer.status_code}, not a JSON object: "
                                 f"{_quote(answer.text)}")
        return RestAnswer(answer.status_code, document)

    def _timeout(self) -> float:
        return self._http.timeout.read or 0.0


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "…")
