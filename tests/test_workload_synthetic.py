"""Synthetic workloads end to end: generated tests of exact token lengths against a server with /tokenize, the
estimate when it has none, exact output lengths, lengths in the batch and summary, and bad specs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub
from pytest_httpserver import HTTPServer
from run_files import batch_of, results_by_id

COMPLETIONS = ("/v1/completions", "/v1/chat/completions")


def serve(**options: Any) -> Iterator[OpenAIStub]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    answering = OpenAIStub(**options)
    answering.url = answering.install(server)
    yield answering
    server.clear()
    server.stop()


@pytest.fixture
def tok_stub() -> Iterator[OpenAIStub]:
    """A server with the stub's tokenizer: one token per four characters."""
    yield from serve(tokenizer=True)


@pytest.fixture
def plain_stub() -> Iterator[OpenAIStub]:
    """A server without any tokenizer route."""
    yield from serve()


def write_workload(where: Path, workload: dict[str, Any], name: str = "rand.json", **top: Any) -> Path:
    path = where / name
    path.write_text(json.dumps({"test_suite_id": "rand", **top, "workload": workload}), encoding="utf-8")
    return path


def run(pytester: pytest.Pytester, stub: OpenAIStub, suite: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--llmbench-endpoint", stub.url,
                                         "--llmbench-suite", str(suite), "-p", "no:cacheprovider", *args)


def completions(stub: OpenAIStub) -> list[dict[str, Any]]:
    return [r for r in stub.requests if r["path"] in COMPLETIONS]


SYNTHETIC = {"type": "synthetic", "count": 12, "seed": 7, "api": "completions",
             "input_tokens": {"mean": 300, "stddev": 60, "min": 100, "max": 500},
             "output_tokens": {"mean": 16}, "exact_output": True}


def test_synthetic_items_have_stable_ids_and_collection_sends_nothing(pytester: pytest.Pytester, tok_stub: OpenAIStub) -> None:
    suite = write_workload(pytester.path, SYNTHETIC)
    first = run(pytester, tok_stub, suite, "--collect-only", "-q")
    ids = [line for line in first.outlines if "::" in line]
    assert ids == [f"rand.json::synthetic[{n:04d}]" for n in range(12)]
    assert tok_stub.requests == []  # no tokenize, no completion: collection is offline
    again = run(pytester, tok_stub, suite, "--collect-only", "-q", "-k", "synthetic and 0003")
    assert [line for line in again.outlines if "::" in line] == ["rand.json::synthetic[0003]"]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_input_lengths_are_exact_on_the_servers_tokenizer(pytester: pytest.Pytester, tok_stub: OpenAIStub, workers: Any) -> None:
    suite = write_workload(pytester.path, SYNTHETIC)
    run(pytester, tok_stub, suite, "--llmbench-concurrency", "4", *workers).assert_outcomes(passed=12)
    results = results_by_id(pytester.path / "llmbench_results" / "latest")
    assert len(results) == 12 and len(completions(tok_stub)) == 12  # the tests' requests, nothing more
    wanted = [r["requested_input_tokens"] for r in results.values()]
    assert len(set(wanted)) > 3 and all(100 <= w <= 500 for w in wanted)  # drawn, clipped
    for result in results.values():
        assert result["prompt_tokens"] == result["requested_input_tokens"]  # by the server's own count
        assert result["completion_tokens"] == result["requested_output_tokens"] == 16
        assert result["request"]["ignore_eos"] is True and result["request"]["min_tokens"] == 16
        assert not result["input_tokens_estimated"] and not result["stopped_early"]
    section = batch_of(pytester.path / "llmbench_results" / "latest")["workload"]
    assert section["input_exact"] == 12 and section["estimated_lengths"] == 0
    assert section["input_tokens"]["requested"]["mean"] == section["input_tokens"]["achieved"]["mean"]


def test_the_same_seed_gives_the_same_prompts_in_another_run(pytester: pytest.Pytester, tok_stub: OpenAIStub) -> None:
    suite = write_workload(pytester.path, {**SYNTHETIC, "count": 3})
    run(pytester, tok_stub, suite).assert_outcomes(passed=3)
    run(pytester, tok_stub, suite, "-n", "2").assert_outcomes(passed=3)
    prompts = [r["body"]["prompt"] for r in completions(tok_stub)]
    assert sorted(prompts[:3]) == sorted(prompts[3:]) and len(set(prompts)) == 3


