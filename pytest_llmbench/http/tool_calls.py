"""The functions a chat answer called: read from a whole message, or assembled from a stream's deltas.

A stream sends each call in pieces: its first delta carries ``index``, ``id`` and the function's ``name``, later
ones only the ``index`` and a fragment of the ``arguments`` string. They are joined per index, as the OpenAI
clients do, so that a streamed and a whole answer give the same calls. Arguments stay the string the model wrote:
whether it is JSON is a check's business (checks/tool_calls.py), not a broken response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ToolCall = dict[str, Any]  # {"id": str | None, "name": str, "arguments": str}: one name and one shape everywhere


@dataclass
class ToolCallParts:
    """A stream's tool-call deltas, joined per call index."""

    _calls: dict[int, ToolCall] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, delta: Mapping[str, Any]) -> bool:
        """Take a delta's tool-call pieces (``tool_calls``, or the older ``function_call``); True when it had any."""
        pieces = delta.get("tool_calls")
        if isinstance(delta.get("function_call"), Mapping):
            pieces = [{"index": 0, "function": delta["function_call"]}]
        if not isinstance(pieces, list):
            return False
        took = False
        for position, piece in enumerate(pieces):
            if not isinstance(piece, Mapping):
                continue
            index = piece.get("index")
            index = index if isinstance(index, int) and not isinstance(index, bool) else position
            call = self._calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
            function: Mapping[str, Any] = piece["function"] if isinstance(piece.get("function"), Mapping) else {}
            if isinstance(piece.get("id"), str) and call["id"] is None:
                call["id"] = piece["id"]
            if isinstance(function.get("name"), str):
                call["name"] += function["name"]
            if isinstance(function.get("arguments"), str):
                call["arguments"] += function["arguments"]
            took = True
        return took

    def calls(self) -> list[ToolCall] | None:
        """The calls in index order; None when the stream called nothing."""
        return [self._calls[index] for index in sorted(self._calls)] or None


def from_message(message: Mapping[str, Any]) -> list[ToolCall] | None:
    """The calls of a whole answer's message: ``tool_calls`` (or ``function_call``); None when it called nothing.

    Arguments a server sent as a JSON object instead of a string are written back as JSON text, so every call
    has the one shape."""
    parts = ToolCallParts()
    listed = message.get("tool_calls")
    if isinstance(listed, list):
        parts.feed({"tool_calls": [_whole(i, call) for i, call in enumerate(listed) if isinstance(call, Mapping)]})
    elif isinstance(message.get("function_call"), Mapping):
        parts.feed({"function_call": message["function_call"]})
    return parts.calls()


def _whole(position: int, call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call["function"]) if isinstance(call.get("function"), Mapping) else {}
    if isinstance(function.get("arguments"), (dict, list)):
        function["arguments"] = json.dumps(function["arguments"])
    return {"index": position, "id": call.get("id"), "function": function}


def answered_calls(text: str, answers: Sequence[tuple[Mapping[str, Any], str]], *, responses: bool = False
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The answer that made ``answers``' calls and their results, as the next request carries them: in chat, the
    assistant's message with its ``tool_calls`` and one ``tool`` message per call; on the Responses API, the
    ``function_call`` items and one ``function_call_output`` each. Ids are the server's (``call_<n>`` where it
    gave none, so that each result still names its call)."""
    ids = [call.get("id") or f"call_{n}" for n, (call, _) in enumerate(answers)]
    if responses:
        made = [{"type": "function_call", "call_id": i, "name": call.get("name"), "arguments": call.get("arguments")}
                for i, (call, _) in zip(ids, answers)]
        return made, [{"type": "function_call_output", "call_id": i, "output": content}
                      for i, (_, content) in zip(ids, answers)]
    calls = [{"id": i, "type": "function", "function": {"name": call.get("name"), "arguments": call.get("arguments")}}
             for i, (call, _) in zip(ids, answers)]
    return ([{"role": "assistant", "content": text or None, "tool_calls": calls}],
            [{"role": "tool", "tool_call_id": i, "content": content} for i, (_, content) in zip(ids, answers)])
