"""Whole sessions against a real HTTP stub: requests, outcomes, result files and the session-level stops."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from openai_stub import MODEL, OpenAIStub, write_suite
from pytest_httpserver import HTTPServer

STUB = {"answers": {"France": "Paris is the capital."}}


def run(pytester: pytest.Pytester, stub: OpenAIStub, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider", *args)


def results_dir(pytester: pytest.Pytester) -> Path:
    return pytester.path / "llmbench_results" / "latest"


def test_both_api_shapes_send_their_request_bodies(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [
        {"id": "base", "prompt": "Capital of France?",
         "parameters": {"max_tokens": 20, "temperature": 0.4, "top_p": 0.95, "stop": ["\n\n"], "seed": 7}},
        {"id": "chat", "messages": [{"role": "user", "content": "Capital of France?"}],
         "parameters": {"max_tokens": 30}},
    ], defaults={"parameters": {"temperature": 0.2, "ignore_eos": True}})
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    by_path = {r["path"]: r["body"] for r in stub.requests}
    assert by_path["/v1/completions"] == {
        "model": MODEL, "prompt": "Capital of France?", "max_tokens": 20, "temperature": 0.4, "top_p": 0.95,
        "stop": ["\n\n"], "seed": 7, "ignore_eos": True, "stream": False}
    assert by_path["/v1/chat/completions"] == {
        "model": MODEL, "messages": [{"role": "user", "content": "Capital of France?"}], "max_tokens": 30,
        "temperature": 0.2, "ignore_eos": True, "stream": False}


def test_result_files_hold_prompt_completion_metrics_and_the_whole_result(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [
        {"id": "geo_01", "name": "Geography", "category": "geo", "prompt": "Capital of France?",
         "reasoning_type": "factual"},
        {"id": "other", "name": "Other"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    text = (results_dir(pytester) / "Geography_completion.txt").read_text()
    for section in ("PROMPT", "Capital of France?", "COMPLETION", "Paris is the capital.", "METRICS"):
        assert section in text
    result = json.loads((results_dir(pytester) / "Geography_result.json").read_text())
    assert result["test_id"] == "geo_01" and result["success"] is True
    assert result["response_text"] == "Paris is the capital."
    assert (result["prompt_tokens"], result["completion_tokens"], result["tokens_estimated"]) == (7, 4, False)
    assert result["tokens_per_second"] is None  # 4 tokens: too few for a rate (MIN_RATE_TOKENS)
    assert result["reasoning_type"] == "factual" and result["model"] == MODEL and result["attempts"] == 1
    for name in ("timestamp", "api_response", "performance_metrics", "evaluation_result", "reasoning_score",
                 "error_message", "category"):
        assert name in result
    [batch_path] = results_dir(pytester).glob("batch_results_*.json")
    batch = json.loads(batch_path.read_text())
    agg = batch["aggregate"]
    assert (agg["total_tests"], agg["successful_tests"], agg["failed_tests"], agg["success_rate"]) == (2, 2, 0, 1.0)
    assert agg["total_tokens"] == 7 * 2 + 4 + 2
    assert {"average_execution_time", "average_tokens_per_second"} <= agg.keys()
    assert [row["test_id"] for row in batch["tests"]] == ["geo_01", "other"]
    assert "response_text" not in batch["tests"][0]


def test_a_single_result_writes_a_batch_file_usable_as_a_baseline(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "only"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=1)
    assert len(list(results_dir(pytester).glob("batch_results_*.json"))) == 1
    assert (results_dir(pytester) / "Test_0_result.json").exists()
    run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", "latest").assert_outcomes(passed=1)


def test_tests_with_the_same_name_get_distinct_files(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a", "name": "Same"}, {"id": "b", "name": "Same"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    files = sorted(p.name for p in results_dir(pytester).glob("Same*_result.json"))
    assert len(files) == 2
    ids = {json.loads((results_dir(pytester) / f).read_text())["test_id"] for f in files}
    assert ids == {"a", "b"}


def test_server_error_fails_the_item_with_a_short_reason(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.status["forbidden"] = 400
    suite = write_suite(pytester.path / "s.json", [{"id": "bad", "prompt": "forbidden words"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*HTTP 400*scripted 400*"])
    assert "Traceback" not in result.stdout.str() and "runner.py" not in result.stdout.str()
    saved = json.loads((results_dir(pytester) / "Test_0_result.json").read_text())
    assert saved["success"] is False and saved["error"]["status"] == 400


def test_unreachable_endpoint_stops_the_session_with_one_error(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": f"t{i}"} for i in range(5)])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", "http://127.0.0.1:9/v1",
                                "--llmbench-retries", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert output.count("Cannot reach the LLM server at http://127.0.0.1:9/v1/models") == 1
    assert "passed" not in output and "failed" not in output


def test_unwritable_output_stops_before_any_request(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    (pytester.path / "blocker").write_text("a file, not a folder")
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-output", "blocker/out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*blocker*"])
    assert stub.requests == []


def test_json_tests_and_ordinary_tests_share_llm_client(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "json_test", "prompt": "Capital of France?"}])
    pytester.makepyfile(test_hand="""
        def test_complete(llm_client):
            result = llm_client.complete("Capital of France?", max_tokens=5)
            assert result.success and result.response_text == "Paris is the capital."

        def test_chat(llm_client):
            result = llm_client.chat([{"role": "user", "content": "hi"}])
            assert result.success and result.response_text == "stub answer"
    """)
    run(pytester, stub, "--llmbench-suite", str(suite), "test_hand.py").assert_outcomes(passed=3)
    hand = [r for r in stub.requests if r["body"].get("max_tokens") == 5]
    assert hand and hand[0]["body"]["model"] == MODEL


def test_api_key_from_environment_is_sent_as_bearer(pytester: pytest.Pytester, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBENCH_API_KEY", "sk-env-key-123")
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-header", "X-Team: bench").assert_outcomes(
        passed=1)
    headers = stub.requests[0]["headers"]
    assert headers["Authorization"] == "Bearer sk-env-key-123" and headers["X-Team"] == "bench"


def test_last_failed_reruns_only_the_failed_json_test(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.status["boom"] = 400
    suite = write_suite(pytester.path / "s.json", [{"id": "ok"}, {"id": "bad", "prompt": "boom"}])
    pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url).assert_outcomes(
        passed=1, failed=1)
    rerun = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "--lf")
    rerun.assert_outcomes(failed=1, deselected=1)


def test_junitxml_carries_each_items_figures(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a", "prompt": "Capital of France?"}])
    run(pytester, stub, "--llmbench-suite", str(suite), "--junitxml", "out.xml").assert_outcomes(passed=1)
    case = ElementTree.parse(pytester.path / "out.xml").getroot().find(".//testcase")
    assert case is not None
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    saved = json.loads((results_dir(pytester) / "Test_0_result.json").read_text())
    assert properties == {"execution_time": str(saved["execution_time"]), "completion_tokens": "4",
                          "tokens_per_second": str(saved["tokens_per_second"]), "attempts": "1"}
    assert (case.get("classname"), case.get("name")) == ("s.json", "a")


def test_default_model_is_the_first_listed_by_the_server(pytester: pytest.Pytester, httpserver: HTTPServer) -> None:
    stub = OpenAIStub(models=("first-model", "second-model"))
    stub.url = stub.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=1)
    assert stub.requests[0]["body"]["model"] == "first-model"


def test_several_models_write_one_subfolder_each(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-model", "m1",
        "--llmbench-model", "m2").assert_outcomes(passed=4)
    assert sorted(r["body"]["model"] for r in stub.requests) == ["m1", "m1", "m2", "m2"]
    for model in ("m1", "m2"):
        saved = json.loads((results_dir(pytester) / model / "Test_0_result.json").read_text())
        assert saved["model"] == model


def test_output_option_and_ini_key_choose_the_folder(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    pytester.makeini(f"[pytest]\nllmbench_output = from_ini\nllmbench_endpoint = {stub.url}\n")
    pytester.runpytest("--llmbench-suite", str(suite)).assert_outcomes(passed=1)
    assert (pytester.path / "from_ini" / "latest" / "Test_0_result.json").exists()
    pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-output", os.fspath(pytester.path / "cli"))
    assert (pytester.path / "cli" / "latest" / "Test_0_result.json").exists()


def test_streaming_measures_ttft_itl_and_tpot_and_the_summary_shows_them(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.token_gap = 0.02
    stub.answers["count"] = "one two three four five"
    suite = write_suite(pytester.path / "s.json", [{"id": "a", "prompt": "count"},
                                                   {"id": "b", "messages": [{"role": "user", "content": "count"}]}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-stream")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["TTFT *", "ITL *", "TPOT *"])
    saved = json.loads((results_dir(pytester) / "Test_0_result.json").read_text())
    assert saved["stream"] is True and saved["response_text"] == "one two three four five"
    assert saved["completion_tokens"] == 5 and saved["tokens_estimated"] is False
    assert len(saved["itl"]) == 4 and all(0.005 < gap < 0.5 for gap in saved["itl"])  # 20 ms apart, give or take a flush
    assert sum(saved["itl"]) >= 0.06
    assert saved["tpot"] == pytest.approx((saved["e2e_latency"] - saved["ttft"]) / 4)
    assert stub.requests[0]["body"]["stream_options"] == {"include_usage": True}
    aggregate = json.loads(next(results_dir(pytester).glob("batch_*.json")).read_text())["aggregate"]
    assert aggregate["p50_itl_ms"] > 15 and aggregate["mean_ttft_ms"] is not None


def test_per_test_stream_flag_and_missing_usage_gives_an_estimate_marked_as_such(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.usage = False
    suite = write_suite(pytester.path / "s.json", [{"id": "a", "stream": True, "prompt": "Capital of France?"},
                                                   {"id": "b"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    streamed = json.loads((results_dir(pytester) / "Test_0_result.json").read_text())
    plain = json.loads((results_dir(pytester) / "Test_1_result.json").read_text())
    assert streamed["stream"] is True and plain["stream"] is False
    assert streamed["tokens_estimated"] is True and streamed["completion_tokens"] > 0
    assert "(estimated)" in (results_dir(pytester) / "Test_0_completion.txt").read_text()


def test_broken_stream_fails_the_item_and_keeps_the_partial_text(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    stub.break_stream = True
    suite = write_suite(pytester.path / "s.json", [{"id": "a", "prompt": "Capital of France?"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-stream")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DONE*"])
    saved = json.loads((results_dir(pytester) / "Test_0_result.json").read_text())
    assert saved["success"] is False and saved["response_text"] == "Paris"


def test_insecure_option_warns_once_that_tls_is_not_verified(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-insecure")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*--llmbench-insecure is set: TLS certificates are not verified*"])


def test_result_files_are_strict_json_with_nan_as_null(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    pytester.makeconftest("""
        def pytest_llmbench_result(result):
            result.performance_metrics["odd"] = float("nan")
            result.performance_metrics["huge"] = float("inf")
    """)
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)

    def strict(text: Any) -> Any:
        loaded: Any = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in a result file"))
        return loaded

    saved = strict((results_dir(pytester) / "Test_0_result.json").read_text())
    assert saved["performance_metrics"]["odd"] is None and saved["performance_metrics"]["huge"] is None
    strict(next(results_dir(pytester).glob("batch_results_*.json")).read_text())


def test_summary_shows_unknown_prompt_counts_as_unknown_and_no_percentile_without_enough_values(pytester: pytest.Pytester, httpserver: HTTPServer) -> None:
    stub = OpenAIStub(usage=False, status={"refuse": 400})
    url = stub.install(httpserver)
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}, {"id": "bad", "prompt": "refuse"}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", url, "--llmbench-retries", "0",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["tokens: ? prompt, * completion (2 results estimated)*"])
    [latency] = [line for line in result.outlines if line.startswith("latency ms")]
    cells = latency.split()[2:]  # n, mean, std, min, p50, p90, p95, p99, p99.9, max
    assert cells[0] == "2" and cells[4:9] == ["-"] * 5  # 2 samples bound no percentile at 95%, not even p50 (needs 6)
    slowest = next(line for line in result.outlines if line.startswith("slowest:"))
    assert "bad" not in slowest  # a failed request is not slow, it failed
    saved = json.loads((results_dir(pytester) / "Test_0_result.json").read_text())
    assert saved["e2e_latency"] == saved["execution_time"]  # not streamed: end to end is the latency