def test_chat_lengths_count_the_user_message_and_a_mix_draws_its_pairs(pytester: pytest.Pytester, tok_stub: OpenAIStub) -> None:
    suite = write_workload(pytester.path, {"type": "synthetic", "count": 20, "seed": 1, "api": "chat",
                                           "mix": [[40, 4, 0.5], [200, 8, 0.5]]})
    run(pytester, tok_stub, suite).assert_outcomes(passed=20)
    results = results_by_id(pytester.path / "llmbench_results" / "latest").values()
    pairs = {(r["requested_input_tokens"], r["requested_output_tokens"]) for r in results}
    assert pairs == {(40, 4), (200, 8)}
    assert all(r["prompt_tokens"] == r["requested_input_tokens"] and r["api_type"] == "chat" for r in results)
    assert all(r["request"]["max_tokens"] == r["requested_output_tokens"] for r in results)


def test_without_a_tokenizer_lengths_are_estimates_flagged_everywhere(pytester: pytest.Pytester, plain_stub: OpenAIStub) -> None:
    suite = write_workload(pytester.path, {**SYNTHETIC, "count": 3})
    run_result = run(pytester, plain_stub, suite)
    run_result.assert_outcomes(passed=3)
    run_result.stdout.fnmatch_lines(["*workload: ESTIMATED prompt lengths in 3 requests*"])
    assert {r["path"] for r in plain_stub.requests} <= {*COMPLETIONS, "/v1/models"}  # only 404s besides
    results = results_by_id(pytester.path / "llmbench_results" / "latest").values()
    assert all(r["input_tokens_estimated"] for r in results)
    assert all(r["stopped_early"] for r in results)  # "stub answer": 2 of the 16 tokens exact_output asked for
    assert batch_of(pytester.path / "llmbench_results" / "latest")["workload"]["estimated_lengths"] == 3


