"""A suite's ``workload``: checked, and turned into ordinary test cases, one per request.

Collection runs in every xdist worker and must send nothing, so a generated case holds what its request asks for
(``Shape``: token counts, shared blocks, the seed of its text) and the text itself is built just before the
request leaves, by the process that sends it (runner.py, with the tokenizer it resolved once). Everything here is
deterministic from the file and the seed: every worker collects the same cases in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...checks.tool_calls import ToolResult
from .lengths import Draws, Lengths, Mix, parse_lengths, parse_mix

KINDS = ("synthetic", "dataset", "trace")
APIS = ("completions", "chat")
MAX_COUNT = 10_000_000
_COMMON = ("type", "count", "seed", "api", "category", "parameters", "stream", "slo", "expected")
_SYNTHETIC = (*_COMMON, "input_tokens", "output_tokens", "mix", "exact_output", "prefix")


@dataclass(frozen=True)
class Block:
    """Token ids shared by every request that names the same key: a prefix group or a trace's hash id."""

    key: str
    tokens: int


@dataclass(frozen=True)
class Shape:
    """What a generated request asks for; its text is built from ``key`` just before it is sent."""

    input_tokens: int
    output_tokens: int | None
    key: str  # the seed of the request's own text
    blocks: tuple[Block, ...] = ()  # shared ids the prompt starts with, in order
    exact_output: bool = False


@dataclass(frozen=True)
class Turn:
    """One request of a conversation; its own expected and slo apply over the test's.

    Usually the user's next text. A test with ``tool_results`` is two turns with no user text: its messages as they
    are, then the scripted results of the calls the first answer made (collect/tool_results.py builds them)."""

    content: str | None  # None: no new user text
    expected: dict[str, Any] | None = None
    slo: dict[str, Any] | None = None
    tool_results: tuple[ToolResult, ...] | None = None  # the previous answer's calls answered with these

    def stage(self, number: int) -> str:
        """How a failure names the turn: ``turn 2``, or a tool-result test's two requests."""
        if self.tool_results is not None:
            return f"final answer (request {number}, after the tool results)"
        return f"turn {number}" if self.content is not None else f"tool calls (request {number})"


@dataclass(frozen=True)
class Request:
    """One generated request, before it becomes a TestCase (suite.py adds the suite's defaults)."""

    id: str
    category: str
    shape: Shape | None = None
    prompt: str | None = None
    messages: tuple[dict[str, Any], ...] | None = None
    turns: tuple[Turn, ...] | None = None
    think_time_s: float = 0.0
    send_at_s: float | None = None  # a trace's send time from the start of the replay
    parameters: dict[str, Any] | None = None
    where: str | None = None  # the record it came from (file:line), kept in the test's metadata


Add = Callable[[str], None]


@dataclass(frozen=True)
class Workload:
    """The checked workload object; ``requests`` are generated on demand."""

    kind: str
    raw: dict[str, Any]
    api: str
    count: int | None
    seed: int
    category: str
    suite_path: Path

    @property
    def sections(self) -> dict[str, Any]:
        """parameters, slo and expected given on the workload: they apply to each of its tests."""
        return {key: self.raw[key] for key in ("parameters", "slo", "expected") if key in self.raw}


def check_workload(raw: Any, suite_path: Path, add: Add) -> Workload | None:
    """The workload's common fields checked; its kind's own fields are checked when it generates."""
    if not isinstance(raw, dict):
        add(f"workload must be an object, got {type(raw).__name__}")
        return None
    kind = raw.get("type")
    if kind not in KINDS:
        add(f"workload.type must be one of {', '.join(KINDS)}, got {kind!r}")
        return None
    api = raw.get("api", "completions" if kind != "dataset" else "chat")
    if api not in APIS:
        add(f"workload.api must be one of {', '.join(APIS)}, got {api!r}")
    count = raw.get("count")
    if count is not None and not (_is_int(count) and 0 < count <= MAX_COUNT):
        add(f"workload.count must be a whole number from 1 to {MAX_COUNT}, got {count!r}")
    elif count is None and kind == "synthetic":
        add("workload.count is required for a synthetic workload (how many requests)")
    seed = raw.get("seed", 0)
    if not _is_int(seed):
        add(f"workload.seed must be a whole number, got {seed!r}")
    category = raw.get("category", kind)
    if not isinstance(category, str) or not category.strip():
        add(f"workload.category must be a non-empty string, got {category!r}")
    if "stream" in raw and not isinstance(raw["stream"], bool):
        add(f"workload.stream must be true or false, got {raw['stream']!r}")
    return Workload(kind, raw, api, count, seed if _is_int(seed) else 0, str(category), suite_path)


