"""The controller's scraper in real plugin runs: discovery beside the endpoint, per-test windows, the run's
``server`` section, DCGM energy, SLOs, failing exporters and credentials, with and without xdist."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite
from prometheus_exporter import PREFIX_HITS, Observers, PrometheusExporter
from run_files import batch_of

INTERVAL = ("--llmbench-server-metrics-interval", "0.2", "-p", "no:cacheprovider")
TESTS = 6


@pytest.fixture
def vllm(metrics_stub: OpenAIStub) -> Any:
    """The vLLM exporter beside the stub endpoint (conftest's metrics_stub)."""
    exporter = metrics_stub.exporter
    exporter.stub, exporter.seen_authorizations = metrics_stub, metrics_stub.authorizations
    return exporter


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Path:
    return write_suite(pytester.path / "suite.json", [{"id": f"t{i}"} for i in range(TESTS)])




def results_of(output: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((output / "latest").glob("*_result.json"))]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["no-xdist", "xdist"])
def test_vllm_metrics_beside_the_endpoint_are_found_and_tied_to_each_test_and_the_run(pytester: pytest.Pytester, vllm: Any, suite: Any,
                                                                                         workers: Any) -> None:
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", vllm.stub.url,
                                           "--llmbench-output", "out", *INTERVAL, *workers)
    result.assert_outcomes(passed=TESTS)
    metrics_url = vllm.stub.url.replace("/v1", "/metrics")
    assert result.stdout.lines.count(f"server metrics: {metrics_url} (vLLM)") == 1
    result.stdout.fnmatch_lines(["server: * (vLLM) | * scrapes every 0.2 s*", "  e2e * server p50 * | client (e2el)*"])
    batch = batch_of(pytester.path / "out")
    server = batch["server"]
    assert server["generation_tokens"] == 6 * TESTS and server["requests_finished"] == TESTS
    assert server["requests_running_peak"] >= 1 and server["kv_cache_usage_peak_pct"] >= 50.0
    assert server["prefix_cache_hit_rate"] == pytest.approx(PREFIX_HITS / 7)  # 3 of each request's 7 prompt tokens
    assert server["sources"][0]["server"] == "vLLM" and server["readings"] >= 5
    assert server["failed_scrapes"] == server["sources"][0]["failures"]  # a busy machine may miss a deadline
    e2e = server["latency"]["e2e"]
    assert e2e["server_count"] == TESTS and e2e["client_count"] == TESTS
    assert 0 <= e2e["client_minus_server_mean_ms"] < 200  # the stub's own 250 ms sleep is inside both
    timeline = server["timeline"]
    assert len(timeline) >= 4 and timeline[0]["t"] == 0.0
    assert max(point.get("requests_running", 0) for point in timeline) >= 1
    tests = [test["server_metrics"] for test in results_of(pytester.path / "out")]
    for figures in tests:  # a result waits at the controller for the reading after its end: its request is in
        assert figures["generation_tokens"] >= 6 and figures["e2e_count"] >= 1, figures
        assert figures["span_s"] >= figures["duration_s"] and (figures["samples"] >= 1 or figures["nearest"])
    assert sum(figures["requests_running_peak"] >= 1 for figures in tests) >= TESTS - 1  # a reading fell between two
    if workers:
        assert batch["run"]["workers"] == 2


class RestartAfter(Observers):
    """Restarts the server's exporter (counters and histograms back to zero) just before the (n+1)-th answer is
    counted, once a scrape has read the n before it: the next scrape sees a counter lower than the last one (what
    a restart drops between two scrapes is lost, in Prometheus too)."""

    def __init__(self, exporter: PrometheusExporter, answers: int) -> None:
        super().__init__(exporter)
        self.left, self.read_after = answers, 0

    def begin(self) -> None:
        if self.left == 0:  # the answers before were all counted: wait until a scrape has read them (two pages
            # served: the scraper asks for one at a time, so the first was read whole; a busy machine is slow)
            deadline = time.monotonic() + 15
            while self.exporters[0].scrapes <= self.read_after + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        super().begin()

    def end(self, prompt_tokens: int, completion_tokens: int, ttft: float, seconds: float) -> None:
        if self.left == 0:
            self.exporters[0].restart()
            self.exporters[0].metrics["running"].inc()  # the request being answered is still running
        super().end(prompt_tokens, completion_tokens, ttft, seconds)
        self.left -= 1
        if self.left == 0:
            self.read_after = self.exporters[0].scrapes


