"""Keeping secrets out of ``repr``, messages and printed settings.

A secret is a field marked ``metadata={"secret": True}``, a key that looks like a password
or token (`is_secret_key`), or the password part of a URL (``scheme://user:pw@host``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = [
    "MASK",
    "encode_url_password",
    "is_secret_key",
    "mask_url_text",
    "redact",
    "redacted_repr",
    "show",
    "url_repr",
]

MASK: Final = "***"
"""What a secret is shown as."""

_SECRET_KEY_RE: Final = re.compile(
    r"pass(?:word|wd|phrase)|secret|token|credential|api[_-]?key|private[_-]?key",
    re.IGNORECASE,
)
# the password runs to the last "@" of the authority: an unencoded "@" inside it stays masked
_URL_CREDENTIALS_RE: Final = re.compile(
    r"(?P<head>[A-Za-z][\w+.-]*://[^/:@\s]*):[^/\s]*@(?=[^@/\s]*(?:[/?#]|\s|$))")
_URL_AUTHORITY_RE: Final = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*://)(?P<authority>[^/]*)")


def is_secret_key(key: object) -> bool:
    """Whether a key's name looks like a password, token or other secret."""
    return isinstance(key, str) and _SECRET_KEY_RE.search(key) is not None


def encode_url_password(text: str) -> str:
    """Percent-encode a password holding ``@`` (``user:p@ss@host``), which URLs cannot hold."""
    match = _URL_AUTHORITY_RE.match(text)
    if match is None or match["authority"].count("@") < 2:
        return text
    credentials, _, host = match["authority"].rpartition("@")
    user, sep, password = credentials.partition(":")
    encoded = f"{user}{sep}{urllib.parse.quote(password, safe='')}@{host}"
    return f"{match['scheme']}{encoded}{text[match.end():]}"


def mask_url_text(text: str) -> str:
    """Mask a password written inside a URL-like string (``scheme://user:pw@host``)."""
    return _URL_CREDENTIALS_RE.sub(rf"\g<head>:{MASK}@", text)


def redact(value: Any) -> Any:
    """A plain, printable copy of ``value`` with secrets replaced by ``***``.

    Attrs classes become dictionaries (fields with ``repr=False`` that are not secrets are
    left out), paths strings and tuples lists.
    """
    if attrs.has(type(value)):
        out: dict[str, Any] = {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if field.metadata.get("secret"):
                out[field.name] = None if item is None else MASK
            elif field.repr is not False:
                out[field.name] = redact(item)
        return out
    if isinstance(value, Mapping):
        return {
            str(key): (MASK if is_secret_key(key) and item is not None else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return mask_url_text(str(value))
    return value


def show(value: Any, key: object = None) -> str:
    """A value as messages show it: JSON, ``***`` under a secret-looking ``key``."""
    if is_secret_key(key):
        return MASK
    return json.dumps(redact(value), ensure_ascii=False, default=str)


def redacted_repr(value: Any) -> str:
    """``repr`` of `redact` (for attrs fields holding free-form tables)."""
    return repr(redact(value))


def url_repr(value: str) -> str:
    """``repr`` of a URL with its password masked."""
    return repr(mask_url_text(value))
