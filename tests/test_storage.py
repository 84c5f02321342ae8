"""Writing result files (pytest_llmbench.session.storage): atomic writes, write failures, the batch file and the
completion text, on real files in tmp_path."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from storage_results import make_result

from pytest_llmbench.batch import Batch
from pytest_llmbench.exceptions import OutputNotWritable
from pytest_llmbench.result import ApiError, TestResult
from pytest_llmbench.session.render import render_completion_text
from pytest_llmbench.session.storage import (
    TEMP_SUFFIX,
    ResultWriter,
    atomic_write_text,
    check_writable,
    clean_temp_files,
)


def temp_leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new\r\nline ", durable=True)
    assert target.read_bytes() == b"new\r\nline "
    assert temp_leftovers(tmp_path) == []


def test_symlink_at_target_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "t1_result.json"
    link.symlink_to(victim)
    atomic_write_text(link, "new content")
    assert victim.read_text() == "original"
    assert not link.is_symlink() and link.read_text() == "new content"


def test_failed_write_removes_its_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "is_a_folder"
    target.mkdir()
    with pytest.raises(OSError):
        atomic_write_text(target, "data")
    assert temp_leftovers(tmp_path) == []


def test_lone_surrogate_is_escaped_and_json_round_trips(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path)
    writer.write_test(make_result(response_text="a\ud800b"), "t1")
    raw = (tmp_path / "t1_result.json").read_bytes().decode("utf-8")  # strict: valid UTF-8
    assert json.loads(raw)["response_text"] == "a\ud800b"


CHILD_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pytest_llmbench.session.storage import atomic_write_text
    target, size = Path(sys.argv[1]), int(sys.argv[2])
    contents = ["B" * size, "C" * size]
    n = 0
    while True:
        atomic_write_text(target, contents[n % 2])
        if n == 0:
            print("replaced once", flush=True)
        n += 1
    """
)


