"""Answer drift: each comparison level on its own, then real sessions against the stub whose answers change between
a baseline run and a compared one — rows, answer_changes, the gate, the report's "What changed", llmbench-report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai_stub import OpenAIStub, embed_text, write_suite

from pytest_llmbench.checks.embeddings import cosine
from pytest_llmbench.metrics.drift import answer_drift, normalize, outcome_change, word_diff
from pytest_llmbench.session.journal import JOURNAL
from pytest_llmbench.session.report_html.cli import main as llmbench_report

BEFORE = {"capital": "Paris is the capital of France.", "sky": "The sky is blue on a clear day.",
          "count": "one two three", "city": "Paris.", "code": "print(1)"}
AFTER = {"capital": "paris IS the capital of France!", "sky": "The sky is green on a foggy day.",
         "count": "one two three", "city": "Lyon, I think.", "code": "<script>alert(1)</script> print(2)"}
PROMPTS = {"t_capital": "capital?", "t_sky": "sky?", "t_count": "count?", "t_city": "city?", "t_code": "code?"}
EXPECTED = {"t_city": {"contains": "Paris"}}


@pytest.mark.parametrize(("before", "after", "level", "similarity"), [
    ("The answer is 42.", "The answer is 42.", "identical", 1.0),
    ("The answer is 42.", "the  answer is 42", "normalized-equal", 1.0),
    ("Hello, World!", "hello world", "normalized-equal", 1.0),
    ("abcd", "abce", "changed", 0.75),  # rapidfuzz's Indel ratio: 2 * 3 / 8
    ("yes", "no", "changed", 0.0),
])
def test_each_comparison_level(before: Any, after: Any, level: Any, similarity: Any) -> None:
    assert answer_drift(before, after) == {"level": level, "similarity": similarity}


def test_normalize_folds_case_spacing_and_punctuation_only() -> None:
    assert normalize("  Hello,\tWORLD!! ") == "hello world" and normalize("café 42") == "café 42"


def test_a_word_diff_rebuilds_both_answers_and_marks_only_what_changed() -> None:
    before, after = "The sky is blue on a clear day.", "The sky is green on a foggy day."
    diff = word_diff(before, after)
    assert "".join(t for op, t in diff if op != "+") == before and "".join(t for op, t in diff if op != "-") == after
    assert [t.strip() for op, t in diff if op == "-"] == ["blue", "clear"]
    assert [t.strip() for op, t in diff if op == "+"] == ["green", "foggy"]


def test_check_outcomes_before_and_after_name_regressions_and_improvements() -> None:
    assert outcome_change(True, False) == "regression" and outcome_change(False, True) == "improvement"
    assert outcome_change(True, True) is None and outcome_change(None, False) is None


# -- sessions ------------------------------------------------------------------------------------------------------


def suite(pytester: pytest.Pytester, **parameters: Any) -> Path:
    tests = [{"id": test_id, "prompt": prompt, "parameters": {"temperature": 0, "seed": 1, **parameters},
              **({"expected": EXPECTED[test_id]} if test_id in EXPECTED else {})}
             for test_id, prompt in PROMPTS.items()]
    return write_suite(pytester.path / "d.json", tests)


def session(pytester: pytest.Pytester, stub: OpenAIStub, answers: dict[str, str], *args: str,
            path: Path | None = None) -> pytest.RunResult:
    stub.answers = answers
    return pytester.runpytest("--llmbench-suite", str(path or suite(pytester)), "--llmbench-endpoint", stub.url,
                              "-p", "no:cacheprovider", *args)


def batches(pytester: pytest.Pytester) -> list[Path]:
    return sorted(p for p in (pytester.path / "llmbench_results").glob("*/batch_results_*.json")
                  if not p.parent.is_symlink())


def rows_by_id(batch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["test_id"]: row for row in batch["tests"]}


@pytest.mark.parametrize("test_files", ["all", "none"])
def test_a_compared_run_records_each_answers_drift_and_ranks_the_changes(pytester: pytest.Pytester, stub: OpenAIStub, test_files: Any) -> None:
    session(pytester, stub, BEFORE, "--llmbench-test-files", test_files).assert_outcomes(passed=5)
    result = session(pytester, stub, AFTER, "--llmbench-compare", "latest")
    result.assert_outcomes(passed=4, failed=1)  # t_city's check fails now
    batch = json.loads(batches(pytester)[-1].read_text())
    rows = rows_by_id(batch)
    assert rows["t_count"]["answer_drift"] == {"level": "identical", "similarity": 1.0}
    assert rows["t_capital"]["answer_drift"] == {"level": "normalized-equal", "similarity": 1.0}
    assert rows["t_sky"]["answer_drift"]["level"] == "changed" and 0.5 < rows["t_sky"]["answer_drift"]["similarity"] < 1
    changes = batch["answer_changes"]
    assert [c["test_id"] for c in changes][-1] == "t_capital"  # least changed last
    assert [c["similarity"] for c in changes] == sorted(c["similarity"] for c in changes)
    assert {c["test_id"] for c in changes} == {"t_capital", "t_sky", "t_city", "t_code"}
    city = next(c for c in changes if c["test_id"] == "t_city")
    assert (city["checks_before"], city["checks_after"], city["outcome"]) == (True, False, "regression")
    assert ["-", "Paris."] in city["diff"]
    assert batch["drift"]["identical"] == 1 and batch["drift"]["normalized_equal"] == 1
    assert batch["drift"]["changed"] == 3 and batch["drift"]["sampling_warnings"] == []
    result.stdout.fnmatch_lines(["*answers against the baseline: 5 compared, 1 identical, 1 equal but for case*",
                                 "*answer checks that passed in the baseline and fail now: t_city*"])


def test_the_drift_gate_fails_the_session_as_a_counted_failure(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    session(pytester, stub, BEFORE).assert_outcomes(passed=5)
    [first] = batches(pytester)
    result = session(pytester, stub, {**BEFORE, "sky": "Completely unrelated words here"},
                     "--llmbench-compare", "latest", "--llmbench-drift-fail", "0.8")
    result.assert_outcomes(passed=5, failed=1)  # the gate is the failure
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*llmbench gate drift[[]answers[]]*",
                                 "1 answers drifted below similarity 0.8 from the baseline: t_sky (stub-model) 0.*",
                                 "FAILED llmbench::drift[[]answers[]]*"])
    passed = session(pytester, stub, {**BEFORE, "capital": "PARIS is the capital of France"},
                     "--llmbench-compare", str(first), "--llmbench-drift-fail", "0.8")
    assert passed.ret == pytest.ExitCode.OK
    passed.stdout.fnmatch_lines(["*gate passed: every compared answer's similarity to the baseline >= 0.8*"])
    assert "llmbench::drift" not in passed.stdout.str()


def test_the_gate_without_a_baseline_or_without_answers_is_a_usage_error(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    alone = session(pytester, stub, BEFORE, "--llmbench-drift-fail", "0.8")
    assert alone.ret == pytest.ExitCode.USAGE_ERROR
    alone.stderr.fnmatch_lines(["*--llmbench-drift-fail compares answers with a baseline: add --llmbench-compare*"])
    session(pytester, stub, BEFORE, "--llmbench-test-files", "none").assert_outcomes(passed=5)
    [baseline] = batches(pytester)
    (baseline.parent / JOURNAL).unlink()  # a run of an earlier version: neither journal nor per-test files
    refused = session(pytester, stub, AFTER, "--llmbench-compare", str(baseline), "--llmbench-drift-fail", "0.8")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*no answers beside it*answer drift needs*"])
    warned = session(pytester, stub, AFTER, "--llmbench-compare", str(baseline))
    warned.stdout.fnmatch_lines(["*answer drift not measured*no answers beside it*"])


def test_an_older_baseline_gives_its_answers_from_its_per_test_files(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    session(pytester, stub, BEFORE).assert_outcomes(passed=5)
    [baseline] = batches(pytester)
    (baseline.parent / JOURNAL).unlink()
    session(pytester, stub, AFTER, "--llmbench-compare", str(baseline))
    batch = json.loads(batches(pytester)[-1].read_text())
    assert batch["drift"]["compared"] == 5 and batch["drift"]["changed"] == 3


def test_the_report_warns_when_sampling_is_not_deterministic_or_differs(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    session(pytester, stub, BEFORE, path=suite(pytester)).assert_outcomes(passed=5)
    result = session(pytester, stub, BEFORE, "--llmbench-compare", "latest", path=suite(pytester, temperature=0.7))
    batch = json.loads(batches(pytester)[-1].read_text())
    notes = batch["drift"]["sampling_warnings"]
    assert notes == ["5 tests sampled differently: seed=1, temperature=0 in the baseline, seed=1, temperature=0.7 now"]
    result.stdout.fnmatch_lines(["*answer drift WARNING: 5 tests sampled differently*"])


def test_what_changed_in_the_report_and_in_llmbench_report_a_b_shows_escaped_word_diffs(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    session(pytester, stub, BEFORE).assert_outcomes(passed=5)
    session(pytester, stub, AFTER, "--llmbench-compare", "latest")
    first, second = batches(pytester)
    html = (second.parent / "report.html").read_text()
    section = html[html.index('<section id="what-changed">'):]
    section = section[:section.index("</section>")]
    assert "<del>blue </del>" in section and "<ins>green </ins>" in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script>alert" not in section
    assert "<strong>regression</strong>" in section
    out = pytester.path / "ab.html"
    assert llmbench_report([str(first), str(second), "-o", str(out)]) == 0
    between = out.read_text()
    assert '<section id="what-changed">' in between
    assert "<del>blue </del>" in between and "&lt;script&gt;alert(1)&lt;/script&gt;" in between


def test_an_embedding_model_gives_each_changed_answer_its_cosine_with_the_baselines(
        pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    session(pytester, stub, BEFORE).assert_outcomes(passed=5)
    result = session(pytester, stub, AFTER, "--llmbench-compare", "latest", "--llmbench-embedding-model", "emb")
    batch = json.loads(batches(pytester)[-1].read_text())
    rows = rows_by_id(batch)
    assert rows["t_count"]["answer_drift"]["cosine"] == rows["t_capital"]["answer_drift"]["cosine"] == 1.0
    sky = rows["t_sky"]["answer_drift"]["cosine"]  # the stub's vectors count shared words: 5 of 8 each
    assert sky == pytest.approx(cosine(embed_text(BEFORE["sky"], 64), embed_text(AFTER["sky"], 64)), abs=1e-4)
    assert rows["t_city"]["answer_drift"]["cosine"] == 0.0  # "Paris." and "Lyon, I think." share no word
    embedded = [r["body"] for r in stub.requests if r["path"] == "/v1/embeddings"]
    assert len(embedded) == 1 and embedded[0]["model"] == "emb" and len(embedded[0]["input"]) == 6  # 3 changed
    assert batch["drift"]["semantic"] == {"model": "emb", "changed": 3, "embedded": 3, "problem": None}
    assert batch["drift"]["min_cosine"] == 0.0
    assert {c["test_id"]: c["cosine"] for c in batch["answer_changes"]}["t_sky"] == sky
    result.stdout.fnmatch_lines(["*answers against the baseline: 5 compared*lowest cosine 0.00 by emb)"])


def test_an_embeddings_server_that_fails_leaves_the_cosines_out_and_says_so(pytester: pytest.Pytester,
                                                                            stub: OpenAIStub) -> None:
    session(pytester, stub, BEFORE).assert_outcomes(passed=5)
    stub.status = {"Lyon": 404}  # the embeddings request carries "Lyon, I think."
    result = session(pytester, stub, AFTER, "--llmbench-compare", "latest", "--llmbench-embedding-model", "emb")
    result.assert_outcomes(passed=4, failed=1)  # the run itself is kept whole
    batch = json.loads(batches(pytester)[-1].read_text())
    semantic = batch["drift"]["semantic"]
    assert semantic["embedded"] == 0 and "HTTP 404" in semantic["problem"]
    assert "cosine" not in rows_by_id(batch)["t_sky"]["answer_drift"]
    result.stdout.fnmatch_lines(["*answer drift: 3 of 3 changed answers have no cosine: HTTP 404*"])
