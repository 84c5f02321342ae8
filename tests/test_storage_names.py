"""File names for the result files (pytest_llmbench.session.storage): safe on Linux and Windows, inside the output
folder, distinct for distinct tests — checked against an independent statement of the rules."""

from __future__ import annotations

import hashlib
import json
import random
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from storage_results import make_result

from pytest_llmbench.session.storage import (
    MAX_STEM_BYTES,
    ResultWriter,
    StemAllocator,
    assign_stems,
    file_stem,
    is_portable_stem,
)

# An independent statement of what Windows and Linux accept, so the tests do not trust the code's own rules.
WINDOWS_FORBIDDEN = set('<>:"|?*/\\')
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789¹²³"
}
LONGEST_SUFFIX = "_completion.txt"

HOSTILE_NAMES = [
    "../../etc/passwd", "..", ".", "...", "", " ", "a/b", "a\\b", "C:\\Windows\\x", "/abs/path",
    "nul\x00byte", "tab\there", "line\nbreak", "bell\x07", "del\x7f", "c1\x85",
    "CON", "con", "Con.txt", "nul.txt", "NUL", "aux.tar.gz", "COM1", "lpt9.log", "COM¹", "conin$", "CON .txt",
    "trailing dot.", "trailing space ", "dots...", " leading", ".hidden",
    'quote"s', "a<b>c", "pipe|", "what?", "star*", "colon:stream",
    "é" * 300, "日本語" * 100, "😀" * 80, "x" * 300, "e\u0301" * 200, "lone\ud800surrogate",
    "Greeting", "greeting", "GREETING", "café", "cafe\u0301",  # case and normalization twins
]


def portable_name_problems(name: str) -> list[str]:
    problems = []
    if not name:
        problems.append("empty")
    if len(name.encode("utf-8")) > 255:
        problems.append("longer than 255 bytes")
    if any(c in WINDOWS_FORBIDDEN or ord(c) < 32 for c in name):
        problems.append("forbidden character")
    if name[-1:] in (" ", "."):
        problems.append("trailing dot or space")
    if name.split(".")[0].strip().upper() in WINDOWS_DEVICES:
        problems.append("reserved device name")
    return problems


def random_names(count: int, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    pieces = [*"abcXYZ09 -_.", "/", "\\", "..", ":", "*", "?", '"', "<", ">", "|", "\x00", "\x1f", "\x7f",
              "é", "日", "😀", "\u0301", "\ud800", "CON", "nul", "Lpt1", ".txt"]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 120))) for _ in range(count)]


def short_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


# ----------------------------------------------------------------------------- names


def test_plain_name_is_kept_as_is() -> None:
    assert file_stem("Greeting-test.1", "suite::t1::m") == "Greeting-test.1"


def test_spaces_become_underscores_without_a_hash_so_names_need_no_quoting() -> None:
    assert file_stem("Greeting test  1", "suite::t1::m") == "Greeting_test_1"
    assert file_stem("a_b", "k2", taken=["a_b"]) == f"a_b-{short_hash('k2')}"  # a clash still gets its hash


def test_changed_name_gets_hash_of_the_key() -> None:
    assert file_stem("a/b", "suite::t1::m") == f"a_b-{short_hash('suite::t1::m')}"
    assert file_stem("a/b", "suite::t1::m") != file_stem("a/b", "suite::t2::m")


@pytest.mark.parametrize("name", ["CON", "con", "nul.txt", "Aux.tar.gz", "COM1", "lpt9.log", "PRN", "COM¹"])
def test_windows_device_names_are_prefixed(name: Any) -> None:
    stem = file_stem(name, "k")
    assert stem.startswith("_") and name in stem
    assert portable_name_problems(stem + LONGEST_SUFFIX) == []


@pytest.mark.parametrize("name", ["..", ".", "", "   ", "...", " . "])
def test_names_with_nothing_usable_are_never_empty(name: Any) -> None:
    stem = file_stem(name, "k")
    assert stem.startswith("test-") and ".." not in stem


def test_trailing_dots_and_spaces_are_removed() -> None:
    stem = file_stem("answer. . ", "k")
    assert stem == f"answer-{short_hash('k')}"


def test_long_multibyte_name_is_cut_on_a_character_boundary() -> None:
    stem = file_stem("é" * 300, "k")
    assert len(stem.encode()) <= MAX_STEM_BYTES
    assert len((stem + LONGEST_SUFFIX).encode()) <= 255
    assert stem == "é" * len(stem[:-9]) + f"-{short_hash('k')}"