@pytest.mark.parametrize(("metrics_stub", "server", "histograms"), [
    ("sglang", "SGLang", {"ttft", "itl", "e2e", "queue_time"}), ("tgi", "TGI", {"tpot", "e2e", "queue_time"}),
    ("llamacpp", "llama.cpp", set())], indirect=["metrics_stub"])
def test_each_servers_format_is_read_in_a_run_and_counts_across_a_server_restart(pytester: pytest.Pytester, metrics_stub: OpenAIStub, suite: Any,
                                                                                 server: Any, histograms: Any) -> None:
    metrics_stub.observer = RestartAfter(metrics_stub.exporter, 4)  # then at most 2 answers (12 tokens) < 24
    result = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", metrics_stub.url,
                                           "--llmbench-output", "out", *INTERVAL)
    result.assert_outcomes(passed=TESTS)
    result.stdout.fnmatch_lines([f"server metrics: http://127.0.0.1:*/metrics ({server})"])
    section = batch_of(pytester.path / "out")["server"]
    assert section["generation_tokens"] == 6 * TESTS and section["prompt_tokens"] == 7 * TESTS
    assert section["requests_running_peak"] == 1 and section["requests_waiting_peak"] == 0
    assert section.get("prefix_cache_hit_rate") == (pytest.approx(PREFIX_HITS / 7) if server == "SGLang" else None)
    assert set(section["latency"]) | ({"queue_time"} if "queue_time_count" in section else set()) \
        == histograms
    for name in histograms:
        assert section[f"{name}_count"] >= TESTS - 1, name  # one observation per request, across the restart


def test_a_dcgm_exporter_named_by_url_gives_remote_gpu_figures_and_joules_per_token(pytester: pytest.Pytester, vllm: Any, suite: Any) -> None:
    with PrometheusExporter("dcgm", power_w=200.0) as gpus:
        vllm.stub.observer = Observers(vllm, gpus)
        result = pytester.runpytest_subprocess(
            "--llmbench-suite", str(suite), "--llmbench-endpoint", vllm.stub.url, "--llmbench-output", "out",
            "--llmbench-server-metrics", "auto", "--llmbench-server-metrics", gpus.url, *INTERVAL)
    result.assert_outcomes(passed=TESTS)
    result.stdout.fnmatch_lines([f"server metrics: * (vLLM), {gpus.url} (DCGM)"])
    server = batch_of(pytester.path / "out")["server"]
    assert [gpu["gpu"] for gpu in server["gpus"]] == ["0", "1"]
    assert server["gpus"][0]["gpu_util_peak_pct"] == 90.0 and server["gpus"][0]["gpu_power_mean_w"] == 200.0
    joules = 2 * 200.0 * server["duration_s"]
    # a DCGM scrape missed at the start or end (a busy machine) shortens the span its counter covers
    assert server["gpu_energy_j"] == pytest.approx(joules, rel=0.2)
    assert server["joules_per_token"] == pytest.approx(server["gpu_energy_j"] / (6 * TESTS))
    for test in results_of(pytester.path / "out"):
        figures = test["server_metrics"]
        assert figures["gpu_power_mean_w"] == 400.0 and figures["gpu_memory_peak_gb"] == pytest.approx(41.0)
        # the GPUs' 400 W over the rate the server made tokens at in the readings around the test
        assert figures["joules_per_token"] == pytest.approx(400.0 / figures["generation_tokens_per_s"], rel=0.2)
        assert figures["gpu_energy_j"] == pytest.approx(400.0 * figures["duration_s"], rel=0.2)  # its own span


