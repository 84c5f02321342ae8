"""Keep credentials out of everything the plugin prints, stores or raises.

Secrets leak through side doors: a server echoing the key in its error message, a model repeating it
in an answer, a proxy quoting the Authorization header, an exception text carrying
``https://user:pass@host``. Everything that leaves the client passes through here first.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from ..result import ApiError

MASK = "***"

AUTH_HEADER_NAMES = frozenset(
    {"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie", "set-cookie"}
)
# Any header whose name suggests a credential (X-Auth-Token, X-Goog-Api-Key, X-Session-Id, ...): masked too.
_CREDENTIAL_NAME = re.compile(r"auth|token|key|secret|passw|cookie|session", re.IGNORECASE)
_MIN_EDGE = 4  # a cut-off tail this long that starts a secret's form is masked (a shorter one tells nothing)
_MIN_BASE64 = 6  # shorter secrets have base64 cores too short to mask without hitting ordinary text

_BEARER = re.compile(r"(?i)\bBearer\s+[^\s\"',;]+")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_SECRET_PARAM = re.compile(r"key|token|secret|auth|password|signature|sig", re.IGNORECASE)


class Secrets:
    """Known secrets, ordered once (longest first, so a secret containing another is masked whole).

    Build it once per client or run: every answer and error passes through it.
    """

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self.ordered: tuple[str, ...] = tuple(sorted({v for v in values if v}, key=len, reverse=True))
        # Each secret as a server may echo it: percent-encoded (a redirect's Location), JSON-escaped (an error
        # body quoting the request), base64 (Basic auth), besides as it is. Longest first, masked in that order.
        forms = {form for secret in self.ordered for form in encoded_forms(secret)}
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=len, reverse=True))

    def mask(self, value: Any) -> Any:
        """The value with each known secret, in every string and dict key, replaced by the mask.

        For answers, which may repeat a key the model was shown: only the secrets are masked, the rest
        stays as it came (``redact``'s Bearer and URL patterns would also change ordinary answers about HTTP).
        """
        if not self.ordered:
            return value
        if isinstance(value, str):
            for form in self.forms:
                if form in value:
                    value = value.replace(form, MASK)
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

    def clip(self, text: str | None, limit: int) -> str | None:
        """The text redacted, THEN cut to ``limit`` characters (with an ellipsis): a secret straddling the cut
        is masked whole first, and a cut-off start of one left at the edge is masked too."""
        if not text:
            return None
        text = self.redact(text)
        if len(text) <= limit:
            return text
        return self.mask_edge(text[:limit]) + "…"

    def mask_edge(self, text: str) -> str:
        """The text with a trailing start of a secret's form (what a cut leaves of it) masked."""
        for form in self.forms:
            for size in range(min(len(form), len(text) + 1) - 1, _MIN_EDGE - 1, -1):
                if text.endswith(form[:size]):
                    return text[:-size] + MASK
        return text

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


NO_SECRETS = Secrets()


def is_credential_header(name: str) -> bool:
    """A header known to carry credentials, or one whose name suggests it does (case-insensitive)."""
    return name.lower() in AUTH_HEADER_NAMES or _CREDENTIAL_NAME.search(name) is not None


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of the headers with every credential-bearing value masked."""
    return {name: MASK if is_credential_header(name) else value for name, value in headers.items()}


def encoded_forms(secret: str) -> list[str]:
    """The secret as it is and as servers and proxies re-encode it when they echo it back."""
    forms = [secret, json.dumps(secret)[1:-1], json.dumps(secret)[1:-1].replace("/", "\\/"),
             "".join(f"\\u{ord(char):04x}" for char in secret) if secret.isascii() else secret]
    forms.append(forms[-1].upper().replace("\\U", "\\u"))
    for encoded in (quote(secret, safe=""), quote_plus(secret, safe="")):
        forms += [encoded, re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)]
    if len(secret) >= _MIN_BASE64:
        forms += _base64_cores(secret.encode("utf-8", "surrogatepass"))
    return [form for form in dict.fromkeys(forms) if form]


def _base64_cores(raw: bytes) -> list[str]:
    """The part of the secret's base64 text that does not depend on what stands around it, for each of the
    three alignments it can have inside a longer encoded value ("user:key" in Basic auth)."""
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        first = -(-shift * 8 // 6)  # characters holding bits of the padding in front
        last = ((shift + len(raw)) * 8) // 6  # characters made only of the secret's bits
        core = encoded[first:last]
        cores += [core, core.replace("+", "-").replace("/", "_")]
    return cores


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The secrets in credential headers: each whole value and its last word.

    A server answering 401 to ``Authorization: Bearer sk-...`` quotes the key alone, not the header
    value, so the token after the scheme must be masked on its own too.
    """
    found = []
    for name, value in headers.items():
        if not is_credential_header(name) or not value or not value.strip():
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
