"""The record of one test: what the client fills, the plugin writes, sends between processes and reports on.

Everything here is plain data made of JSON types, so that a result can cross from an xdist
worker to the controller as a string and land in a file unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class Attempt:
    """One try at the HTTP request; a result keeps every one so that retries are never silent."""

    number: int
    status: int | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    delay_s: float = 0.0  # the wait before the next try (0 for the last)
    possibly_duplicated: bool = False  # sent again after an earlier try may have reached the server


@dataclass
class ApiError:
    """A server's or the network's failure, normalized from whatever shape it came in."""

    # "http", "auth", "connection", "read_timeout", "deadline", "redirect", "bad_response", "stream" or "request"
    kind: str
    message: str
    status: int | None = None
    type: str | None = None
    body_excerpt: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # e.g. context-length token figures


@dataclass
class TestResult:
    """One test's outcome, filled by the client as the request goes and by the runner's checks.

    Field names are the file format: change them only with the schema version. A new per-request metric is a
    field here and an entry in ``METRICS`` below; statistics, the batch rows, the summary table and the
    completion text pick it up from there (CONTRIBUTING.md walks through it).
    """

    __test__ = False  # keep pytest from collecting this class

    test_id: str = ""
    test_name: str = ""
    success: bool = False
    response_text: str = ""
    execution_time: float = 0.0  # seconds, the final attempt alone: request sent to the last byte ([DONE] if streamed)
    prompt_tokens: int | None = None  # as reported; None when the server did not say
    completion_tokens: int | None = None
    tokens_per_second: float | None = None
    error_message: str | None = None
    timestamp: str = ""
    api_response: Any = None  # the parsed JSON answer (non-streaming)
    performance_metrics: dict[str, Any] = field(default_factory=dict)
    evaluation_result: dict[str, Any] | None = None
    reasoning_score: float | None = None
    reasoning_type: str | None = None
    slo_result: dict[str, Any] | None = None  # {"passed": bool, "misses": [...]} when the test has an slo
    model: str | None = None  # the one actually sent
    category: str | None = None
    attempts: int = 0  # len(attempt_log), kept as a number for the batch rows
    attempt_log: list[Attempt] = field(default_factory=list)
    error: ApiError | None = None
    tokens_estimated: bool = False  # completion_tokens is an estimate (the server sent no usage)
    usage_implausible: bool = False  # the server's usage was dropped: past max_tokens, the answer's size or 10^7
    finish_reason: str | None = None
    api_type: str | None = None  # the shape actually sent, which the endpoint URL may have fixed
    suite_id: str | None = None
    request: dict[str, Any] = field(default_factory=dict)  # the body sent; never headers
    stream: bool = False
    ttft: float | None = None  # seconds to the first generated token of any kind (answer, reasoning, tool call)
    itl: list[float] = field(default_factory=list)  # seconds between content chunks; streaming only
    tpot: float | None = None  # seconds
    e2e_latency: float | None = None  # seconds
    possibly_duplicated: bool = False  # retried after a try that may have been processed (a read timeout)
    schedule_lag: float | None = None  # seconds the request left after its planned send time; None: none was planned
    timing_degraded: bool = False  # the client cannot vouch for ttft, itl and tpot: left out of the statistics
    timing_degraded_reason: str | None = None  # why (http/timing.py): the client read several tokens together
    server_metrics: dict[str, Any] | None = None  # the servers' /metrics over the test's window (controller)
    # What the server said about this request (http/server_timing.py), seconds; None: it did not say (or it was
    # implausible, then named in server_timing["dropped"]). server_ttft and server_e2e_latency count from the
    # request's arrival at the server, its queue included.
    queue_time: float | None = None
    prefill_time: float | None = None
    decode_time: float | None = None
    server_ttft: float | None = None
    server_e2e_latency: float | None = None
    client_overhead: float | None = None  # the client's TTFT minus the server's (else latency minus server E2E)
    server_timing: dict[str, Any] | None = None  # {"source": "vllm", "dropped": {field: reason}}; None: none sent
    trace_id: str | None = None  # the W3C trace id its traceparent header carried (32 hex digits)
    span_id: str | None = None  # the header's parent id: the request's own span, parent of the server's spans
    ttfot: float | None = None  # seconds to the first token of the answer itself, after any reasoning; streaming
    time_to_second_token: float | None = None  # seconds between the first two generated chunks; streaming
    reasoning_tokens: int | None = None  # thinking tokens: the server's count, else counted (http/reasoning.py)
    reasoning_text: str = ""  # the thinking, kept out of response_text (the answer, which the checks read)
    response_id: str | None = None  # the Responses API's id of the answer (a next turn's previous_response_id)
    tool_calls: list[dict[str, Any]] | None = None  # the functions the answer called: [{"id", "name", "arguments"}]
    # -- generated tests (workloads) --
    requested_input_tokens: int | None = None  # the prompt's length asked for; prompt_tokens is what usage says
    requested_output_tokens: int | None = None  # max_tokens asked for; completion_tokens is what usage says
    input_tokens_estimated: bool = False  # the prompt was built by an estimate, not the server's tokenizer
    stopped_early: bool = False  # exact_output was asked and the server sent fewer tokens
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens, when the server sends it
    turn: int | None = None  # a conversation's turn, from 1; None for a single request
    send_at_s: float | None = None  # a replayed trace's send time from the replay's start (after speedup)
    # -- embeddings (http/embeddings.py) --
    input_count: int | None = None  # inputs embedded (or documents reranked) by the request: its batch size
    embedding_dimensions: int | None = None  # the length of each vector the server returned
    inputs_per_second: float | None = None  # inputs over the request's latency
    input_tokens_per_second: float | None = None  # prompt tokens (server usage) over the request's latency
    vectors: tuple[tuple[float, ...], ...] = field(default=(), repr=False)  # for the checks; never written
    ranking: list[dict[str, Any]] | None = None  # a rerank answer: [{"index", "score"}], best first (http/rerank.py)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; shallow (unlike dataclasses.asdict), since this runs once per test on the hot path."""
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        data["attempt_log"] = [{name: getattr(a, name) for name in _ATTEMPT_FIELDS} for a in self.attempt_log]
        data["itl"] = list(self.itl)
        if self.error is not None:
            data["error"] = dataclasses.asdict(self.error)
        return data

    def to_json(self, indent: int | None = None) -> str:
        return dumps_strict(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestResult:
        values = {k: v for k, v in data.items() if k in _FIELD_SET}
        values["attempt_log"] = [Attempt(**a) for a in values.get("attempt_log") or []]
        if values.get("error") is not None:
            values["error"] = ApiError(**values["error"])
        return cls(**values)


_TRANSIENT = frozenset({"vectors"})  # read by the checks in the process that sent the request, never written
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TestResult) if f.name not in _TRANSIENT)
_ATTEMPT_FIELDS = tuple(f.name for f in dataclasses.fields(Attempt))  # all plain values: nothing to copy deeply
_FIELD_SET = frozenset(_FIELD_NAMES)


