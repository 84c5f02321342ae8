"""Hostile /metrics pages, round three: a page that drips a byte at a time, pages with more series than anyone
serves, values no server means. Real sockets (tests/faultserver.py) and real pytest sessions."""

from __future__ import annotations

import time
from typing import Any

import pytest
from faultserver import COMPLETION, FaultServer, Reply
from openai_stub import write_suite
from run_files import batch_of

from pytest_llmbench.metrics.server.catalog import wanted_keys
from pytest_llmbench.metrics.server.parse import MAX_SERIES, ParseTimeout, SeriesParser

MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}
VLLM_PAGE = ("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n"
             "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total 10\n")


def run(pytester: pytest.Pytester, server: FaultServer, tests: int, *args: str) -> pytest.RunResult:
    server.always(Reply.json(MODELS), path="/v1/models")
    server.always(Reply.json(COMPLETION), path="/v1/completions")
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(tests)])
    return pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", server.url_for("/v1"),
                                         "--llmbench-model", "m", "--llmbench-retries", "0", "-p", "no:cacheprovider",
                                         "--llmbench-server-metrics", server.url_for("/metrics"), *args, timeout=90)


def batch_time(pytester: pytest.Pytester) -> float:
    [path] = (pytester.path / "llmbench_results").rglob("batch_results_*.json")
    return path.stat().st_mtime


@pytest.mark.parametrize("drip", ["body", "headers"])
def test_a_dripping_metrics_page_delays_neither_the_first_test_nor_the_end_and_is_counted(pytester: pytest.Pytester, fault_server: FaultServer,
                                                                                          drip: Any) -> None:
    """A byte every 0.3 s never trips a per-read timeout: before, the session hung before its first test."""
    page = VLLM_PAGE * 50
    fault_server.always(Reply(200, page, trickle=0.3) if drip == "body" else Reply(200, page, header_trickle=0.3),
                        path="/metrics")

    result = run(pytester, fault_server, 4, "--llmbench-server-metrics-interval", "0.5")

    result.assert_outcomes(passed=4)
    looks = [r.at for r in fault_server.received if r.path == "/metrics"]
    asks = [r.at for r in fault_server.received if r.path == "/v1/completions"]
    assert asks[0] - looks[0] < 3.0  # discovery's 2 s deadline, then the first test: no scrape in between
    assert batch_time(pytester) - asks[-1] < 2.0  # the scraper stops within 1 s of the last test
    server = batch_of(pytester.path / "llmbench_results")["server"]
    assert server["failed_scrapes"] >= 1 and server["sources"][0]["failures"] == server["failed_scrapes"]
    result.stdout.fnmatch_lines(["server metrics: none found at http://127.0.0.1:*/metrics (not complete within 2 s)",
                                 "*server metrics: a scrape of */metrics failed (not complete within 0.*s)*"])


