"""Trace replay: Mooncake-format JSONL, each request sent at its timestamp (divided by ``speedup``).

A line is ``{"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [...]}``; each hash id names a
block of ``block_tokens`` (512) prompt tokens that every request naming it shares, which is how the trace encodes
prefix reuse: a request's prompt is its blocks in order, cut to its input length, then its own tokens. Send times
count from the first request's timestamp. The file streams like a dataset; a malformed line is a warning naming
it, a timestamp earlier than the one before is an error (a replay cannot send into the past).
"""

from __future__ import annotations

from typing import Any

from .datasets import dataset_path
from .records import Usable
from .spec import Add, Block, Request, Shape, Workload, numbered, unknown_fields

FORMATS = ("mooncake",)
BLOCK_TOKENS = 512
_FIELDS = ("type", "count", "seed", "api", "category", "parameters", "stream", "slo", "expected", "path", "format",
           "speedup", "block_tokens", "exact_output")


def trace_requests(workload: Workload, add: Add) -> list[Request]:
    raw = workload.raw
    unknown_fields(raw, _FIELDS, add)
    if raw.get("format", "mooncake") not in FORMATS:
        add(f"workload.format must be one of {', '.join(FORMATS)} for a trace, got {raw.get('format')!r}")
    speedup, block = raw.get("speedup", 1.0), raw.get("block_tokens", BLOCK_TOKENS)
    checks = [(isinstance(speedup, (int, float)) and not isinstance(speedup, bool) and speedup > 0,
               f"workload.speedup must be a number above 0, got {speedup!r}"),
              (isinstance(block, int) and not isinstance(block, bool) and block > 0,
               f"workload.block_tokens must be a whole number above 0, got {block!r}"),
              (isinstance(raw.get("exact_output", False), bool),
               f"workload.exact_output must be true or false, got {raw.get('exact_output')!r}")]
    for passed, message in checks:
        if not passed:
            add(message)
    exact = raw.get("exact_output") is True
    path = dataset_path(workload, add)
    if path is None or not all(passed for passed, _ in checks):
        return []
    lines = _lines(path, workload, add)
    if not lines:
        return []
    first = lines[0][1]["timestamp"]
    return [Request(id=numbered("trace", n, len(lines)), category=workload.category, where=f"{path.name}:{line}",
                    send_at_s=(entry["timestamp"] - first) / 1000 / float(speedup),
                    shape=Shape(entry["input_length"], entry["output_length"], f"trace/{workload.seed}/{n}",
                                tuple(Block(f"hash/{workload.seed}/{h}", block) for h in entry.get("hash_ids", ())),
                                exact))
            for n, (line, entry) in enumerate(lines)]


def _lines(path: Any, workload: Workload, add: Add) -> list[tuple[int, dict[str, Any]]]:
    kept: list[tuple[int, dict[str, Any]]] = []
    try:
        with path.open("rb") as handle:
            found = Usable(path, handle, lambda value: (value, _problem(value)))
            for where, entry in found:
                if kept and entry["timestamp"] < kept[-1][1]["timestamp"]:
                    add(f"workload.path: {path}:{where}: timestamp {entry['timestamp']} goes back before "
                        f"{kept[-1][1]['timestamp']} (line {kept[-1][0]}); a trace must be in time order")
                    return []
                kept.append((where, entry))
                if workload.count is not None and len(kept) == workload.count:
                    break
    except OSError as exc:
        add(f"workload.path: cannot read {path}: {exc.strerror or exc}")
        return []
    if not kept:
        add(f"workload.path: {path} has no usable trace line" + (f" ({found.bad} malformed)" if found.bad else ""))
    return kept


def _problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "not a JSON object"
    stamp = value.get("timestamp")
    if not (isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and stamp >= 0):
        return f"timestamp must be milliseconds >= 0, got {stamp!r:.40}"
    for key in ("input_length", "output_length"):
        if not (isinstance(value.get(key), int) and not isinstance(value.get(key), bool) and value[key] > 0):
            return f"{key} must be a whole number above 0, got {value.get(key)!r:.40}"
    ids = value.get("hash_ids", [])
    if not (isinstance(ids, list) and all(isinstance(h, int) and not isinstance(h, bool) for h in ids)):
        return "hash_ids must be a list of whole numbers"
    return None
