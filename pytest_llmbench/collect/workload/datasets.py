"""Dataset workloads: OpenAI chat JSONL, ShareGPT and one-prompt lines, sampled with a seed as they stream by.

A file is read once, record by record; ``count`` records are kept by reservoir sampling (every valid record has
the same chance, whatever the file's size, and the same seed keeps the same ones), then put back in file order.
Length filters use an estimate (about four characters a token): collection sends nothing, and the server's usage
tells the real count of each request afterwards. A malformed record is a warning naming the file and line; the
valid ones still run.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...result import estimate_tokens
from .lengths import Draws, parse_lengths
from .records import Usable
from .spec import Add, Request, Turn, Workload, numbered, unknown_fields

FORMATS = ("auto", "openai", "sharegpt", "text")
_FIELDS = ("type", "count", "seed", "api", "category", "parameters", "stream", "slo", "expected", "path", "format",
           "max_input_tokens", "min_input_tokens", "output_tokens", "multi_turn", "think_time_s")
Read = tuple[tuple[dict[str, Any], ...], str | None]  # a record's messages, or why it has none
_USER, _ASSISTANT = ("human", "user"), ("gpt", "assistant", "chatgpt", "bard", "bing")


def dataset_requests(workload: Workload, add: Add) -> list[Request]:
    raw = workload.raw
    unknown_fields(raw, _FIELDS, add)
    fmt = raw.get("format", "auto")
    if fmt not in FORMATS:
        add(f"workload.format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    bounds = [raw.get(key) for key in ("min_input_tokens", "max_input_tokens")]
    for key, value in zip(("min_input_tokens", "max_input_tokens"), bounds):
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            add(f"workload.{key} must be a whole number above 0, got {value!r}")
    outputs = parse_lengths(raw["output_tokens"], "workload.output_tokens", add) if "output_tokens" in raw else None
    multi_turn = raw.get("multi_turn", False)
    think = raw.get("think_time_s", 0)
    if not isinstance(multi_turn, bool):
        add(f"workload.multi_turn must be true or false, got {multi_turn!r}")
    elif multi_turn and workload.api != "chat":
        add("workload.multi_turn replays conversations over chat: drop workload.api or set it to \"chat\"")
    if not (isinstance(think, (int, float)) and not isinstance(think, bool) and think >= 0):
        add(f"workload.think_time_s must be a number of seconds >= 0, got {think!r}")
    path = dataset_path(workload, add)
    if path is None or fmt not in FORMATS:
        return []
    picked = _sample(path, fmt, workload, multi_turn is True, (bounds[0] or 0, bounds[1] or 0), add)
    requests = []
    for n, (line, prompt) in enumerate(picked):
        parameters = {"max_tokens": outputs.draw(Draws(workload.seed, n))} if outputs is not None else None
        request = Request(id=numbered(fmt if fmt != "auto" else "dataset", n, len(picked)), category=workload.category,
                          parameters=parameters, where=f"{path.name}:{line}", think_time_s=float(think))
        requests.append(_shaped(request, prompt, workload.api, multi_turn is True))
    return requests


def dataset_path(workload: Workload, add: Add) -> Path | None:
    """The file a workload names: a relative path is relative to the suite file's folder."""
    value = workload.raw.get("path")
    if not isinstance(value, str) or not value.strip():
        add(f"workload.path must name a file, got {value!r}")
        return None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else workload.suite_path.parent / path
    if not path.is_file():
        add(f"workload.path: no such file {path}")
        return None
    return path


def _shaped(request: Request, prompt: tuple[dict[str, Any], ...], api: str, multi_turn: bool) -> Request:
    """The sampled messages as the request's prompt, messages or turns."""
    if multi_turn:
        context = prompt[:1] if prompt[0]["role"] == "system" else ()
        turns = tuple(Turn(m["content"]) for m in prompt if m["role"] == "user")
        return replace(request, messages=context, turns=turns)
    if api == "completions":
        return replace(request, prompt="\n".join(str(m["content"]) for m in prompt))
    return replace(request, messages=prompt)


