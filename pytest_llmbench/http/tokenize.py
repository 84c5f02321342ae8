"""The server's own tokenizer, over the routes servers offer beside the OpenAI API.

vLLM and SGLang serve ``POST /tokenize`` and ``/detokenize`` at the root (``{"prompt"}`` in, ``{"tokens"}`` out),
llama.cpp's ``llama-server`` the same paths with ``{"content"}``, some proxies under ``/v1``, and
llama-cpp-python's server ``/extras/tokenize`` (``{"input"}``, with BOS) and ``/extras/detokenize``. One body
carries both field names, so one probe per route finds out; a 404 (or any failure) moves to the next route. Only these
routes are ever called: no probe reaches the completions endpoints. Every call has a total deadline.

The tokens a server adds on its own (BOS) are found by tokenizing the empty text and taken off every answer:
lengths are counted as the prompt's own tokens, as the README says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import ClientError
from ..jsonbound import loads_bounded
from .api_errors import describe
from .client import LLMClient
from .openai import PATHS

TOKENIZE_TIMEOUT = 30.0  # seconds, the whole of one tokenize call
_ROUTES = (("/tokenize", "/detokenize"), ("/v1/tokenize", "/v1/detokenize"),
           ("/extras/tokenize", "/extras/detokenize"))


@dataclass(frozen=True)
class _Route:
    tokenize: str
    detokenize: str


class ServerTokenizer:
    """Tokenizes and detokenizes on the server; raises ClientError when a call fails."""

    estimated = False

    def __init__(self, client: LLMClient, route: _Route, model: str | None, timeout: float) -> None:
        self._client = client
        self._route = route
        self._model = model
        self._timeout = timeout
        self._lead: list[int] = []
        self.name = f"server {urlsplit(route.tokenize).path}"
        self._lead = self.encode("")  # what the server adds to any text (BOS), taken off from now on

    def encode(self, text: str) -> list[int]:
        body = {"prompt": text, "content": text, "input": text, "add_special_tokens": False}
        ids = _ids(self._call(self._route.tokenize, body).get("tokens"))
        if ids is None:
            raise ClientError(f"{self.name} answered without a list of token ids")
        return ids[len(self._lead):] if self._lead and ids[:len(self._lead)] == self._lead else ids

    def decode(self, ids: Sequence[int]) -> str:
        answer = self._call(self._route.detokenize, {"tokens": list(ids)})
        text = next((str(answer[k]) for k in ("prompt", "content", "text") if isinstance(answer.get(k), str)), None)
        if text is None:
            raise ClientError(f"{urlsplit(self._route.detokenize).path} answered without the text")
        return text

    def _call(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        return _post(self._client, url, {**body, **({"model": self._model} if self._model else {})},
                     self._timeout)


def _post(client: LLMClient, url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    reply = client.post_once(url, body, timeout)
    if reply.error is not None:
        raise ClientError(f"POST {urlsplit(url).path}: {describe(reply.error)}", reply.error)
    try:
        answer = loads_bounded(reply.payload)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ClientError(f"POST {urlsplit(url).path} did not answer with a JSON object")
    return answer


def _ids(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        return value
    return None


def server_root(endpoint: str) -> str:
    """The server's root URL: the endpoint without ``/v1`` and without a completions path."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    for suffix in PATHS.values():
        path = path.removesuffix(suffix)
    return urlunsplit(parts._replace(path=path.removesuffix("/v1"), query="", fragment=""))


def find_server_tokenizer(client: LLMClient, model: str | None,
                          timeout: float = TOKENIZE_TIMEOUT) -> tuple[ServerTokenizer | None, str]:
    """The first route the server answers, with why the others were passed over (for the message)."""
    root = server_root(client.config.endpoint)
    tried = []
    for tokenize, detokenize in _ROUTES:
        route = _Route(root + tokenize, root + detokenize)
        try:
            return ServerTokenizer(client, route, model, timeout), ""
        except ClientError as exc:
            status = exc.error.status if exc.error is not None else None
            why = f"HTTP {status}" if status is not None else str(exc).split(": ", 1)[-1][:80]
            tried.append(f"{tokenize} ({why})")
    return None, ", ".join(tried)
