"""Command-line options and ini keys, declared once as the fields of ``Settings``.

Every field of ``Settings`` is an option ``--llmbench-<name>`` with an ini twin ``llmbench_<name>``; its type,
default and help text are written on the field, and ``OPTIONS`` is derived from them. The command line wins
over the ini file, which wins over the default. A bool option set in the ini file is switched off on the command
line with ``--no-llmbench-<name>``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .collect.suite_json import DEFAULT_MAX_BYTES
from .exceptions import ConfigurationError
from .http.client import ClientConfig
from .metrics.hardware.monitor import (
    DEFAULT_ERROR_RATE,
    DEFAULT_GPU_TEMP_C,
    DEFAULT_INTERVAL,
    DEFAULT_MEMORY_PCT,
)
from .option_field import option as _option
from .search_options import SearchOptions

ENV_API_KEYS = ("LLMBENCH_API_KEY", "OPENAI_API_KEY")
ENV_ENDPOINTS = ("LLMBENCH_ENDPOINT", "OPENAI_BASE_URL")  # the second is what OpenAI's own clients read
LOCAL_ENDPOINT = "local"


@dataclass(frozen=True)
class Settings(SearchOptions):
    """Everything the plugin was told, resolved from the command line, the ini file and the environment; a group of
    options with a module of its own (``SearchOptions``) is a base class, its options listed after these."""

    suite: tuple[Path, ...] = _option((), "suite file, or directory of *.json suites (repeatable)", "PATH",
                                      path=True)
    endpoint: str | None = _option(
        None, "OpenAI-compatible URL: .../v1, .../v1/completions or .../v1/chat/completions; 'local' (the default "
        "when none is set) starts the embedded llama.cpp server", "URL")
    model: tuple[str, ...] = _option((), "model name (repeatable: one item per test and model); default: first "
                                         "of GET /v1/models", "NAME")
    api_key: str | None = field(default=None, repr=False, metadata={
        "help": "API key sent as 'Authorization: Bearer'; prefer the LLMBENCH_API_KEY or OPENAI_API_KEY environment "
                "variable, since a command line is visible to other users", "metavar": "KEY"})
    header: tuple[str, ...] = _option((), "extra request header 'Name: value' (repeatable)", "HEADER", lines=True)
    timeout: float = _option(ClientConfig.timeout, "total deadline per request attempt (10s, 500ms, 2m; a bare "
                             "number is seconds)", "DURATION",
                             low=0, inclusive=False)
    retries: int = _option(ClientConfig.retries, "retries after the first attempt", "N", low=0)
    retry_delay: float = _option(ClientConfig.retry_delay, "base of the exponential backoff (a duration)",
                                 "DURATION", low=0)
    max_retry_wait: float = _option(ClientConfig.max_retry_wait, "longest Retry-After the client waits for (a "
                                    "duration); a longer one fails at once", "DURATION", low=0)
    retry_read_timeouts: bool = _option(ClientConfig.retry_read_timeouts, "also retry requests that timed out "
                                        "after being sent (doubles server work)")
    insecure: bool = _option(False, "do not verify TLS certificates (prints a warning)")
    ca_bundle: str | None = _option(None, "CA bundle file used to verify TLS certificates", "PATH", path=True)
    output: Path = _option(Path("llmbench_results"), "folder for result files", "DIR", path=True)
    category: tuple[str, ...] = _option((), "run only tests whose category matches (case-insensitive, * wildcards "
                                            "or substring; repeatable)", "PATTERN")
    max_suite_bytes: int = _option(DEFAULT_MAX_BYTES, "largest suite file accepted, in bytes", "BYTES",
                                   low=0, inclusive=False)
    stream: bool = _option(False, "stream responses (SSE) and measure TTFT, ITL and TPOT")
    no_eval: bool = _option(False, "skip every answer check: run as a pure benchmark")
    judge_endpoint: str | None = _option(None, "endpoint of the LLM judge for 'rubric' checks (default: the "
                                               "session's)", "URL")
    judge_model: str | None = _option(None, "model of the LLM judge (default: the session's)", "NAME")
    slo: tuple[str, ...] = _option((), "run-wide SLO over pooled statistics, e.g. ttft_p99=500ms (repeatable)",
                                   "SPEC")
    compare: Path | None = _option(None, "an earlier run to compare this run with: its batch file, its run "
                                   "folder, or 'latest' (the most recent earlier run in the output folder)", "RUN",
                                   path=True)
    drift_fail: float | None = _option(None, "with --llmbench-compare: fail the session when an answer's "
                                       "similarity to the baseline's answer (0-1, rapidfuzz's ratio / 100) falls "
                                       "below this, e.g. 0.8", "SIMILARITY", low=0, high=1)
    embedding_model: str | None = _option(None, "with --llmbench-compare: also compare each changed answer with the "
                                                "baseline's by the cosine of their embeddings from this model",
                                          "NAME")
    embedding_endpoint: str | None = _option(None, "where --llmbench-embedding-model is served (default: the "
                                                   "session's endpoint)", "URL")
    rerank_path: str | None = _option(None, "where rerank tests (query + documents) are sent on the endpoint's "
                                            "server, e.g. /rerank for TEI (default: <endpoint>/rerank, then /rerank "
                                            "when that answers 404)", "PATH")
    compare_fail: tuple[str, ...] = _option((), "fail the session when a metric regresses past a threshold, e.g. "
                                                "latency_p50:10% or tokens_per_second_mean:-5% (repeatable)",
                                                "METRIC:PCT")
    monitor: bool = _option(False, "sample GPU, CPU, memory, disk and network during the run")
    monitor_interval: float = _option(DEFAULT_INTERVAL, "time between hardware samples (a duration)", "DURATION",
                                      low=0, inclusive=False)
    alert_gpu_temp: float = _option(DEFAULT_GPU_TEMP_C, "warn once when a GPU passes this temperature (Celsius)",
                                    "C", low=0, inclusive=False)
    alert_memory: float = _option(DEFAULT_MEMORY_PCT, "warn once when system memory use passes this percentage",
                                  "PCT", low=0, high=100, inclusive=False)
    alert_error_rate: float = _option(DEFAULT_ERROR_RATE, "warn once when the API error rate over the last "
                                      "results passes this share", "SHARE", low=0, high=1)
    local_startup_timeout: float = _option(180.0, "how long to wait for the embedded server to answer "
                                           "(a duration)", "DURATION",
                                           low=0, inclusive=False)
    html: str | None = _option(None, "where the HTML report goes (default: report.html in the output folder); "
                                     "'none' writes no report", "PATH")
    max_response_bytes: int = _option(ClientConfig.max_response_bytes, "largest answer read, in decoded bytes "
                                      "(after gzip); a larger one fails its test", "BYTES", low=0, inclusive=False)
    connect_timeout: float = _option(ClientConfig.connect_timeout, "seconds to open a connection (within "
                                     "--llmbench-timeout); a connect timeout is retried", "SECONDS",
                                     low=0, inclusive=False)
    tokenizer: str | None = _option(None, "tokenizer.json (or its folder) that builds workload prompts when the "
                                    "server has no /tokenize route; needs the 'tokenizer' extra", "PATH")
    # -- load generation (session/load/) --
    concurrency: int = _option(0, "most requests in flight for the whole session, whatever the number of "
                                  "processes (0: one per process, as plain pytest)", "N", low=0)
    request_rate: str = _option("inf", "requests per second for the whole session, arriving as a Poisson process "
                                       "(see --llmbench-burstiness); 'inf' sends as fast as the concurrency allows",
                                "RATE")
    burstiness: float = _option(1.0, "shape of the gamma distribution of gaps between arrivals: 1 is Poisson, "
                                     "below 1 burstier, above 1 smoother", "B", low=0, inclusive=False)
    repeat: int = _option(1, "run each selected test N times (node ids t01[r1] ... t01[rN])", "N", low=1)
    warmup: int = _option(0, "requests sent before measuring, cycled from the selected tests; not tests, not in "
                             "the statistics", "N", low=0)
    duration: float = _option(0.0, "stop sending new requests after this many seconds (per sweep level); tests not "
                                   "sent are skipped (0: no limit)", "SECONDS", low=0)
    ramp: float = _option(0.0, "raise the request rate (or, without a rate, the concurrency) linearly to its "
                               "target over this many seconds", "SECONDS", low=0)
    sweep: str | None = _option(None, "run the selection once per level, e.g. concurrency=1,4,16,64 or "
                                      "rate=5,10,20 (node ids t01[c16]); the summary names the highest level "
                                      "that meets the SLOs", "KIND=LEVELS")
    test_files: str = _option("all", "per-test files to write: all, failed or none (the batch file is always "
                                     "written)", "WHICH")
    seed: int = _option(0, "seed of the random arrival times: the same seed gives the same schedule (as vLLM's "
                           "--seed)", "N")
    timeline_bucket: float = _option(1.0, "width of the batch file's timeline buckets, in seconds", "SECONDS",
                                     low=0, inclusive=False)
    server_metrics: tuple[str, ...] = _option(
        (), "the servers' Prometheus /metrics to scrape during the run: 'auto' (the default: look beside the "
            "endpoint's base URL once), 'off', or a URL such as a DCGM exporter's http://gpu-host:9400/metrics "
            "(repeatable; URLs replace 'auto' unless it is named too)", "URL")
    resume: str | None = _option(None, "continue an interrupted run in its own folder: 'latest' (the default when "
                                       "no RUN is given), a run folder or its batch file; recorded tests are not "
                                       "sent again", "RUN", const="latest")
    resume_force: bool = _option(False, "resume even when the options that change what is measured differ from "
                                        "the run's (the differences are listed as a warning)")
    server_metrics_interval: float = _option(0.5, "seconds between scrapes of the server metrics", "SECONDS",
                                             low=0.05)
    server_metric: tuple[str, ...] = _option((), "also keep this series of the server metrics, raw, e.g. "
                                                 "vllm:num_requests_swapped (repeatable; name a counter with its "
                                                 "_total to get its increase and rate)", "NAME")
    few_samples: str = _option("warn", "what a --llmbench-compare-fail limit does with a percentile resting on too "
                                       "few samples to bound it (at 95%: p90 36, p95 72, p99 368, p99.9 3688): warn "
                                       "(judge it and warn) or fail (the gate fails unjudged)", "WHAT")
    server_timing: bool = _option(False, "ask the server for its own per-request times (sends vLLM's "
                                         "include_metrics field, which some servers refuse); llama.cpp timings, "
                                         "TGI headers and SGLang meta_info are read without it")
    traceparent: bool = _option(True, "send a W3C traceparent header with a trace id of its own on every request "
                                      "(a traceparent given with --llmbench-header wins)")
    otlp: str | None = _option(None, "export one OpenTelemetry span per request and one for the session to this "
                                     "OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces (needs the otel "
                                     "extra); a collector that is down costs only its spans", "URL")
    confidence: float = _option(0.95, "the level of the confidence intervals on every pooled percentile (order "
                                      "statistics) and share (Wilson), which run SLOs are judged on", "LEVEL",
                                low=0.5, high=1.0, inclusive=False)
    slo_undecided: str = _option("warn", "what a run SLO does when its confidence interval straddles the limit "
                                         "(too few samples to tell): warn (pass it with a warning), pass or fail",
                                 "WHAT")
    compare_min_change: float = _option(5.0, "the smallest change, in percent, that a comparison with a baseline "
                                              "(and llmbench-report's) marks worse or better; smaller ones and those "
                                              "that are not significant stay uncoloured", "PCT", low=0)

    @property
    def uses_local_server(self) -> bool:
        return self.endpoint in (None, "", LOCAL_ENDPOINT)

    def headers(self) -> dict[str, str]:
        parsed = {}
        for raw in self.header:
            name, sep, value = raw.partition(":")
            if not sep or not name.strip():
                raise ConfigurationError(f"--llmbench-header {name.strip() or raw!r}: expected 'Name: value'")
            parsed[name.strip()] = value.strip()
        return parsed

    def client_config(self, url: str) -> ClientConfig:
        """The client these settings describe, talking to ``url``."""
        verify: bool | str = False if self.insecure else (self.ca_bundle or True)
        return ClientConfig(endpoint=url, api_key=self.api_key, headers=self.headers(), timeout=self.timeout,
                            retries=self.retries, retry_delay=self.retry_delay,
                            max_retry_wait=self.max_retry_wait, retry_read_timeouts=self.retry_read_timeouts,
                            verify=verify, connect_timeout=self.connect_timeout,
                            max_response_bytes=self.max_response_bytes, secrets=tuple(self.secrets()),
                            server_timing=self.server_timing, traceparent=self.traceparent,
                            rerank_path=self.rerank_path)

    def secrets(self) -> list[str]:
        """Every value that must never be written or printed."""
        from .http.redact import header_secrets, url_secrets

        found = [self.api_key] if self.api_key else []
        return found + header_secrets(self.headers()) + url_secrets(self.endpoint) + url_secrets(self.judge_endpoint)


@dataclass(frozen=True)
class Option:
    """One option as the command line and the ini file see it, derived from a ``Settings`` field."""

    name: str  # the field's name: "retry_delay" is --llmbench-retry-delay and llmbench_retry_delay
    kind: str  # "str", "float", "int", "bool", "list", from the field's type
    default: Any
    help: str
    metavar: str | None
    low: float | None
    high: float | None
    inclusive: bool
    path: bool
    lines: bool = False
    const: str | None = None  # a flag whose value may be left out: ``--llmbench-resume`` alone is ``latest``

    @property
    def flag(self) -> str:
        return f"--llmbench-{self.name.replace('_', '-')}"

    @property
    def dest(self) -> str:
        return f"llmbench_{self.name}"


def _kind(annotation: str) -> str:
    annotation = annotation.removesuffix(" | None")  # an option that may be left unset
    if annotation.startswith("tuple"):
        return "list"
    for kind in ("bool", "int", "float"):
        if annotation == kind:
            return kind
    return "str"


OPTIONS: tuple[Option, ...] = tuple(
    Option(name=f.name, kind=_kind(str(f.type)), default=None if f.default is MISSING else f.default,
           help=f.metadata["help"], metavar=f.metadata.get("metavar"), low=f.metadata.get("low"),
           high=f.metadata.get("high"), inclusive=f.metadata.get("inclusive", True),
           path=f.metadata.get("path", False), lines=f.metadata.get("lines", False),
           const=f.metadata.get("const"))
    for f in sorted(fields(Settings), key=lambda f: f.name not in Settings.__annotations__)  # a group's last
)


_SETTING = re.compile(r"\bsetting ([a-z_]+)\b")
_OPTION_OF_CLIENT = {"headers": "header"}  # ClientConfig's name of a setting, where the option's differs


def name_options(text: str) -> str:
    """A client message as the plugin's user reads it: the http layer names its own settings
    (``setting max_response_bytes``, ClientConfig's fields); here each becomes its option's flag."""
    names = {opt.name: opt.flag for opt in OPTIONS}

    def flag(match: re.Match[str]) -> str:
        return names.get(_OPTION_OF_CLIENT.get(match[1], match[1]), match[0])

    return _SETTING.sub(flag, text)


def add_options(parser: Any) -> None:
    group = parser.getgroup("llmbench", "LLM benchmarks (pytest-llmbench)")
    for opt in OPTIONS:
        if opt.kind == "bool":
            group.addoption(opt.flag, action="store_true", default=None, dest=opt.dest, help=_escape(opt.help))
            group.addoption(f"--no-{opt.flag[2:]}", action="store_false", default=None, dest=opt.dest,
                            help=f"turn {opt.flag} off (e.g. when the ini file sets it)")
        elif opt.kind == "list":
            group.addoption(opt.flag, action="append", default=None, dest=opt.dest, metavar=opt.metavar,
                            help=_escape(opt.help))
        elif opt.const is not None:
            group.addoption(opt.flag, nargs="?", const=opt.const, default=None, dest=opt.dest, metavar=opt.metavar,
                            help=_escape(opt.help))
        else:
            group.addoption(opt.flag, default=None, dest=opt.dest, metavar=opt.metavar,
                            help=_escape(_with_default(opt)))
        ini_type = {"bool": "bool", "list": "linelist" if opt.lines else "args"}.get(opt.kind, "string")
        parser.addini(opt.dest, opt.help, type=ini_type, default=[] if opt.kind == "list" else None)


def _escape(text: str) -> str:
    """argparse %-formats help texts: a literal '%' (as in '10%') must be doubled or ``--help`` crashes."""
    return text.replace("%", "%%")


def _with_default(opt: Option) -> str:
    return opt.help if opt.default is None else f"{opt.help} (default: {opt.default})"


def endpoint_source(getoption: Callable[[str], Any], getini: Callable[[str], Any],
                    environ: dict[str, str] | None = None) -> str:
    """Where the endpoint setting came from, for the header line: an option, the ini file, a variable or nothing."""
    env = os.environ if environ is None else environ
    if getoption("llmbench_endpoint"):
        return "--llmbench-endpoint"
    if getini("llmbench_endpoint"):
        return "ini llmbench_endpoint"
    return next((name for name in ENV_ENDPOINTS if env.get(name)), "default")


DURATION_METAVARS = ("DURATION", "SECONDS")  # options that take a duration: a unit, or a bare number of seconds
_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"\s*((?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_seconds(value: Any) -> float:
    """A duration in seconds from ``10``, ``10s``, ``500ms``, ``2m`` or ``1h``. Raises ValueError."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)  # a bare number, also "nan" or "-1", which the bounds check then names
    except ValueError:
        pass
    match = _DURATION.fullmatch(str(value))
    unit = match[2].lower() if match else ""
    if not match or unit not in ("", *_UNITS):
        raise ValueError(f"expected a duration such as 10s, 500ms or 2m, got {value!r}")
    return float(match[1]) * _UNITS.get(unit, 1.0)


_CONVERT: dict[str, Callable[[Any], Any]] = {"float": float, "int": int, "str": str}


def read_settings(getoption: Callable[[str], Any], getini: Callable[[str], Any],
                  environ: dict[str, str] | None = None, ini_dir: Path | None = None) -> Settings:
    """Resolve every option: command line first, then ini, then the default. Raises ConfigurationError.

    Relative paths from the ini file are relative to the ini file's folder, as pytest's own ini paths are;
    from the command line, to the folder pytest was started in (the caller resolves those).
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        value = getoption(opt.dest)
        if value is None or value == []:
            value = getini(opt.dest)
            if ini_dir is not None and opt.path and value:
                value = [str(ini_dir / v) for v in value] if opt.kind == "list" else str(ini_dir / value)
        if value is None or value == "" or value == []:
            value = opt.default
        values[opt.name] = _convert(opt, value)
        _check_bounds(opt, values[opt.name])
    if not values["api_key"]:
        values["api_key"] = next((env[k] for k in ENV_API_KEYS if env.get(k)), None)
    if not values["endpoint"]:
        values["endpoint"] = next((env[k] for k in ENV_ENDPOINTS if env.get(k)), None)
    values["suite"] = tuple(Path(p) for p in values["suite"])
    values["output"] = Path(values["output"])
    values["compare"] = Path(values["compare"]) if values["compare"] else None
    return Settings(**values)


def _check_bounds(opt: Option, value: Any) -> None:
    if opt.low is None or value is None:
        return
    too_low = value < opt.low if opt.inclusive else value <= opt.low
    if not math.isfinite(value) or too_low or (opt.high is not None and value > opt.high):
        bound = (f">= {opt.low:g}" if opt.inclusive else f"> {opt.low:g}")
        bound += "" if opt.high is None else f" and <= {opt.high:g}"
        raise ConfigurationError(f"{opt.flag}: must be a number {bound}, got {value:g}")


def _convert(opt: Option, value: Any) -> Any:
    if opt.kind == "list":
        return tuple(value or ())
    if opt.kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    if value is None or isinstance(value, Path):
        return value
    try:
        if opt.metavar in DURATION_METAVARS:
            return parse_seconds(value)
        return _CONVERT[opt.kind](value)
    except ValueError:
        if opt.metavar in DURATION_METAVARS:
            raise ConfigurationError(f"{opt.flag}: expected a duration such as 10s, 500ms or 2m (a bare number "
                                     f"is seconds), got {value!r}") from None
        raise ConfigurationError(f"{opt.flag}: expected a{'n' if opt.kind == 'int' else ''} {opt.kind}, "
                                 f"got {value!r}") from None
