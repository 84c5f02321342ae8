"""Loading and validating suite files (pytest_llmbench.collect.suite), on real files in tmp_path."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from suite_files import (
    chat_test,
    error_of,
    problems_of,
    prompt_test,
    raw_suite,
    write,
)

from pytest_llmbench.checks.expectations import expectation_problems
from pytest_llmbench.collect.suite import load_suite
from pytest_llmbench.exceptions import SuiteError

EXAMPLE_SUITES = Path(__file__).resolve().parent.parent / "example_suites"


# --- loading -------------------------------------------------------------------------------------


def test_prompt_test_loads_as_completions(tmp_path: Path) -> None:
    path = raw_suite(tmp_path, prompt_test(reasoning_type="math"), version="1.0.0", description="d")
    suite = load_suite(path)
    assert (suite.path, suite.test_suite_id, suite.version, suite.description) == (path, "s", "1.0.0", "d")
    (case,) = suite.tests
    assert (case.id, case.name, case.category, case.prompt) == ("t1", "Test one", "general", "Hello")
    assert case.messages is None and case.api_type == "completions"
    assert (case.reasoning_type, case.index, case.suite_id) == ("math", 0, "s")
    assert case.parameters == {} and case.expected is None and case.slo is None and case.stream is None


def test_messages_test_loads_as_chat_with_content_parts(tmp_path: Path) -> None:
    parts = [{"type": "text", "text": "Describe"}, {"type": "text", "text": "this"}]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": parts}]
    suite = load_suite(raw_suite(tmp_path, prompt_test(), chat_test(messages=messages)))
    case = suite.tests[1]
    assert case.api_type == "chat" and case.prompt is None and case.index == 1
    assert case.messages == tuple(messages)


def test_optional_test_fields_are_kept(tmp_path: Path) -> None:
    test = prompt_test(stream=True, description="why", metadata={"owner": "qa", "tags": ["x"]})
    (case,) = load_suite(raw_suite(tmp_path, test)).tests
    assert case.stream is True and case.description == "why"
    assert case.metadata == {"owner": "qa", "tags": ["x"]}


def test_test_parameters_win_over_suite_defaults(tmp_path: Path) -> None:
    defaults = {"parameters": {"temperature": 0.2, "max_tokens": 64}}
    test = prompt_test(parameters={"temperature": 0.4, "top_p": 0.95, "stop": ["\n\n\n"]})
    (case,) = load_suite(raw_suite(tmp_path, test, defaults=defaults)).tests
    assert case.parameters == {"temperature": 0.4, "max_tokens": 64, "top_p": 0.95, "stop": ["\n\n\n"]}


def test_defaults_expected_and_slo_merge_under_the_tests_own(tmp_path: Path) -> None:
    defaults = {"expected": {"min_length": 1, "not_contains": "error"}, "slo": {"max_latency_s": 30}}
    tests = [prompt_test(expected={"min_length": 5}, slo={"max_ttft_s": 2}), chat_test()]
    first, second = load_suite(raw_suite(tmp_path, *tests, defaults=defaults)).tests
    assert first.expected == {"min_length": 5, "not_contains": "error"}
    assert first.slo == {"max_latency_s": 30, "max_ttft_s": 2}
    assert second.expected == {"min_length": 1, "not_contains": "error"}
    assert second.slo == {"max_latency_s": 30}


def test_unknown_parameters_pass_through_untouched(tmp_path: Path) -> None:
    extra: dict[str, Any] = {"ignore_eos": True, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1}
    extra["logit_bias"] = {"50256": -100}
    (case,) = load_suite(raw_suite(tmp_path, prompt_test(parameters={"max_tokens": 8, **extra}))).tests
    assert case.parameters == {"max_tokens": 8, **extra}


def test_edge_values_of_known_parameters_are_accepted(tmp_path: Path) -> None:
    params = {"temperature": 0, "top_p": 1, "stop": "END", "seed": -7, "n": 1, "presence_penalty": -0.5}
    (case,) = load_suite(raw_suite(tmp_path, prompt_test(parameters=params))).tests
    assert case.parameters == params


def test_tests_do_not_share_mutable_default_dicts(tmp_path: Path) -> None:
    defaults = {"parameters": {"stop": ["###"]}, "expected": {"contains": ["a"]}}
    first, second = load_suite(raw_suite(tmp_path, prompt_test(), chat_test(), defaults=defaults)).tests
    first.parameters["stop"].append("changed")
    assert first.expected is not None
    first.expected["contains"].append("changed")
    assert second.parameters == {"stop": ["###"]} and second.expected == {"contains": ["a"]}


def test_test_case_is_frozen(tmp_path: Path) -> None:
    (case,) = load_suite(raw_suite(tmp_path, prompt_test())).tests
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.prompt = "other"  # type: ignore[misc]


def test_loading_twice_gives_the_same_tests_in_the_same_order(tmp_path: Path) -> None:
    tests = [prompt_test(id=f"t{i}", parameters={"seed": i}) for i in range(30)]
    path = raw_suite(tmp_path, *tests)
    assert load_suite(path) == load_suite(str(path))
    assert [case.id for case in load_suite(path).tests] == [f"t{i}" for i in range(30)]


@pytest.mark.parametrize(
    ("name", "suite_id"),
    [("smoke.llmbench.json", "smoke"), ("plain.json", "plain"), (".json", ".json")],
)
def test_suite_id_defaults_to_the_file_name(tmp_path: Path, name: Any, suite_id: Any) -> None:
    path = write(tmp_path, {"tests": [prompt_test()]}, name=name)
    suite = load_suite(path)
    assert suite.test_suite_id == suite_id and suite.tests[0].suite_id == suite_id


# --- suite level errors --------------------------------------------------------------------------


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, "[1, 2]")
    assert str(error_of(path)) == f'{path}: top level must be a JSON object with a "tests" list, got array'


@pytest.mark.parametrize(("tests", "shown"), [(None, "nothing"), ([], "array"), ({"a": 1}, "object")])
def test_tests_must_be_a_non_empty_list(tmp_path: Path, tests: Any, shown: Any) -> None:
    suite = {"test_suite_id": "s"} if tests is None else {"tests": tests}
    message = str(error_of(write(tmp_path, suite)))
    assert f"tests must be a non-empty list of test objects, got {shown}" in message


def test_top_level_fields_are_type_checked(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, prompt_test(), test_suite_id=7, version=1.0, description=["d"])
    assert problems == [
        "test_suite_id must be a non-empty string, got integer 7",
        "version must be a string, got number 1.0",
        "description must be a string, got array",
    ]


def test_unknown_top_level_field_gets_a_suggestion(tmp_path: Path) -> None:
    assert problems_of(tmp_path, prompt_test(), defualts={}) == [
        "unknown field 'defualts' (did you mean 'defaults'?)"
    ]


def test_defaults_are_validated_with_their_own_prefix(tmp_path: Path) -> None:
    defaults = {"parameters": {"stream": True, "top_p": 2}, "expected": {"regx": "a"}}
    defaults.update(slo={"max_ttft_s": 0}, x=1)
    problems = problems_of(tmp_path, prompt_test(), defaults=defaults)
    assert problems[0].startswith("unknown field 'defaults.x' (allowed: parameters, expected, slo)")
    assert "defaults.parameters.stream is not allowed" in problems[1]
    assert problems[2:] == [
        "defaults.parameters.top_p must be a number in (0, 1], got integer 2",
        "unknown field 'defaults.expected.regx' (did you mean 'regex'?)",
        "defaults.slo.max_ttft_s must be a positive number, got integer 0",
    ]


def test_defaults_must_be_an_object(tmp_path: Path) -> None:
    assert problems_of(tmp_path, prompt_test(), defaults=[1]) == ["defaults must be an object, got array"]


# --- test level errors ---------------------------------------------------------------------------


def test_error_names_file_index_and_id(tmp_path: Path) -> None:
    tests = [prompt_test(id=f"t{i}") for i in range(3)] + [{"id": "linux_01", "category": "c", "prompt": "p"}]
    path = raw_suite(tmp_path, *tests)
    assert str(error_of(path)) == f"{path}: tests[3] (id 'linux_01'): missing required field 'name'"


def test_every_problem_of_a_file_is_reported_one_per_line(tmp_path: Path) -> None:
    tests = [prompt_test(id="a", name=""), prompt_test(id="b", promt="x"), "oops", {"prompt": "p"}]
    path = raw_suite(tmp_path, *tests)
    lines = str(error_of(path)).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert [line[len(str(path)) + 2 :] for line in lines] == [
        "tests[0] (id 'a'): name must be a non-empty string, got string \"\"",
        "tests[1] (id 'b'): unknown field 'promt' (did you mean 'prompt'?)",
        "tests[2]: must be an object, got string \"oops\"",
        "tests[3]: missing required field 'id'",
        "tests[3]: missing required field 'name'",
        "tests[3]: missing required field 'category'",
    ]


def test_suite_error_survives_pickling(tmp_path: Path) -> None:
    error = error_of(raw_suite(tmp_path, prompt_test(name="")))
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.path, copy.problems) == (str(error), error.path, error.problems)


def test_unknown_test_field_without_close_match_lists_the_allowed_ones(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, prompt_test(zzzz=1))
    assert problem.startswith("tests[0] (id 't1'): unknown field 'zzzz' (allowed: id, name, category, prompt")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("id", "", "id must be a non-empty string, got string \"\""),
        ("name", None, "name must be a non-empty string, got null"),
        ("category", ["a"], "category must be a non-empty string, got array"),
        ("prompt", 5, "prompt must be a string, got integer 5"),
        ("reasoning_type", False, "reasoning_type must be a string, got boolean false"),
        ("stream", "yes", "stream must be true or false, got string \"yes\""),
        ("description", {}, "description must be a string, got object"),
        ("metadata", "m", "metadata must be an object, got string \"m\""),
        ("parameters", [], "parameters must be an object, got array"),
        ("expected", "x", "expected must be an object, got string \"x\""),
        ("slo", 3, "slo must be an object, got integer 3"),
    ],
)
def test_test_field_types_are_checked(tmp_path: Path, field: Any, value: Any, expected: Any) -> None:
    problems = problems_of(tmp_path, {**prompt_test(), field: value})
    assert problems[-1].endswith(expected)


def test_duplicate_ids_name_both_indices(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, prompt_test(id="dup"), chat_test(id="other"), chat_test(id="dup"))
    assert problems == ["tests[2] (id 'dup'): duplicate id, also used by tests[0]"]


@pytest.mark.parametrize(
    ("test", "problem"),
    [
        (chat_test(prompt="p"), "has both 'prompt' and 'messages': give exactly one"),
        ({"id": "c1", "name": "n", "category": "c"}, "missing 'prompt' or 'messages': give exactly one"),
    ],
)
def test_exactly_one_of_prompt_and_messages_is_required(tmp_path: Path, test: Any, problem: Any) -> None:
    assert problems_of(tmp_path, test)[0].startswith(f"tests[0] (id 'c1'): {problem}")


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], "messages must be a non-empty list of objects, got array"),
        ("hi", "messages must be a non-empty list of objects, got string \"hi\""),
        ([{"role": "user", "content": "a"}, 3], "messages[1] must be an object, got integer 3"),
        ([{"content": "a"}], "messages[0]: missing required field 'role'"),
        ([{"role": "user"}], "messages[0]: missing required field 'content'"),
        ([{"role": None, "content": "a"}], "messages[0].role must be a string, got null"),
        ([{"role": "user", "content": 1}], "messages[0].content must be a string or a list of content-part"),
        ([{"role": "user", "content": ["a"]}], "messages[0].content must be a string or a list of"),
    ],
)
def test_messages_are_validated(tmp_path: Path, messages: Any, expected: Any) -> None:
    (problem,) = problems_of(tmp_path, chat_test(messages=messages))
    assert problem.startswith("tests[0] (id 'c1'): " + expected)


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("max_tokens", 0, "a positive integer"),
        ("max_tokens", 1.5, "a positive integer"),
        ("max_tokens", True, "a positive integer"),
        ("temperature", -0.1, "a number >= 0"),
        ("temperature", True, "a number >= 0"),
        ("temperature", "0.2", "a number >= 0"),
        ("top_p", 0, "a number in (0, 1]"),
        ("top_p", 1.01, "a number in (0, 1]"),
        ("stop", 5, "a string or a list of strings"),
        ("stop", ["a", 1], "a string or a list of strings"),
        ("seed", 1.5, "an integer"),
        ("n", 0, "a positive integer"),
        ("presence_penalty", "x", "a number"),
        ("frequency_penalty", None, "a number"),
    ],
)
def test_known_parameters_are_type_checked(tmp_path: Path, key: Any, value: Any, rule: Any) -> None:
    (problem,) = problems_of(tmp_path, prompt_test(parameters={key: value}))
    assert problem.startswith(f"tests[0] (id 't1'): parameters.{key} must be {rule}, got ")


def test_stream_inside_parameters_points_to_the_stream_field(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, prompt_test(parameters={"stream": True}))
    prefix = "tests[0] (id 't1'): parameters.stream is not allowed: "
    assert problem == prefix + """set the test's "stream" field instead"""


