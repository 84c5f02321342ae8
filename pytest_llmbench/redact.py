"""Keep credentials out of everything the plugin prints, stores or raises.

Secrets leak through side doors: a server echoing the key in its error message, a proxy quoting the
Authorization header, an exception text carrying ``https://user:pass@host``. Everything that leaves
the client passes through here first.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .result import ApiError

MASK = "***"

AUTH_HEADER_NAMES = frozenset(
    {"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie", "set-cookie"}
)

_BEARER = re.compile(r"(?i)\bBearer\s+[^\s\"',;]+")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of the headers with every credential-bearing value masked."""
    return {name: MASK if name.lower() in AUTH_HEADER_NAMES else value for name, value in headers.items()}


_SECRET_PARAM = re.compile(r"key|token|secret|auth|password|signature|sig", re.IGNORECASE)


def url_secrets(url: str | None) -> list[str]:
    """Credentials riding in a URL: its password and query values whose names look like keys or tokens."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:  # a malformed URL: the client rejects it with a message of its own
        return []
    found += [value for name, value in parse_qsl(parts.query) if value and _SECRET_PARAM.search(name)]
    return found


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """The text with each secret, any ``Bearer <token>`` and any URL userinfo masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _BEARER.sub(f"Bearer {MASK}", text)
    return _URL_USERINFO.sub(rf"\1{MASK}@", text)


def redact_error(error: ApiError, secrets: Iterable[str | None] = ()) -> ApiError:
    """A copy of the error with its message, body excerpt and text details redacted."""
    secrets = list(secrets)

    def clean(value: object) -> object:
        return redact_text(value, secrets) if isinstance(value, str) else value

    return dataclasses.replace(
        error,
        message=redact_text(error.message, secrets),
        body_excerpt=clean(error.body_excerpt),  # type: ignore[arg-type]
        details={key: clean(value) for key, value in error.details.items()},
    )


def mask_secrets(value: Any, secrets: Iterable[str | None]) -> Any:
    """The value with each known secret, in every string and key, replaced by the mask.

    For answers, which may repeat a key the model was shown: only the secrets are masked, the rest stays as
    it came (redact_text's Bearer and URL patterns would also change ordinary answers about HTTP).
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return value

    def mask(item: Any) -> Any:
        if isinstance(item, str):
            for secret in ordered:
                item = item.replace(secret, MASK)
            return item
        if isinstance(item, dict):
            return {mask(key): mask(val) for key, val in item.items()}
        if isinstance(item, list):
            return [mask(val) for val in item]
        return item

    return mask(value) if ordered else value