def _sample(path: Path, fmt: str, workload: Workload, multi_turn: bool, bounds: tuple[int, int],
            add: Add) -> list[tuple[int, tuple[dict[str, Any], ...]]]:
    """(line, messages) of the sampled records, in file order; problems and filters as they stream by."""
    rng = random.Random(f"llmbench/{workload.seed}/sample")
    kept: list[tuple[int, tuple[dict[str, Any], ...]]] = []
    seen = 0
    try:
        with path.open("rb") as handle:
            found = Usable(path, handle, lambda value: _read(value, fmt, multi_turn))
            for where, messages in found:
                if not _fits(messages, bounds, multi_turn):
                    continue
                if workload.count is None or seen < workload.count:
                    kept.append((where, messages))
                else:
                    slot = rng.randint(0, seen)
                    if slot < workload.count:
                        kept[slot] = (where, messages)
                seen += 1
    except OSError as exc:
        add(f"workload.path: cannot read {path}: {exc.strerror or exc}")
        return []
    if not kept:
        add(f"workload.path: {path} has no usable record" + (f" ({found.bad} malformed)" if found.bad else "")
            + (" within the token bounds" if any(bounds) else ""))
    return sorted(kept, key=lambda pair: pair[0])


def _fits(messages: tuple[dict[str, Any], ...], bounds: tuple[int, int], multi_turn: bool) -> bool:
    """Whether the request's input (a conversation's first turn) is within the bounds, by the estimate."""
    low, high = bounds
    if not low and not high:
        return True
    counted = messages[:next(n for n, m in enumerate(messages) if m["role"] == "user") + 1] if multi_turn else messages
    tokens = estimate_tokens("\n".join(str(m["content"]) for m in counted))
    return tokens >= low and (not high or tokens <= high)


def _read(value: Any, fmt: str, multi_turn: bool) -> Read:
    """A record as chat messages ending with a user message, or the problem that keeps it out."""
    kind = fmt if fmt != "auto" else _guess(value)
    if kind is None:
        return (), "not an object with 'messages', 'conversations' or 'text'"
    return _READERS[kind](value, multi_turn)


def _guess(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, kind in (("messages", "openai"), ("conversations", "sharegpt"), ("text", "text")):
            if key in value:
                return kind
    return None


def _openai(value: Any, multi_turn: bool) -> Read:
    messages = value.get("messages") if isinstance(value, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                 and isinstance(m.get("content"), str) for m in messages):
        return (), "'messages' must be a list of {role, content} objects with text content"
    return _ending_with_user([dict(m) for m in messages], multi_turn)


def _sharegpt(value: Any, multi_turn: bool) -> Read:
    turns = value.get("conversations") if isinstance(value, dict) else None
    if not isinstance(turns, list) or not all(isinstance(t, dict) and isinstance(t.get("value"), str)
                                              for t in turns):
        return (), "'conversations' must be a list of {from, value} objects"
    messages = []
    for turn in turns:
        speaker = str(turn.get("from", "")).lower()
        role = "user" if speaker in _USER else "assistant" if speaker in _ASSISTANT else "system" \
            if speaker == "system" else None
        if role is None:
            return (), f"unknown speaker {str(turn.get('from'))[:40]!r} in 'conversations'"
        messages.append({"role": role, "content": turn["value"]})
    return _ending_with_user(messages, multi_turn)


def _text(value: Any, multi_turn: bool) -> Read:
    text = value.get("text") if isinstance(value, dict) else None
    if not isinstance(text, str) or not text.strip():
        return (), "'text' must be a non-empty string"
    return ({"role": "user", "content": text},), None


def _ending_with_user(messages: list[dict[str, Any]], multi_turn: bool) -> Read:
    """A single request asks the first user question with what came before it; a conversation keeps every turn."""
    first_user = next((n for n, m in enumerate(messages) if m["role"] == "user"), None)
    if first_user is None or not messages[first_user]["content"].strip():
        return (), "no user message with text"
    return tuple(messages if multi_turn else messages[:first_user + 1]), None


_READERS = {"openai": _openai, "sharegpt": _sharegpt, "text": _text}
