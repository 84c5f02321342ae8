"""Options and ini keys as a user meets them: ``pytest --help`` lists them all and does not crash."""

from __future__ import annotations

from typing import Any

import pytest
from openai_stub import OpenAIStub, write_suite
from pytest_httpserver import HTTPServer

from pytest_llmbench.options import OPTIONS


def test_help_lists_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0, result.stderr.str()
    text = result.stdout.str()
    for opt in OPTIONS:
        assert opt.flag in text and opt.dest in text
    assert "latency_p50:10%" in text


def _settings(**given: Any) -> Any:
    from pytest_llmbench.options import read_settings

    return read_settings(given.get, lambda dest: [] if dest in _LISTS else None, environ={})


_LISTS = {opt.dest for opt in OPTIONS if opt.kind == "list"}


@pytest.mark.parametrize(("given", "seconds"), [("10s", 10.0), ("500ms", 0.5), ("2m", 120.0), ("7", 7.0),
                                                 ("1.5 s", 1.5)])
def test_durations_take_units_wherever_seconds_are_asked_for(given: Any, seconds: Any) -> None:
    from pytest_llmbench.options import DURATION_METAVARS

    durations = [opt for opt in OPTIONS if opt.metavar in DURATION_METAVARS]
    assert {"timeout", "retry_delay", "monitor_interval", "connect_timeout", "duration"} <= {o.name for o in durations}
    settings = _settings(**{opt.dest: given for opt in durations})
    assert [getattr(settings, opt.name) for opt in durations] == [seconds] * len(durations)


def test_a_duration_in_an_unknown_unit_names_the_option_and_the_forms() -> None:
    from pytest_llmbench.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"--llmbench-timeout: expected a duration such as 10s, 500ms"):
        _settings(llmbench_timeout="10 parsecs")


def test_ini_lists_take_several_values_on_one_line(pytester: pytest.Pytester, httpserver: HTTPServer) -> None:
    url = OpenAIStub().install(httpserver)
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    pytester.makeini(f"[pytest]\nllmbench_endpoint = {url}\nllmbench_suite = {suite}\n"
                     "llmbench_slo = latency_p99=20s success_rate=99%\nllmbench_timeout = 30s\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gate passed: run SLO latency_p99 <= 20000 ms*",
                                 "gate passed: run SLO success_rate >= 99%*"])


def test_compare_fail_takes_the_slo_spelling_and_the_summary_key() -> None:
    from pytest_llmbench.metrics.baseline import parse_threshold

    assert parse_threshold("ttft_p99:10%").metric == parse_threshold("p99_ttft_ms:10%").metric == "p99_ttft_ms"
    assert parse_threshold("latency_p50=10%").metric == "p50_latency_ms"


def test_a_misspelt_option_gets_the_near_option_not_a_bare_unrecognized_arguments(pytester: pytest.Pytester) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])

    result = pytester.runpytest("--llmbench-concurency", "4", "--llmbench-suite", str(suite), "--no-llmbench-strem")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: llmbench: --llmbench-concurency: unknown option; did you mean "
                                 "--llmbench-concurrency?",
                                 "--no-llmbench-strem: unknown option; did you mean --no-llmbench-stream?"])
    assert "unrecognized arguments" not in result.stderr.str()


def test_an_option_a_conftest_adds_is_not_taken_for_a_slip(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        def pytest_addoption(parser):
            parser.addoption("--llmbench-concurrency-note", action="store_true")
    """)
    pytester.makepyfile("def test_x(request):\n    assert request.config.getoption('llmbench_concurrency_note')\n")

    pytester.runpytest("--llmbench-concurrency-note", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_two_suites_after_one_option_say_to_repeat_the_option(pytester: pytest.Pytester) -> None:
    first = write_suite(pytester.path / "a.json", [{"id": "a"}])
    second = write_suite(pytester.path / "b.json", [{"id": "b"}])

    result = pytester.runpytest("--llmbench-suite", "a.json", "b.json")

    assert result.ret == pytest.ExitCode.USAGE_ERROR and first.exists() and second.exists()
    result.stderr.fnmatch_lines(["ERROR: llmbench: --llmbench-suite takes one suite: b.json after --llmbench-suite "
                                 "a.json would be a test path*Repeat the option for each suite: --llmbench-suite "
                                 "a.json --llmbench-suite b.json"])


def test_client_messages_name_the_option_to_set() -> None:
    """The http layer names ClientConfig's settings; the plugin's user reads the flags."""
    from pytest_llmbench.options import name_options

    assert name_options("response exceeded 1 MiB (setting max_response_bytes)") == \
        "response exceeded 1 MiB (--llmbench-max-response-bytes)"
    assert name_options("(or setting api_key, setting headers)") == "(or --llmbench-api-key, --llmbench-header)"
    assert name_options("try setting endpoint http://127.0.0.1:8000/v1") == \
        "try --llmbench-endpoint http://127.0.0.1:8000/v1"
    assert name_options("a setting nobody_knows stays as it is") == "a setting nobody_knows stays as it is"
