"""Thinking kept apart from the answer: what reasoning models send beside it, and when the answer began.

Reasoning text comes in ``reasoning_content`` (vLLM, DeepSeek, llama.cpp) or ``reasoning`` (SGLang, OpenRouter)
beside ``content``, in a stream's deltas and in a whole answer's message. It is a generated token like any other,
so it counts for TTFT; the answer begins with the first content (TTFOT, GuideLLM's time to first output token).
Checks read the answer; ``expected.reasoning`` reads the thinking. ``reasoning_tokens`` is the server's
``usage.completion_tokens_details.reasoning_tokens``, else the number of reasoning chunks (about one token each)
or, for a whole answer, an estimate from its text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..result import TestResult, estimate_tokens


def reasoning_of(message: Mapping[str, Any]) -> str:
    """The thinking text of a delta or a message, under either name servers use."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def streamed(parts: list[str], reported: int) -> tuple[str, int | None]:
    """(thinking text, reasoning tokens) of a stream: the server's count (``openai.reasoning_tokens``, 0 when it
    sent none), else one per reasoning chunk; None without any thinking."""
    return "".join(parts), reported or len(parts) or None


def from_message(result: TestResult, message: Mapping[str, Any], reported: int) -> None:
    """A whole answer's thinking, and its count: the server's, else estimated from the text."""
    result.reasoning_text = reasoning_of(message)
    result.reasoning_tokens = reported or estimate_tokens(result.reasoning_text) or None
