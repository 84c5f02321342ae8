"""A chat server that answers with tool calls, as OpenAI and vLLM send them: whole, or streamed in fragments.

``calls`` maps a substring of the last user message to the calls to answer with, each ``(name, arguments)``
where arguments is the exact text the "model" wrote (it may be broken JSON on purpose). A streamed call goes out
as OpenAI streams it: a first delta with index, id and name, then the arguments in ``FRAGMENT``-character pieces,
calls interleaved, and ``finish_reason: "tool_calls"``. Messages matching no key get ``text`` as a plain answer;
a conversation whose last messages are tool results gets ``final`` with those results in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response

FRAGMENT = 5


@dataclass
class ToolStub:
    calls: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    text: str = "no tool needed"
    final: str = "the tools said: {}"
    id_prefix: str = "call_"
    requests: list[dict[str, Any]] = field(default_factory=list)

    def install(self, httpserver: Any) -> str:
        httpserver.expect_request("/v1/models").respond_with_json(
            {"object": "list", "data": [{"id": "tool-model", "object": "model"}]})
        httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(self._answer)
        url: str = httpserver.url_for("/v1")
        return url

    def _answer(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.requests.append(body)
        asked = str(body["messages"][-1].get("content"))
        calls = next((c for key, c in self.calls.items() if key in asked), None)
        text = self.text
        if body["messages"][-1].get("role") == "tool":
            results = [m["content"] for m in body["messages"] if m.get("role") == "tool"]
            calls, text = None, self.final.format("; ".join(results))
        if body.get("stream"):
            return Response(self._stream(calls, text), content_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else text}
        if calls:
            message["tool_calls"] = [{"id": f"{self.id_prefix}{n}", "type": "function",
                                      "function": {"name": name, "arguments": arguments}}
                                     for n, (name, arguments) in enumerate(calls)]
        usage = {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        return Response(json.dumps({"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}),
                        content_type="application/json")

    def _stream(self, calls: list[tuple[str, str]] | None, text: str) -> Iterator[bytes]:
        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(chunk)}\n\n".encode()

        yield event({"role": "assistant"})
        if not calls:
            yield event({"content": text}, "stop")
        else:
            for n, (name, _) in enumerate(calls):
                yield event({"tool_calls": [{"index": n, "id": f"{self.id_prefix}{n}", "type": "function",
                                             "function": {"name": name, "arguments": ""}}]})
            longest = max(len(arguments) for _, arguments in calls)
            for start in range(0, longest, FRAGMENT):  # the calls' fragments interleaved, as parallel calls stream
                for n, (_, arguments) in enumerate(calls):
                    if arguments[start:start + FRAGMENT]:
                        piece = {"index": n, "function": {"arguments": arguments[start:start + FRAGMENT]}}
                        yield event({"tool_calls": [piece]})
            yield event({}, "tool_calls")
        yield b"data: [DONE]\n\n"
