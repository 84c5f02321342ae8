"""Collection and selection of JSON suites, through real pytest sessions (pytester)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from openai_stub import write_suite
from pytest_httpserver import HTTPServer

SUITE: list[dict[str, Any]] = [
    {"id": "complex_test_01", "name": "Complex Synthesis Test", "category": "complex_synthesis",
     "prompt": "Analyze the following"},
    {"id": "linux_monitor_01", "name": "System Monitoring", "category": "monitoring",
     "messages": [{"role": "user", "content": "Write a bash script to monitor CPU"}]},
    {"id": "math_01", "name": "Arithmetic", "category": "Math_Reasoning", "prompt": "2+2?"},
]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Any:
    return write_suite(pytester.path / "suite.json", SUITE)


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line.strip() for line in result.outlines if "::" in line and not line.startswith(("=", " "))]


def test_each_json_test_becomes_an_item_named_file_and_id(pytester: pytest.Pytester, suite: Any) -> None:
    result = pytester.runpytest("--llmbench-suite", str(suite), "--collect-only", "-q")
    assert collected_ids(result) == ["suite.json::complex_test_01", "suite.json::linux_monitor_01",
                                     "suite.json::math_01"]


def test_several_models_give_one_item_per_test_and_model(pytester: pytest.Pytester, suite: Any) -> None:
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-model", "a",
                                "--llmbench-model", "b", "--collect-only", "-q", "-k", "math")
    assert collected_ids(result) == ["suite.json::math_01[a]", "suite.json::math_01[b]"]


def test_keyword_matches_category_and_name(pytester: pytest.Pytester, suite: Any) -> None:
    by_category = pytester.runpytest("--llmbench-suite", str(suite), "--co", "-q", "-k", "monitoring")
    assert collected_ids(by_category) == ["suite.json::linux_monitor_01"]
    by_name = pytester.runpytest("--llmbench-suite", str(suite), "--co", "-q", "-k", "Arithmetic")
    assert collected_ids(by_name) == ["suite.json::math_01"]


def test_marker_selects_llmbench_items_and_strict_markers_stays_clean(pytester: pytest.Pytester, suite: Any) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest(str(suite), "test_plain.py", "--strict-markers", "-m", "not llmbench",
                                "--co", "-q", "--llmbench-suite", str(suite))
    assert collected_ids(result) == ["test_plain.py::test_plain"]
    assert result.ret == 0


@pytest.mark.parametrize(("pattern", "expected"), [
    ("monitor", ["suite.json::linux_monitor_01"]),
    ("math_*", ["suite.json::math_01"]),
    ("MATH_REASONING", ["suite.json::math_01"]),
    ("*synth*", ["suite.json::complex_test_01"]),
])
def test_category_option_keeps_matching_tests_and_deselects_the_rest(pytester: pytest.Pytester, suite: Any, pattern: Any, expected: Any) -> None:
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-category", pattern, "--co", "-q")
    assert collected_ids(result) == expected
    result.stdout.fnmatch_lines([f"*{3 - len(expected)} deselected*"])


def test_broken_suite_is_one_error_naming_file_and_test_while_the_rest_runs(pytester: pytest.Pytester, suite: Any) -> None:
    broken = pytester.path / "broken.json"
    broken.write_text(json.dumps({"tests": [{"id": "x1", "name": "n", "category": "c"}]}))
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("--llmbench-suite", str(broken), "test_plain.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*broken.json: tests[[]0[]] (id 'x1'): *prompt*messages*"])
    assert "Traceback" not in result.stdout.str()


def test_malformed_json_names_line_and_column(pytester: pytest.Pytester) -> None:
    bad = pytester.path / "bad.json"
    bad.write_text('{"tests": [\n  {"id": "a",,}\n]}')
    result = pytester.runpytest("--llmbench-suite", str(bad), "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*bad.json*line 2*column*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_missing_suite_file_is_an_error_and_other_suites_still_run(pytester: pytest.Pytester, suite: Any, httpserver: HTTPServer) -> None:
    from openai_stub import OpenAIStub

    url = OpenAIStub().install(httpserver)
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-suite", "nowhere.json",
                                "--llmbench-endpoint", url, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*nowhere.json*"])


def test_llmbench_json_files_are_found_by_normal_discovery(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path / "checks.llmbench.json", [{"id": "found"}])
    (pytester.path / "other.json").write_text("{not a suite")
    result = pytester.runpytest("--co", "-q")
    assert collected_ids(result) == ["checks.llmbench.json::found"]


def test_suite_option_alone_runs_only_the_suite_and_beside_paths_runs_both(pytester: pytest.Pytester, suite: Any) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    alone = pytester.runpytest("--llmbench-suite", str(suite), "--co", "-q")
    assert "test_plain.py::test_plain" not in collected_ids(alone)
    both = pytester.runpytest("--llmbench-suite", str(suite), "test_plain.py", "--co", "-q")
    assert "test_plain.py::test_plain" in collected_ids(both)
    assert "suite.json::math_01" in collected_ids(both)


def test_suite_directory_collects_every_json_file_in_it(pytester: pytest.Pytester) -> None:
    folder = pytester.mkdir("suites")
    write_suite(folder / "a.json", [{"id": "a1"}])
    write_suite(folder / "b.json", [{"id": "b1"}])
    result = pytester.runpytest("--llmbench-suite", str(folder), "--co", "-q")
    assert collected_ids(result) == ["suites/a.json::a1", "suites/b.json::b1"]


def test_bad_option_value_is_a_usage_error(pytester: pytest.Pytester, suite: Any) -> None:
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-timeout", "soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llmbench-timeout*soon*"])


@pytest.mark.parametrize("mode", ["--setup-plan", "--setup-only", "--fixtures-per-test"])
def test_setup_and_fixture_listings_work_without_a_server(pytester: pytest.Pytester, suite: Any, mode: Any) -> None:
    result = pytester.runpytest("--llmbench-suite", str(suite), mode, "--llmbench-endpoint", "http://127.0.0.1:9/v1")
    assert result.ret == pytest.ExitCode.OK
    assert "Cannot reach" not in result.stdout.str() + result.stderr.str()


def test_a_missing_suite_alone_is_one_error_and_runs_nothing_else(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("--llmbench-suite", "nowhere.json", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*nowhere.json: no such file", "FAILED nowhere.json::suite_error - *"])


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--llmbench-retries", "-1", "*--llmbench-retries: must be a number >= 0, got -1*"),
    ("--llmbench-timeout", "0", "*--llmbench-timeout: must be a number > 0, got 0*"),
    ("--llmbench-timeout", "nan", "*--llmbench-timeout: must be a number > 0, got nan*"),
    ("--llmbench-monitor-interval", "-0.5", "*--llmbench-monitor-interval: must be a number > 0*"),
    ("--llmbench-alert-error-rate", "1.5", "*--llmbench-alert-error-rate: must be a number >= 0 and <= 1, got 1.5*"),
])
def test_out_of_range_numbers_are_usage_errors(pytester: pytest.Pytester, suite: Any, option: Any, value: Any, message: Any) -> None:
    result = pytester.runpytest("--llmbench-suite", str(suite), f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_paths_are_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    write_suite(pytester.mkdir("suites") / "s.json", [{"id": "from_ini"}])
    pytester.makeini("[pytest]\nllmbench_suite = suites/s.json\n")
    sub = pytester.mkdir("sub")
    run = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"], cwd=sub,
                         check=False, capture_output=True, text=True, timeout=60)
    assert "suites/s.json::from_ini" in run.stdout, run.stdout + run.stderr


def test_a_category_that_matches_nothing_lists_the_categories_that_exist(pytester: pytest.Pytester, suite: Any) -> None:
    result = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-category", "mth")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*llmbench: --llmbench-category mth matches no test; the categories are: "
                                 "Math_Reasoning, complex_synthesis, monitoring*"])
    kept = pytester.runpytest("--llmbench-suite", str(suite), "--llmbench-category", "math", "--co", "-q")
    kept.stdout.fnmatch_lines(["*math_01*"])
