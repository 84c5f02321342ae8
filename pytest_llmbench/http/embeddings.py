"""The embeddings API (``POST /v1/embeddings``): where it goes, the body, and reading vectors out of an answer.

An embeddings test has no text to stream and no answer to read: what it returns is one vector per input, which
the checks (checks/embeddings.py) compare, and what it costs is latency per batch of inputs. The vectors stay in
memory for the checks and are never written: a 4,096-dimension vector is ~80 KB of JSON per input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..result import ApiError, TestResult
from .api_errors import bad_response, missing_answer, parse_answer
from .openai import PATHS, add_parameters, usage_count
from .redact import NO_SECRETS, Secrets

EMBEDDINGS = "embeddings"  # the api_type of a test with an ``input``
EMBEDDINGS_PATH = "/embeddings"
MAX_DIMENSIONS = 65_536  # no embedding model has more; a longer vector is a broken or hostile answer


def embeddings_url(endpoint: str) -> str:
    """``<base>/embeddings``: an endpoint fixed on /completions or /chat/completions names its base too."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    for suffix in (*PATHS.values(), EMBEDDINGS_PATH):
        if path.endswith(suffix):
            path = path.removesuffix(suffix)
            break
    return urlunsplit(parts._replace(path=path + EMBEDDINGS_PATH))


def embeddings_body(inputs: str | Sequence[str], parameters: Mapping[str, Any] | None, model: str | None
                    ) -> dict[str, Any]:
    """The JSON body: ``input`` as the test gave it (a string or a list), float vectors, the test's parameters."""
    body: dict[str, Any] = {"model": model} if model else {}
    body["input"] = inputs if isinstance(inputs, str) else list(inputs)
    body["encoding_format"] = "float"  # the checks read numbers; base64 would need the dtype the server chose
    add_parameters(body, parameters)
    return body


def input_count(request: Mapping[str, Any]) -> int:
    """How many inputs a request embeds: its batch size."""
    value = request.get("input")
    return len(value) if isinstance(value, list) else 1


def read_embeddings_body(result: TestResult, payload: bytes, secrets: Secrets = NO_SECRETS) -> ApiError | None:
    """Fill the result from a 2xx embeddings answer (vectors in input order, dimensions, prompt tokens), or say why
    the body is no answer: a vector missing, of another length than the others, or holding anything but finite
    numbers fails the request, since every check and figure would rest on it."""
    data, broken = parse_answer(payload, secrets)
    if broken is not None:
        return broken
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        return missing_answer("the response has no data (a list of embeddings)", data, payload, secrets)
    vectors = _vectors(entries)
    if isinstance(vectors, str):
        return bad_response(vectors, payload, secrets)
    asked = input_count(result.request)
    if len(vectors) != asked:
        return bad_response(f"the response has {len(vectors)} embeddings for {asked} inputs", payload, secrets)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    result.vectors = tuple(vectors)
    result.input_count, result.embedding_dimensions = asked, len(vectors[0])
    result.prompt_tokens = usage_count(usage.get("prompt_tokens"))
    return None


def _vectors(entries: list[Any]) -> list[tuple[float, ...]] | str:
    """The vectors ordered by their ``index`` (servers may answer out of order), or what is wrong with them."""
    ordered: dict[int, tuple[float, ...]] = {}
    for position, entry in enumerate(entries):
        vector = entry.get("embedding") if isinstance(entry, dict) else None
        index = entry.get("index", position) if isinstance(entry, dict) else position
        if not isinstance(index, int) or isinstance(index, bool) or index in ordered:
            return f"data[{position}] has no index of its own"
        if not isinstance(vector, list) or not vector or len(vector) > MAX_DIMENSIONS:
            return f"data[{position}].embedding is not a list of 1 to {MAX_DIMENSIONS} numbers"
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in vector):
            return f"data[{position}].embedding holds something that is not a finite number"
        ordered[index] = tuple(float(x) for x in vector)
    if sorted(ordered) != list(range(len(ordered))):
        return "the embeddings' indexes are not 0 to n-1"
    vectors = [ordered[i] for i in range(len(ordered))]
    if len({len(vector) for vector in vectors}) > 1:
        return "the embeddings have different dimensions"
    return vectors
