"""HTTP to an OpenAI-compatible server: one logical request, its retries, and what came back.

Plain requests, no pytest, so the same client serves the JSON items, ordinary tests and the judge.
Each attempt is recorded (retries are never silent), each attempt has a total deadline that holds
against a server trickling bytes, POSTs never follow redirects, and no credential ever reaches a
result, a message or an exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .._version import __version__
from ..exceptions import ClientError, EndpointUnreachable
from ..jsonbound import loads_bounded
from ..result import ApiError, Attempt, TestResult, now_iso, tokens_per_second
from .api_errors import clip, describe
from .embeddings import EMBEDDINGS, embeddings_body, embeddings_url, read_embeddings_body
from .openai import (
    PATHS,
    asked_tokens,
    build_body,
    fill_token_counts,
    models_url,
    prompt_as_chat,
    read_completion_body,
    resolve_url,
)
from .reader import LOOP, Steps
from .reasoning import streamed as streamed_reasoning
from .redact import Secrets, header_secrets, url_secrets
from .rerank import RERANK, read_rerank_body, rerank_urls
from .responses import RESPONSES, read_responses_body
from .retry import RetryPolicy, decide, may_have_run
from .server_timing import join as join_server_timing
from .server_timing import with_request_fields
from .sse import tpot, unfinished
from .trace_context import for_request as trace_for_request
from .transport import CONNECT_TIMEOUT, MAX_RESPONSE_BYTES, Reply, Transport, target

USER_AGENT = f"pytest-llmbench/{__version__}"
_READERS = {EMBEDDINGS: read_embeddings_body, RERANK: read_rerank_body}  # the APIs that answer no text
PROBE_TIMEOUT = 10.0  # seconds: check_reachable's whole deadline, so a dead or trickling host fails fast


@dataclass
class ClientConfig:
    endpoint: str  # ".../v1", ".../v1/completions" or ".../v1/chat/completions"
    api_key: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may carry credentials too
    timeout: float = 600.0  # TOTAL deadline per attempt, seconds
    retries: int = RetryPolicy.retries  # retries after the first attempt
    retry_delay: float = RetryPolicy.retry_delay  # backoff base, seconds
    max_retry_wait: float = RetryPolicy.max_retry_wait  # a Retry-After beyond this fails at once
    retry_read_timeouts: bool = RetryPolicy.retry_read_timeouts
    verify: bool | str = True  # False = insecure, str = CA bundle path
    connect_timeout: float = CONNECT_TIMEOUT  # seconds to open a connection, within the total deadline
    max_response_bytes: int = MAX_RESPONSE_BYTES  # decoded bytes of one answer; past it the answer fails
    secrets: tuple[str, ...] = field(default=(), repr=False)  # more values to mask (the session's other ones)
    connections: int = 10  # connections kept open: at least the requests in flight (the plugin's concurrency)
    server_timing: bool = False  # ask servers for their per-request times (request fields some servers refuse)
    traceparent: bool = True  # a W3C traceparent header with a trace id of its own on every request
    rerank_path: str | None = None  # where rerank requests go on the endpoint's server; None: found (rerank.py)

    def __post_init__(self) -> None:
        """Reject settings no request could honour, naming the setting (NaN fails every check too)."""
        if not (isinstance(self.retries, int) and self.retries >= 0):
            raise ValueError(f"retries must be a whole number, 0 or more; got {self.retries!r}")
        for name in ("timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds; got {getattr(self, name)!r}")
        if not (isinstance(self.max_response_bytes, int) and self.max_response_bytes > 0):
            raise ValueError(f"max_response_bytes must be a whole number above 0; got {self.max_response_bytes!r}")
        for name in ("retry_delay", "max_retry_wait"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be 0 seconds or more; got {getattr(self, name)!r}")


class LLMClient:
    def __init__(self, config: ClientConfig, model: str | None = None) -> None:
        self.config = config
        self.model = model
        self._policy = RetryPolicy(config.retries, config.retry_delay, config.max_retry_wait,
                                   config.retry_read_timeouts)
        self._secrets = Secrets([config.api_key, *header_secrets(config.headers), *url_secrets(config.endpoint),
                                 *config.secrets])
        headers = {"User-Agent": USER_AGENT}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._transport = Transport({**headers, **config.headers}, config.endpoint, config.verify,
                                    connect_timeout=config.connect_timeout,
                                    max_response_bytes=config.max_response_bytes, secrets=self._secrets,
                                    connections=config.connections)
        self._urls: dict[str, tuple[str, str]] = {}
        self.listed: list[dict[str, Any]] | None = None  # the last GET /v1/models answer's entries

    @property
    def secrets(self) -> Secrets:
        """Every value this client masks: its key, credential headers, URL credentials and the session's others."""
        return self._secrets

    def resolve_model(self) -> str:
        """The configured model, or else the first one the server lists (asked once)."""
        if self.model is None:
            models = [entry["id"] for entry in self.listed] if self.listed is not None else self.list_models()
            if not models:
                raise ClientError(f"no model was given and {self._redact(models_url(self.config.endpoint))} lists none")
            self.model = models[0]
        return self.model

    def send(self, api_type: str, body: dict[str, Any]) -> TestResult:
        """One logical request with its retries, as a result without the test's identity (the caller adds it);
        failures come back in the result, never raised."""
        return LOOP.run(self.send_steps(api_type, body))

    def send_steps(self, api_type: str, body: dict[str, Any]) -> Steps[TestResult]:
        """``send`` as steps (``transport.Transport.attempt_steps``): a sender that drives them needs no thread
        while the reading loop reads the answer."""
        if api_type == RERANK:
            return (yield from self._rerank(body))
        if api_type not in self._urls:
            self._urls[api_type] = ((embeddings_url(self.config.endpoint), api_type) if api_type == EMBEDDINGS
                                    else resolve_url(self.config.endpoint, api_type))
        url, used = self._urls[api_type]
        return (yield from self._post(url, used, body))

    def _post(self, url: str, used: str, body: dict[str, Any]) -> Steps[TestResult]:
        """The request to ``url`` in the shape ``used``, with its retries."""
        request = dict(body)
        if used == "chat" and "prompt" in request:
            request = prompt_as_chat(request)
        elif used == "completions" and "messages" in request:
            message = (
                f"the endpoint {self._redact(url)} only takes completions, but this test has chat messages: "
                "point the endpoint at the base URL (.../v1) or at .../v1/chat/completions"
            )
            return _finished(TestResult(api_type=used, request=request), ApiError("request", message))
        if self.config.server_timing and used not in (EMBEDDINGS, RERANK):
            request = with_request_fields(request)
        if request.get("model") is None:
            try:
                request = {"model": self.resolve_model(), **{k: v for k, v in request.items() if k != "model"}}
            except ClientError as exc:
                error = exc.error or ApiError("request", str(exc))
                return _finished(TestResult(api_type=used, request=request), error)
        trace, headers = trace_for_request(self.config.headers, self.config.traceparent)
        reply, attempts = yield from self._with_retries("POST", url, request,
                                                    used if request.get("stream") is True else None, headers)
        if reply.error is not None and reply.error.status == 404 and used == EMBEDDINGS:
            reply.error.message += (f" (POST {self._redact(url)}: does this server serve embeddings? vLLM does for "
                                    "a pooling model, e.g. started with --runner pooling)")
        elif reply.error is not None and reply.error.status == 404 and used in PATHS:  # what was hit, and the other
            other = resolve_url(url.rsplit(PATHS[used], 1)[0], "completions" if used == "chat" else "chat")[0]
            reply.error.message += (f" (POST {self._redact(url)}; check the endpoint's path, or whether this "
                                    f"server serves the other API, {self._redact(other)})")
        result = self._result(reply, attempts, used, request)
        result.trace_id, result.span_id = trace or (None, None)
        return result

    def _rerank(self, body: dict[str, Any]) -> Steps[TestResult]:
        """A rerank request where this server serves them: ``<base>/rerank``, else (answered 404) ``/rerank`` at the
        root as TEI serves it, remembered once one answered."""
        if RERANK in self._urls:
            return (yield from self._post(self._urls[RERANK][0], RERANK, body))
        candidates = rerank_urls(self.config.endpoint, self.config.rerank_path)
        for n, url in enumerate(candidates):
            result = yield from self._post(url, RERANK, body)
            if result.error is None or result.error.status != 404:
                self._urls[RERANK] = (url, RERANK)
                return result
            if n == len(candidates) - 1:
                tried = ", ".join(self._redact(url) for url in candidates)
                result.error.message += f" (POST {tried}: does this server rerank? see --llmbench-rerank-path)"
                result.error_message = describe(result.error, result.attempts)
        return result

    def complete(self, prompt: str, **params: Any) -> TestResult:
        return self._adhoc("completions", params, prompt=prompt)

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> TestResult:
        return self._adhoc("chat", params, messages=messages)

    def embed(self, inputs: str | list[str], **params: Any) -> TestResult:
        """One embeddings request (``result.vectors`` holds the vectors, in input order)."""
        model = params.pop("model", None)
        result = self.send(EMBEDDINGS, embeddings_body(inputs, params, model))
        result.test_id = result.test_name = result.category = "adhoc"
        return result

    def list_models(self) -> list[str]:
        url = models_url(self.config.endpoint)
        reply, attempts = LOOP.run(self._with_retries("GET", url, None, None))
        if reply.error is not None:
            raise ClientError(f"listing models at {self._redact(url)} failed: {describe(reply.error, len(attempts))}",
                              reply.error)
        entries = _model_entries(reply.payload)
        if entries is None:
            raw = self._secrets.clip(reply.payload[:4096].decode("utf-8", errors="replace"), 200)
            raise ClientError(f"{self._redact(url)} did not answer with a model list (data[].id): {raw}")
        self.listed = entries
        return [entry["id"] for entry in entries]

    def post_once(self, url: str, body: dict[str, Any], timeout: float) -> Reply:
        """One POST beside the completions API (a tokenizer's), with the session's credentials, a total deadline
        and no retry; the error, if any, has its secrets masked."""
        reply = self._transport.attempt("POST", url, body, None, timeout)
        if reply.error is not None:
            reply.error = self._secrets.redact_error(reply.error)
        return reply

    def check_reachable(self) -> None:
        """Raise EndpointUnreachable unless the server answers at all and accepts our credentials.

        One attempt with a total deadline of PROBE_TIMEOUT (or the configured timeout, if shorter), so a
        server that trickles bytes cannot stall start-up. A redirect counts as unreachable: requests are
        never redirected, so every one of them would fail.
        """
        if self.config.endpoint.split("://", 1)[0].lower() not in ("http", "https"):
            shown = self._redact(self.config.endpoint)
            raise EndpointUnreachable(f"The endpoint {shown} has no http:// or https:// in front: try "
                                      f"setting endpoint http://{shown.split('://', 1)[-1]}")
        try:
            url = models_url(self.config.endpoint)
            target(url)  # a bad port only shows here; the messages below need the target
        except ValueError as exc:  # urllib's text names no secret; the URL may hold one
            raise EndpointUnreachable(f"The endpoint {self._redact(self.config.endpoint)} is not a valid URL: "
                                      f"{self._redact(str(exc))}.") from None
        timeout = min(PROBE_TIMEOUT, self.config.timeout)
        reply = self._transport.attempt("GET", url, None, None, timeout)
        if reply.error is None:
            self.listed = _model_entries(reply.payload)  # kept: the header line and the default model read it
            return
        if reply.error.kind == "http":  # any answer but these means it is there
            if reply.error.status == 404 and not urlsplit(url).path.rstrip("/").endswith("/v1/models"):
                base = self._redact(url.rsplit("/models", 1)[0])
                raise EndpointUnreachable(f"GET {self._redact(url)} answered HTTP 404: an OpenAI-compatible API "
                                          f"lives under /v1; try setting endpoint {base}/v1", reply.error)
            return
        error = self._secrets.redact_error(reply.error)
        where = self._redact(url)
        if error.kind == "auth":
            hinted = auth_hint(error, self.sends_key)
            raise EndpointUnreachable(f"The LLM server at {where} refused: {describe(hinted)}", error)
        if error.kind == "deadline":
            message = f"The LLM server at {where} accepted the connection but did not answer within {timeout:g} s."
        elif error.kind == "redirect":
            message = f"The LLM server at {where} answered HTTP {error.status}: {error.message}."
        else:
            message = f"Cannot reach the LLM server at {where}: {error.message}."
        raise EndpointUnreachable(message, error)

    @property
    def sends_key(self) -> bool:
        """Whether requests carry a credential: an API key, or an Authorization header of the user's own."""
        return bool(self.config.api_key) or any(n.lower() == "authorization" for n in self.config.headers)

    def close(self) -> None:
        self._transport.close()

    def _adhoc(self, api_type: str, params: dict[str, Any], **source: Any) -> TestResult:
        model = params.pop("model", None)
        stream = bool(params.pop("stream", False))
        body = build_body(parameters=params, model=model, stream=stream, **source)
        result = self.send(api_type, body)
        result.test_id = result.test_name = result.category = "adhoc"
        return result

    def _with_retries(
        self, method: str, url: str, body: dict[str, Any] | None, stream_api: str | None,
        headers: dict[str, str] | None = None,
    ) -> Steps[tuple[Reply, list[Attempt]]]:
        """Attempts until one succeeds or the policy says stop; every attempt is recorded."""
        attempts: list[Attempt] = []
        resent = False
        for retry_index in range(self._policy.retries + 1):
            reply = yield from self._transport.attempt_steps(method, url, body, stream_api, self.config.timeout,
                                                             headers)
            attempt = Attempt(number=retry_index + 1, status=reply.status, elapsed_s=reply.elapsed,
                              possibly_duplicated=resent)
            attempts.append(attempt)
            if reply.error is None:
                break
            reply.error = self._secrets.redact_error(reply.error)
            if reply.error.kind == "auth":
                reply.error = auth_hint(reply.error, self.sends_key)
            decision = decide(reply.error, reply.headers, retry_index, self._policy)
            if decision.refusal:
                reply.error.message += f"; {decision.refusal}"
            attempt.error = clip(describe(reply.error), 300)
            if not decision.retry:
                break
            resent = resent or may_have_run(reply.error)  # the server may have done the work already: say so
            attempt.delay_s = decision.delay
            time.sleep(decision.delay)
        return reply, attempts

    def _result(self, reply: Reply, attempts: list[Attempt], api_type: str, request: dict[str, Any]) -> TestResult:
        outcome = reply.streamed
        result = TestResult(api_type=api_type, request=request, execution_time=reply.elapsed, attempt_log=attempts,
                            stream=outcome is not None)
        error = reply.error
        if outcome is not None:  # a broken stream keeps its partial text and timings
            result.response_text, result.finish_reason = outcome.text, outcome.finish_reason
            result.prompt_tokens, result.completion_tokens = outcome.prompt_tokens, outcome.completion_tokens
            result.cached_tokens = outcome.cached_tokens
            result.ttft, result.itl, result.e2e_latency = outcome.ttft, outcome.itl, outcome.e2e_latency
            result.ttfot, result.time_to_second_token = outcome.ttfot, outcome.time_to_second_token
            result.reasoning_text, result.reasoning_tokens = streamed_reasoning(outcome.reasoning_parts,
                                                                                outcome.reasoning_tokens)
            result.tool_calls, result.response_id = outcome.tool_calls.calls(), outcome.response_id
            result.timing_degraded_reason = outcome.timing_degraded
            result.timing_degraded = outcome.timing_degraded is not None
            if error is None and (error := unfinished(outcome, asked_tokens(request))) is not None:
                attempts[-1].error = clip(describe(error), 300)
        elif error is None:
            reader = _READERS.get(api_type) or (read_responses_body if api_type == RESPONSES else read_completion_body)
            error = reader(result, reply.payload, self._secrets)
            if error is not None:
                error = self._secrets.redact_error(error)
                attempts[-1].error = clip(describe(error), 300)
        # Before a failed check quotes the answer: a model may repeat a key it was shown.
        result.response_text = self._secrets.mask(result.response_text)
        result.reasoning_text = self._secrets.mask(result.reasoning_text)
        result.api_response = self._secrets.mask(result.api_response)
        if error is None and api_type in _READERS:  # embeddings, rerank: no text, nothing streamed
            result.e2e_latency = result.execution_time
            join_server_timing(result, result.api_response, reply.headers)
        elif error is None:
            fill_token_counts(result, None if outcome is None else len(outcome.content_ns), asked_tokens(request),
                              0 if outcome is None else outcome.reasoning_tokens)
            if outcome is not None:
                result.tpot = tpot(result.ttft, result.e2e_latency, result.completion_tokens)
            else:  # not streamed: the whole answer arrived at once, so end to end is the latency itself
                result.e2e_latency = result.execution_time
            join_server_timing(result, result.api_response if outcome is None else outcome.server_reports,
                               reply.headers)
        return _finished(result, error)

    def _redact(self, text: str) -> str:
        return self._secrets.redact(text)


