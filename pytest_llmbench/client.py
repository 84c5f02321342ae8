"""HTTP to an OpenAI-compatible server: one logical request, its retries, and what came back.

Plain requests, no pytest, so the same client serves the JSON items, ordinary tests and the judge.
Each attempt is recorded (retries are never silent), each attempt has a total deadline that holds
against a server trickling bytes, POSTs never follow redirects, and no credential ever reaches a
result, a message or an exception.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

from . import __version__
from .errors import broken_body, describe, excerpt, http_error, network_error
from .exchange import Exchange, fill_token_counts, parse_answer, result_from_exchange
from .redact import AUTH_HEADER_NAMES, mask_secrets, redact_error, redact_text, url_secrets
from .result import ApiError, Attempt, TestResult
from .retry import RetryPolicy, decide

USER_AGENT = f"pytest-llmbench/{__version__}"
READ_SIZE = 65536
PROBE_TIMEOUT = 10.0  # seconds: check_reachable's connect and read timeout, so a dead host fails fast
_PATHS = {"chat": "/chat/completions", "completions": "/completions"}
_BODY_READ_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
# Failures before anything went on the wire that no retry can fix: a bad URL, a body that is no JSON.
_UNSENDABLE = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
               requests.exceptions.InvalidHeader, requests.exceptions.InvalidJSONError)


class ClientError(Exception):
    """A request the client could not complete; ``str()`` is one readable line without secrets."""

    def __init__(self, message: str, error: ApiError | None = None) -> None:
        super().__init__(message)
        self.error = error


class EndpointUnreachable(ClientError):
    """The server cannot be reached at all, or it rejected our credentials."""


@dataclass
class ClientConfig:
    endpoint: str  # ".../v1", ".../v1/completions" or ".../v1/chat/completions"
    api_key: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry credentials too
    timeout: float = 600.0  # TOTAL deadline per attempt, seconds
    retries: int = 3  # retries after the first attempt
    retry_delay: float = 1.0  # backoff base, seconds
    max_retry_wait: float = 120.0  # a Retry-After beyond this fails at once
    retry_read_timeouts: bool = False
    verify: bool | str = True  # False = insecure, str = CA bundle path


@dataclass
class _Answer:
    """What one attempt got, before it is judged a success or parsed."""

    elapsed: float
    status: int | None = None
    headers: Mapping[str, str] | None = None
    payload: bytes = b""
    streamed: Any = None  # streaming.StreamOutcome
    error: ApiError | None = None


def resolve_url(endpoint: str, api_type: str) -> tuple[str, str]:
    """(URL to POST to, API shape used): a URL ending in a shape's path fixes it, anything else is a base."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    for fixed, suffix in _PATHS.items():
        if path.endswith(suffix):
            return urlunsplit(parts._replace(path=path)), fixed
    return urlunsplit(parts._replace(path=path + _PATHS[api_type])), api_type


def models_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    for suffix in _PATHS.values():
        if path.endswith(suffix):
            path = path.removesuffix(suffix)
            break
    return urlunsplit(parts._replace(path=path + "/models"))


