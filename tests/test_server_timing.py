"""Server timings joined to each result: real servers on 127.0.0.1 speaking llama.cpp, vLLM, TGI and SGLang."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_stub import write_suite
from run_files import batch_of, results_by_id
from timing_servers import client, serving

from pytest_llmbench.metrics.slo import parse_run_slo

COMPONENTS = ("queue_time", "prefill_time", "decode_time", "server_ttft", "server_e2e_latency")
# What each shape tells: llama.cpp has no queue (so nothing from arrival), TGI and SGLang no prefill/decode split.
TOLD = {"llama.cpp": ("prefill_time", "decode_time"), "vllm": COMPONENTS,
        "tgi": ("queue_time", "server_e2e_latency"), "sglang": ("queue_time", "server_e2e_latency")}


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    shape, options = request.param if isinstance(request.param, tuple) else (request.param, {})
    yield from serving(shape, **options)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("server", ["llama.cpp", "vllm", "tgi", "sglang"], indirect=True)
def test_each_source_joins_the_servers_own_split_to_the_result(server: Any, stream: Any) -> None:
    with client(server.url, server_timing=True) as llm:
        result = llm.chat([{"role": "user", "content": "hi"}], stream=stream)
    assert result.success, result.error_message
    if server.shape == "tgi" and stream:  # TGI's stream headers leave before the times exist: nothing invented
        assert result.server_timing is None and all(getattr(result, name) is None for name in COMPONENTS)
        return
    [truth] = server.truth
    assert result.server_timing == {"source": server.shape, "dropped": {}}
    for name in COMPONENTS:
        value = getattr(result, name)
        if name in TOLD[server.shape]:
            assert value == pytest.approx(truth[name], abs=1e-6), name  # the server's figure, to the microsecond
        else:
            assert value is None, name
    assert result.client_overhead is not None or server.shape == "llama.cpp"
    if result.client_overhead is not None:  # what the server did not see, on loopback: small, never huge
        assert -0.002 <= result.client_overhead < result.execution_time


@pytest.mark.parametrize("server", [("vllm", {"slots": 1})], indirect=True)
def test_a_real_queue_shows_as_queue_time_and_in_the_servers_ttft(server: Any) -> None:
    """Two requests for one slot: the second waits for the first, and the server's TTFT includes that wait."""
    import threading

    results = []
    with client(server.url, server_timing=True, connections=2) as llm:
        threads = [threading.Thread(target=lambda: results.append(llm.complete("p", stream=True)))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    waited = max(results, key=lambda r: r.queue_time or 0.0)
    assert waited.queue_time is not None and waited.prefill_time is not None and waited.server_ttft is not None
    assert waited.ttft is not None
    assert waited.queue_time >= server.prefill_s  # it waited at least for the other's prefill
    assert waited.server_ttft == pytest.approx(waited.queue_time + waited.prefill_time, abs=1e-9)
    assert waited.ttft is not None
    assert waited.ttft >= waited.server_ttft - 0.002


@pytest.mark.parametrize("server", ["vllm"], indirect=True)
def test_request_fields_are_sent_only_when_asked(server: Any) -> None:
    with client(server.url) as llm:
        plain = llm.complete("p")
    with client(server.url, server_timing=True) as llm:
        asked = llm.complete("p")
    assert "include_metrics" not in server.received[0]["body"] and plain.server_timing is None
    assert asked.server_timing is not None
    assert server.received[1]["body"]["include_metrics"] is True and asked.server_timing["source"] == "vllm"


@pytest.mark.parametrize(("shape", "tamper", "field", "reason"), [
    ("vllm", {"queue_time_ms": -5.0}, "queue_time", "negative"),
    ("vllm", {"queue_time_ms": "12"}, "queue_time", "not a number"),
    ("vllm", {"generation_time_ms": float("nan")}, "decode_time", "not finite"),
    ("vllm", {"time_to_first_token_ms": 9e9}, "prefill_time", "longer than the client's latency"),
    ("llama.cpp", {"predicted_ms": True}, "decode_time", "not a number"),
    ("sglang", {"e2e_latency": 1e6}, "server_e2e_latency", "longer than the client's latency"),
    ("tgi", {"x-queue-time": "soon \x1b[31m<script>"}, "queue_time", "not a number"),
    ("tgi", {"x-total-time": "-3"}, "server_e2e_latency", "negative"),
])
def test_implausible_values_are_dropped_with_a_fixed_reason(shape: Any, tamper: Any, field: Any, reason: Any) -> None:
    for server in serving(shape, tamper=tamper):
        with client(server.url, server_timing=True) as llm:
            result = llm.complete("p")
    assert result.success
    assert getattr(result, field) is None
    assert result.server_timing is not None
    assert result.server_timing["dropped"][field] == reason  # our words: nothing the server wrote
    kept = [name for name in TOLD[shape] if name != field and name not in ("server_ttft", "server_e2e_latency")]
    assert all(getattr(result, name) is not None for name in kept)  # the other figures still count


@pytest.mark.parametrize("server", [("vllm", {"slots": 1})], indirect=True)
def test_a_stream_later_than_the_clients_first_token_is_refused(server: Any) -> None:
    """A server claiming its first token came later than the client saw it cannot be right."""
    server.tamper = {"queue_time_ms": 5000.0, "time_to_first_token_ms": 0.0, "generation_time_ms": 0.0}
    with client(server.url, server_timing=True, timeout=30) as llm:
        result = llm.chat([{"role": "user", "content": "hi"}], stream=True)
    assert result.server_timing is not None
    assert result.server_timing["dropped"]["queue_time"] == "longer than the client's latency"
    assert result.server_ttft is None and result.client_overhead is None


def test_a_session_pools_each_component_takes_slos_and_says_where_the_times_came_from(pytester: pytest.Pytester, tmp_path: Path) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{n}"} for n in range(6)])  # 6 bound a p50
    for server in serving("vllm"):
        result = pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite),
                                    "--llmbench-stream", "--llmbench-server-timing", "-p", "no:cacheprovider",
                                    "--llmbench-slo", "queue_p99=10s", "--llmbench-slo", "prefill_p50=1ms")
    result.assert_outcomes(passed=6, failed=1)  # prefill takes 20 ms on this server: that SLO fails
    result.stdout.fnmatch_lines(["*queue ms*", "*prefill ms*", "*client+net ms*",
                                 "server timing: vllm on 6 of 6", "*prefill_p50*"])
    batch = batch_of(pytester.path / "llmbench_results")
    aggregate = batch["aggregate"]
    assert aggregate["count_queue"] == aggregate["count_prefill"] == aggregate["count_server_ttft"] == 6
    truth = sorted(t["prefill_time"] * 1e3 for t in server.truth)
    assert aggregate["max_prefill_ms"] == pytest.approx(truth[-1], abs=1e-3)
    assert {"p50_decode_ms", "p90_decode_ms", "p99_decode_ms", "p99_client_overhead_ms"} <= set(aggregate)
    assert batch["server_timing"] == {"results": 6, "sources": {"vllm": 6}, "dropped": 0, "dropped_by_reason": {}}
    assert all(row["server_ttft"] is not None for row in batch["tests"])
    stored = results_by_id(pytester.path / "llmbench_results")["t0"]
    assert stored["server_timing"] == {"source": "vllm", "dropped": {}}
    assert parse_run_slo("queue_p99=200ms").key == "p99_queue_ms"


