"""metrics/server: exposition text of each known server, read into common names; windows, resets, run figures.

Every exposition here is served by a real prometheus_client exporter (tests/prometheus_exporter.py) and fetched
over HTTP, except the documented DCGM and TGI lines, which prometheus_client cannot write (counters without
``_total``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from prometheus_exporter import FLAVORS, PrometheusExporter

from pytest_llmbench.metrics.server.catalog import Reading, identify, read, wanted_keys
from pytest_llmbench.metrics.server.figures import increase
from pytest_llmbench.metrics.server.parse import ExpositionError, Histogram, parse
from pytest_llmbench.metrics.server.section import build_section, slo_view
from pytest_llmbench.metrics.server.store import ServerStore

SERVER_NAMES = {"vllm": "vLLM", "vllm-old": "vLLM", "sglang": "SGLang", "tgi": "TGI", "llamacpp": "llama.cpp",
                "dcgm": "DCGM"}


def scrape(exporter: PrometheusExporter, t: float | None = None) -> Reading:
    text = requests.get(exporter.url, timeout=5).text
    return read(parse(text, wanted_keys().__contains__), time.monotonic() if t is None else t)


@pytest.mark.parametrize("flavor", [f for f in FLAVORS if f != "dcgm"])
def test_each_server_format_is_read_into_common_names(flavor: Any) -> None:
    with PrometheusExporter(flavor) as exporter:
        exporter.begin()
        exporter.begin()
        exporter.end(7, 6, 0.05, 0.4)
        text = requests.get(exporter.url, timeout=5).text
        reading = read(parse(text, wanted_keys().__contains__), 1.0)
    assert identify(parse(text)) == [SERVER_NAMES[flavor]]
    assert reading.values["requests_running"] == 1
    assert reading.values["generation_tokens"] == 6 and reading.values["prompt_tokens"] == 7
    if flavor in ("vllm", "vllm-old", "sglang"):
        assert reading.values["prefix_cache_hits"] == 3 and reading.values["prefix_cache_queries"] == 7
    if flavor != "llamacpp":  # llama.cpp's server has no histograms
        assert reading.histograms["e2e"].count == 1 and reading.histograms["e2e"].total == pytest.approx(0.4)
    if flavor not in ("tgi",):  # TGI reports no KV-cache usage
        assert reading.values["kv_cache_usage"] == pytest.approx(70.0)  # 0.3 + 0.2 x 2 running, in percent


def test_dcgm_exporter_gives_the_local_monitors_gpu_fields() -> None:
    with PrometheusExporter("dcgm", power_w=300.0) as exporter:
        reading = scrape(exporter)
    assert sorted(reading.gpus) == ["0", "1"]
    gpu = reading.gpus["1"]
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["gpu_power_w"] == 300.0
    assert gpu["gpu_memory_used_gb"] == pytest.approx(21.0) and gpu["gpu_memory_total_gb"] == pytest.approx(40.0)
    assert gpu["gpu_energy_counter_j"] >= 5000.0  # the exporter's millijoules since boot, in joules


def test_documented_counters_without_total_suffix_are_read() -> None:
    """dcgm-exporter and TGI (Rust) write counters without _total; the parser appends it."""
    text = (
        "# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).\n"
        "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"
        'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0", UUID="GPU-604ac76c"} 123456\n'
        "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
        'DCGM_FI_DEV_POWER_USAGE{gpu="0", UUID="GPU-604ac76c"} 71.5\n'
        "# TYPE tgi_request_success counter\ntgi_request_success 12\n"
        "# TYPE tgi_queue_size gauge\ntgi_queue_size 3\n"
    )
    reading = read(parse(text, wanted_keys().__contains__), 0.0)
    assert reading.gpus["0"]["gpu_energy_counter_j"] == pytest.approx(123.456)
    assert reading.gpus["0"]["gpu_power_w"] == 71.5
    assert reading.values["requests_finished"] == 12 and reading.values["requests_waiting"] == 3


def test_text_that_is_no_exposition_is_refused() -> None:
    with pytest.raises(ExpositionError):
        parse('{"error": "not found"}')


def test_counters_and_histograms_count_across_a_server_restart() -> None:
    store = ServerStore()
    with PrometheusExporter("vllm") as exporter:
        store.add(scrape(exporter, 0.0))
        for _ in range(3):
            exporter.end(7, 6, 0.05, 0.4)
        store.add(scrape(exporter, 1.0))
        exporter.restart()  # counters and histograms start from zero again
        for _ in range(2):
            exporter.end(7, 6, 0.05, 0.4)
        store.add(scrape(exporter, 2.0))
    summary = store.summary()
    assert summary["generation_tokens"] == 5 * 6 and summary["requests_finished"] == 5
    assert summary["generation_tokens_per_s"] == pytest.approx(15.0)
    assert summary["e2e_count"] == 5 and summary["e2e_mean_ms"] == pytest.approx(400.0)
    assert increase([10, 12, 3, 5]) == 2 + 3 + 2


def test_histogram_quantiles_interpolate_inside_buckets_as_prometheus_does() -> None:
    hist = Histogram((0.1, 0.5, 1.0, float("inf")), (10, 30, 40, 40), total=12.0, count=40)
    assert hist.quantile(0.25) == pytest.approx(0.1)  # rank 10: the top of the first bucket
    assert hist.quantile(0.5) == pytest.approx(0.1 + 0.4 * 10 / 20)
    assert hist.quantile(0.99) == pytest.approx(0.5 + 0.5 * 9.6 / 10)
    tail = Histogram((0.1, float("inf")), (1, 10), total=5.0, count=10)
    assert tail.quantile(0.9) == 0.1  # in +Inf: the last finite bound, as histogram_quantile answers
    assert Histogram((0.1,), (0,), 0.0, 0).quantile(0.5) is None


def _reading(t: float, waiting: float, tokens: float) -> Reading:
    return Reading(t, values={"requests_waiting": waiting, "generation_tokens": tokens})


def test_a_window_takes_gauges_inside_it_and_counters_over_the_readings_around_it() -> None:
    store = ServerStore(near=1.0)
    for t, waiting, tokens in ((0.0, 0, 0), (1.0, 4, 10), (2.0, 2, 30), (3.0, 0, 60), (10.0, 9, 100)):
        store.add(_reading(t, waiting, tokens))
    inside = store.window(0.5, 2.5)
    assert inside is not None
    assert inside["requests_waiting_peak"] == 4 and inside["requests_waiting_mean"] == 3
    assert inside["generation_tokens"] == 60 and inside["generation_tokens_per_s"] == pytest.approx(20.0)
    assert inside["samples"] == 2 and not inside["nearest"] and inside["span_s"] == 3.0
    short = store.window(1.2, 1.4)  # shorter than the interval: the readings next to it
    assert short is not None
    assert short["nearest"] and short["requests_waiting_peak"] == 4 and short["generation_tokens"] == 20
    assert store.window(5.0, 6.0) is None  # no reading inside or near


def test_run_section_compares_server_and_client_latency_and_feeds_slos() -> None:
    store = ServerStore()
    with PrometheusExporter("vllm") as exporter:
        store.add(scrape(exporter, 0.0))
        exporter.begin()
        store.add(scrape(exporter, 1.0))
        for seconds in (0.2, 0.4, 0.6, 0.9):
            exporter.end(7, 6, 0.05, seconds)
        store.add(scrape(exporter, 2.0))
    aggregate = {"count_e2el": 0, "count_latency": 4, "p50_latency_ms": 700.0, "mean_latency_ms": 650.0,
                 "total_completion_tokens": 24}
    section = build_section(store.summary(), sources=[], interval=0.5, failed_scrapes=0, skipped_scrapes=0, aggregate=aggregate)
    e2e = section["latency"]["e2e"]
    assert e2e["client_metric"] == "latency" and e2e["server_count"] == 4
    assert e2e["client_minus_server_p50_ms"] == pytest.approx(700.0 - e2e["server_p50_ms"])
    assert section["kv_cache_usage_peak_pct"] == pytest.approx(50.0)
    assert slo_view(section)["server_kv_cache_usage_peak_share"] == pytest.approx(0.5)
    assert [set(point) >= {"t", "requests_running"} for point in section["timeline"]] == [True] * 3
    assert section["timeline"][-1]["generation_tokens_per_s"] == pytest.approx(24.0)


def test_dcgm_energy_over_a_window_gives_joules_per_token() -> None:
    store = ServerStore()
    with PrometheusExporter("dcgm", power_w=250.0) as gpus, PrometheusExporter("vllm") as server:
        started = time.monotonic()
        for _ in range(4):
            reading = scrape(server)
            reading.merge(scrape(gpus))
            store.add(reading)
            server.end(7, 10, 0.05, 0.3)
            time.sleep(0.2)
        ended = time.monotonic()
    window = store.window(started, ended)
    assert window is not None
    assert window["gpu_energy_j"] == pytest.approx(2 * 250.0 * (ended - started), rel=0.1)  # two GPUs at 250 W
    # the GPUs' 500 W over the server's token rate in the same readings: 30 tokens between the first and last
    assert window["joules_per_token"] == pytest.approx(500.0 / window["generation_tokens_per_s"], rel=0.05)
    assert window["generation_tokens"] == 30  # three answers of 10 tokens between the first and last reading
    assert window["gpu_power_mean_w"] == 500.0 and window["gpu_util_peak_pct"] == 5.0
    run = store.summary()
    assert run["gpu_energy_j"] == pytest.approx(500.0 * run["duration_s"], rel=0.1)
    assert run["joules_per_token"] == pytest.approx(run["gpu_energy_j"] / 30)


def test_series_parser_reads_repeated_scrapes_as_the_full_parser_does() -> None:
    from pytest_llmbench.metrics.server.parse import SeriesParser

    wanted = wanted_keys(("vllm:num_requests_swapped",)).__contains__
    repeated = SeriesParser(wanted)
    with PrometheusExporter("vllm") as exporter:
        for round_ in range(3):
            text = requests.get(exporter.url, timeout=5).text
            text += f"# TYPE vllm:num_requests_swapped gauge\nvllm:num_requests_swapped {'NaN' if round_ == 0 else 2}\n"
            assert repeated.parse(text) == parse(text, wanted)
            exporter.end(7, 6, 0.05, 0.3 * (round_ + 1))
    assert repeated.parse(text)["vllm:num_requests_swapped"] == [({}, 2.0)]  # NaN at first, a value later
    dcgm = '# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0"} 5 17\n'
    assert SeriesParser(wanted).parse(dcgm) == parse(dcgm, wanted)  # a timestamp after the value is ignored
    with pytest.raises(ExpositionError):
        SeriesParser().parse('{"error": "not found"}')