def build_body(
    prompt: str | None = None,
    messages: Sequence[Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Any] | None = None,
    model: str | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    """The JSON body: parameters set to None are left out, unknown ones pass through to the server."""
    if (prompt is None) == (messages is None):
        raise ValueError("build_body needs exactly one of prompt and messages")
    body: dict[str, Any] = {"model": model} if model else {}
    if prompt is not None:
        body["prompt"] = prompt
    else:
        body["messages"] = [dict(message) for message in messages or ()]
    for key, value in (parameters or {}).items():
        if value is not None and key not in body and key not in ("stream", "stream_options"):
            body[key] = value
    body["stream"] = stream
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


class LLMClient:
    def __init__(self, config: ClientConfig, model: str | None = None) -> None:
        self.config = config
        self.model = model
        self._policy = RetryPolicy(config.retries, config.retry_delay, config.max_retry_wait,
                                   config.retry_read_timeouts)
        self._secrets = [config.api_key, *(v for k, v in config.headers.items() if k.lower() in AUTH_HEADER_NAMES),
                         *url_secrets(config.endpoint)]
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        if config.api_key:
            self._session.headers["Authorization"] = f"Bearer {config.api_key}"
        self._session.headers.update(config.headers)
        self._environment = _environment_settings(self._session, config)

    def resolve_model(self) -> str:
        """The configured model, or else the first one the server lists (asked once)."""
        if self.model is None:
            models = self.list_models()
            if not models:
                raise ClientError(f"no model was given and {self._redact(models_url(self.config.endpoint))} lists none")
            self.model = models[0]
        return self.model

    def send(self, api_type: str, body: dict[str, Any]) -> Exchange:
        """One logical request with its retries; failures come back in the Exchange, never raised."""
        url, used = resolve_url(self.config.endpoint, api_type)
        request = dict(body)
        if used == "chat" and "prompt" in request:
            request = _prompt_as_chat(request)
        elif used == "completions" and "messages" in request:
            message = (
                f"the endpoint {self._redact(url)} only takes completions, but this test has chat messages: "
                "point the endpoint at the base URL (.../v1) or at .../v1/chat/completions"
            )
            return Exchange(False, used, request, error=ApiError("request", message))
        if request.get("model") is None:
            try:
                request = {"model": self.resolve_model(), **{k: v for k, v in request.items() if k != "model"}}
            except ClientError as exc:
                return Exchange(False, used, request, error=exc.error or ApiError("request", str(exc)))
        answer, attempts = self._with_retries("POST", url, request, used if request.get("stream") is True else None)
        return self._exchange(answer, attempts, used, request)

    def complete(self, prompt: str, **params: Any) -> TestResult:
        return self._adhoc("completions", params, prompt=prompt)

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> TestResult:
        return self._adhoc("chat", params, messages=messages)

    def list_models(self) -> list[str]:
        url = models_url(self.config.endpoint)
        answer, attempts = self._with_retries("GET", url, None, None)
        if answer.error is not None:
            raise ClientError(f"listing models at {self._redact(url)} failed: {describe(answer.error, len(attempts))}",
                              answer.error)
        try:
            ids = [entry["id"] for entry in json.loads(answer.payload)["data"]]
        except (ValueError, KeyError, TypeError):
            ids = None
        if ids is None or not all(isinstance(i, str) for i in ids):
            raw = excerpt(self._redact(answer.payload.decode("utf-8", errors="replace")), 200)
            raise ClientError(f"{self._redact(url)} did not answer with a model list (data[].id): {raw}")
        return ids

    def check_reachable(self) -> None:
        """Raise EndpointUnreachable unless the server answers at all and accepts our credentials."""
        try:
            url = models_url(self.config.endpoint)
            _target(url)  # a bad port only shows here; the messages below need the target
        except ValueError as exc:  # urllib's text names no secret; the URL may hold one
            raise EndpointUnreachable(f"The endpoint {self._redact(self.config.endpoint)} is not a valid URL: "
                                      f"{self._redact(str(exc))}.") from None
        timeout = min(PROBE_TIMEOUT, self.config.timeout)
        try:
            with self._quiet_insecure():
                response = self._session.get(url, timeout=timeout, allow_redirects=False, **self._environment)
        except requests.ReadTimeout:
            raise EndpointUnreachable(f"The LLM server at {self._redact(url)} accepted the connection but did "
                                      f"not answer within {timeout:g} s.") from None
        except requests.RequestException as exc:
            error = redact_error(network_error(exc, _target(url)), self._secrets)
            raise EndpointUnreachable(f"Cannot reach the LLM server at {self._redact(url)}: {error.message}.",
                                      error) from None
        if response.status_code in (401, 403):
            error = redact_error(http_error(response.status_code, response.content), self._secrets)
            raise EndpointUnreachable(f"The LLM server at {self._redact(url)} rejected the request: {describe(error)}",
                                      error)

    def close(self) -> None:
        self._session.close()

    def _adhoc(self, api_type: str, params: dict[str, Any], **source: Any) -> TestResult:
        model = params.pop("model", None)
        stream = bool(params.pop("stream", False))
        body = build_body(parameters=params, model=model, stream=stream, **source)
        return result_from_exchange(self.send(api_type, body), test_id="adhoc", test_name="adhoc", category="adhoc")

    def _with_retries(
        self, method: str, url: str, body: dict[str, Any] | None, stream_api: str | None
    ) -> tuple[_Answer, list[Attempt]]:
        """Attempts until one succeeds or the policy says stop; every attempt is recorded."""
        attempts: list[Attempt] = []
        for retry_index in range(self._policy.retries + 1):
            answer = self._attempt(method, url, body, stream_api)
            attempt = Attempt(number=retry_index + 1, status=answer.status, elapsed_s=answer.elapsed)
            attempts.append(attempt)
            if answer.error is None:
                break
            answer.error = redact_error(answer.error, self._secrets)
            decision = decide(answer.error, answer.headers, retry_index, self._policy)
            if decision.refusal:
                answer.error.message += f"; {decision.refusal}"
            attempt.error = excerpt(describe(answer.error), 300)
            if not decision.retry:
                break
            attempt.delay_s = decision.delay
            time.sleep(decision.delay)
        return answer, attempts

    def _attempt(self, method: str, url: str, body: dict[str, Any] | None, stream_api: str | None) -> _Answer:
        timeout = self.config.timeout
        deadline = time.monotonic() + timeout
        sent_ns = time.perf_counter_ns()
        started = time.perf_counter()

        def answer(**fields: Any) -> _Answer:
            return _Answer(elapsed=time.perf_counter() - started, **fields)

        try:
            with self._quiet_insecure():
                response = self._session.request(method, url, json=body, timeout=timeout, stream=True,
                                                 allow_redirects=False, **self._environment)
        except requests.ReadTimeout:
            return answer(error=ApiError("read_timeout", f"no answer within {timeout:g} s"))
        except _UNSENDABLE as exc:
            return answer(error=ApiError("request", f"the request could not be sent: {exc}"))
        except requests.RequestException as exc:
            return answer(error=network_error(exc, _target(url)))
        with response:
            status, headers = response.status_code, response.headers
            if 300 <= status < 400:
                target = redact_text(headers.get("Location") or "(no Location header)")
                message = f"redirected to {target}, not followed: set the endpoint to the final URL"
                return answer(status=status, headers=headers, error=ApiError("redirect", message, status))
            response.raw = _DeadlineReader(response.raw, deadline)
            if status == 200 and stream_api and not _is_json(headers):  # some servers ignore "stream"
                from .streaming import read_stream  # lazily: only streamed runs need it

                outcome = read_stream(response, stream_api, sent_ns, deadline)
                return answer(status=status, headers=headers, streamed=outcome, error=outcome.error)
            try:
                payload = b"".join(iter(lambda: response.raw.read1(READ_SIZE, decode_content=True), b""))
            except urllib3.exceptions.ReadTimeoutError:
                message = f"the response was not complete within the {timeout:g} s deadline"
                return answer(status=status, headers=headers, error=ApiError("deadline", message, status))
            except _BODY_READ_ERRORS as exc:
                return answer(status=status, headers=headers, error=broken_body(exc, status))
        error = http_error(status, payload) if status >= 300 else None
        return answer(status=status, headers=headers, payload=payload, error=error)

    def _exchange(self, answer: _Answer, attempts: list[Attempt], api_type: str, request: dict[str, Any]) -> Exchange:
        exchange = Exchange(False, api_type, request, status=answer.status, execution_time=answer.elapsed,
                            attempts=attempts, stream=answer.streamed is not None, error=answer.error)
        if answer.streamed is not None:  # a broken stream keeps its partial text and timings
            outcome = answer.streamed
            exchange.text, exchange.finish_reason = outcome.text, outcome.finish_reason
            exchange.prompt_tokens, exchange.completion_tokens = outcome.prompt_tokens, outcome.completion_tokens
            exchange.ttft, exchange.itl, exchange.e2e_latency = outcome.ttft, outcome.itl, outcome.e2e_latency
            if exchange.error is not None:
                exchange.error = redact_error(exchange.error, self._secrets)
        elif answer.error is None:
            exchange.error = parse_answer(exchange, answer.payload)
            if exchange.error is not None:
                exchange.error = redact_error(exchange.error, self._secrets)
                attempts[-1].error = excerpt(describe(exchange.error), 300)
        exchange.text = mask_secrets(exchange.text, self._secrets)  # before a failed check quotes the answer
        if exchange.error is not None:
            return exchange
        exchange.success = True
        fill_token_counts(exchange)
        if exchange.stream:
            from .streaming import tpot

            exchange.tpot = tpot(exchange.ttft, exchange.e2e_latency, exchange.completion_tokens)
        return exchange

    def _redact(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _quiet_insecure(self) -> contextlib.AbstractContextManager[Any]:
        """In insecure mode urllib3 warns on every request; the plugin warns once instead."""
        if self.config.verify is not False:
            return contextlib.nullcontext()
        return _ignoring(urllib3.exceptions.InsecureRequestWarning)


def _environment_settings(session: requests.Session, config: ClientConfig) -> dict[str, Any]:
    """Proxies and CA bundle from the environment, read once for the endpoint's host.

    requests reads them again on every request (scanning os.environ twice), which costs more than a fast local
    server takes to answer; every request of a client goes to one host, so once is enough.
    """
    try:
        merged = session.merge_environment_settings(config.endpoint, {}, None, config.verify, None)
    except ValueError:  # a malformed endpoint, which check_reachable reports in its own words
        merged = {"proxies": {}, "verify": config.verify}
    session.trust_env = False
    return {"proxies": merged["proxies"], "verify": merged["verify"]}


def _prompt_as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its prompt sent as one user message, for an endpoint that only takes chat."""
    return {
        ("messages" if key == "prompt" else key): [{"role": "user", "content": value}] if key == "prompt" else value
        for key, value in body.items()
    }


class _DeadlineReader:
    """``response.raw`` whose every read may block only until the attempt's deadline.

    requests' read timeout is only the gap between bytes, so a server sending a byte a second would
    never time out; shrinking the socket timeout to the time left before each read makes it total.
    Past the deadline a read fails the way a socket timeout does, so every reader handles one case.
    """

    def __init__(self, raw: Any, deadline: float) -> None:
        self._raw = raw
        self._deadline = deadline

    def read1(self, amt: int = -1, decode_content: bool | None = None) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise urllib3.exceptions.ReadTimeoutError(None, None, "the deadline has passed")  # type: ignore[arg-type]
        sock = getattr(self._raw.connection, "sock", None)
        if sock is not None:
            sock.settimeout(remaining)
        return self._raw.read1(amt, decode_content=decode_content)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _is_json(headers: Mapping[str, str]) -> bool:
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower() == "application/json"


def _target(url: str) -> str:
    """host:port for messages; never the userinfo a URL may carry."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


@contextlib.contextmanager
def _ignoring(category: type[Warning]) -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield
