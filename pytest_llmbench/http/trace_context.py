"""W3C trace context for each request: a ``traceparent`` header with a trace id of its own.

With the trace id in the result, a request's spans on the server (vLLM's ``--otlp-traces-endpoint``, a traced
gateway) can be found from the test that sent it, and the plugin's own span (``session/tracing.py``) is their
parent: the header's parent id is the request span's id. A ``traceparent`` the user set (``--llmbench-header``)
wins: it is sent unchanged and its ids are the ones recorded.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping

HEADER = "traceparent"
_VALID = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_IDS = random.Random(os.urandom(16))  # ids need to be unique, not secret: a seeded generator, not the kernel's


def new_ids() -> tuple[str, str]:
    """(trace id, span id) in lowercase hex, never all zeros (W3C: such ids are invalid)."""
    return f"{_IDS.getrandbits(128) or 1:032x}", f"{_IDS.getrandbits(64) or 1:016x}"


def header(trace_id: str, span_id: str) -> str:
    """Version 00, sampled: a server that traces at all keeps the request's spans."""
    return f"00-{trace_id}-{span_id}-01"


def users(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The ids of a ``traceparent`` among the user's own headers, or None; a malformed one is sent but not read."""
    for name, value in headers.items():
        if name.lower() == HEADER:
            match = _VALID.fullmatch(value.strip().lower())
            return (match[1], match[2]) if match else None
    return None


def for_request(user_headers: Mapping[str, str], enabled: bool) -> tuple[tuple[str, str] | None, dict[str, str]]:
    """(ids to record, headers to add) for one request: the user's own traceparent, a new one, or none."""
    if any(name.lower() == HEADER for name in user_headers):
        return users(user_headers), {}
    if not enabled:
        return None, {}
    ids = new_ids()
    return ids, {HEADER: header(*ids)}