def test_a_server_that_sends_nothing_gets_nothing_invented(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    for server in serving("vllm"):  # vLLM sends its metrics only when asked: here it is not
        result = pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite),
                                    "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["server timing: none sent*"])
    assert "queue ms" not in result.stdout.str()
    row = batch_of(pytester.path / "llmbench_results")["tests"][0]
    assert row["queue_time"] is None and row["client_overhead"] is None


def test_dropped_values_are_counted_in_the_batch_and_the_summary(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    for server in serving("sglang", tamper={"queue_time": -1}):
        result = pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite),
                                    "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["server timing: sglang on 2 of 2; 2 values dropped as implausible "
                                 "(queue_time: negative x2)"])
    section = batch_of(pytester.path / "llmbench_results")["server_timing"]
    assert section["dropped_by_reason"] == {"queue_time: negative": 2}


def test_json_nan_and_huge_numbers_never_reach_the_statistics() -> None:
    for server in serving("vllm", tamper={"queue_time_ms": float("inf")}):
        with client(server.url, server_timing=True) as llm:
            result = llm.complete("p")
    assert result.server_timing is not None
    assert result.queue_time is None and result.server_timing["dropped"] == {"queue_time": "not finite"}
    assert json.loads(result.to_json())["queue_time"] is None
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in result.to_dict().values())