def test_all_expected_keys_are_accepted(tmp_path: Path) -> None:
    expected = {
        "contains": "a", "icontains": ["b"], "not_contains": ["c"], "contains_any": ["d", "e"],
        "regex": "^x", "regex_flags": "i", "equals": "x", "starts_with": "x", "is_json": True,
        "json_schema": {"type": "object"}, "min_length": 1, "max_length": 100, "min_tokens": 1,
        "max_tokens": 50, "answer": 42, "answer_tolerance": 0.5, "key_concepts": ["k"],
        "rubric": "Is it polite?", "rubric_min_score": 7.5,
    }  # fmt: skip
    (case,) = load_suite(raw_suite(tmp_path, prompt_test(expected=expected))).tests
    assert case.expected == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [("contains", 3), ("not_contains", ["a", None]), ("is_json", "yes"), ("json_schema", "object"),
     ("min_length", "5"), ("answer", True), ("rubric_min_score", 11), ("regex", "(")],
)  # fmt: skip
def test_expected_values_are_checked_with_evaluates_rules(tmp_path: Path, key: Any, value: Any) -> None:
    (problem,) = problems_of(tmp_path, prompt_test(expected={key: value}))
    assert problem.startswith(f"tests[0] (id 't1'): expected.{key}: ")


def test_broken_regex_in_defaults_is_reported_at_load_time(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, prompt_test(), defaults={"expected": {"regex": "(unclosed"}})
    assert problem.startswith("defaults.expected.regex: ") and "does not compile" in problem


