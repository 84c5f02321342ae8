"""A synthetic workload against the embedded model: prompts built on the server's own tokenizer
(llama-cpp-python's /extras/tokenize) arrive with the lengths asked for, by the server's usage counts."""

from __future__ import annotations

import json

import pytest
from run_files import batch_of, results_by_id
from test_real_llm import shared_model_cache  # noqa: F401 - the fixture, shared with the quick-start tests

pytestmark = [pytest.mark.real_llm, pytest.mark.timeout(900), pytest.mark.usefixtures("local_extra")]

INPUT_TOKENS = 256


def test_synthetic_lengths_on_the_embedded_model_match_its_usage(pytester: pytest.Pytester) -> None:
    suite = pytester.path / "rand.json"
    suite.write_text(json.dumps({"test_suite_id": "rand", "workload": {
        "type": "synthetic", "count": 3, "seed": 7, "input_tokens": INPUT_TOKENS, "output_tokens": 8,
        "exact_output": True}}))
    run = pytester.runpytest_subprocess("--llmbench-suite", str(suite), "-p", "no:cacheprovider", timeout=600)
    run.assert_outcomes(passed=3)
    output = pytester.path / "llmbench_results" / "latest"
    for result in results_by_id(output).values():
        assert not result["input_tokens_estimated"]  # built on the server's tokenizer, not the estimate
        # usage counts the BOS the server adds; within 1 % of the length asked for
        assert abs(result["prompt_tokens"] - INPUT_TOKENS) <= INPUT_TOKENS / 100, result["prompt_tokens"]
        assert 0 < result["completion_tokens"] <= 8
    section = batch_of(output)["workload"]
    assert section["requests"] == 3 and section["estimated_lengths"] == 0 and section["input_off_max_pct"] <= 1
