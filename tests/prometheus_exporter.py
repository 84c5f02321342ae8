"""A real Prometheus exporter on 127.0.0.1, built with prometheus_client, in each known server's format.

Names, types and labels follow each project's documentation (the plugin's metrics/server/catalog.py lists the
sources): vLLM (current, and the older gpu_cache_usage_perc), SGLang, TGI, llama.cpp's server and NVIDIA's
DCGM exporter. Attach it to an ``OpenAIStub`` (``stub.observer = exporter``) and its queue gauges, token
counters and latency histograms move with the requests a real plugin run sends; DCGM's energy counter grows at
``power_w`` watts by the clock. ``delay`` slows every answer, ``restart()`` starts the counters from zero.

    with PrometheusExporter("vllm") as exporter:
        exporter.url            # http://127.0.0.1:<port>/metrics
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

FLAVORS = ("vllm", "vllm-old", "sglang", "tgi", "llamacpp", "dcgm")
MODEL = "stub-model"
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

# (role, exposed name, labels) per flavor; roles are what the stub's requests move
_NAMES: dict[str, dict[str, str]] = {
    "vllm": {"running": "vllm:num_requests_running", "waiting": "vllm:num_requests_waiting",
             "kv": "vllm:kv_cache_usage_perc", "preempt": "vllm:num_preemptions", "prompt": "vllm:prompt_tokens",
             "gen": "vllm:generation_tokens", "done": "vllm:request_success",
             "hits": "vllm:prefix_cache_hits", "queries": "vllm:prefix_cache_queries",
             "ttft": "vllm:time_to_first_token_seconds", "e2e": "vllm:e2e_request_latency_seconds",
             "queue": "vllm:request_queue_time_seconds", "tpot": "vllm:request_time_per_output_token_seconds",
             "itl": "vllm:inter_token_latency_seconds"},
    "sglang": {"running": "sglang:num_running_reqs", "waiting": "sglang:num_queue_reqs", "kv": "sglang:token_usage",
               "preempt": "sglang:num_retracted_requests", "prompt": "sglang:prompt_tokens",
               "gen": "sglang:generation_tokens", "done": "sglang:num_requests", "hits": "sglang:cached_tokens",
               "ttft": "sglang:time_to_first_token_seconds", "e2e": "sglang:e2e_request_latency_seconds",
               "queue": "sglang:queue_time_seconds", "itl": "sglang:inter_token_latency_seconds"},
    "tgi": {"running": "tgi_batch_current_size", "waiting": "tgi_queue_size", "done": "tgi_request_success",
            "count": "tgi_request_count", "e2e": "tgi_request_duration", "queue": "tgi_request_queue_duration",
            "tpot": "tgi_request_mean_time_per_token_duration", "prompt_hist": "tgi_request_input_length",
            "gen_hist": "tgi_request_generated_tokens"},
    "llamacpp": {"running": "llamacpp:requests_processing", "waiting": "llamacpp:requests_deferred",
                 "kv": "llamacpp:kv_cache_usage_ratio", "prompt": "llamacpp:prompt_tokens",
                 "gen": "llamacpp:tokens_predicted"},
}
_NAMES["vllm-old"] = {**_NAMES["vllm"], "kv": "vllm:gpu_cache_usage_perc",
                      "itl": "vllm:time_per_output_token_seconds"}
_LABELS = {"vllm": {"model_name": MODEL, "engine": "0"}, "vllm-old": {"model_name": MODEL},
           "sglang": {"model_name": MODEL, "tp_rank": "0"}, "tgi": {}, "llamacpp": {}}
_BUCKETS = {"ttft": TTFT_BUCKETS, "e2e": LATENCY_BUCKETS, "queue": LATENCY_BUCKETS, "tpot": TPOT_BUCKETS,
            "itl": TPOT_BUCKETS, "prompt_hist": (1, 8, 16, 64, 256), "gen_hist": (1, 8, 16, 64, 256)}
_GAUGES = ("running", "waiting", "kv")
_COUNTERS = ("preempt", "prompt", "gen", "done", "count", "hits", "queries")
PREFIX_HITS = 3  # of the 7 prompt tokens of each request, found in the prefix cache


class _DcgmGpus:
    """Two GPUs as dcgm-exporter labels them; energy in millijoules since 'boot', growing with the clock."""

    def __init__(self, power_w: float) -> None:
        self.power_w = power_w
        self.started = time.monotonic()
        self.offset_mj = 5_000_000.0  # counters since boot do not start at zero
        self.busy = 0

    def collect(self) -> Iterator[Any]:
        labels = ["gpu", "UUID", "device", "modelName", "Hostname"]
        gauges: dict[str, tuple[str, Callable[[int], float]]] = {"DCGM_FI_DEV_GPU_UTIL": ("GPU utilization (in %).", lambda i: 90.0 if self.busy else 5.0),
                  "DCGM_FI_DEV_POWER_USAGE": ("Power draw (in W).", lambda i: self.power_w),
                  "DCGM_FI_DEV_FB_USED": ("Framebuffer memory used (in MiB).", lambda i: 20480.0 + 1024 * i),
                  "DCGM_FI_DEV_FB_FREE": ("Framebuffer memory free (in MiB).", lambda i: 20480.0 - 1024 * i),
                  "DCGM_FI_DEV_GPU_TEMP": ("GPU temperature (in C).", lambda i: 60.0 + i)}
        for name, (help_text, value) in gauges.items():
            family = GaugeMetricFamily(name, help_text, labels=labels)
            for i in range(2):
                family.add_metric(self._labels(i), value(i))
            yield family
        energy = CounterMetricFamily("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                                     "Total energy consumption since boot (in mJ).", labels=labels)
        for i in range(2):
            energy.add_metric(self._labels(i), self.offset_mj + self.power_w * 1000 * (time.monotonic() - self.started))
        yield energy

    def _labels(self, i: int) -> list[str]:
        return [str(i), f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd", f"nvidia{i}", "NVIDIA H100 80GB HBM3", "node1"]


class PrometheusExporter:
    def __init__(self, flavor: str, power_w: float = 250.0) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}")
        self.flavor = flavor
        self.power_w = power_w
        self.delay = 0.0
        self.scrapes = 0
        self.authorizations: list[str | None] = []  # the Authorization header of each scrape
        self._lock = threading.Lock()
        self._build()

        def served(environ: dict[str, Any], start_response: Any) -> Any:
            self.scrapes += 1
            self.authorizations.append(environ.get("HTTP_AUTHORIZATION"))
            if self.delay:
                time.sleep(self.delay)
            return make_wsgi_app(self.registry)(environ, start_response)

        self._httpd = make_server("127.0.0.1", 0, served, _ThreadingServer, _QuietHandler)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}/metrics"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def _build(self) -> None:
        """A fresh registry: a server that restarted counts from zero again."""
        self.registry = CollectorRegistry()
        self.metrics: dict[str, Any] = {}
        if self.flavor == "dcgm":
            self.gpus = _DcgmGpus(self.power_w)
            self.registry.register(self.gpus)
            return
        labels = _LABELS[self.flavor]
        for role, name in _NAMES[self.flavor].items():
            kind = Gauge if role in _GAUGES else Counter if role in _COUNTERS else Histogram
            extra: dict[str, Any] = {"buckets": _BUCKETS[role]} if kind is Histogram else {}
            metric = kind(name, f"{role} as {self.flavor} exposes it", list(labels), registry=self.registry, **extra)
            self.metrics[role] = metric.labels(**labels) if labels else metric

    def exposition(self) -> bytes:
        """The page as served, for serving it from another server (the LLM endpoint's own /metrics)."""
        self.scrapes += 1
        return generate_latest(self.registry)

    def restart(self) -> None:
        with self._lock:
            self._build()

    # -- what the stub tells it --------------------------------------------------------------------

    def begin(self) -> None:
        with self._lock:
            if self.flavor == "dcgm":
                self.gpus.busy += 1
                return
            self.metrics["running"].inc()
            if "kv" in self.metrics:
                self.metrics["kv"].set(min(1.0, 0.3 + 0.2 * self._running()))

    def end(self, prompt_tokens: int, completion_tokens: int, ttft: float, seconds: float) -> None:
        with self._lock:
            if self.flavor == "dcgm":
                self.gpus.busy -= 1
                return
            m = self.metrics
            m["running"].dec()
            for role, amount in (("prompt", prompt_tokens), ("gen", completion_tokens), ("done", 1), ("count", 1),
                                 ("hits", PREFIX_HITS), ("queries", prompt_tokens),
                                 ("prompt_hist", prompt_tokens), ("gen_hist", completion_tokens)):
                if role in m:
                    (m[role].observe if role.endswith("_hist") else m[role].inc)(amount)
            for role, value in (("ttft", ttft), ("e2e", seconds), ("queue", 0.0),
                                ("tpot", (seconds - ttft) / max(completion_tokens - 1, 1))):
                if role in m:
                    m[role].observe(value)
            if "itl" in m:
                for _ in range(max(completion_tokens - 1, 0)):
                    m["itl"].observe((seconds - ttft) / max(completion_tokens - 1, 1))

    def preempt(self, times: int = 1) -> None:
        with self._lock:
            self.metrics["preempt"].inc(times)

    def set_waiting(self, value: float) -> None:
        with self._lock:
            self.metrics["waiting"].set(value)

    def _running(self) -> float:
        running: float = self.metrics["running"]._value.get()
        return running

    # -- life ----------------------------------------------------------------------------------------

    def start(self) -> PrometheusExporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> PrometheusExporter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class Observers:
    """Tells several exporters of each answer an ``OpenAIStub`` gives (``stub.observer = Observers(a, b)``);
    ``preempt`` also counts a preemption at each request's start."""

    def __init__(self, *exporters: PrometheusExporter, preempt: bool = False) -> None:
        self.exporters, self.preempt = exporters, preempt

    def begin(self) -> None:
        for exporter in self.exporters:
            exporter.begin()
            if self.preempt and exporter.flavor != "dcgm":
                exporter.preempt()

    def end(self, prompt_tokens: int, completion_tokens: int, ttft: float, seconds: float) -> None:
        for exporter in self.exporters:
            exporter.end(prompt_tokens, completion_tokens, ttft, seconds)


def serve_beside(exporter: PrometheusExporter, stub: Any, httpserver: Any) -> list[str | None]:
    """Install ``stub`` on ``httpserver`` with the exporter's page at its /metrics (the endpoint's own origin, as
    vLLM serves it); returns the list the Authorization header of each scrape is appended to."""
    stub.observer = Observers(exporter)
    stub.url = stub.install(httpserver)
    seen: list[str | None] = []

    def metrics(request: Any) -> Any:
        from werkzeug import Response

        seen.append(request.headers.get("Authorization"))
        return Response(exporter.exposition(), content_type="text/plain; version=0.0.4")

    httpserver.expect_request("/metrics").respond_with_handler(metrics)
    return seen


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""