def auth_hint(error: ApiError, key_sent: bool) -> ApiError:
    """A 401/403 that says which mistake it is: no key sent, or the key sent refused, and how to set one."""
    if key_sent:
        hint = ("the API key sent was refused: check LLMBENCH_API_KEY or OPENAI_API_KEY (or setting api_key, "
                "setting headers)")
    else:
        hint = ("no API key was sent and the server wants one: set LLMBENCH_API_KEY or OPENAI_API_KEY (or "
                "setting api_key)")
    if hint not in error.message:
        error.message = f"{error.message}; {hint}"
    return error


def _model_entries(payload: bytes) -> list[dict[str, Any]] | None:
    """The entries of a ``GET /v1/models`` answer, each with a string ``id``; None for any other answer."""
    try:
        entries = loads_bounded(payload)["data"]
        if all(isinstance(entry["id"], str) for entry in entries):
            return list(entries)
    except (ValueError, KeyError, TypeError):
        pass
    return None


def _finished(result: TestResult, error: ApiError | None) -> TestResult:
    """The figures every result carries once its request is over: success, attempts, speed, stamp and model."""
    result.error = error
    result.success = error is None
    result.attempts = len(result.attempt_log)
    result.possibly_duplicated = any(attempt.possibly_duplicated for attempt in result.attempt_log)
    result.error_message = describe(error, result.attempts) if error is not None else None
    result.tokens_per_second = tokens_per_second(result.completion_tokens, result.execution_time)
    if result.input_count and result.execution_time > 0:  # an embeddings request: what it carried per second
        result.inputs_per_second = result.input_count / result.execution_time
        if result.prompt_tokens:
            result.input_tokens_per_second = result.prompt_tokens / result.execution_time
    result.timestamp = now_iso()
    result.model = result.request.get("model")
    return result