MIN_RATE_TOKENS = 10
"""The fewest completion tokens a tokens/s figure is given for. The request's time includes its prompt's processing
and the first token's wait: over a handful of tokens, tokens/s is the request's latency in disguise (a 1-token
answer gave 0.7 to 12.8 tok/s on one server), so below this the figure is left out (None) rather than shown."""


@dataclass(frozen=True)
class Metric:
    """One per-request figure of ``TestResult``, declared once: every consumer reads it from here.

    ``key`` names it in the batch's summary keys (``p99_<key>_ms``, ``count_<key>``), in run SLOs (``<key>_p99``)
    and baselines; ``seconds`` metrics are summarised in milliseconds, the others as they are, in ``rate_unit``.
    Statistics, SLO parsing, units, baseline verdicts, the terminal table, the completion text, the batch rows and
    the HTML report (headline figures, distributions, group tables, the table of every test) all follow it.
    """

    field: str  # the TestResult field
    key: str  # the summary's name for it: "latency" for execution_time, as vLLM's benchmark calls it
    label: str  # the terminal summary table's row title, and its column title in the report's table of tests
    seconds: bool = True  # a duration in seconds (shown in ms in the summary); False: a figure shown as it is
    always_shown: bool = False  # in the completion text even when not measured ("n/a")
    per_chunk: bool = False  # a list of values per request (ITL): pooled over chunks, and its mean per request
    arrival_timed: bool = False  # rests on when each token arrived: not pooled from a timing_degraded result
    title: str = ""  # how the report names it ("TTFT"); its statistics read "TTFT p99"
    better: str = "lower"  # which way is better, "lower" or "higher": baseline verdicts, SLO and gate direction
    rate_unit: str = "tok/s"  # the unit of a metric that is not in seconds
    pooled: bool = True  # pooled into the run's statistics, so run SLOs, thresholds and baselines can name it
    streamed: bool = False  # measured only on streamed responses: an SLO on a missing value says how to stream
    unmeasured: str = ""  # why else a value can be missing, for a per-test SLO that could not be checked
    test_slo: str | None = None  # its per-test limit in a suite's "slo" block: max_<key>_s/_ms or min_<key>
    headline: tuple[str, ...] = ()  # statistics shown as the report's headline figures ("p50", "p99")
    groups: tuple[str, ...] = ()  # statistics in the report's per-category and per-model tables
    baseline: tuple[str, ...] = ()  # statistics a comparison with a baseline run shows by default
    distribution: str = ""  # the title of its histogram and CDF in the report; "" for none
    column: bool = False  # a column of the report's table of every test
    breakdown: str = ""  # in the report's per-request breakdown: "part" (stacked in this order) or "server" (the
    # server's whole time, of which the parts it did not split show as "server, not split"); the rest of the
    # client's latency is the client and the network

    @property
    def unit(self) -> str:
        return "ms" if self.seconds else self.rate_unit

    @property
    def row_field(self) -> str:
        """Its name in the batch's rows: per-chunk values are one mean per request there (``itl_mean``)."""
        return f"{self.field}_mean" if self.per_chunk else self.field

    def summary_key(self, stat: str) -> str:
        """The vLLM-style summary key of one statistic: ("p99_9") -> "p99_9_ttft_ms"; non-time keys carry no unit."""
        return f"{stat}_{self.key}_ms" if self.seconds else f"{stat}_{self.key}"

    def stat_label(self, stat: str) -> str:
        """"TTFT p99"; a mean is the title alone ("tokens/s per request")."""
        return self.title if stat == "mean" else f"{self.title} {stat}"