def test_killed_writer_leaves_old_or_new_content_whole_and_a_cleanable_temp_file(tmp_path: Path) -> None:
    size = 8 * 2**20
    target = tmp_path / "big.txt"
    rng = random.Random(7)
    leftovers_removed = rounds = 0
    while leftovers_removed == 0 or rounds < 5:  # a busy machine may kill between writes: go on until one cut one
        rounds += 1
        assert rounds <= 60, "no kill ever left a temp file: the writer does not write through one"

        atomic_write_text(target, "A" * size)
        child = subprocess.Popen([sys.executable, "-c", CHILD_WRITER, str(target), str(size)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "replaced once\n"
            time.sleep(rng.uniform(0, 0.03))  # a random point in the write loop
        finally:
            child.kill()  # SIGKILL on POSIX: no cleanup handler runs
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        content = target.read_text()
        assert len(content) == size and content[0] in "BC" and content[0] * size == content
        leftovers_removed += clean_temp_files(tmp_path)
        assert temp_leftovers(tmp_path) == []


def test_clean_temp_files_counts_leftovers_in_subfolders_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / f".x{TEMP_SUFFIX}").write_text("partial")
    (tmp_path / "model" / f".y{TEMP_SUFFIX}").write_text("partial")
    (tmp_path / f".fresh{TEMP_SUFFIX}").write_text("a writer without a name, maybe still writing")
    (tmp_path / f"folder{TEMP_SUFFIX}").mkdir()
    (tmp_path / "t1_result.json").write_text("{}")
    for path in (tmp_path / f".x{TEMP_SUFFIX}", tmp_path / "model" / f".y{TEMP_SUFFIX}"):
        os.utime(path, (time.time() - 7200, time.time() - 7200))  # stale: two hours old
    assert clean_temp_files(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == [f".fresh{TEMP_SUFFIX}", "folder" + TEMP_SUFFIX, "model",
                                                           "t1_result.json"]
    assert clean_temp_files(tmp_path / "missing") == 0


# ----------------------------------------------------------------------------- writable checks


def test_check_writable_creates_nested_folder_and_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    check_writable(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_output_path_that_is_a_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "results"
    path.write_text("not a folder")
    with pytest.raises(OutputNotWritable, match=r"results.* not writable: the path exists and is not a folder"):
        check_writable(path)


def test_output_path_under_a_file_is_reported_even_for_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputNotWritable, match=r"not writable: a part of the path is a file"):
        check_writable(tmp_path / "file" / "results")


def test_an_output_folder_that_became_unusable_is_reported_before_and_recorded_during_a_run(tmp_path: Path) -> None:
    """What a folder made read-only mid-run does, made in a way that holds for root too (mode bits do not stop
    root): the folder replaced by a file."""
    folder = tmp_path / "out"
    writer = ResultWriter(folder)
    writer.write_test(make_result(), "t1")
    shutil.rmtree(folder)
    folder.write_text("a file where the folder was")
    with pytest.raises(OutputNotWritable, match="not writable: the path exists and is not a folder"):
        check_writable(folder)
    assert writer.write_test(make_result(), "t2") == []
    assert [f.path.name for f in writer.failures] == ["t2_completion.txt", "t2_result.json"]
    assert all(f.reason.endswith(("[ENOTDIR]", "[EEXIST]")) for f in writer.failures)


# ----------------------------------------------------------------------------- write failures


def test_writes_into_a_subfolder_blocked_by_a_file_are_recorded_not_raised(tmp_path: Path) -> None:
    (tmp_path / "model-a").write_text("in the way")
    writer = ResultWriter(tmp_path)
    assert writer.write_test(make_result(), "t1", subdir="model-a") == []
    assert [f.path.name for f in writer.failures] == ["t1_completion.txt", "t1_result.json"]
    assert all(f.reason for f in writer.failures)
    assert [p.name for p in writer.write_test(make_result(), "t2")] == ["t2_completion.txt", "t2_result.json"]
    assert writer.written == 2


def test_folder_removed_mid_run_is_recorded_then_recreated(tmp_path: Path) -> None:
    out = tmp_path / "out"
    writer = ResultWriter(out)
    writer.write_test(make_result(), "t1")
    shutil.rmtree(out)
    out.write_text("now a file")
    assert writer.write_test(make_result(), "t2") == []
    assert len(writer.failures) == 2
    out.unlink()
    assert len(writer.write_test(make_result(), "t3")) == 2
    assert sorted(p.name for p in out.iterdir()) == ["t3_completion.txt", "t3_result.json"]


def test_symlinked_subfolder_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "model").symlink_to(outside, target_is_directory=True)
    writer = ResultWriter(out)
    assert writer.write_test(make_result(), "t1", subdir="model") == []
    assert "symbolic link" in writer.failures[0].reason
    assert list(outside.iterdir()) == []


def test_result_that_cannot_be_json_is_recorded_and_the_text_file_still_written(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path)
    loop: dict[str, Any] = {}
    loop["self"] = loop  # a hook's circular value; not shown in the text file
    assert [p.name for p in writer.write_test(make_result(api_response=loop), "t1")] == ["t1_completion.txt"]
    assert writer.failures[0].path.name == "t1_result.json"
    assert writer.failures[0].reason.startswith("RecursionError")


def test_result_whose_metrics_are_not_a_mapping_fails_the_text_file_only(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path)
    written = writer.write_test(make_result(performance_metrics=[1, 2]), "t1")  # a hook's list, not a dict
    assert [p.name for p in written] == ["t1_result.json"]
    assert [f.path.name for f in writer.failures] == ["t1_completion.txt"]
    assert writer.failures[0].reason.startswith("AttributeError")


CHILD_FULL_DISK = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    from pytest_llmbench.result import TestResult
    from pytest_llmbench.session.storage import ResultWriter
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    writer = ResultWriter(Path(sys.argv[1]))
    small = TestResult(test_id="small", test_name="small", success=True, response_text="ok").to_dict()
    big = TestResult(test_id="big", test_name="big", success=True, response_text="x" * 200_000).to_dict()
    paths = writer.write_test(small, "small") + writer.write_test(big, "big") + writer.write_test(small, "after")
    print(json.dumps({"paths": [p.name for p in paths], "written": writer.written,
                      "failures": [[f.path.name, f.reason] for f in writer.failures]}))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_write_failing_midway_like_a_full_disk_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    # A file-size limit makes write() fail partway with EFBIG, even for root: the closest portable
    # stand-in for ENOSPC without mounting a small file system.
    run = subprocess.run([sys.executable, "-c", CHILD_FULL_DISK, str(tmp_path)],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["paths"] == ["small_completion.txt", "small_result.json",
                               "after_completion.txt", "after_result.json"]
    assert report["written"] == 4
    assert [name for name, _ in report["failures"]] == ["big_completion.txt", "big_result.json"]
    assert all("EFBIG" in reason for _, reason in report["failures"])
    assert temp_leftovers(tmp_path) == []
    assert not list(tmp_path.glob("big*"))


# ----------------------------------------------------------------------------- batch file


def test_batch_file_is_named_from_utc_start_and_never_overwritten(tmp_path: Path) -> None:
    started = datetime(2024, 5, 6, 9, 8, 7, tzinfo=timezone(timedelta(hours=2)))
    writer = ResultWriter(tmp_path / "out")
    written = [writer.write_batch(cast(Batch, {"run": n}), started) for n in range(3)]
    paths = [p for p in written if p is not None]
    assert [p.name for p in paths] == ["batch_results_20240506-070807.json",
                                       "batch_results_20240506-070807-2.json",
                                       "batch_results_20240506-070807-3.json"]
    assert [json.loads(p.read_text())["run"] for p in paths] == [0, 1, 2]
    assert writer.written == 3


def test_batch_write_failure_returns_none_and_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    writer = ResultWriter(tmp_path / "out")
    assert writer.write_batch(cast(Batch, {"run": 1}), datetime.now(timezone.utc)) is None
    assert writer.failures[0].path.name.startswith("batch_results_")


# ----------------------------------------------------------------------------- completion text


def test_completion_text_has_prompt_completion_and_metrics_sections(tmp_path: Path) -> None:
    result = make_result(response_text="Hi!\r\n  trailing  ")
    ResultWriter(tmp_path).write_test(result, "t1")
    raw = (tmp_path / "t1_completion.txt").read_bytes()
    assert raw.startswith(b"=== PROMPT ===\nSay hello\n\n=== COMPLETION ===\nHi!\r\n  trailing  \n\n=== METRICS ===\n")
    metrics = raw.decode().split("=== METRICS ===\n")[1].splitlines()
    assert metrics == ["model: tiny-model", "category: greeting", "success: True", "prompt_tokens: 12",
                       "completion_tokens: 30", "attempts: 1", "execution_time: 1.250 s", "tokens_per_second: 24.00"]


def test_chat_prompt_is_rendered_as_role_lines() -> None:
    request = {"messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": [{"type": "text", "text": "Look:"},
                                                         {"type": "image_url", "image_url": {"url": "x"}}]}]}
    text = render_completion_text(make_result(request=request))
    assert "=== PROMPT ===\n[system] Be brief.\n[user] Look:\n<image_url>\n\n=== COMPLETION ===" in text


