"""The rerank API: a query and documents in, each document's relevance score out.

vLLM, Jina and Cohere answer ``POST <base>/rerank`` with ``{"results": [{"index", "relevance_score"}]}``; Hugging
Face's TEI serves ``POST /rerank`` at the server's root and answers a bare list of ``{"index", "score"}``. Both are
read into one shape, ``ranking``: ``[{"index", "score"}]`` best first. The documents count as the request's inputs
(``input_count``), so batch size and inputs/s are measured as for embeddings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..result import ApiError, TestResult
from .api_errors import bad_response, missing_answer, parse_answer
from .embeddings import EMBEDDINGS_PATH
from .openai import PATHS, add_parameters, usage_count
from .redact import NO_SECRETS, Secrets

RERANK = "rerank"  # the api_type of a test with a query and documents
RERANK_PATH = "/rerank"


def rerank_urls(endpoint: str, path: str | None = None) -> tuple[str, ...]:
    """Where to POST, in the order to try: ``<base>/rerank`` (vLLM, Jina, Cohere), then ``/rerank`` at the root
    (TEI), tried when the first answers 404. A given ``path`` ("/rerank", "/v2/rerank") is the only one."""
    parts = urlsplit(endpoint)
    if path is not None:
        return (urlunsplit(parts._replace(path="/" + path.lstrip("/"), query="")),)
    base = parts.path.rstrip("/")
    for suffix in (*PATHS.values(), EMBEDDINGS_PATH, RERANK_PATH):
        if base.endswith(suffix):
            base = base.removesuffix(suffix)
            break
    first = urlunsplit(parts._replace(path=base + RERANK_PATH))
    root = urlunsplit(parts._replace(path=RERANK_PATH))
    return (first,) if first == root else (first, root)


def rerank_body(query: str, documents: Sequence[str], parameters: Mapping[str, Any] | None,
                model: str | None) -> dict[str, Any]:
    """The JSON body: the query, the documents in the test's order, and the test's parameters (``top_n`` ...)."""
    body: dict[str, Any] = {"model": model} if model else {}
    body["query"], body["documents"] = query, list(documents)
    add_parameters(body, parameters)
    return body


def read_rerank_body(result: TestResult, payload: bytes, secrets: Secrets = NO_SECRETS) -> ApiError | None:
    """Fill ``ranking`` from a 2xx rerank answer, or say why the body is no answer: an index that names no document
    sent, one named twice, or a score that is not a finite number fails the request (every check rests on them)."""
    data, broken = parse_answer(payload, secrets)
    if broken is not None:
        return broken
    entries = data if isinstance(data, list) else data.get("results") if isinstance(data, dict) else None
    usage: dict[str, Any] = data["usage"] if isinstance(data, dict) and isinstance(data.get("usage"), dict) else {}
    if not isinstance(entries, list) or not entries:
        return missing_answer("the response has no results (a list of scored documents)", data, payload, secrets)
    sent = len(result.request.get("documents") or ())
    ranking = _ranking(entries, sent)
    if isinstance(ranking, str):
        return bad_response(ranking, payload, secrets)
    result.api_response = data
    result.ranking, result.input_count = ranking, sent
    result.prompt_tokens = usage_count(usage.get("prompt_tokens", usage.get("total_tokens")))
    return None


def _ranking(entries: list[Any], sent: int) -> list[dict[str, Any]] | str:
    seen: set[int] = set()
    ranking = []
    for position, entry in enumerate(entries):
        entry = entry if isinstance(entry, dict) else {}
        index = entry.get("index")
        score = entry.get("relevance_score", entry.get("score"))
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < sent:
            return f"results[{position}].index {index!r} names none of the {sent} documents sent"
        if index in seen:
            return f"results[{position}].index {index} is scored twice"
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            return f"results[{position}] has no finite relevance_score (or score)"
        seen.add(index)
        ranking.append({"index": index, "score": float(score)})
    return sorted(ranking, key=lambda item: -item["score"])