def test_name_exactly_at_the_limit_is_kept_and_one_byte_more_is_hashed() -> None:
    assert file_stem("x" * MAX_STEM_BYTES, "k") == "x" * MAX_STEM_BYTES
    longer = file_stem("x" * (MAX_STEM_BYTES + 1), "k")
    assert longer.endswith(short_hash("k")) and len(longer.encode()) <= MAX_STEM_BYTES


def test_taken_stem_is_matched_case_insensitively() -> None:
    assert file_stem("Greeting", "k", taken={"greeting"}) == f"Greeting-{short_hash('k')}"
    assert file_stem("Greeting", "k", taken={"other"}) == "Greeting"


def test_stems_are_fixed_points_so_writer_guard_changes_nothing() -> None:
    for name in HOSTILE_NAMES + random_names(200):
        stem = file_stem(name, name)
        assert file_stem(stem, "other key") == stem


def test_portable_stem_check_accepts_exactly_the_stems_file_stem_keeps() -> None:
    names = HOSTILE_NAMES + random_names(300) + ["x" * MAX_STEM_BYTES, "x" * (MAX_STEM_BYTES + 1), "Greeting 1"]
    for name in names:
        assert is_portable_stem(name) == (file_stem(name, name) == name), repr(name)
        assert is_portable_stem(file_stem(name, name))


def test_writer_makes_a_hand_made_stem_safe_and_keeps_a_safe_one(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path)
    hostile = writer.write_test(make_result(), "../up/CON")
    plain = writer.write_test(make_result(), "t1")
    stem = f"_up_CON-{short_hash('../up/CON')}"
    assert [p.name for p in hostile] == [f"{stem}_completion.txt", f"{stem}_result.json"]
    assert all(p.parent == tmp_path for p in hostile)
    assert [p.name for p in plain] == ["t1_completion.txt", "t1_result.json"]


def test_same_names_all_get_hashes_whatever_the_order() -> None:
    items = [("s::a::m", "Greeting"), ("s::b::m", "greeting"), ("s::c::m", "Unique")]
    stems = assign_stems(items)
    assert stems == assign_stems(list(reversed(items)))
    assert stems["s::a::m"] == f"Greeting-{short_hash('s::a::m')}"
    assert stems["s::b::m"] == f"greeting-{short_hash('s::b::m')}"
    assert stems["s::c::m"] == "Unique"


def test_name_crafted_like_another_keys_hash_does_not_collide() -> None:
    crafted = f"foo-{short_hash('k2')}"
    stems = assign_stems([("k1", crafted), ("k2", "foo/"), ("k3", "foo"), ("k4", "foo")])
    assert len({s.casefold() for s in stems.values()}) == 4


def test_allocator_gives_one_key_the_same_stem_and_later_twins_a_hash() -> None:
    allocator = StemAllocator()
    first = allocator.claim("Greeting", "k1")
    assert allocator.claim("Greeting", "k1") == first == "Greeting"
    assert allocator.claim("GREETING", "k2") == f"GREETING-{short_hash('k2')}"


# ----------------------------------------------------------------------------- hostile names end to end


def test_every_hostile_name_lands_inside_the_folder_with_a_valid_distinct_name(tmp_path: Path) -> None:
    out = tmp_path / "out"
    names = HOSTILE_NAMES + random_names(250)
    items = [(f"suite::{i}::model", name) for i, name in enumerate(names)]
    items += [(f"suite::dup{i}::model", name) for i, name in enumerate(HOSTILE_NAMES)]  # same names again
    stems = assign_stems(items)
    writer = ResultWriter(out)
    for key, name in items:
        writer.write_test(make_result(key, test_name=name), stems[key])

    assert writer.failures == []
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == writer.written == 2 * len(items)
    assert all(p.resolve().parent == out.resolve() for p in files)
    assert {p.name: portable_name_problems(p.name) for p in files if portable_name_problems(p.name)} == {}
    folded = {unicodedata.normalize("NFC", p.name).casefold() for p in files}
    assert len(folded) == len(files)
    for key, _name in items:
        stored = json.loads((out / f"{stems[key]}_result.json").read_text(encoding="utf-8"))
        assert stored["test_id"] == key


def test_hostile_model_names_become_subfolders_inside_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    writer = ResultWriter(out)
    models = ["../escape", "org/model:7b", "CON", "Model", "model", "..", "m" * 300, "a\\b"]
    for model in models:
        writer.write_test(make_result(model=model), "t1", subdir=model)
    folders = list(out.iterdir())
    assert len(folders) == len(models) and all(p.is_dir() for p in folders)
    assert all(p.resolve().parent == out.resolve() for p in folders)
    assert all(portable_name_problems(p.name) == [] for p in folders)
    assert not (tmp_path / "escape").exists()
