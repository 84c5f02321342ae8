"""``--llmbench-embedding-model``: each changed answer beside the baseline's by the cosine of their embeddings.

Text similarity says how many words moved; a cosine from an embedding model says whether the meaning did ("Paris"
against "The capital is Paris" is far in characters, near in meaning). Only changed answers are embedded (the same
texts have a cosine of 1), in batches, after the last test and within a total deadline, so a slow or dead
embeddings server costs the run at most that and the figures it could not give are counted, not invented.
"""

from __future__ import annotations

import time
from typing import Any

from ..checks.embeddings import cosine
from ..http.client import LLMClient
from ..http.embeddings import EMBEDDINGS, embeddings_body
from ..metrics.drift import BaselineAnswers

BATCH = 32  # answer pairs per request: 64 texts
DEADLINE_S = 120.0  # no embedding request starts after this many seconds
REQUEST_DEADLINE_S = 30.0  # each request's total deadline (its client's timeout, no retry): at most 150 s in all


def embed_pending(answers: BaselineAnswers, client: LLMClient, model: str,
                  deadline_s: float = DEADLINE_S) -> dict[str, Any]:
    """Fill ``cosine`` into each pending changed answer's drift; returns the batch's ``drift.semantic`` section."""
    pending, answers.pending = answers.pending, []
    ends = time.monotonic() + deadline_s
    done, problem = 0, None
    for start in range(0, len(pending), BATCH):
        if time.monotonic() > ends:
            problem = f"the embeddings took longer than {deadline_s:g} s together"
            break
        chunk = pending[start:start + BATCH]
        texts = [text for _, before, after in chunk for text in (before or " ", after or " ")]
        result = client.send(EMBEDDINGS, embeddings_body(texts, {}, model))
        if not result.success:
            problem = result.error_message or "the embeddings request failed"
            break
        for (drift, _, _), (a, b) in zip(chunk, zip(result.vectors[::2], result.vectors[1::2], strict=True)):
            value = cosine(a, b)
            drift["cosine"] = None if value is None else round(value, 4)
            done += value is not None
    return {"model": model, "changed": len(pending), "embedded": done, "problem": problem}
