"""Which failed attempts are worth another try, and how long to wait first.

The rules follow openai-python, the client most servers are tested against: 408, 409, 429 and 5xx
are transient, other 4xx are the caller's fault, ``x-should-retry`` lets the server overrule both,
and ``retry-after-ms`` / ``Retry-After`` say how long to wait (a wait of zero or less, such as a
date already past, gets our own backoff: retrying at once would hammer a server that is limiting us).

Two exceptions to the header's power: a rejected credential (401, 403, kind "auth") is never
retried, since asking again with the same key cannot succeed and may lock the key out. And a
failure after the request reached the server (a read timeout, a passed deadline, a body cut off
after the headers) is retried only on request, because the server may still be working on it and
a retry doubles the load being measured.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from ..result import ApiError
from .api_errors import CUT, SENT_RESET

BACKOFF_CAP = 30.0  # seconds: the longest backoff of our own, whatever the attempt number
RETRY_STATUSES = frozenset({408, 409, 429})
SENT_KINDS = frozenset({"read_timeout", "deadline"})  # the server got the request and may be busy with it


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # retries after the first attempt
    retry_delay: float = 1.0  # backoff base, seconds
    max_retry_wait: float = 120.0  # a server-requested wait beyond this fails at once
    retry_read_timeouts: bool = False


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    refusal: str | None = None  # why a retryable failure is not retried, worth telling the user


def status_is_transient(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """The status rule, unless the server said otherwise with ``x-should-retry``."""
    override = _header(headers, "x-should-retry")
    if override is not None and override.strip().lower() in ("true", "false"):
        return override.strip().lower() == "true"
    return status in RETRY_STATUSES or status >= 500


def may_have_run(error: ApiError) -> bool:
    """The request reached the server before it failed: sent again, it may be processed twice."""
    return error.kind in SENT_KINDS or (error.kind == "connection" and error.type in (CUT, SENT_RESET))


def is_retryable(error: ApiError, headers: Mapping[str, str] | None, policy: RetryPolicy) -> bool:
    if error.kind == "http" and error.status is not None:
        return status_is_transient(error.status, headers)
    if may_have_run(error):
        return policy.retry_read_timeouts
    if error.kind == "connection":
        return error.type != "tls"  # a certificate does not get better by asking again
    return False  # redirects, bad 200 bodies, broken streams, requests we refused to send


def retry_after(headers: Mapping[str, str] | None, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` first), or None if it did not say."""
    millis = _number(_header(headers, "retry-after-ms"))
    if millis is not None:
        return max(millis / 1000.0, 0.0)
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)


def backoff(retry_index: int, base: float, rand: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff, scaled down by up to a quarter so that clients spread out."""
    return float(min(base * 2**retry_index, BACKOFF_CAP) * (0.75 + 0.25 * rand()))


def decide(
    error: ApiError,
    headers: Mapping[str, str] | None,
    retry_index: int,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> RetryDecision:
    """Whether to try again after the ``retry_index``-th retry (0 after the first attempt), and when."""
    if retry_index >= policy.retries or not is_retryable(error, headers, policy):
        return RetryDecision(False)
    requested = retry_after(headers)
    if requested is None or requested <= 0:
        return RetryDecision(True, backoff(retry_index, policy.retry_delay, rand))
    if requested > policy.max_retry_wait:
        return RetryDecision(
            False,
            refusal=f"the server asked to wait {requested:g} s before retrying, more than the "
            f"{policy.max_retry_wait:g} s allowed (setting max_retry_wait): not waiting",
        )
    return RetryDecision(True, requested)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive lookup that works for plain dicts as well as requests' header mapping."""
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None