def test_a_resumed_run_counts_its_replayed_results_in_the_server_timing_line(pytester: pytest.Pytester) -> None:
    import signal

    from test_resume import interrupt, journal_lines

    suite = write_suite(pytester.path / "s.json", [{"id": f"t{n:02d}"} for n in range(10)])
    for server in serving("sglang", prefill_s=0.1):
        args = ["--llmbench-suite", str(suite), "--llmbench-endpoint", server.url, "-p", "no:cacheprovider"]
        interrupt(pytester, args, signal.SIGKILL, after=3)
        replayed = journal_lines(pytester)
        result = pytester.runpytest(*args, "--llmbench-resume")
    result.assert_outcomes(passed=10)
    assert replayed >= 3
    result.stdout.fnmatch_lines(["server timing: sglang on 10 of 10"])
    [batch] = [json.loads(p.read_text()) for p in (pytester.path / "llmbench_results").rglob("batch_results_*.json")]
    assert batch["server_timing"]["sources"] == {"sglang": 10}


def _report_breakdown(folder: Path) -> Any:
    (path,) = folder.rglob("report.html")
    island = re.search(r'<script type="application/json" id="llmbench-data">(.*?)</script>',
                       path.read_text(encoding="utf-8"), re.S)
    assert island is not None
    return json.loads(island.group(1))["runs"][0]["breakdown"], path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("shape", "parts", "stream"), [
    ("vllm", ["queue", "prefill", "decode", "client and network"], "--llmbench-stream"),
    ("tgi", ["queue", "server, not split", "client and network"], "--llmbench-retries=0"),  # its x-* headers
])  # come with a whole answer, and say its queue and total time only
def test_the_reports_breakdown_splits_each_latency_into_the_servers_parts_and_the_rest(
        pytester: pytest.Pytester, shape: str, parts: list[str], stream: str) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{n}"} for n in range(12)])
    for server in serving(shape, slots=1):
        pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite), stream,
                           "--llmbench-server-timing", "--llmbench-concurrency", "3", "-p", "no:cacheprovider"
                           ).assert_outcomes(passed=12)
    results = pytester.path / "llmbench_results"
    latency = {row["label"]: row["execution_time"] * 1e3 for row in batch_of(results)["tests"]}
    chart, html = _report_breakdown(results)
    assert chart["parts"] == parts and chart["timed"] == chart["total"] == 12 == len(chart["ids"])
    for test, values in zip(chart["ids"], chart["values"]):  # every bar is its request's whole latency
        assert sum(values) == pytest.approx(latency[test], abs=0.01)
    assert max(values[0] for values in chart["values"]) > 20  # one slot for three in flight: requests queued
    assert list(chart["percentiles"]) == ["p50"]  # 12 samples bound a p50, too few for a p90 (36 at 95 %)
    assert "Inside the server" in html


def test_a_report_whose_server_timed_nothing_draws_no_breakdown(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    for server in serving("vllm"):  # asked for nothing: it sends nothing
        pytester.runpytest("--llmbench-endpoint", server.url, "--llmbench-suite", str(suite), "-p", "no:cacheprovider")
    chart, html = _report_breakdown(pytester.path / "llmbench_results")
    assert chart is None and "Inside the server" not in html