def test_a_page_of_150k_series_is_read_only_to_the_cap_and_never_holds_up_a_test(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    lines = [f'python_noise_total{{id="{n}"}} {n}' for n in range(150_000)]
    fault_server.always(Reply(200, "\n".join(lines) + "\n" + VLLM_PAGE), path="/metrics")

    result = run(pytester, fault_server, 3, "--llmbench-server-metrics-interval", "0.5")

    result.assert_outcomes(passed=3)
    server = batch_of(pytester.path / "llmbench_results")["server"]
    assert server["sources"][0]["series_capped"] is True
    result.stdout.fnmatch_lines([f"*serves more than {MAX_SERIES:,} series; only the first {MAX_SERIES:,} are read*"])
    looks = [r.at for r in fault_server.received if r.path == "/metrics"]
    asks = [r.at for r in fault_server.received if r.path == "/v1/completions"]
    assert asks[0] - looks[0] < 3.0


def churning_page(scrape: int, series: int = 5_000) -> str:
    """``series`` wanted series that stay, and as many whose labels change every scrape."""
    stable = [f'vllm:num_requests_running{{engine="{n}"}} 1' for n in range(series)]
    churn = [f'vllm:num_requests_waiting{{engine="{scrape}-{n}"}} 1' for n in range(series)]
    return "# TYPE vllm:num_requests_running gauge\n" + "\n".join(stable + churn) + "\n"


def test_labels_that_change_every_scrape_never_make_the_parser_read_the_stable_series_again() -> None:
    parser = SeriesParser(wanted_keys().__contains__)
    parser.parse(churning_page(0))
    stable = 'vllm:num_requests_running{engine="7"}'
    first = parser._known[stable]
    for scrape in range(1, 12):  # 60k series in all: past the old parser's 50k reset, which re-read everything
        readings = parser.parse(churning_page(scrape))
        assert len(readings["vllm:num_requests_running"]) == len(readings["vllm:num_requests_waiting"]) == 5_000
        assert len(parser._known) <= 2 * MAX_SERIES
    assert parser._known[stable] is first  # the stable series was never parsed again (a new parse, a new tuple)


def test_a_parse_past_its_deadline_stops_and_the_next_scrape_goes_on_from_there() -> None:
    parser = SeriesParser(wanted_keys().__contains__)
    page = churning_page(0, series=3_000)
    with pytest.raises(ParseTimeout):
        parser.parse(page, deadline=time.monotonic())  # already due: stops at its first check
    learnt = len(parser._known)
    assert 0 < learnt < 6_000
    assert len(parser.parse(page)["vllm:num_requests_running"]) == 3_000 and len(parser._known) == 6_000


IMPLAUSIBLE_PAGE = """# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc +Inf
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running 1e308
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting -3
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total -1000
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="-1.0"} 5
vllm:time_to_first_token_seconds_bucket{le="+Inf"} 5
vllm:time_to_first_token_seconds_count 5
vllm:time_to_first_token_seconds_sum 1
"""


def test_metric_values_no_server_means_are_dropped_and_counted_never_printed(pytester: pytest.Pytester, fault_server: FaultServer) -> None:
    fault_server.always(Reply(200, IMPLAUSIBLE_PAGE), path="/metrics")

    result = run(pytester, fault_server, 3, "--llmbench-server-metrics-interval", "0.2")

    result.assert_outcomes(passed=3)
    server = batch_of(pytester.path / "llmbench_results")["server"]
    assert server["dropped_values"] >= 4 * server["readings"] > 0
    assert server.get("kv_cache_usage_peak_pct") is None and server.get("requests_running_peak") is None
    assert server.get("requests_waiting_peak") is None and (server.get("generation_tokens") or 0) >= 0
    assert server.get("ttft_p50_ms") is None or server["ttft_p50_ms"] >= 0
    out = result.stdout.str()
    assert "inf%" not in out and "e+308" not in out and "0" * 30 not in out
    assert "implausible values dropped" in out


def test_a_metrics_url_that_parsers_read_two_ways_never_gets_the_key(pytester: pytest.Pytester, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """``http://127.0.0.1:B\\@127.0.0.1:A/metrics``: urlsplit reads port A (the endpoint's origin), the HTTP library
    connects to B. B must never see the key; the endpoint's own /metrics still gets it."""
    monkeypatch.setenv("LLMBENCH_API_KEY", "sk-origin-check-secret")
    fault_server.always(Reply(200, VLLM_PAGE), path="/metrics")
    with FaultServer() as other:
        other.always(Reply(200, VLLM_PAGE))
        port = fault_server.url.rsplit(":", 1)[1]
        tricky = f"http://127.0.0.1:{other.url.rsplit(':', 1)[1]}\\@127.0.0.1:{port}/metrics"

        result = run(pytester, fault_server, 2, "--llmbench-server-metrics", "auto",
                     "--llmbench-server-metrics", tricky, "--llmbench-server-metrics-interval", "0.2")

    result.assert_outcomes(passed=2)
    assert other.received == []  # before: every scrape sent it "Authorization: Bearer sk-origin-check-secret"
    assert "refused: a URL with a backslash is not used while the session holds credentials" in result.stdout.str()
    ours = [r for r in fault_server.received if r.path == "/metrics"]
    assert ours and {r.headers.get("authorization") for r in ours} == {"Bearer sk-origin-check-secret"}
    assert "sk-origin-check-secret" not in result.stdout.str()
