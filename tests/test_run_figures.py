"""Run-wide figures and what the summary and batch say, through real plugin runs against the stub server.

Throughputs over the requests' own span, energy per token and the GPU temperature alert (NVML faked at its
boundary, the one fake allowed), the summary's eval% column, and the judge endpoint's credentials in the batch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite

STUB = {"default_answer": "Paris", "answers": {"Lyon?": "Lyon"}}  # one word: one completion token


def batch_of(pytester: pytest.Pytester) -> dict[str, Any]:
    [path] = (pytester.path / "llmbench_results" / "latest").glob("batch_results_*.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_throughputs_divide_by_the_requests_span_not_the_sessions_wall_time(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.delay = 0.05
    pytester.makepyfile(test_first="import time\ndef test_pause():\n    time.sleep(0.6)\n")
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(4)])
    pytester.runpytest("test_first.py", "--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                       "-p", "no:cacheprovider").assert_outcomes(passed=5)

    aggregate = batch_of(pytester)["aggregate"]
    assert 0.2 <= aggregate["duration_s"] <= aggregate["wall_time_s"] - 0.6  # the pause is not in the span
    assert aggregate["request_throughput"] == 4 / aggregate["duration_s"]
    assert aggregate["output_throughput"] == aggregate["total_completion_tokens"] / aggregate["duration_s"] > 0


def test_energy_per_token_and_the_gpu_temperature_alert_from_the_monitor(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    pytester.makeconftest("""
        import sys
        from fake_nvml import FakeNvml  # a GPU at 60 °C whose energy counter climbs 1 J per reading
        sys.modules["pynvml"] = FakeNvml()
    """)
    stub.delay = 0.2
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(3)])
    run = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-p", "no:cacheprovider",
                             "--llmbench-monitor", "--llmbench-monitor-interval", "0.02",
                             "--llmbench-alert-gpu-temp", "55")

    hardware = batch_of(pytester)["hardware"]
    assert hardware["gpu_devices"] == ["Fake GPU 0"] and hardware["gpu_energy_j"] > 3
    assert hardware["tokens_per_joule"] == pytest.approx(3 / hardware["gpu_energy_j"])
    for number in range(3):
        saved = json.loads((pytester.path / "llmbench_results" / "latest" / f"Test_{number}_result.json").read_text())
        metrics = saved["performance_metrics"]
        assert saved["completion_tokens"] == 1 and metrics["gpu_energy_j"] >= 2
        assert metrics["joules_per_token"] == pytest.approx(metrics["gpu_energy_j"] / 1)
    alerts = [a for a in batch_of(pytester)["alerts"] if "°C" in a]
    assert len(alerts) == 1 and "GPU 0 (Fake GPU 0) reached 60 °C" in alerts[0]
    assert run.stdout.str().count("llmbench WARNING: GPU 0 (Fake GPU 0) reached 60 °C") == 1  # live, once


def test_the_category_table_shows_each_categorys_answer_pass_rate(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [
        {"id": "a1", "category": "alpha", "prompt": "Paris?", "expected": {"contains": "Paris"}},
        {"id": "a2", "category": "alpha", "prompt": "Paris?", "expected": {"contains": "Paris"}},
        {"id": "b1", "category": "beta", "prompt": "Paris?", "expected": {"contains": "Paris"}},
        {"id": "b2", "category": "beta", "prompt": "Lyon?", "expected": {"contains": "Paris"}},
    ])
    run = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-p", "no:cacheprovider")

    run.assert_outcomes(passed=3, failed=1)
    rows = {line.split()[0]: line.split() for line in run.stdout.lines if re.match(r"^(alpha|beta)\s+2\s", line)}
    assert rows["alpha"][2] == "100.0%" and rows["alpha"][5] == "100%"  # ok% and eval%
    assert rows["beta"][2] == "100.0%" and rows["beta"][5] == "50%"  # every request answered; half the answers pass


def test_the_judge_endpoints_credentials_never_reach_the_batch(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    judge = stub.url.replace("http://", "http://grader:judge-pw-5521@") + "?api_key=judge-key-8812"
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-p", "no:cacheprovider",
                       "--llmbench-judge-endpoint", judge)

    raw = next(Path(pytester.path / "llmbench_results" / "latest").glob("batch_results_*.json")).read_text()
    assert "judge-pw-5521" not in raw and "judge-key-8812" not in raw
    assert json.loads(raw)["run"]["options"]["judge_endpoint"] == (
        stub.url.replace("http://", "http://***@") + "?api_key=***")


# -- issue 27, point 9: time and rates ---------------------------------------------------------------------------


def test_an_llm_judges_time_is_not_in_the_runs_duration_or_its_request_rate(pytester: pytest.Pytester, stub: OpenAIStub, load_stub: OpenAIStub) -> None:
    load_stub.delay, load_stub.default_answer = 1.0, '{"score": 9, "reason": "fine"}'  # a slow judge elsewhere
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}", "expected": {"rubric": "names a city"}}
                                                   for i in range(2)])
    pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "--llmbench-judge-endpoint",
                       load_stub.url, "-p", "no:cacheprovider").assert_outcomes(passed=2)

    batch = batch_of(pytester)
    judged = [json.loads(path.read_text())["evaluation_result"]["judge"]["seconds"]
              for path in (pytester.path / "llmbench_results" / "latest").glob("*_result.json")]
    assert len(judged) == 2 and min(judged) >= 0.9 and load_stub.answered == 2
    aggregate = batch["aggregate"]
    # the two requests took a fraction of one judge's second: neither judge (between them, after them) counts
    assert aggregate["duration_s"] < min(judged) * 0.75 < aggregate["wall_time_s"]
    assert aggregate["request_throughput"] == 2 / aggregate["duration_s"]


def test_tokens_per_second_is_left_out_below_the_minimum_of_completion_tokens(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    from pytest_llmbench.result import MIN_RATE_TOKENS

    stub.answers["long one"] = " ".join(["word"] * MIN_RATE_TOKENS)
    suite = write_suite(pytester.path / "s.json", [
        {"id": "short", "prompt": "Paris?", "slo": {"min_tokens_per_second": 1}},  # "Paris": one token
        {"id": "long", "prompt": "long one"}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*tokens_per_second not measured*fewer than {MIN_RATE_TOKENS} completion tokens*"])
    rows = {row["test_id"]: row for row in batch_of(pytester)["tests"]}
    assert rows["short"]["completion_tokens"] == 1 and rows["short"]["tokens_per_second"] is None
    assert rows["long"]["tokens_per_second"] == MIN_RATE_TOKENS / rows["long"]["execution_time"]
    assert batch_of(pytester)["aggregate"]["count_tokens_per_second"] == 1
    [speed] = [line for line in result.stdout.lines if line.startswith("tokens/s ")]
    assert speed.split()[1] == "1"  # the table's n


def test_repeats_and_sweep_levels_are_named_in_slowest_failures_and_the_report(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "t", "expected": {"contains": "Berlin"}}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                "--llmbench-sweep", "concurrency=1,2", "--llmbench-repeat", "2",
                                "-p", "no:cacheprovider")

    result.assert_outcomes(failed=4)
    headings = sorted(re.findall(r"_ llmbench \w+: Test 0 \[(\S+)\] _", result.stdout.str()))
    assert headings == ["c1-r1", "c1-r2", "c2-r1", "c2-r2"]  # the FAILURES section's headings
    [slowest] = [line for line in result.stdout.lines if line.startswith("slowest: ")]
    assert sorted(re.findall(r"(t\[\S+\]) \d", slowest)) == ["t[c1-r1]", "t[c1-r2]", "t[c2-r1]", "t[c2-r2]"]
    batch = batch_of(pytester)
    assert sorted(row["label"] for row in batch["tests"]) == ["t[c1-r1]", "t[c1-r2]", "t[c2-r1]", "t[c2-r2]"]
    assert {row["test_id"] for row in batch["tests"]} == {"t"}
    html = (pytester.path / "llmbench_results" / "latest" / "report.html").read_text()
    island = re.search(r'id="llmbench-data">(.*?)</script>', html, re.S)
    assert island is not None
    data = json.loads(island[1])
    assert sorted(data["runs"][0]["tests"]["id"]) == ["t[c1-r1]", "t[c1-r2]", "t[c2-r1]", "t[c2-r2]"]
    failures = re.findall(r'<article class="failure[^>]*>\s*<h4><span[^>]*>\w+</span> (\S+) ', html)
    assert sorted(failures) == ["t[c1-r1]", "t[c1-r2]", "t[c2-r1]", "t[c2-r2]"]
