"""Keep credentials out of everything the plugin prints, stores or raises.

Secrets leak through side doors: a server echoing the key in its error message, a model repeating it
in an answer, a proxy quoting the Authorization header, an exception text carrying
``https://user:pass@host``. Everything that leaves the client passes through here first.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..result import ApiError

MASK = "***"

AUTH_HEADER_NAMES = frozenset(
    {"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie", "set-cookie"}
)

_BEARER = re.compile(r"(?i)\bBearer\s+[^\s\"',;]+")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_SECRET_PARAM = re.compile(r"key|token|secret|auth|password|signature|sig", re.IGNORECASE)


class Secrets:
    """Known secrets, ordered once (longest first, so a secret containing another is masked whole).

    Build it once per client or run: every answer and error passes through it.
    """

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self.ordered: tuple[str, ...] = tuple(sorted({v for v in values if v}, key=len, reverse=True))

    def mask(self, value: Any) -> Any:
        """The value with each known secret, in every string and dict key, replaced by the mask.

        For answers, which may repeat a key the model was shown: only the secrets are masked, the rest
        stays as it came (``redact``'s Bearer and URL patterns would also change ordinary answers about HTTP).
        """
        if not self.ordered:
            return value
        if isinstance(value, str):
            for secret in self.ordered:
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {self.mask(key): self.mask(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.mask(item) for item in value]
        return value

    def redact(self, text: str) -> str:
        """The text with each secret, any ``Bearer <token>`` and any URL userinfo masked."""
        text = _BEARER.sub(f"Bearer {MASK}", self.mask(text))
        return _URL_USERINFO.sub(rf"\1{MASK}@", text)

    def redact_error(self, error: ApiError) -> ApiError:
        """A copy of the error with its message, body excerpt and text details redacted."""

        def clean(value: object) -> object:
            return self.redact(value) if isinstance(value, str) else value

        return dataclasses.replace(
            error,
            message=self.redact(error.message),
            body_excerpt=clean(error.body_excerpt),  # type: ignore[arg-type]
            details={key: clean(value) for key, value in error.details.items()},
        )


SecretsLike = Secrets | Iterable[str | None]


def as_secrets(secrets: SecretsLike) -> Secrets:
    return secrets if isinstance(secrets, Secrets) else Secrets(secrets)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of the headers with every credential-bearing value masked."""
    return {name: MASK if name.lower() in AUTH_HEADER_NAMES else value for name, value in headers.items()}


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The secrets in credential headers: each whole value and its last word.

    A server answering 401 to ``Authorization: Bearer sk-...`` quotes the key alone, not the header
    value, so the token after the scheme must be masked on its own too.
    """
    found = []
    for name, value in headers.items():
        if name.lower() not in AUTH_HEADER_NAMES or not value or not value.strip():
            continue
        found.append(value)
        last = value.split()[-1]
        if last != value:
            found.append(last)
    return found


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


def redact_text(text: str, secrets: SecretsLike = ()) -> str:
    return as_secrets(secrets).redact(text)


def redact_error(error: ApiError, secrets: SecretsLike = ()) -> ApiError:
    return as_secrets(secrets).redact_error(error)


def mask_secrets(value: Any, secrets: SecretsLike) -> Any:
    """See ``Secrets.mask``; pass a ``Secrets`` to keep the ordering from being redone on every call."""
    return as_secrets(secrets).mask(value)