def test_a_local_tokenizer_that_cannot_be_loaded_is_one_clear_message(pytester: pytest.Pytester, plain_stub: OpenAIStub) -> None:
    suite = write_workload(pytester.path, {**SYNTHETIC, "count": 1})
    result = run(pytester, plain_stub, suite, "--llmbench-tokenizer", str(pytester.path / "nowhere"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*--llmbench-tokenizer *nowhere: no tokenizer.json there*"])
    assert "Traceback" not in result.stdout.str() and completions(plain_stub) == []


@pytest.mark.parametrize(("workload", "message"), [
    ({"type": "synthetic", "input_tokens": 5}, "workload.count is required*"),
    ({"type": "synthetic", "count": 2, "input_tokens": {"mean": 5, "min": 9, "max": 3}}, "workload.input_tokens: min 9 is*"),
    ({"type": "synthetic", "count": 2, "input_tokens": 0}, "workload.input_tokens must be a whole number*"),
    ({"type": "synthetic", "count": 2, "input_tokens": 4, "mix": [[1, 2, 1]]}, "*either mix or input_tokens*"),
    ({"type": "synthetic", "count": 2, "mix": [[1, 2]]}, "workload.mix must be a non-empty list*"),
    ({"type": "synthetic", "count": 2, "input_tokens": 4, "prefx": {}}, "*unknown field 'workload.prefx'*"),
    ({"type": "synth", "count": 2}, "workload.type must be one of synthetic, dataset, trace*"),
])
def test_bad_specs_name_the_file_and_the_field(pytester: pytest.Pytester, tok_stub: OpenAIStub, workload: Any, message: str) -> None:
    suite = write_workload(pytester.path, workload)
    result = run(pytester, tok_stub, suite)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*rand.json: {message}"])
    assert tok_stub.requests == []


@pytest.mark.parametrize("stream", [(), ("--llmbench-stream",)], ids=["json", "streamed"])
def test_shared_prefixes_are_cached_and_cached_tokens_are_pooled(pytester: pytest.Pytester, tok_stub: OpenAIStub, stream: Any) -> None:
    suite = write_workload(pytester.path, {"type": "synthetic", "count": 8, "seed": 3, "input_tokens": 100,
                                           "output_tokens": 2, "prefix": {"tokens": 64, "groups": 2}})
    result = run(pytester, tok_stub, suite, *stream)
    result.assert_outcomes(passed=8)
    prompts = [tok_stub.encode(r["body"]["prompt"]) for r in completions(tok_stub)]
    assert len({tuple(p[:64]) for p in prompts}) == 2 and len({tuple(p[64:]) for p in prompts}) == 8
    results = results_by_id(pytester.path / "llmbench_results" / "latest").values()
    assert sorted(r["cached_tokens"] for r in results) == [0, 0] + [64] * 6  # each group's first is not cached
    data = batch_of(pytester.path / "llmbench_results" / "latest")
    assert data["aggregate"]["count_cached_tokens"] == 8 and data["aggregate"]["mean_cached_tokens"] == 48
    assert data["workload"]["cached_tokens"] == {"requests": 8, "total": 384, "share": 384 / 800}
    result.stdout.fnmatch_lines(["workload: 384 prompt tokens cached by usage (48.0% of 8 prompts)*"])


def test_a_local_tokenizer_builds_exact_prompts_when_the_server_has_none(pytester: pytest.Pytester, plain_stub: OpenAIStub) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from pytest_llmbench.collect.workload.prompts import corpus_text

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator([corpus_text()], trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]"]))
    tokenizer.decoder = decoders.ByteLevel()
    (pytester.path / "tok").mkdir()
    tokenizer.save(str(pytester.path / "tok" / "tokenizer.json"))
    suite = write_workload(pytester.path, {**SYNTHETIC, "count": 4})
    run(pytester, plain_stub, suite, "--llmbench-tokenizer", str(pytester.path / "tok")).assert_outcomes(passed=4)
    results = results_by_id(pytester.path / "llmbench_results" / "latest").values()
    assert not any(r["input_tokens_estimated"] for r in results)
    for result in results:
        encoded = tokenizer.encode(result["request"]["prompt"], add_special_tokens=False)
        assert len(encoded.ids) == result["requested_input_tokens"]


@pytest.fixture
def vllm_tok_stub() -> Iterator[OpenAIStub]:
    """A server with the stub's tokenizer and vLLM's /metrics beside it, its prefix-cache counters moved by each
    answer (prometheus_exporter.PREFIX_HITS of the 7 prompt tokens it counts per request)."""
    from prometheus_exporter import PrometheusExporter, serve_beside

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    answering = OpenAIStub(tokenizer=True, delay=0.05)
    with PrometheusExporter("vllm") as exporter:
        serve_beside(exporter, answering, server)
        yield answering
    server.clear()
    server.stop()


def test_the_servers_prefix_cache_hit_rate_stands_beside_the_cached_share(pytester: pytest.Pytester,
                                                                          vllm_tok_stub: OpenAIStub) -> None:
    from prometheus_exporter import PREFIX_HITS

    suite = write_workload(pytester.path, {"type": "synthetic", "count": 8, "seed": 3, "input_tokens": 100,
                                           "output_tokens": 2, "prefix": {"tokens": 64, "groups": 2}})
    result = run(pytester, vllm_tok_stub, suite, "--llmbench-server-metrics-interval", "0.2")
    result.assert_outcomes(passed=8)
    server = batch_of(pytester.path / "llmbench_results" / "latest")["server"]
    assert server["prefix_cache_hit_rate"] == pytest.approx(PREFIX_HITS / 7)
    result.stdout.fnmatch_lines([f"workload: 384 prompt tokens cached by usage (48.0% of 8 prompts) | server prefix "
                                 f"cache hits {PREFIX_HITS / 7 * 100:.1f}%"])


@pytest.fixture
def small_context_stub() -> Iterator[OpenAIStub]:
    """A server with a tokenizer whose /v1/models lists a context of 110 tokens, as vLLM lists max_model_len."""
    yield from serve(tokenizer=True, max_model_len=110)


def test_a_request_beyond_the_models_context_fails_with_that_message(pytester: pytest.Pytester, small_context_stub: OpenAIStub) -> None:
    tok_stub = small_context_stub
    suite = write_workload(pytester.path, {"type": "synthetic", "count": 2, "input_tokens": {"min": 90, "max": 100},
                                           "output_tokens": 20})
    result = run(pytester, tok_stub, suite)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*synthetic[[]000?] asks for * input + 20 output tokens, beyond the model's context "
                                 "of 110 tokens (max_model_len in /v1/models)*"])
    assert completions(tok_stub) == []


def test_a_sweep_with_warm_up_runs_every_level_and_sends_nothing_else(pytester: pytest.Pytester, tok_stub: OpenAIStub) -> None:
    suite = write_workload(pytester.path, {**SYNTHETIC, "count": 4})
    result = run(pytester, tok_stub, suite, "--llmbench-sweep", "concurrency=1,2", "--llmbench-warmup", "2",
                 "-n", "2")
    result.assert_outcomes(passed=8)
    assert len(completions(tok_stub)) == 8 + 2  # the tests' requests and the warm-up, no probe
    levels = batch_of(pytester.path / "llmbench_results" / "latest")["sweep"]["levels"]
    assert [(level["level"], level["requests"]) for level in levels] == [("c1", 4), ("c2", 4)]
    ids = {r["test_id"] for r in results_by_id(pytester.path / "llmbench_results" / "latest").values()}
    assert ids == {f"synthetic[{n:04d}]" for n in range(4)}
