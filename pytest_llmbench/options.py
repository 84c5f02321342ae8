"""Command-line options and ini keys, read once into a ``Settings`` record.

Every option ``--llmbench-<name>`` has an ini twin ``llmbench_<name>``; the command line wins.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .suite import DEFAULT_MAX_BYTES

ENV_API_KEYS = ("LLMBENCH_API_KEY", "OPENAI_API_KEY")
LOCAL_ENDPOINT = "local"


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    kind: str = "str"  # "str", "float", "int", "bool", "list"
    default: Any = None
    metavar: str | None = None


OPTIONS: tuple[Option, ...] = (
    Option("suite", "suite file, or directory of *.json suites (repeatable)", "list", metavar="PATH"),
    Option("endpoint", "OpenAI-compatible URL: .../v1, .../v1/completions or .../v1/chat/completions; "
           "'local' (the default when none is set) starts the embedded llama.cpp server", metavar="URL"),
    Option("model", "model name (repeatable: one item per test and model); default: first of GET /v1/models",
           "list", metavar="NAME"),
    Option("api-key", "API key sent as 'Authorization: Bearer'; prefer the LLMBENCH_API_KEY or OPENAI_API_KEY "
           "environment variable, since a command line is visible to other users", metavar="KEY"),
    Option("header", "extra request header 'Name: value' (repeatable)", "list", metavar="HEADER"),
    Option("timeout", "total deadline per request attempt, in seconds", "float", 600.0, "SECONDS"),
    Option("retries", "retries after the first attempt", "int", 3, "N"),
    Option("retry-delay", "base of the exponential backoff, in seconds", "float", 1.0, "SECONDS"),
    Option("max-retry-wait", "longest Retry-After the client waits for; a longer one fails at once",
           "float", 120.0, "SECONDS"),
    Option("retry-read-timeouts", "also retry requests that timed out after being sent (doubles server work)",
           "bool", False),
    Option("insecure", "do not verify TLS certificates (prints a warning)", "bool", False),
    Option("ca-bundle", "CA bundle file used to verify TLS certificates", metavar="PATH"),
    Option("output", "folder for result files", default="llmbench_results", metavar="DIR"),
    Option("category", "run only tests whose category matches (case-insensitive, * wildcards or substring; "
           "repeatable)", "list", metavar="PATTERN"),
    Option("max-suite-bytes", "largest suite file accepted, in bytes", "int", DEFAULT_MAX_BYTES, "BYTES"),
    Option("stream", "stream responses (SSE) and measure TTFT, ITL and TPOT", "bool", False),
    Option("no-eval", "skip every answer check: run as a pure benchmark", "bool", False),
    Option("judge-endpoint", "endpoint of the LLM judge for 'rubric' checks (default: the session's)",
           metavar="URL"),
    Option("judge-model", "model of the LLM judge (default: the session's)", metavar="NAME"),
    Option("slo", "run-wide SLO over pooled statistics, e.g. ttft_p99=500ms (repeatable)", "list", metavar="SPEC"),
    Option("compare", "a previous batch file to compare this run with", metavar="PATH"),
    Option("compare-fail", "fail the session when a metric regresses past a threshold, e.g. "
           "p50_latency_ms:10% (repeatable)", "list", metavar="METRIC:PCT"),
    Option("monitor", "sample GPU, CPU, memory, disk and network during the run", "bool", False),
    Option("monitor-interval", "seconds between hardware samples", "float", 0.5, "SECONDS"),
    Option("alert-gpu-temp", "warn once when a GPU passes this temperature (Celsius)", "float", 85.0, "C"),
    Option("alert-memory", "warn once when system memory use passes this percentage", "float", 95.0, "PCT"),
    Option("alert-error-rate", "warn once when the API error rate over the last results passes this share",
           "float", 0.5, "SHARE"),
    Option("local-startup-timeout", "seconds to wait for the embedded server to answer", "float", 180.0,
           "SECONDS"),
)


@dataclass(frozen=True)
class Settings:
    """Everything the plugin was told, resolved from the command line, the ini file and the environment."""

    suite: tuple[Path, ...] = ()
    endpoint: str | None = None
    model: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    header: tuple[str, ...] = ()
    timeout: float = 600.0
    retries: int = 3
    retry_delay: float = 1.0
    max_retry_wait: float = 120.0
    retry_read_timeouts: bool = False
    insecure: bool = False
    ca_bundle: str | None = None
    output: Path = Path("llmbench_results")
    category: tuple[str, ...] = ()
    max_suite_bytes: int = DEFAULT_MAX_BYTES
    stream: bool = False
    no_eval: bool = False
    judge_endpoint: str | None = None
    judge_model: str | None = None
    slo: tuple[str, ...] = ()
    compare: Path | None = None
    compare_fail: tuple[str, ...] = ()
    monitor: bool = False
    monitor_interval: float = 0.5
    alert_gpu_temp: float = 85.0
    alert_memory: float = 95.0
    alert_error_rate: float = 0.5
    local_startup_timeout: float = 180.0

    @property
    def uses_local_server(self) -> bool:
        return self.endpoint in (None, "", LOCAL_ENDPOINT)

    def headers(self) -> dict[str, str]:
        parsed = {}
        for raw in self.header:
            name, sep, value = raw.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"--llmbench-header {name.strip() or raw!r}: expected 'Name: value'")
            parsed[name.strip()] = value.strip()
        return parsed

    def secrets(self) -> list[str]:
        """Every value that must never be written or printed."""
        from .redact import header_secrets, url_secrets

        found = [self.api_key] if self.api_key else []
        return found + header_secrets(self.headers()) + url_secrets(self.endpoint) + url_secrets(self.judge_endpoint)


# Numeric options' bounds: (lowest, highest or None, whether the lowest itself is allowed).
_LIMITS: dict[str, tuple[float, float | None, bool]] = {
    "timeout": (0, None, False), "retries": (0, None, True), "retry-delay": (0, None, True),
    "max-retry-wait": (0, None, True), "max-suite-bytes": (0, None, False), "monitor-interval": (0, None, False),
    "alert-gpu-temp": (0, None, False), "alert-memory": (0, 100, False), "alert-error-rate": (0, 1, True),
    "local-startup-timeout": (0, None, False),
}
_PATH_OPTIONS = ("suite", "output", "compare", "ca-bundle")


def add_options(parser: Any) -> None:
    group = parser.getgroup("llmbench", "LLM benchmarks (pytest-llmbench)")
    for opt in OPTIONS:
        flag, dest = f"--llmbench-{opt.name}", f"llmbench_{opt.name.replace('-', '_')}"
        if opt.kind == "bool":
            group.addoption(flag, action="store_true", default=None, dest=dest, help=_escape(opt.help))
        elif opt.kind == "list":
            group.addoption(flag, action="append", default=None, dest=dest, metavar=opt.metavar,
                            help=_escape(opt.help))
        else:
            group.addoption(flag, default=None, dest=dest, metavar=opt.metavar, help=_escape(_with_default(opt)))
        ini_type = {"bool": "bool", "list": "linelist"}.get(opt.kind, "string")
        parser.addini(dest, opt.help, type=ini_type, default=_ini_default(opt))


def _escape(text: str) -> str:
    """argparse %-formats help texts: a literal '%' (as in '10%') must be doubled or ``--help`` crashes."""
    return text.replace("%", "%%")


def _with_default(opt: Option) -> str:
    return opt.help if opt.default is None else f"{opt.help} (default: {opt.default})"


def _ini_default(opt: Option) -> Any:
    if opt.kind == "list":
        return []
    if opt.kind == "bool":
        return False
    return None


_CONVERT: dict[str, Callable[[Any], Any]] = {"float": float, "int": int, "str": str}


def read_settings(getoption: Callable[[str], Any], getini: Callable[[str], Any],
                  environ: dict[str, str] | None = None, ini_dir: Path | None = None) -> Settings:
    """Resolve every option: command line first, then ini, then the default. Raises ValueError on bad values.

    Relative paths from the ini file are relative to the ini file's folder, as pytest's own ini paths are;
    from the command line, to the folder pytest was started in (the caller resolves those).
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        dest = f"llmbench_{opt.name.replace('-', '_')}"
        value = getoption(dest)
        if value is None or value == []:
            value = getini(dest)
            if ini_dir is not None and opt.name in _PATH_OPTIONS and value:
                value = [str(ini_dir / v) for v in value] if opt.kind == "list" else str(ini_dir / value)
        if value is None or value == "" or value == []:
            value = opt.default
        values[dest[len("llmbench_"):]] = _convert(opt, value)
    if not values["api_key"]:
        values["api_key"] = next((env[k] for k in ENV_API_KEYS if env.get(k)), None)
    for name, (low, high, inclusive) in _LIMITS.items():
        value = values[name.replace("-", "_")]
        if value is None:
            continue
        too_low = value < low if inclusive else value <= low
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            bound = (f">= {low:g}" if inclusive else f"> {low:g}") + ("" if high is None else f" and <= {high:g}")
            raise ValueError(f"--llmbench-{name}: must be a number {bound}, got {value:g}")
    values["suite"] = tuple(Path(p) for p in values["suite"])
    values["output"] = Path(values["output"])
    values["compare"] = Path(values["compare"]) if values["compare"] else None
    return Settings(**values)


def _convert(opt: Option, value: Any) -> Any:
    if opt.kind == "list":
        return tuple(value or ())
    if opt.kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    if value is None:
        return None
    try:
        return _CONVERT[opt.kind](value)
    except ValueError:
        raise ValueError(f"--llmbench-{opt.name}: expected a{'n' if opt.kind == 'int' else ''} "
                         f"{opt.kind}, got {value!r}") from None