def test_unknown_expected_key_gets_a_suggestion(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, prompt_test(expected={"contians": "x"}))
    assert problem == "tests[0] (id 't1'): unknown field 'expected.contians' (did you mean 'contains'?)"


def test_slo_values_must_be_positive_numbers_and_keys_known(tmp_path: Path) -> None:
    slo = {"max_latency_s": 0, "max_tpot_ms": "5", "min_tokens_per_second": 10, "max_ttft": 1}
    problems = problems_of(tmp_path, prompt_test(slo=slo))
    assert problems == [
        "tests[0] (id 't1'): unknown field 'slo.max_ttft' (did you mean 'max_ttft_s'?)",
        "tests[0] (id 't1'): slo.max_latency_s must be a positive number, got integer 0",
        "tests[0] (id 't1'): slo.max_tpot_ms must be a positive number, got string \"5\"",
    ]


def test_long_values_are_shortened_in_messages(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, prompt_test(stream="y" * 500))
    assert len(problem) < 150 and problem.endswith("...")


# --- example suites ------------------------------------------------------------------------------


def example_suites() -> list[Path]:
    return sorted(EXAMPLE_SUITES.glob("*.json"))


@pytest.mark.parametrize("path", example_suites(), ids=lambda path: path.name)
def test_example_suite_loads_cleanly(path: Any) -> None:
    suite = load_suite(path)
    assert suite.tests
    for case in suite.tests:
        expected = case.expected or {}
        assert expectation_problems(expected) == [], case.id
        if "regex" in expected:
            re.compile(expected["regex"])
        if "json_schema" in expected:
            jsonschema.Draft202012Validator.check_schema(expected["json_schema"])


