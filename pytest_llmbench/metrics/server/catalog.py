"""What the known servers call their figures, mapped to one set of common names.

Names come from each project's documentation and source: vLLM (``vllm:``, docs "Production Metrics" and
vllm/v1/metrics/loggers.py), SGLang (``sglang:``, docs "Production Metrics" and srt/metrics/collector.py), TGI
(``tgi_``, docs reference/metrics.md), llama.cpp's server started with ``--metrics`` (``llamacpp:``,
tools/server/README.md) and NVIDIA's DCGM exporter (``DCGM_FI_``, etc/default-counters.csv). Where a server
renamed a series, every spelling is listed, newest first; the first one an exporter serves is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .parse import (
    HISTOGRAM_SUFFIXES,
    Histogram,
    Labels,
    Readings,
    histogram,
    series_key,
)

SERVERS = (("vllm:", "vLLM"), ("sglang:", "SGLang"), ("tgi_", "TGI"), ("llamacpp:", "llama.cpp"),
           ("DCGM_FI_", "DCGM"))


@dataclass(frozen=True)
class Series:
    name: str  # the common name
    kind: str  # "gauge", "counter" or "histogram" (seconds, shown in ms)
    sources: tuple[str, ...]  # series keys (see parse.series_key), first served wins
    scale: float = 1.0
    combine: str = "sum"  # over label sets and servers: "sum" (requests, tokens) or "max" (a usage share)
    unit: str = ""  # suffix of the figures' keys: kv_cache_usage_peak_pct
    title: str = ""  # what the report calls it: "KV cache usage"


SERIES = (
    Series("requests_running", "gauge", ("vllm:num_requests_running", "sglang:num_running_reqs",
                                         "tgi_batch_current_size", "llamacpp:requests_processing"),
           title="Requests running"),
    Series("requests_waiting", "gauge", ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size",
                                         "llamacpp:requests_deferred"),
           title="Requests waiting"),
    Series("kv_cache_usage", "gauge", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage",
                                       "llamacpp:kv_cache_usage_ratio"), scale=100.0, combine="max", unit="_pct",
           title="KV cache usage"),
    Series("preemptions", "counter", ("vllm:num_preemptions", "sglang:num_retracted_requests")),
    Series("prompt_tokens", "counter", ("vllm:prompt_tokens", "sglang:prompt_tokens", "llamacpp:prompt_tokens",
                                        "tgi_request_input_length_sum"), title="Prompt tokens"),
    Series("generation_tokens", "counter", ("vllm:generation_tokens", "sglang:generation_tokens",
                                            "llamacpp:tokens_predicted", "tgi_request_generated_tokens_sum"),
           title="Generated tokens"),
    # prefix caching, in tokens: vLLM counts the tokens looked up and found; SGLang the prompt tokens served cached
    Series("prefix_cache_hits", "counter", ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits",
                                            "sglang:cached_tokens")),
    Series("prefix_cache_queries", "counter", ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries",
                                               "sglang:prompt_tokens")),
    Series("requests_finished", "counter", ("vllm:request_success", "sglang:num_requests", "tgi_request_success")),
    Series("ttft", "histogram", ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds")),
    Series("tpot", "histogram", ("vllm:request_time_per_output_token_seconds",
                                 "tgi_request_mean_time_per_token_duration")),
    Series("itl", "histogram", ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds",
                                "sglang:inter_token_latency_seconds")),
    Series("e2e", "histogram", ("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds",
                                "tgi_request_duration")),
    Series("queue_time", "histogram", ("vllm:request_queue_time_seconds", "sglang:queue_time_seconds",
                                       "tgi_request_queue_duration")),
)

# DCGM per GPU, under the names the local monitor gives its samples (metrics/hardware/nvml.py).
MIB_TO_GIB = 1 / 1024
GPU_SERIES = {
    "gpu_util_pct": ("DCGM_FI_DEV_GPU_UTIL", 1.0),
    "gpu_power_w": ("DCGM_FI_DEV_POWER_USAGE", 1.0),
    "gpu_memory_used_gb": ("DCGM_FI_DEV_FB_USED", MIB_TO_GIB),
    "gpu_memory_free_gb": ("DCGM_FI_DEV_FB_FREE", MIB_TO_GIB),
    "gpu_temperature_c": ("DCGM_FI_DEV_GPU_TEMP", 1.0),
    "gpu_energy_counter_j": ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1e-3),  # the exporter counts millijoules
}
# The timeline's GPU columns (the exporters' means over devices), as the report names them.
GPU_TITLES = {"gpu_util_pct": "GPU utilisation, %", "gpu_power_w": "GPU power, W"}
GPU_FIELDS = ("gpu_util_pct", "gpu_power_w", "gpu_memory_used_gb", "gpu_memory_total_gb", "gpu_temperature_c",
              "gpu_energy_counter_j")


@dataclass
class Reading:
    """One scrape of one or more exporters, in common names."""

    t: float  # time.monotonic() at the scrape
    values: dict[str, float] = field(default_factory=dict)  # gauges and counters, common and raw names
    histograms: dict[str, Histogram] = field(default_factory=dict)
    gpus: dict[str, dict[str, Any]] = field(default_factory=dict)  # by the exporter's gpu index
    dropped: int = 0  # values left out as implausible: not finite, past parse.MAX_VALUE, negative counts

    def merge(self, other: Reading) -> None:
        """Figures of a second exporter: requests and tokens add up, usage shares take the larger."""
        for name, value in other.values.items():
            mine = self.values.get(name)
            self.values[name] = value if mine is None else (max if _COMBINE.get(name) == "max" else _add)(mine, value)
        for name, hist in other.histograms.items():
            self.histograms[name] = hist.plus(self.histograms.get(name))
        self.gpus.update(other.gpus)
        self.dropped += other.dropped


def _add(a: float, b: float) -> float:
    return a + b


_COMBINE = {series.name: series.combine for series in SERIES}
KINDS = {series.name: series.kind for series in SERIES}


def timeline_title(key: str) -> str:
    """A server timeline column (``kv_cache_usage_pct``, ``generation_tokens_per_s``) as the report names it:
    "KV cache usage, %", "Generated tokens/s"; a raw series asked for by name keeps its name."""
    rate = key.endswith("_per_s")
    for series in SERIES:
        if series.title and key.removesuffix("_per_s") == series.name + series.unit:
            return series.title + ("/s" if rate else ", %" if series.unit == "_pct" else "")
    return GPU_TITLES.get(key, key)


def wanted_keys(raw: Iterable[str] = ()) -> frozenset[str]:
    """Every series key a scrape needs: the catalog's, DCGM's and the raw names asked for."""
    keys = {source for series in SERIES if series.kind != "histogram" for source in series.sources}
    keys |= {f"{source}{suffix}" for series in SERIES if series.kind == "histogram"
             for source in series.sources for suffix in HISTOGRAM_SUFFIXES}
    keys |= {source for source, _ in GPU_SERIES.values()}
    for name in raw:
        keys |= {series_key(name), *(f"{name}{suffix}" for suffix in HISTOGRAM_SUFFIXES)}
    return frozenset(keys)


def identify(names: Iterable[str]) -> list[str]:
    """The servers whose prefixes the exposition's series carry, in catalog order."""
    seen = set(names)
    return [server for prefix, server in SERVERS if any(name.startswith(prefix) for name in seen)]