METRICS: tuple[Metric, ...] = (
    Metric("execution_time", "latency", "latency ms", always_shown=True, title="latency",
           unmeasured="the request has no timing", test_slo="max_latency_s", headline=("p50", "p90", "p99"),
           groups=("p50", "p99"), baseline=("mean", "p50", "p99"), distribution="Latency", column=True),
    Metric("ttft", "ttft", "TTFT ms", arrival_timed=True, title="TTFT", streamed=True, test_slo="max_ttft_s",
           headline=("p50", "p99"), groups=("p50", "p99"), baseline=("mean", "p99"), distribution="Time to first token",
           column=True),
    Metric("itl", "itl", "ITL ms", per_chunk=True, arrival_timed=True, title="ITL", streamed=True,
           headline=("p50", "p99"), baseline=("mean",), distribution="Inter-token latency", column=True),
    Metric("tpot", "tpot", "TPOT ms", arrival_timed=True, title="TPOT", streamed=True, test_slo="max_tpot_ms",
           headline=("p50", "p99"), baseline=("mean",), distribution="Time per output token", column=True),
    Metric("e2e_latency", "e2el", "E2E ms", title="E2E latency", streamed=True),
    Metric("tokens_per_second", "tokens_per_second", "tokens/s", seconds=False, always_shown=True,
           title="tokens/s per request", better="higher",
           unmeasured=f"the answer had fewer than {MIN_RATE_TOKENS} completion tokens, too few for a rate, or none "
                      "were reported",
           test_slo="min_tokens_per_second", headline=("mean",), groups=("mean",), baseline=("mean",), column=True),
    Metric("schedule_lag", "schedule_lag", "lag ms", title="schedule lag"),
    Metric("queue_time", "queue", "queue ms", title="queue", breakdown="part"),
    Metric("prefill_time", "prefill", "prefill ms", title="prefill", breakdown="part"),
    Metric("decode_time", "decode", "decode ms", title="decode", breakdown="part"),
    Metric("server_ttft", "server_ttft", "server TTFT ms", title="server TTFT"),
    Metric("server_e2e_latency", "server_e2el", "server E2E ms", title="server E2E latency", breakdown="server"),
    Metric("client_overhead", "client_overhead", "client+net ms", arrival_timed=True, title="client and network"),
    Metric("ttfot", "ttfot", "TTFOT ms", arrival_timed=True, title="TTFOT", streamed=True),
    Metric("time_to_second_token", "ttst", "TTST ms", arrival_timed=True, title="TTST", streamed=True),
    Metric("reasoning_tokens", "reasoning_tokens", "reasoning tok", seconds=False, title="reasoning tokens",
           rate_unit=""),
    Metric("input_count", "batch_size", "inputs", seconds=False, title="inputs per request", better="higher",
           rate_unit="inputs", unmeasured="only embeddings and rerank requests have inputs (texts, documents)"),
    Metric("inputs_per_second", "inputs_per_second", "inputs/s", seconds=False, title="inputs/s per request",
           better="higher", rate_unit="inputs/s", test_slo="min_inputs_per_second",
           unmeasured="only embeddings and rerank requests have inputs (texts, documents)"),
    Metric("input_tokens_per_second", "input_tokens_per_second", "input tok/s", seconds=False,
           title="input tokens/s per request", better="higher", test_slo="min_input_tokens_per_second",
           unmeasured="only embeddings requests count input tokens per second, by the server's usage"),
    Metric("cached_tokens", "cached_tokens", "cached tokens", seconds=False, title="cached prompt tokens",
           better="higher", rate_unit="tok"),
)
"""Every per-request metric, in the order the summary table lists them."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")



def tokens_per_second(completion_tokens: int | None, seconds: float) -> float | None:
    if not completion_tokens or completion_tokens < MIN_RATE_TOKENS or seconds <= 0:
        return None
    return completion_tokens / seconds


def estimate_tokens(text: str) -> int:
    """A rough count for servers that send no usage: about four characters a token, words as a floor."""
    if not text:
        return 0
    return max(len(text.split()), math.ceil(len(text) / 4))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps_strict(data: Any, indent: int | None = None) -> str:
    """JSON that every parser accepts: NaN and infinities become null instead of invalid tokens, and a value
    JSON has no type for (a hook's datetime or numpy number) is written as its text rather than lost."""
    try:
        return json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_finite(data), indent=indent, ensure_ascii=False, allow_nan=False, default=str)
