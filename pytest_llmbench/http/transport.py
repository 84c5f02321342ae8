"""One HTTP attempt, from sending the request to the last byte, bounded by a total deadline (``watchdog.py``:
requests' own timeouts bound each socket operation, not the attempt). A streamed answer's body is read by the
process's reading loop where it can be (``reader.py``); the watchdog's shutdown reaches it there too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from ..result import ApiError
from . import arrival
from .api_errors import (
    BODY_READ_ERRORS,
    ERROR_BODY_LIMIT,
    SENT_RESET,
    broken_body,
    http_error,
    network_error,
    size_text,
)
from .reader import LOOP, Steps
from .redact import NO_SECRETS, Secrets
from .sse import READ_SIZE, StreamOutcome, read_stream
from .watchdog import WATCHDOG, Watch, watched_adapter

# Failures before anything went on the wire that no retry can fix: a bad URL, a body that is no JSON.
_UNSENDABLE = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
               requests.exceptions.InvalidHeader, requests.exceptions.InvalidJSONError)
_TIMEOUT_OPTION = "setting timeout"
CONNECT_TIMEOUT = 10.0  # seconds to open a connection: an address that never answers fails fast and is retried
MAX_RESPONSE_BYTES = 32 * 2**20  # decoded bytes of one answer, streamed or not


@dataclass
class Reply:
    """What one HTTP attempt got back, before it is judged a success or read as an answer."""

    elapsed: float  # seconds from sending to the answer's last byte ([DONE] for a stream)
    status: int | None = None
    headers: Mapping[str, str] | None = None
    payload: bytes = b""
    streamed: StreamOutcome | None = None
    error: ApiError | None = None


class Transport:
    """A requests session whose every attempt ends by its deadline; proxies and CA bundle read once."""

    def __init__(self, headers: Mapping[str, str], endpoint: str, verify: bool | str, *,
                 connect_timeout: float = CONNECT_TIMEOUT, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 secrets: Secrets = NO_SECRETS, connections: int = 10, direct: bool = False) -> None:
        """``direct``: never through the environment's proxies or CA bundle (an exporter beside the server)."""
        self.connect_timeout = connect_timeout
        self.max_response_bytes = max_response_bytes
        self.secrets = secrets  # masked in what the server sends back before any of it is cut
        self._session = requests.Session()
        self._session.headers.update(headers)
        adapter = watched_adapter(verify is False, connections)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        if direct:
            self._session.trust_env = False
            self._environment: dict[str, Any] = {"proxies": {}, "verify": verify}
        else:
            self._environment = _environment_settings(self._session, endpoint, verify)

    def attempt(self, method: str, url: str, body: Any, stream_api: str | None, timeout: float,
                headers: Mapping[str, str] | None = None) -> Reply:
        """One try; ``stream_api`` ("chat" or "completions") asks for a streamed answer to be read as SSE;
        ``headers`` go with this request alone (its traceparent), beside the session's."""
        return LOOP.run(self.attempt_steps(method, url, body, stream_api, timeout, headers))

    def attempt_steps(self, method: str, url: str, body: Any, stream_api: str | None, timeout: float,
                      headers: Mapping[str, str] | None = None) -> Steps[Reply]:
        """``attempt`` as steps: a streamed answer handed to the reading loop is yielded, and the steps go on
        once it has ended, on whatever thread drives them (``ReadingLoop.run``, or a sender's pool)."""
        deadline = time.monotonic() + timeout
        arrival.forget()
        sent_ns = time.perf_counter_ns()
        with WATCHDOG.watching(deadline) as watch:
            return (yield from self._attempt(method, url, body, stream_api, timeout, sent_ns, watch, headers))

    def close(self) -> None:
        self._session.close()

    def _attempt(self, method: str, url: str, body: Any, stream_api: str | None, timeout: float, sent_ns: int,
                 watch: Watch, headers: Mapping[str, str] | None = None) -> Steps[Reply]:
        def reply(**fields: Any) -> Reply:
            return Reply(elapsed=(time.perf_counter_ns() - sent_ns) / 1e9, **fields)

        def late() -> bool:  # a socket read timeout (as long as the whole attempt) may beat the watchdog
            return watch.expired or time.monotonic() >= watch.deadline

        try:
            response = self._send(method, url, body, timeout, headers)
        except requests.ConnectTimeout as exc:  # before the deadline check: the request never reached the server
            failure = network_error(exc, target(url))
            failure.message += f" within {min(self.connect_timeout, timeout):g} s (setting connect_timeout)"
            return reply(error=failure)
        except _UNSENDABLE as exc:
            return reply(error=ApiError("request", f"the request could not be sent: {exc}"))
        except requests.RequestException as exc:
            if late():
                return reply(error=ApiError("deadline", _past_deadline("no response came", timeout)))
            failure = network_error(exc, target(url))
            if watch.sent and failure.type == "reset" and method != "GET":  # the server had all of it: it may have
                # done the work, and a POST sent again may be processed twice
                failure.type, failure.message = SENT_RESET, f"{failure.message} after the whole request was sent"
            return reply(error=failure)
        sent_ns = arrival.request_sent_ns(sent_ns)  # timings start as the request went out, not as it was prepared
        with response:
            status, headers = response.status_code, response.headers
            if 300 <= status < 400:
                where = self.secrets.clip(headers.get("Location") or "(no Location header)", 300)
                message = f"redirected to {where}, not followed: set the endpoint to the final URL"
                return reply(status=status, headers=headers, error=ApiError("redirect", message, status))
            if status == 200 and stream_api and _is_event_stream(headers):  # some servers ignore "stream"
                reading = (response, stream_api, sent_ns, watch.deadline, self.max_response_bytes, self.secrets)
                handed = LOOP.hand_over(*reading)  # None: not a stream the process's reading loop can take
                if handed is None:
                    outcome = read_stream(*reading)
                else:
                    if not handed.ended.is_set():
                        yield handed
                    outcome = handed.result()
                if outcome.error is not None and (outcome.error.kind == "deadline" or late()):
                    outcome.error = outcome.failure("deadline", _past_deadline("the stream was not complete", timeout))
                elapsed = ((outcome.end_ns or time.perf_counter_ns()) - sent_ns) / 1e9  # [DONE], not the drain
                return Reply(elapsed, status, headers, streamed=outcome, error=outcome.error)
            limit = ERROR_BODY_LIMIT if status >= 300 else self.max_response_bytes + 1  # one more: past the cap
            try:
                payload, error = _read_body(response.raw, limit), None
            except BODY_READ_ERRORS as exc:
                payload, error = b"", broken_body(exc, status)
            if status < 300 and len(payload) > self.max_response_bytes:  # the rest is never read nor inflated
                message = f"response exceeded {size_text(self.max_response_bytes)} (setting max_response_bytes)"
                error = ApiError("too_large", message, status, body_excerpt=self.secrets.clip(
                    payload[:4096].decode("utf-8", "replace"), 500))
            if late():  # also when the body looks whole: one without a length ends when the watchdog closes it
                error = ApiError("deadline", _past_deadline("the response was not complete", timeout), status)
            if error is not None:
                return reply(status=status, headers=headers, error=error)
        error = http_error(status, payload, self.secrets) if status >= 300 else None
        return reply(status=status, headers=headers, payload=payload, error=error)

    def _send(self, method: str, url: str, body: Any, timeout: float,
              headers: Mapping[str, str] | None = None) -> requests.Response:
        """What ``Session.request`` does, less its per-request merging of the session's settings into empty ones
        (params, auth, a copy of the cookie jar, proxies again), which costs more than a fast local server's answer.

        The session's headers, cookies and hooks still go with every request, and its cookie jar takes what
        the server sets; proxies and CA bundle are those read once for the endpoint.
        """
        session = self._session
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, headers={**session.headers, **headers} if headers else session.headers,
                         json=body, cookies=session.cookies, hooks=session.hooks)
        return session.send(prepared, stream=True, allow_redirects=False, cert=None,
                            timeout=(min(self.connect_timeout, timeout), timeout), **self._environment)


