"""The batch file's shape (``batch_results_*.json``), declared once: what the recorder writes and every reader reads.

The TypedDicts below are the declaration; ``json_schema()`` turns them into the JSON Schema shipped beside this
module as ``batch_results.schema.json`` for people who parse the files (``write_schema()`` rewrites it;
tests/test_batch_schema.py checks it is current, and tests/conftest.py validates every batch the tests write).
Sections that a run may lack are optional keys; a reader still meets batches of older versions, so it reads them
with ``.get``. Keys a ``pytest_llmbench_batch`` hook adds are allowed at the top level.

A metric row column is whatever ``result.METRICS`` declares: rows accept any further number-or-null column, so a
new metric needs no change here.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict, Union

SCHEMA_VERSION = 2
SCHEMA_FILE = Path(__file__).with_name("batch_results.schema.json")

_NUMBER_OR_NULL = ("number", "null")  # JSON types, as Annotated metadata (which must be hashable)
_FIGURE_OR_INTERVAL = ("figure", "interval")  # Annotated metadata: a number or null, or an interval [low, high]
# Summary keys (p99_ttft_ms, success_rate, ...) to their values: a number or null in the file; an interval key
# (p99_ttft_ms_ci, success_rate_ci: metrics/intervals.py) to [low, high], a side null where the samples cannot bound
# it. Any to Python, so that a reader that has checked a figure's presence may compute with it.
Figures = dict[str, Annotated[Any, _FIGURE_OR_INTERVAL]]


class RunInfo(TypedDict):
    """What ran where, with every option as given and every secret masked."""

    plugin_version: str
    pytest_version: str
    python_version: str
    hostname: str
    endpoint: str | None
    target: dict[str, Any] | None
    run_dir: str | None
    models: list[str]
    workers: int
    start_time: str
    end_time: str
    options: dict[str, Any]


class Failure(TypedDict):
    """Why a test failed, short enough to keep in the batch for the report."""

    checks: list[str]
    slo_misses: list[str]
    answer_excerpt: str


class _RowRequired(TypedDict):
    test_id: str
    test_name: str
    category: str | None
    model: str | None
    success: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_estimated: bool
    attempts: int
    error_message: str | None
    reasoning_score: float | None
    timing_degraded: bool  # the client cannot vouch for its token times: its ttft, itl and tpot are not pooled
    server_timing: dict[str, Any] | None  # the server's own queue/prefill/decode times for this request
    trace_id: str | None  # the W3C trace id sent in its traceparent header, to find its spans on the server
    requested_input_tokens: int | None  # workloads: the prompt's length asked for (prompt_tokens: what usage says)
    requested_output_tokens: int | None  # workloads: max_tokens asked for (completion_tokens: what usage says)
    input_tokens_estimated: bool  # the prompt was built by an estimate, not the server's tokenizer
    stopped_early: bool  # exact_output was asked and the server sent fewer tokens
    turn: int | None  # a conversation's turn, from 1; None for a single request
    send_at_s: float | None  # a replayed trace's send time from the replay's start (after speedup)
    api_type: str | None  # the API the request went to: chat, completions, embeddings, rerank
    embedding_dimensions: int | None  # an embeddings test: the length of its vectors (input_count: how many)
    evaluation_passed: bool | None
    schema_valid: bool | None  # the answer fit its expected.json_schema; None: the test asked for no schema
    slo_passed: bool | None
    passed: bool
    label: str  # as its node id names it: t01[c16-r3]
    file_stem: str | None
    completion_file: str | None
    start_s: float | None
    llm_client: bool


class Row(_RowRequired, total=False):
    """One test's figures; besides these keys, one number-or-null column per metric of ``result.METRICS`` (its
    ``row_field``: ``execution_time``, ``ttft``, ``itl_mean`` ...)."""

    failure: Failure  # only for a test that did not pass
    host: str | None  # load runs: where it ran
    worker: str | None
    level: str  # sweeps: the level's label (c16, rate=4)
    answer_drift: dict[str, Any] | None  # with --llmbench-compare: the answer against the baseline's
    resumed: bool  # --llmbench-resume: recorded by an earlier session of the run, kept from its journal


class SlowTest(TypedDict):
    test_id: str
    label: str  # as its node id names it: t01[c16-r3]
    test_name: str
    execution_time: float
    success: bool


class LostTest(TypedDict):
    nodeid: str
    error_message: str


class MissingFile(TypedDict):
    path: str
    reason: str


class Sweep(TypedDict):
    kind: str
    levels: list[dict[str, Any]]
    knee: str | None


class CapacityProbe(TypedDict):
    """One level the capacity search probed (--llmbench-search), in the order probed."""

    level: float  # the concurrency, or the rate in requests/s
    label: str  # c16, rate5
    requests: int  # sent at this level: warm-up, counted and drained alike
    warmup: int  # answers not counted (the level's first)
    counted: int  # requests judged: met + missed + stuck
    met: int  # answered in time for every objective
    stuck: int  # still in flight past a whole-request limit when the level ended: counted as missed
    unvouched: int  # answers whose token times the client cannot vouch for (timing_degraded): not counted
    attainment: float | None  # met / counted
    attainment_ci: list[float | None]  # its Wilson interval at interval_level, at the look that decided it
    interval_level: float  # each look's level: confidence_level over all the level's looks (Bonferroni)
    verdict: str  # "pass", "fail" or "undecided"
    passed: bool  # what the search took it for: an undecided level fails unless --llmbench-slo-undecided pass
    over_saturated: bool  # failed because it could not finish: the queue grew, or its cap came with nothing done
    reason: str  # "decided", "undecided at the seconds cap", "over-saturated: ..."
    cut: int  # requests in flight cut after the level ended and its drain time passed
    duration_s: float
    figures: dict[str, float | None]  # each objective's percentile at this level, in ms: {"latency_p90": 212.0}


class CapacityBaseline(TypedDict):
    """The baseline run's capacity beside this run's (--llmbench-compare)."""

    capacity: float | None
    upper: float | None
    change: str  # "lower" or "higher" (the two brackets do not overlap), "unchanged", or "not comparable: ..."


class Capacity(TypedDict):
    """The capacity search's answer: the highest level that passed, below the lowest that failed."""

    kind: str  # "concurrency" or "rate"
    objectives: list[str]  # "latency_p90 <= 250 ms"
    target: float  # the share of requests that must meet every objective
    confidence_level: float
    tolerance: float
    start: float
    max_level: float
    undecided: str  # --llmbench-slo-undecided: an undecided level passes only under "pass"
    capacity: float | None  # the highest level that passed; None: none did
    upper: float | None  # the lowest level that failed above it; None: none did (the cap or the probes ended it)
    stopped: str  # "converged", "max_level", "none_passed", "max_probes"
    requests: int  # sent by the whole search
    probes: list[CapacityProbe]
    minimum: float | None  # --llmbench-capacity-min
    minimum_passed: bool | None
    baseline: CapacityBaseline | None  # with --llmbench-compare, when the baseline searched too