@pytest.mark.parametrize(
    ("name", "api_type"), [("base_model.json", "completions"), ("instruct.json", "chat")]
)
def test_example_suites_cover_both_api_types(name: Any, api_type: Any) -> None:
    tests = load_suite(EXAMPLE_SUITES / name).tests
    assert 5 <= len(tests) <= 8 and {case.api_type for case in tests} == {api_type}



def test_defaults_and_a_tests_own_expectations_that_clash_are_reported_at_load(tmp_path: Path) -> None:
    path = tmp_path / "clash.json"
    path.write_text(json.dumps({"defaults": {"expected": {"min_length": 10}}, "tests": [
        {"id": "short", "name": "n", "category": "c", "prompt": "p", "expected": {"max_length": 5}}]}))
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert "tests[0] (id 'short'): expected.max_length (with the suite's defaults)" in str(info.value)


def test_near_misses_of_known_sampling_parameters_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, prompt_test(parameters={"max_token": 10, "temprature": 0.2, "top_k": 5,
                                                             "my_server_flag": True}))
    assert problems == [
        "tests[0] (id 't1'): unknown parameter 'parameters.max_token' (did you mean 'max_tokens'? other names are "
        "sent as they are)",
        "tests[0] (id 't1'): unknown parameter 'parameters.temprature' (did you mean 'temperature'? other names "
        "are sent as they are)"]  # top_k (vLLM) and a name of the server's own pass through


def test_a_near_miss_in_the_defaults_is_named_there_too(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, prompt_test(), defaults={"parameters": {"frequency_penalti": 0.5}})
    assert problems == ["unknown parameter 'defaults.parameters.frequency_penalti' (did you mean "
                        "'frequency_penalty'? other names are sent as they are)"]