def read(readings: Readings, t: float, raw: Iterable[str] = ()) -> Reading:
    """Common names from one exposition; raw names (``--llmbench-server-metric``) as given, summed."""
    reading = Reading(t)
    for series in SERIES:
        for source in series.sources:
            if series.kind == "histogram":
                hist = histogram(readings, source)
                if hist is not None:
                    reading.histograms[series.name] = hist
                    break
            elif source in readings:
                values = _counts(reading, readings[source], series.scale)
                if values:
                    reading.values[series.name] = max(values) if series.combine == "max" else sum(values)
                break
    for name in raw:
        hist = histogram(readings, name)
        if hist is not None:
            reading.histograms[name] = hist
        elif series_key(name) in readings:
            reading.values[name] = sum(value for _, value in readings[series_key(name)])
    reading.gpus = _gpus(reading, readings)
    for device in reading.gpus.values():
        device["t"] = t  # its own exporter's time: sources are read one after another
    return reading


def _counts(reading: Reading, samples: list[tuple[Labels, float]], scale: float) -> list[float]:
    """The samples' values, scaled; a negative one (no request count, token count, share or watt is) is
    counted in ``reading.dropped`` and left out, so that no rate or quantile turns negative."""
    values = [value * scale for _, value in samples if value >= 0]
    reading.dropped += len(samples) - len(values)
    return values


def _gpus(reading: Reading, readings: Readings) -> dict[str, dict[str, Any]]:
    gpus: dict[str, dict[str, Any]] = {}
    for name, (source, scale) in GPU_SERIES.items():
        for labels, value in readings.get(source, ()):
            if value < 0:
                reading.dropped += 1
                continue
            device = gpus.setdefault(_gpu_id(labels), {"name": labels.get("modelName") or "GPU"})
            device[name] = value * scale
    for device in gpus.values():
        used, free = device.get("gpu_memory_used_gb"), device.pop("gpu_memory_free_gb", None)
        device["gpu_memory_total_gb"] = None if used is None or free is None else used + free
        for key in GPU_FIELDS:
            device.setdefault(key, None)
    return gpus


def _gpu_id(labels: Labels) -> str:
    return labels.get("gpu") or labels.get("device") or labels.get("UUID") or "0"