def test_failed_test_shows_the_error_and_any_partial_text() -> None:
    error = ApiError(kind="stream", message="stream ended without [DONE]")
    result = make_result(success=False, response_text="Half an ans", error=error,
                         error_message="stream ended without [DONE]")
    text = render_completion_text(TestResult.from_dict(result).to_dict())
    assert ("=== COMPLETION ===\nERROR (stream): stream ended without [DONE]\n\n--- partial response ---\n"
            "Half an ans\n\n=== METRICS ===") in text
    assert "success: False" in text


def test_optional_metrics_appear_only_when_present() -> None:
    full = render_completion_text(make_result(
        tokens_estimated=True, ttft=0.12, tpot=0.02, e2e_latency=1.5, reasoning_score=0.75,
        evaluation_result={"passed": False, "checks": []}, performance_metrics={"gpu_util": 55, "mem": {"gb": 3}},
    ))
    for line in ["prompt_tokens: 12 (estimated)", "completion_tokens: 30 (estimated)", "ttft: 0.120 s",
                 "tpot: 0.020 s", "e2e_latency: 1.500 s", "reasoning_score: 0.75", "evaluation_passed: False",
                 "gpu_util: 55", 'mem: {"gb": 3}']:
        assert line in full.splitlines()
    bare = render_completion_text(make_result(completion_tokens=None, tokens_per_second=None))
    assert "completion_tokens: n/a" in bare and "tokens_per_second: n/a" in bare
    assert not any(word in bare for word in ("ttft", "tpot", "e2e_latency", "reasoning_score", "evaluation"))


def test_batch_file_is_indented_json_with_one_line_per_test(tmp_path: Path) -> None:
    writer = ResultWriter(tmp_path)
    rows = [{"test_id": f"t{n}", "execution_time": float("nan") if n == 1 else 0.5} for n in range(3)]
    batch = {"schema_version": 1, "aggregate": {"total_tests": 3}, "tests": rows, "added_by_hook": True}
    path = writer.write_batch(cast(Batch, batch), datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc))
    assert path is not None
    text = path.read_text()
    assert json.loads(text) == {**batch, "tests": [rows[0], {"test_id": "t1", "execution_time": None}, rows[2]]}
    lines = text.splitlines()
    assert '    {"test_id": "t0", "execution_time": 0.5},' in lines and '  "schema_version": 1,' in lines
    assert len(lines) == len(json.dumps(batch["aggregate"], indent=2).splitlines()) + 2 + 2 + 3 + 2
