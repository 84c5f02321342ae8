"""Reading untrusted suite files safely (pytest_llmbench.collect.suite_json, through load_suite): encodings, sizes,
numbers and nesting, on real files in tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from suite_files import error_of, prompt_test, raw_suite, write

from pytest_llmbench.collect.suite import load_suite


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    body = json.dumps({"tests": [prompt_test(prompt="Grüße")]}, ensure_ascii=False)
    path = write(tmp_path, b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert load_suite(path).tests[0].prompt == "Grüße"


def test_large_but_allowed_file_loads(tmp_path: Path) -> None:
    prompt = "lorem ipsum " * 85  # about 1 KB a test, about 10 MB in all
    tests = [prompt_test(id=f"t{i}", prompt=prompt) for i in range(10_000)]
    path = raw_suite(tmp_path, *tests)
    assert path.stat().st_size > 10 * 10**6
    assert len(load_suite(path).tests) == 10_000


# --- file level errors ---------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.llmbench.json"
    assert str(error_of(path)) == f"{path}: no such file"


def test_directory_is_rejected(tmp_path: Path) -> None:
    assert "is a directory" in str(error_of(tmp_path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_rejected_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.llmbench.json"
    os.mkfifo(path)
    assert str(error_of(path)) == f"{path}: is not a regular file"


def test_malformed_json_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "tests": [\n    {"id": "a",, "name": "x"}\n  ]\n}')
    message = str(error_of(path))
    assert message.startswith(f"{path}: invalid JSON at line 3, column 16:")


def test_empty_file_says_so(tmp_path: Path) -> None:
    assert "file is empty" in str(error_of(write(tmp_path, "  \n")))


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_invalid_utf8_gives_byte_offset_in_the_file(tmp_path: Path, bom: Any) -> None:
    raw = bom + b'{"tests": [\n{"prompt": "caf\xe9"}]}'
    message = str(error_of(write(tmp_path, raw)))
    offset = raw.index(b"\xe9")
    assert f"not valid UTF-8: byte 0xe9 at byte offset {offset} (line 2)" in message


def test_file_over_the_limit_names_size_limit_and_option(tmp_path: Path) -> None:
    path = raw_suite(tmp_path, prompt_test(prompt="x" * 2000))
    size = path.stat().st_size
    message = str(error_of(path, max_bytes=1000))
    assert f"file is {size} bytes" in message and "limit of 1000 bytes" in message
    assert "--llmbench-max-suite-bytes" in message


def test_default_limit_is_50_mib_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "sparse.llmbench.json"
    with path.open("wb") as handle:
        handle.truncate(50 * 2**20 + 1)  # sparse: reading it would be slow, stat() is not
    assert "over the limit of 52428800 bytes (50.0 MiB)" in str(error_of(path))


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("NaN", "NaN is not a valid JSON number"),
        ("Infinity", "Infinity is not a valid JSON number"),
        ("-Infinity", "-Infinity is not a valid JSON number"),
        ("1e999", "1e999 is too large for a number"),
        ("-" + "9" * 101, "integer with 101 digits (at most 100 allowed)"),
        ("1" * 5000, "integer with 5000 digits (at most 100 allowed)"),  # beyond Python's own 4300 limit
    ],
    ids=["nan", "inf", "-inf", "overflow", "101-digits", "5000-digits"],
)
def test_unsafe_numbers_are_rejected(tmp_path: Path, number: Any, problem: Any) -> None:
    path = write(tmp_path, f'{{"tests": [], "metadata": {{"x": {number}}}}}')
    assert str(error_of(path)) == f"{path}: invalid JSON number: {problem}"


def test_integer_of_100_digits_is_accepted(tmp_path: Path) -> None:
    path = raw_suite(tmp_path, prompt_test(metadata={"x": 10**99}))
    assert load_suite(path).tests[0].metadata == {"x": 10**99}


def nested_metadata(levels: int) -> str:
    """A suite whose deepest value sits `levels` arrays below the metadata key (depth 4 + levels)."""
    return '{"tests": [{"id": "a", "name": "a", "category": "c", "prompt": "p", "metadata": {"x": %s}}]}' % (
        "[" * levels + "]" * levels
    )


def test_nesting_of_64_levels_is_accepted(tmp_path: Path) -> None:
    assert load_suite(write(tmp_path, nested_metadata(60))).tests[0].metadata is not None


def test_nesting_of_65_levels_is_rejected(tmp_path: Path) -> None:
    assert "nesting deeper than 64 levels" in str(error_of(write(tmp_path, nested_metadata(61))))


@pytest.mark.parametrize("depth", [100_000, 10 * 2**20])
def test_absurd_nesting_is_rejected_without_recursion_error(tmp_path: Path, depth: Any) -> None:
    error = error_of(write(tmp_path, "[" * depth))
    assert error.problems == ["nesting deeper than 64 levels"]


def test_unpaired_surrogate_escape_is_rejected(tmp_path: Path) -> None:
    path = raw_suite(tmp_path, prompt_test(prompt="\ud800"))  # json.dumps writes it as an escape
    assert "unpaired surrogate" in str(error_of(path))


def test_paired_surrogate_escape_is_fine(tmp_path: Path) -> None:
    path = raw_suite(tmp_path, prompt_test(prompt="\U0001f600 \\ud800"))
    assert load_suite(path).tests[0].prompt == "\U0001f600 \\ud800"
