"""One test to send, as suite.py and generated.py build it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .workload.spec import Shape, Turn


@dataclass(frozen=True)
class TestCase:
    """One prompt to send; defaults are already merged in, so consumers never look at the suite."""

    __test__ = False  # keep pytest from collecting this class

    id: str
    name: str
    category: str
    prompt: str | None
    messages: tuple[dict[str, Any], ...] | None
    parameters: dict[str, Any]
    reasoning_type: str | None = None
    stream: bool | None = None  # per-test override of --llmbench-stream
    expected: dict[str, Any] | None = None
    slo: dict[str, Any] | None = None
    index: int = 0
    suite_id: str = ""
    description: str | None = None
    metadata: dict[str, Any] | None = None
    shape: Shape | None = None  # a generated request: its prompt is built to these token counts when sent
    turns: tuple[Turn, ...] | None = None  # a conversation: user turns sent one after another, answers kept
    think_time_s: float = 0.0  # between a turn's answer and the next turn
    send_at_s: float | None = None  # a trace's send time, seconds from the replay's start
    input: str | tuple[str, ...] | None = None  # an embeddings test: one text or a batch of them
    query: str | None = None  # a rerank test: the query its documents are ranked for
    documents: tuple[str, ...] | None = None
    api: str | None = None  # "responses": the prompt or messages go to OpenAI's Responses API

    @property
    def api_type(self) -> str:
        if self.input is not None:
            return "embeddings"
        if self.query is not None:
            return "rerank"
        if self.api is not None:
            return self.api
        return "chat" if self.messages is not None else "completions"