def synthetic_requests(workload: Workload, add: Add) -> list[Request]:
    raw = workload.raw
    unknown_fields(raw, _SYNTHETIC, add)
    mix = parse_mix(raw["mix"], "workload.mix", add) if "mix" in raw else None
    if mix is not None and ("input_tokens" in raw or "output_tokens" in raw):
        add("workload: give either mix or input_tokens/output_tokens, not both")
        return []
    inputs = outputs = None
    if mix is None:
        if "input_tokens" not in raw:
            add("workload.input_tokens is required (or a mix of [input, output, weight])")
            return []
        inputs = parse_lengths(raw["input_tokens"], "workload.input_tokens", add)
        outputs = parse_lengths(raw["output_tokens"], "workload.output_tokens", add) if "output_tokens" in raw \
            else None
    exact = raw.get("exact_output", False)
    if not isinstance(exact, bool):
        add(f"workload.exact_output must be true or false, got {exact!r}")
    prefix = _prefix(raw.get("prefix"), add) if "prefix" in raw else None
    if (mix is None and inputs is None) or workload.count is None:
        return []
    width = id_width(workload.count)
    return [_synthetic(workload, index, mix, inputs, outputs, prefix, exact is True, width)
            for index in range(workload.count)]


def _synthetic(workload: Workload, index: int, mix: Mix | None, inputs: Lengths | None, outputs: Lengths | None,
               prefix: tuple[int, int] | None, exact: bool, width: int) -> Request:
    rng = Draws(workload.seed, index)  # hashes drawn only where a length is not fixed
    output_tokens: int | None
    if mix is not None:
        input_tokens, output_tokens = mix.draw(rng)
    else:
        assert inputs is not None
        input_tokens = inputs.draw(rng)
        output_tokens = outputs.draw(rng) if outputs is not None else None
    blocks: tuple[Block, ...] = ()
    if prefix is not None:
        tokens, groups = prefix
        blocks = (Block(f"prefix/{workload.seed}/{rng.randrange(groups)}", min(tokens, input_tokens)),)
    shape = Shape(input_tokens, output_tokens, f"synthetic/{workload.seed}/{index}", blocks, exact)
    return Request(id=f"synthetic[{index:0{width}d}]", category=workload.category, shape=shape)


def _prefix(value: Any, add: Add) -> tuple[int, int] | None:
    if not isinstance(value, dict) or set(value) - {"tokens", "groups"} or not _is_int(value.get("tokens")) \
            or value["tokens"] <= 0 or not _is_int(value.get("groups", 1)) or value.get("groups", 1) <= 0:
        add(f"workload.prefix must be {{\"tokens\": N, \"groups\": G}} with whole numbers above 0, got {value!r}")
        return None
    return value["tokens"], value.get("groups", 1)


def id_width(total: int) -> int:
    """Digits of a generated test's number: ``synthetic[0042]``, at least four, so that ids sort."""
    return max(4, len(str(max(total - 1, 0))))


def numbered(kind: str, index: int, total: int) -> str:
    return f"{kind}[{index:0{id_width(total)}d}]"


def shape_parameters(shape: Shape) -> dict[str, Any]:
    """The sampling parameters a shape asks for: ``max_tokens``, and with ``exact_output`` the servers' ways of
    not stopping early (vLLM and SGLang take both; llama.cpp's server ignores what it does not know)."""
    if shape.output_tokens is None:
        return {}
    out: dict[str, Any] = {"max_tokens": shape.output_tokens}
    if shape.exact_output:
        out.update(ignore_eos=True, min_tokens=shape.output_tokens)
    return out


def unknown_fields(raw: dict[str, Any], allowed: tuple[str, ...], add: Add) -> None:
    for key in raw:
        if key not in allowed:
            add(f"unknown field 'workload.{key}' for a {raw.get('type')} workload (allowed: {', '.join(allowed)})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