class GateFailure(TypedDict):
    gate: str  # "slo[ttft_p99]", "compare[p50_latency_ms]"
    message: str


class SloMissEntry(TypedDict):
    metric: str
    limit: float
    measured: float | None
    message: str


class Delta(TypedDict):
    name: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    baseline_count: int | None  # the samples a percentile rests on, each side (None: no percentile)
    current_count: int | None
    p_value: float | None  # Mann-Whitney U on both runs' per-request values (metrics/significance.py); None: untested
    significant: bool | None  # p below 1 - the confidence level
    change_interval: list[float | None] | None  # the change's interval, in % of the baseline's figure


class Comparison(TypedDict):
    baseline: str
    warnings: list[str]
    shared_tests: int | None
    per_test: list[dict[str, Any]]
    deltas: list[Delta]
    regressions: list[str]
    drift: list[str]  # --llmbench-drift-fail: the answers that fell below the similarity
    min_change: float  # --llmbench-compare-min-change: smaller changes are not marked worse or better


class Gates(TypedDict):
    passed: bool
    failed: list[GateFailure]
    passed_gates: list[str]
    baseline_note: str | None  # why no baseline was compared with although one was asked for
    few_samples: list[str]  # compare limits judged on fewer samples than their percentile needs
    undecided: list[str]  # run SLOs whose confidence interval straddles the limit, passed (--llmbench-slo-undecided)
    slo_misses: list[SloMissEntry]
    comparison: Comparison | None


