"""A Responses API server (``POST /v1/responses``): whole answers, or typed event streams as OpenAI sends them.

The answer is ``"turn N: <the last user text>"`` where N counts the turns of the conversation the server kept for
``previous_response_id``. A stream opens with ``response.created`` and ``response.in_progress`` (no tokens), waits
``first_gap`` seconds, then sends the answer's words as ``response.output_text.delta`` events and ends with
``response.completed`` and its usage (no ``[DONE]``). ``answers`` maps a substring of the last user text to the answer
to give instead; ``calls`` to one function call to answer with (the key ``""`` matches every text). Input that ends
with a function call's output is answered ``"turn N: <the output>"``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response


@dataclass
class ResponsesStub:
    first_gap: float = 0.0
    calls: dict[str, tuple[str, str]] = field(default_factory=dict)  # a substring of the text: (name, arguments)
    answers: dict[str, str] = field(default_factory=dict)
    fail: bool = False  # end the stream with response.failed
    requests: list[dict[str, Any]] = field(default_factory=list)
    _turns: dict[str, int] = field(default_factory=dict)

    def install(self, httpserver: Any) -> str:
        httpserver.expect_request("/v1/models").respond_with_json(
            {"object": "list", "data": [{"id": "responses-model", "object": "model"}]})
        httpserver.expect_request("/v1/responses", method="POST").respond_with_handler(self._answer)
        url: str = httpserver.url_for("/v1")
        return url

    def _answer(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.requests.append(body)
        given = body["input"]
        last = given if isinstance(given, str) else str(given[-1].get("content", given[-1].get("output")))
        answered = not isinstance(given, str) and given[-1].get("type") == "function_call_output"
        turn = self._turns.get(body.get("previous_response_id") or "", 0) + 1
        response_id = f"resp_{len(self.requests)}"
        self._turns[response_id] = turn
        text = next((answer for key, answer in self.answers.items() if key in last and not answered),
                    f"turn {turn}: {last}")
        call = None if answered else next((c for key, c in self.calls.items() if key in last), None)
        usage = {"input_tokens": 5, "output_tokens": len(text.split()), "total_tokens": 5 + len(text.split())}
        if call:
            output: list[dict[str, Any]] = [{"type": "function_call", "call_id": "call_1", "name": call[0],
                                             "arguments": call[1], "status": "completed"}]
        else:
            output = [{"type": "message", "role": "assistant",
                       "content": [{"type": "output_text", "text": text, "annotations": []}]}]
        whole = {"id": response_id, "object": "response", "status": "completed", "output": output, "usage": usage}
        if body.get("stream"):
            return Response(self._stream(whole, text, call), content_type="text/event-stream")
        return Response(json.dumps(whole), content_type="application/json")

    def _stream(self, whole: dict[str, Any], text: str, call: tuple[str, str] | None) -> Iterator[bytes]:
        def event(kind: str, **data: Any) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        started = {**whole, "status": "in_progress", "output": [], "usage": None}
        yield event("response.created", response=started)
        yield event("response.in_progress", response=started)
        time.sleep(self.first_gap)
        if self.fail:
            yield event("response.failed", response={**started, "status": "failed",
                                                     "error": {"code": "server_error", "message": "out of memory"}})
            return
        if call:
            yield event("response.output_item.added", output_index=0,
                        item={"type": "function_call", "call_id": "call_1", "name": call[0], "arguments": ""})
            for start in range(0, len(call[1]), 4):
                yield event("response.function_call_arguments.delta", output_index=0, delta=call[1][start:start + 4])
        else:
            yield event("response.output_item.added", output_index=0, item={"type": "message", "content": []})
            for n, word in enumerate(text.split(" ")):
                yield event("response.output_text.delta", output_index=0, content_index=0,
                            delta=word if n == 0 else " " + word)
        yield event("response.completed", response=whole)