def test_server_slos_fail_the_run_with_the_figures_they_missed(pytester: pytest.Pytester, vllm: Any, suite: Any) -> None:
    vllm.stub.observer = Observers(vllm, preempt=True)
    result = pytester.runpytest_subprocess(
        "--llmbench-suite", str(suite), "--llmbench-endpoint", vllm.stub.url, "--llmbench-output", "out",
        "--llmbench-slo", "kv_cache_usage_max=40%", "--llmbench-slo", "preemptions_total=0",
        "--llmbench-slo", "requests_waiting_max=0", *INTERVAL)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["gate FAILED: run SLO kv_cache_usage_max <= 40% missed: measured 50.0%",
                                 f"gate FAILED: run SLO preemptions_total <= 0 missed: measured {TESTS}"])
    result.assert_outcomes(passed=TESTS, failed=2)
    assert "gate passed: run SLO requests_waiting_max <= 0" in result.stdout.str()  # met: the queue stayed empty
    misses = batch_of(pytester.path / "out")["gates"]["slo_misses"]
    assert {m["metric"] for m in misses} == {"server_kv_cache_usage_peak_share", "server_preemptions"}


def test_dead_and_slow_exporters_never_fail_or_slow_tests_and_are_counted(pytester: pytest.Pytester, vllm: Any, suite: Any) -> None:
    with PrometheusExporter("dcgm") as slow:
        slow.delay = 1.0  # past the scrape's deadline (0.8 x the interval: 0.16 s)
        dead = "http://127.0.0.1:9/metrics"
        began = time.monotonic()
        result = pytester.runpytest_subprocess(
            "--llmbench-suite", str(suite), "--llmbench-endpoint", vllm.stub.url, "--llmbench-output", "out",
            "--llmbench-server-metrics", dead, "--llmbench-server-metrics", slow.url,
            "--llmbench-server-metrics-interval", "0.2")
        took = time.monotonic() - began
    result.assert_outcomes(passed=TESTS)
    out = result.stdout.str()
    assert out.count("llmbench WARNING: server metrics: a scrape of http://127.0.0.1:9/metrics failed") == 1
    assert "not answering: http://127.0.0.1:9/metrics (connection failed)" in out
    server = batch_of(pytester.path / "out")["server"]
    assert server["failed_scrapes"] >= 2 and server["readings"] == 1  # discovery's look (2 s) is the one answer
    assert {s["url"]: s["failures"] > 0 for s in server["sources"]} == {dead: True, slow.url: True}
    durations = [test["execution_time"] for test in results_of(pytester.path / "out")]
    assert max(durations) < 0.9 and took < 30  # the stub's 0.25 s answer, never the slow exporter's 1 s


def test_off_sends_nothing_and_credentials_go_only_to_the_endpoints_origin(pytester: pytest.Pytester, vllm: Any, suite: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", vllm.stub.url,
                                  "--llmbench-server-metrics", "off", "--llmbench-output", "off", *INTERVAL)
    assert vllm.seen_authorizations == [] and "server" not in batch_of(pytester.path / "off")
    monkeypatch.setenv("LLMBENCH_API_KEY", "sk-server-metrics-secret")
    with PrometheusExporter("dcgm") as gpus:
        result = pytester.runpytest_subprocess(
            "--llmbench-suite", str(suite), "--llmbench-endpoint", vllm.stub.url, "--llmbench-output", "on",
            "--llmbench-server-metrics", "auto", "--llmbench-server-metrics", gpus.url, *INTERVAL)
    result.assert_outcomes(passed=TESTS)
    assert vllm.seen_authorizations and set(vllm.seen_authorizations) == {"Bearer sk-server-metrics-secret"}
    assert gpus.authorizations and set(gpus.authorizations) == {None}
    assert "sk-server-metrics-secret" not in result.stdout.str()
