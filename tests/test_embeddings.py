"""Embeddings tests (``input`` → /v1/embeddings): vectors checked, batches measured, against a real stub server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, embed_text, write_suite
from pytest_httpserver import HTTPServer
from run_files import batch_of, results_by_id

from pytest_llmbench.checks.embeddings import cosine, embedding_checks
from pytest_llmbench.checks.expectations import EMBEDDING_KEYS
from pytest_llmbench.collect.suite import load_suite
from pytest_llmbench.exceptions import SuiteError
from pytest_llmbench.http.client import ClientConfig, LLMClient

NEAR = {"text": "a cat on a mat", "min_cosine": 0.35}
FAR = {"text": "stock market prices fell", "max_cosine": 0.3}
TESTS = [
    {"id": "one", "input": "the cat sat on the mat",
     "expected": {"dimensions": 64, "normalized": True, "similar_to": NEAR, "dissimilar_to": FAR}},
    {"id": "batch", "input": ["the cat sat", "on the mat", "a dog barked"], "expected": {"dimensions": 64}},
    {"id": "short", "input": "the cat sat on the mat", "parameters": {"dimensions": 16},
     "expected": {"dimensions": 16, "similar_to": NEAR}},
    {"id": "far", "input": "dogs bark loudly", "expected": {"similar_to": {"text": "quantum physics",
                                                                           "min_cosine": 0.9}}},
]


def _run(pytester: pytest.Pytester, stub: OpenAIStub, *args: str) -> pytest.RunResult:
    suite = write_suite(pytester.path / "emb.json", TESTS)
    return pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "--llmbench-retries",
                              "0", "-p", "no:cacheprovider", *args)


def test_an_input_test_embeds_checks_its_vectors_and_measures_the_batch(pytester: pytest.Pytester,
                                                                        stub: OpenAIStub) -> None:
    result = _run(pytester, stub)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*far*similar_to >= 0.9*"])
    assert "cosine 0.0000 with 'quantum physics'" in result.stdout.str()
    sent = [r["body"] for r in stub.requests if r["path"] == "/v1/embeddings"]
    asked = [b for b in sent if b["input"] in (t["input"] for t in TESTS)]
    assert len(asked) == 4 and all(b["encoding_format"] == "float" and "stream" not in b for b in asked)
    references = sorted(str(b["input"]) for b in sent if b not in asked)  # each text once per parameters
    assert references == sorted([str(NEAR["text"]), str(FAR["text"]), str(NEAR["text"]), "quantum physics"])
    batch = batch_of(pytester.path / "llmbench_results")
    rows = {row["test_id"]: row for row in batch["tests"]}
    assert rows["batch"]["input_count"] == 3 and rows["short"]["embedding_dimensions"] == 16
    assert rows["batch"]["prompt_tokens"] == sum(len(stub.encode(text)) for text in TESTS[1]["input"])
    assert rows["batch"]["inputs_per_second"] == pytest.approx(3 / rows["batch"]["execution_time"])
    aggregate = batch["aggregate"]
    assert aggregate["count_batch_size"] == 4 and aggregate["max_batch_size"] == 3
    assert aggregate["count_inputs_per_second"] == aggregate["count_input_tokens_per_second"] == 4
    assert aggregate["count_ttft"] == 0  # nothing streams
    stored = results_by_id(pytester.path / "llmbench_results")["one"]
    assert "vectors" not in stored and stored["evaluation_result"]["passed"] is True
    assert len(json.dumps(stored)) < 20_000  # no vector is written


def test_slos_on_embedding_figures(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "emb.json", [
        {"id": "ok", "input": "x y", "slo": {"min_inputs_per_second": 0.001}},
        {"id": "slow", "input": "x y", "slo": {"min_inputs_per_second": 1e12}}])
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url,
                                "--llmbench-slo", "inputs_per_second_p50=0.001", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*slow*SLO missed*inputs*"])
    assert batch_of(pytester.path / "llmbench_results")["gates"]["passed"] is True


def test_embeddings_under_xdist_and_concurrency(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "emb.json", [{"id": f"e{n}", "input": f"text {n}"} for n in range(8)])
    pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-endpoint", stub.url, "-n", "2",
                       "--llmbench-concurrency", "2", "-p", "no:cacheprovider").assert_outcomes(passed=8)
    assert batch_of(pytester.path / "llmbench_results")["aggregate"]["count_batch_size"] == 8


def test_llm_client_embed_is_recorded_in_a_hand_written_test(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    pytester.makepyfile(test_mine="""
        def test_retrieval(llm_client):
            query, passage = llm_client.embed(["a cat on a mat", "the cat sat on the mat"]).vectors
            assert sum(a * b for a, b in zip(query, passage)) > 0.35
    """)
    pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider").assert_outcomes(passed=1)
    (row,) = batch_of(pytester.path / "llmbench_results")["tests"]
    assert row["llm_client"] is True and row["input_count"] == 2


@pytest.mark.parametrize(("test", "message"), [
    ({"input": "x", "prompt": "y"}, "has 'input' beside 'prompt', 'messages' or 'turns'"),
    ({"input": 5}, "input must be a non-empty string or a list of 1 to 2048 non-empty strings, got integer 5"),
    ({"input": ["a", ""]}, "input must be a non-empty string or a list"),
    ({"input": "x", "expected": {"contains": "y"}}, "expected.contains checks an answer's text; an embeddings test"),
    ({"prompt": "x", "expected": {"normalized": True}}, "expected.normalized checks embeddings; this test has no"),
    ({"input": "x", "expected": {"dimension": 3}}, "did you mean 'dimensions'"),
    ({"input": "x", "expected": {"similar_to": {"text": "y", "min_cosine": 2}}}, 'similar_to: must be {"text"'),
])
def test_bad_embedding_tests_are_named(tmp_path: Path, test: dict[str, Any], message: str) -> None:
    suite = write_suite(tmp_path / "bad.json", [{"id": "t1", **test}])
    with pytest.raises(SuiteError) as info:
        load_suite(suite)
    assert message in str(info.value) and "t1" in str(info.value) and "bad.json" in str(info.value)


@pytest.mark.parametrize(("data", "says"), [
    ([{"index": 0, "embedding": [0.1, float("nan")]}], "not a finite number"),
    ([{"index": 0, "embedding": [0.1, "x"]}], "holds something that is not a finite number"),
    ([{"index": 0, "embedding": [0.1, 0.2]}, {"index": 1, "embedding": [0.3]}], "different dimensions"),
    ([{"index": 0, "embedding": [0.1]}], "1 embeddings for 2 inputs"),
    ([{"index": 0, "embedding": [0.1]}, {"index": 0, "embedding": [0.2]}], "no index of its own"),
    ([], "no data"),
])
def test_an_answer_that_is_no_set_of_vectors_fails_the_request(httpserver: HTTPServer, data: Any, says: str) -> None:
    payload = json.dumps({"data": data, "usage": {"prompt_tokens": 2}}, allow_nan=True)
    httpserver.expect_request("/v1/embeddings").respond_with_data(payload, content_type="application/json")
    client = LLMClient(ClientConfig(endpoint=httpserver.url_for("/v1"), retries=0), model="m")
    try:
        result = client.embed(["a", "b"])
    finally:
        client.close()
    assert not result.success and says in (result.error_message or "") and result.vectors == ()


def test_out_of_order_vectors_are_put_back_in_input_order_and_an_endpoint_fixed_on_chat_still_embeds(
        stub: OpenAIStub) -> None:
    client = LLMClient(ClientConfig(endpoint=stub.url + "/chat/completions", retries=0), model="m")
    try:
        result = client.embed(["alpha beta", "gamma"])  # the stub answers in reverse order
    finally:
        client.close()
    assert result.success and stub.requests[-1]["path"] == "/v1/embeddings"
    assert result.vectors == (tuple(embed_text("alpha beta", 64)), tuple(embed_text("gamma", 64)))
    assert cosine(result.vectors[0], result.vectors[0]) == pytest.approx(1.0)
    assert cosine((0.0, 0.0), (1.0, 0.0)) is None and not math.isnan(cosine((1.0, 0.0), (0.0, 1.0)) or 0)


def test_the_completion_file_shows_the_inputs_and_the_vectors_shape(pytester: pytest.Pytester,
                                                                   stub: OpenAIStub) -> None:
    _run(pytester, stub)
    (path,) = (pytester.path / "llmbench_results").rglob("Test_1_completion.txt")  # "batch", the second test
    text = path.read_text(encoding="utf-8")
    assert "[input 0] the cat sat\n[input 1] on the mat\n[input 2] a dog barked" in text
    assert "(3 vectors of 64 dimensions, not kept)" in text


def test_each_vector_check_is_named_after_its_key_and_says_why_it_failed() -> None:
    vectors = [(0.6, 0.8), (1.0, 0.0)]
    expected = {"dimensions": 3, "normalized": False, "similar_to": {"text": "up", "min_cosine": 0.9},
                "dissimilar_to": {"text": "gone", "max_cosine": 0.0}}
    references: dict[str, tuple[float, ...] | str] = {"up": (0.0, 1.0), "gone": "HTTP 500"}
    checks = embedding_checks(expected, vectors, lambda text: references[text])
    assert [(c.name, c.passed) for c in checks] == [("dimensions", False), ("normalized", False),
                                                    ("similar_to", False), ("dissimilar_to", False)]
    assert [c.detail for c in checks] == ["the vectors have 2 dimensions", "vector lengths 1 to 1",
                                          "cosine 0.0000 with 'up'",
                                          "the reference text 'gone' could not be embedded: HTTP 500"]
    assert {c.name for c in checks} == EMBEDDING_KEYS and checks[2].label == "similar_to >= 0.9"