class _BatchRequired(TypedDict):
    schema_version: int
    partial: bool
    partial_reason: str | None
    run: RunInfo
    aggregate: Figures
    categories: dict[str, Figures]
    models: dict[str, Figures]
    apis: dict[str, Figures]  # by the API each request went to: chat, completions, embeddings, rerank
    slowest: list[SlowTest]
    distributions: dict[str, list[float]]  # per-chunk metrics' pooled quantiles: "itl_ms"
    lost_tests: list[LostTest]
    alerts: list[str]
    hardware: dict[str, Any] | None  # --llmbench-monitor
    missing_files: list[MissingFile]
    load: dict[str, Any] | None  # load runs
    timeline: dict[str, Any] | None
    sweep: Sweep | None
    tests: list[Row]


class Batch(_BatchRequired, total=False):
    """The whole file."""

    server: dict[str, Any]  # the servers' /metrics, when scraped
    gates: Gates  # run SLOs and the baseline comparison, when any is set
    resumed_from: dict[str, Any] | None  # --llmbench-resume: the earlier sessions whose results it kept
    drift: dict[str, Any] | None  # with --llmbench-compare: the answers against the baseline's, counted
    answer_changes: list[dict[str, Any]] | None  # the most changed answers, with their diffs
    server_timing: dict[str, Any]  # how many results the servers' own times were joined to, and what was dropped
    tracing: dict[str, Any]  # --llmbench-otlp: the spans exported and dropped
    workload: dict[str, Any] | None  # generated tests: requested against achieved token lengths, cached share
    collection_warnings: list[str]  # e.g. a dataset's malformed lines, each once
    capacity: Capacity | None  # --llmbench-search: the probed levels and the capacity found


def row_value(row: Row, name: str) -> Any:
    """A row's column by a name known only at run time (a metric's ``row_field``)."""
    return typing.cast(dict[str, Any], row).get(name)


# -- JSON Schema ------------------------------------------------------------------------------------------------

_PLAIN = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _schema_of(annotation: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated and args[1] == _FIGURE_OR_INTERVAL:
        number = {"type": list(_NUMBER_OR_NULL)}
        return {"anyOf": [number, {"type": "array", "minItems": 2, "maxItems": 2, "items": number}]}
    if origin is Annotated:
        return {"type": list(args[1])}
    if annotation is Any:
        return {}
    if annotation in _PLAIN:
        return {"type": _PLAIN[annotation]}
    if origin in (Union, types.UnionType):
        if all(arg in _PLAIN for arg in args):
            names = [_PLAIN[arg] for arg in args]
            return {"type": [n for n in names if n != "integer" or "number" not in names]}  # numbers hold integers
        return {"anyOf": [_schema_of(arg) for arg in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _schema_of(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(args[1])}
    if typing.is_typeddict(annotation):
        hints = typing.get_type_hints(annotation, include_extras=True)
        described = {"description": " ".join(annotation.__doc__.split())} if annotation.__doc__ else {}
        return {"type": "object", **described, "properties": {name: _schema_of(hint) for name, hint in hints.items()},
                "required": sorted(annotation.__required_keys__)}
    raise TypeError(f"no JSON Schema for {annotation!r}")


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``Batch``: rows take a number or null for any metric column."""
    schema = _schema_of(Batch)
    rows = schema["properties"]["tests"]["items"]
    rows["additionalProperties"] = {"type": list(_NUMBER_OR_NULL)}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"pytest-llmbench/batch_results/{SCHEMA_VERSION}",
            "title": "pytest-llmbench batch_results_*.json", **schema}


def reading_schema() -> dict[str, Any]:
    """The schema a reader checks others' batch files against: the same declaration without its required keys,
    since a file of an older version lacks what later ones added (readers use ``.get`` for those)."""

    def lenient(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: lenient(value) for key, value in node.items() if key != "required"}
        return [lenient(value) for value in node] if isinstance(node, list) else node

    return typing.cast(dict[str, Any], lenient(json_schema()))


def write_schema() -> Path:
    """Rewrite the shipped schema from the declaration (after changing a TypedDict above)."""
    SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    return SCHEMA_FILE