def target(url: str) -> str:
    """host:port for messages; never the userinfo a URL may carry. Raises ValueError for a bad port."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _past_deadline(what: str, timeout: float) -> str:
    return f"{what} within the {timeout:g} s deadline ({_TIMEOUT_OPTION})"


def _read_body(raw: Any, limit: int) -> bytes:
    """The body, or its first ``limit`` decoded bytes (the rest is left unread and the connection closed).

    urllib3 (>= 2.6) inflates a compressed body only as far as each read asks, so a gzip bomb costs
    ``limit`` bytes of memory, never its inflated size.
    """
    parts: list[bytes] = []
    size = 0
    while size < limit:
        data = raw.read1(min(READ_SIZE, limit - size), decode_content=True)
        if not data:
            break
        parts.append(data)
        size += len(data)
    return b"".join(parts)


def _is_event_stream(headers: Mapping[str, str]) -> bool:
    """SSE, or no content type at all: anything else (JSON, an HTML error page) is read as a whole answer."""
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower() in ("text/event-stream", "")


def _environment_settings(session: requests.Session, endpoint: str, verify: bool | str) -> dict[str, Any]:
    """Proxies and CA bundle from the environment, read once for the endpoint's host.

    requests reads them again on every request (scanning os.environ twice), which costs more than a fast local
    server takes to answer; every request of a client goes to one host, so once is enough.
    """
    try:
        merged = session.merge_environment_settings(endpoint, {}, None, verify, None)
    except ValueError:  # a malformed endpoint, which check_reachable reports in its own words
        return {"proxies": {}, "verify": verify}
    session.trust_env = False
    return {"proxies": merged["proxies"], "verify": merged["verify"]}
