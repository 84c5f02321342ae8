"""The HTML report without a browser: when it is written, what the batch carries for it, escaping, the
llmbench-report command and the pytest-html columns. What it looks like in Chromium: test_report_browser.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import jinja2
import pytest
from openai_stub import OpenAIStub, write_suite
from report_sessions import HOSTILE, REPORT_STUB, batch_file, load_batch, report_file, results, run_session

from pytest_llmbench.batch import Batch
from pytest_llmbench.metrics.samples import short_of
from pytest_llmbench.metrics.stats import format_value
from pytest_llmbench.session.report_html import environment
from pytest_llmbench.session.report_html.render import render_report, script_json

STUB = REPORT_STUB


def report_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_llmbench.session.report_html.cli", *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=120)


# -- written at the end of a session ---------------------------------------------------------------------


def test_a_session_writes_the_report_after_the_batch_and_prints_its_path(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    run_session(pytester, stub).assert_outcomes(passed=9, failed=2)
    report, batch = report_file(pytester), batch_file(pytester)
    assert report.stat().st_mtime_ns >= batch.stat().st_mtime_ns
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for section in ("runs", "distributions", "timeline", "groups", "failures", "slowest", "tests"):
        assert f'id="{section}"' in html


def test_the_report_path_is_printed_with_the_other_result_paths(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    result = run_session(pytester, stub)
    lines = [line for line in result.outlines if line.startswith("results: ")]
    assert f"results: {report_file(pytester)}" in lines
    assert f"results: {batch_file(pytester)}" in lines


def test_the_report_needs_no_network(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    run_session(pytester, stub)
    html = report_file(pytester).read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)  # nothing fetched, nothing linked in
    assert html.count("<script") == 3  # the data island, Chart.js once, the report's own script
    assert html.count("Chart.js v4") == 1


def test_html_option_moves_the_report_and_none_turns_it_off(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    run_session(pytester, stub, "--llmbench-html", "out/mine.html")
    assert (pytester.path / "out" / "mine.html").is_file()
    assert not report_file(pytester).exists()
    for old in results(pytester).rglob("*"):
        if old.is_file():
            old.unlink()
    result = run_session(pytester, stub, "--llmbench-html", "none")
    assert batch_file(pytester).is_file()
    assert not report_file(pytester).exists()
    assert not any("report.html" in line for line in result.outlines)


def test_a_single_result_writes_no_report(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = pytester.path / "one.json"
    suite.write_text(json.dumps({"tests": [{"id": "a", "name": "A", "category": "c", "prompt": "France?"}]}))
    run_session(pytester, stub, suite=suite).assert_outcomes(passed=1)
    assert not list(results(pytester).rglob("*.html"))


def test_a_partial_session_still_writes_its_report(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    run_session(pytester, stub, "-x").assert_outcomes(passed=9, failed=1)
    assert load_batch(pytester)["partial"] is True
    assert "PARTIAL" in report_file(pytester).read_text(encoding="utf-8")


def test_a_report_that_cannot_be_written_is_a_warning_and_the_batch_is_kept(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    (pytester.path / "taken.html").mkdir()  # a folder where the report should go
    result = run_session(pytester, stub, "--llmbench-html", "taken.html")
    result.assert_outcomes(passed=9, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # from the tests, not from the report
    assert "could not write the HTML report" in result.stdout.str()
    assert len(load_batch(pytester)["tests"]) == 11


# -- what the batch carries for the report ---------------------------------------------------------------


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["in-process", "xdist"])
def test_batch_rows_carry_send_time_itl_completion_file_and_failure_excerpt(pytester: pytest.Pytester, stub: OpenAIStub, workers: Any) -> None:
    run_session(pytester, stub, *workers)
    batch = load_batch(pytester)
    rows = {row["test_id"]: row for row in batch["tests"]}
    starts = sorted(row["start_s"] for row in rows.values())
    assert starts[0] == 0.0 and all(later >= 0 for later in starts)
    assert rows["q00"]["itl_mean"] > 0 and rows["q00"]["ttft"] > 0 and rows["q00"]["tpot"] > 0
    folder = batch_file(pytester).parent
    assert all((folder / row["completion_file"]).is_file() for row in rows.values())
    assert "failure" not in rows["q00"]
    assert rows["wrong"]["failure"]["checks"][0].startswith("contains: ")
    assert rows["wrong"]["failure"]["answer_excerpt"] == "Paris is the capital of France."
    assert rows["broken"]["failure"]["answer_excerpt"] == ""
    assert "500" in rows["broken"]["error_message"]
    # each failure names its request's trace id, by which the server's spans for it can be found
    html = report_file(pytester).read_text(encoding="utf-8")
    assert re.fullmatch(r"[0-9a-f]{32}", rows["wrong"]["trace_id"])
    assert f"trace id <code>{rows['wrong']['trace_id']}</code>" in html
    quantiles = batch["distributions"]["itl_ms"]
    assert len(quantiles) == 201 and quantiles == sorted(quantiles)


# -- hostile text ----------------------------------------------------------------------------------------


def test_json_in_a_script_element_cannot_end_it() -> None:
    data = {"answer": HOSTILE, "name": "a\u2029b & <c>"}
    text = script_json(data)
    assert not re.search(r"[<>&\u2028\u2029]", text)
    assert json.loads(text) == data


def test_hostile_answers_and_names_appear_only_escaped(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    run_session(pytester, stub, hostile=True)
    html = report_file(pytester).read_text(encoding="utf-8")
    assert html.count("<script") == 3 and html.count("</script>") == 3
    assert "<img" not in html and "onerror=\"window" not in html
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned = 1" in html  # shown, as text, in the failure section


# -- llmbench-report ------------------------------------------------------------------------------------


def test_report_command_compares_two_batches(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    run_session(pytester, stub)
    first = batch_file(pytester).rename(pytester.path / "before.json")
    run_session(pytester, stub)
    second = batch_file(pytester)
    out = pytester.path / "compare.html"
    done = report_cli(first, second, "-o", out, "--label", "before", "--label", "after")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"llmbench report: {out}"
    html = out.read_text(encoding="utf-8")
    assert 'id="comparison"' in html
    match = re.search(r'<table class="compare">.*?</thead>', html, re.S)
    assert match is not None
    header = match.group(0)
    assert "before" in header and "after" in header
    assert re.search(r'class="delta (better|worse|)">[+-]\d', html)


def _reference_table(html: str, label: str) -> dict[str, list[str]]:
    match = re.search(rf"<h3>Against {re.escape(label)}, this report's reference</h3>(.*?)</table>", html, re.S)
    assert match is not None
    table = match[1]
    return {row[0]: list(row[1:]) for row in
            re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td[^>]*>([^<]*)</td>"
                       r"<td[^>]*>([^<]*)</td></tr>", table)}  # the last cell: the change's significance


def test_report_takes_run_folders_and_latest_and_compares_the_shared_tests_as_compare_does(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    """Issue 27, point 8: folders as --llmbench-compare takes them, its shared-test figures (mean ITL too), and a
    later run's card against the report's reference, not the baseline it had at run time."""
    output = results(pytester)
    three = [{"id": name, "prompt": f"France, {name}?"} for name in ("a", "b", "c")]
    first_suite = write_suite(pytester.path / "first.json", three)
    other_suite = write_suite(pytester.path / "other.json", [*three[:2], {"id": "d", "prompt": "France, d?"}])
    run_session(pytester, stub, suite=first_suite)
    reference = (output / "latest").resolve()
    run_session(pytester, stub, suite=first_suite)
    middle = (output / "latest").resolve()
    run_session(pytester, stub, "--llmbench-compare", str(reference), suite=other_suite)  # a, b shared; c, d not
    batch = json.loads(next((output / "latest").glob("batch_results_*.json")).read_text())
    own = {d["name"]: d for d in batch["gates"]["comparison"]["deltas"]}
    shared = [row for row in batch["tests"] if row["test_id"] in ("a", "b")]
    itl = sum(row["itl_mean"] * row["itl_count"] for row in shared) / sum(row["itl_count"] for row in shared)
    assert own["mean_itl_ms"]["current"] == pytest.approx(itl * 1000) and own["mean_itl_ms"]["baseline"] is not None

    done = report_cli(reference, output / "latest", "-o", pytester.path / "ab.html")

    assert done.returncode == 0, done.stderr
    html = (pytester.path / "ab.html").read_text(encoding="utf-8")
    compared_match = re.search(r'<table class="compare">.*?</table>', html, re.S)
    assert compared_match is not None
    compared = compared_match[0]
    assert re.search(r"<th>tests</th>\s*<td>2</td><td>2 ", compared)  # the two shared tests, not 3 and 3
    assert "the figures are those of the 2 tests (id and model) every run has" in html
    table = _reference_table(html, reference.name)
    for name, (before, now, _, _) in table.items():  # the same figures --llmbench-compare gave that run
        assert (before, now) == tuple("-" if short_of(name, own[name].get(f"{side}_count"))  # a p99 of 2 samples
                                      else format_value(name, own[name][side]) for side in ("baseline", "current"))
    assert table["mean_itl_ms"][1] != "n/a"

    again = report_cli(middle, output / "latest", "-o", pytester.path / "middle.html")
    assert again.returncode == 0, again.stderr
    html = (pytester.path / "middle.html").read_text(encoding="utf-8")
    assert _reference_table(html, middle.name) and "Against the baseline" not in html
    assert f"At run time it was compared with <code>{next(reference.glob('batch_results_*.json'))}</code>" in html


def test_report_command_says_when_a_folder_holds_no_run(tmp_path: Path) -> None:
    done = report_cli(tmp_path, "-o", tmp_path / "r.html")
    assert done.returncode == 2 and f"{tmp_path}: the folder holds no batch_results_*.json" in done.stderr
    done = report_cli(tmp_path / "latest", "-o", tmp_path / "r.html")
    assert done.returncode == 2 and f"{tmp_path / 'latest'}: no run with a batch file in {tmp_path}" in done.stderr


def test_report_command_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"tests": [')
    done = report_cli(bad, "-o", tmp_path / "r.html")
    assert done.returncode == 2
    assert f"{bad}: not JSON" in done.stderr and "line 1" in done.stderr
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    done = report_cli(other, "-o", tmp_path / "r.html")
    assert done.returncode == 2 and "not an llmbench batch file" in done.stderr
    assert not (tmp_path / "r.html").exists()


def test_report_command_is_installed_as_a_console_script() -> None:
    from importlib.metadata import entry_points

    found: list[Any] = [e for e in entry_points(group="console_scripts") if e.name == "llmbench-report"]
    (script,) = found or [None]
    if script is None:
        pytest.skip("the installed metadata predates llmbench-report: pip install -e . again")
    assert script.value == "pytest_llmbench.session.report_html.cli:main"


# -- pytest-html ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["in-process", "xdist"])
def test_pytest_html_rows_get_llmbench_columns_and_an_escaped_prompt_and_answer(pytester: pytest.Pytester, stub: OpenAIStub, workers: Any) -> None:
    pytest.importorskip("pytest_html")
    run_session(pytester, stub, "--html", "ph.html", *workers, hostile=True)
    html = (pytester.path / "ph.html").read_text(encoding="utf-8")
    for column in ("Latency s", "TTFT s", "Tokens/s"):
        assert column in html
    assert re.search(r"col-llmbench_latency\\&#34;&gt;0\.\d{3}", html)
    assert "=== PROMPT ===\\nFrance, 0?" in html
    assert "window.__pwned" in html and "<script>window" not in html and "&lt;script&gt;window" not in html


def test_gate_verdicts_appear_in_the_run_header(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    result = run_session(pytester, stub, "--llmbench-slo", "latency_p99=1ms", "--llmbench-slo", "latency_p50=60s")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    html = report_file(pytester).read_text(encoding="utf-8")
    match = re.search(r'<div class="gates">.*?</div>', html, re.S)
    assert match is not None
    gates = match.group(0)
    assert '<span class="badge bad">failed</span>' in gates
    assert re.search(r'<li class="worse">SLO missed: [^<]*latency[^<]*1 ms', gates)


def test_a_key_the_model_repeats_is_masked_in_the_report(pytester: pytest.Pytester, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-report-secret-4f1c9a"
    stub.answers["France"] = f"my key is {secret}"  # every answer repeats the key; checks fail on purpose
    monkeypatch.setenv("LLMBENCH_API_KEY", secret)
    run_session(pytester, stub)
    html = report_file(pytester).read_text(encoding="utf-8")
    assert "my key is ***" in html  # the failure's answer excerpt
    assert secret not in html


@pytest.fixture
def new_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The report's Jinja environment made afresh, its compiled-template folder under tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where Jinja makes its per-user folder
    environment.report_environment.cache_clear()
    yield environment.report_environment
    environment.report_environment.cache_clear()


def test_the_compiled_template_is_kept_for_the_next_report(new_environment: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = new_environment().get_template("report.html.j2")
    kept = list(tmp_path.glob("_jinja2-cache-*/__llmbench_*.cache"))
    environment.report_environment.cache_clear()
    monkeypatch.setattr(jinja2.Environment, "compile", lambda *args, **kwargs: pytest.fail("compiled again"))

    again = new_environment().get_template("report.html.j2")

    assert len(kept) == 1 and again.root_render_func.__code__.co_code == first.root_render_func.__code__.co_code


def test_a_compiled_template_that_cannot_be_kept_is_compiled_each_time(new_environment: Any, tmp_path: Path) -> None:
    jinja = new_environment()
    blocker = tmp_path / "a file"
    blocker.write_text("")
    jinja.bytecode_cache.directory = str(blocker)  # reading and writing the kept code both fail

    assert render_report([(cast(Batch, {"tests": []}), "run", None)], tmp_path / "report.html").startswith("<!DOCTYPE html>")
    assert blocker.read_text() == "" and not list(tmp_path.glob("_jinja2-cache-*/*"))  # nothing kept


def test_no_compiled_template_is_kept_without_a_safe_folder(new_environment: Any, tmp_path: Path) -> None:
    (tmp_path / f"_jinja2-cache-{os.getuid()}").write_text("a file where Jinja's folder should be")

    assert new_environment().bytecode_cache is None
    assert render_report([(cast(Batch, {"tests": []}), "run", None)], tmp_path / "report.html").startswith("<!DOCTYPE html>")
