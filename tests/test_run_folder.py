"""One run, one folder: <output>/<run id>/ per session, a `latest` pointer, nothing of an earlier run touched."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, write_suite
from pytest_httpserver import HTTPServer

from pytest_llmbench.session.run_folder import latest_folder, make_run_folder, point_latest, resolve_baseline


@pytest.fixture
def stub(httpserver: HTTPServer) -> OpenAIStub:
    server = OpenAIStub()
    server.url = server.install(httpserver)
    return server


def run(pytester: pytest.Pytester, stub: OpenAIStub, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--llmbench-endpoint", stub.url, "-p", "no:cacheprovider", *args)


def test_each_run_writes_its_own_folder_and_latest_points_at_the_newest(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a", "name": "Chat: continue a function"}, {"id": "b"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    output = pytester.path / "llmbench_results"
    [first] = [p for p in output.iterdir() if p.is_dir() and not p.is_symlink()]
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    stub.default_answer = "another answer"
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    runs = sorted(p for p in output.iterdir() if p.is_dir() and not p.is_symlink())
    assert len(runs) == 2 and runs[0] == first
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before  # the first run is as it was
    assert (output / "latest").resolve() == runs[1].resolve()
    names = sorted(p.name for p in runs[1].iterdir())
    assert len([n for n in names if n.startswith("batch_results_")]) == 1
    assert "Test_1_result.json" in names and "Test_1_completion.txt" in names  # the seed's names, inside
    assert not [n for n in names if " " in n]  # nothing a shell would split


def test_the_summary_names_the_run_folder(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}])
    result = run(pytester, stub, "--llmbench-suite", str(suite))
    [folder] = [p for p in (pytester.path / "llmbench_results").iterdir() if not p.is_symlink()]
    result.stdout.fnmatch_lines([f"results: {folder}/batch_results_*.json", f"results: {folder}"])


def test_compare_takes_a_run_folder_or_latest(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])
    run(pytester, stub, "--llmbench-suite", str(suite)).assert_outcomes(passed=2)
    [base] = [p for p in (pytester.path / "llmbench_results").iterdir() if not p.is_symlink()]
    [batch] = base.glob("batch_results_*.json")
    by_folder = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", str(base))
    by_folder.stdout.fnmatch_lines([f"baseline: {batch}"])
    latest = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", "latest")
    second = json.loads(next((pytester.path / "llmbench_results" / "latest").glob("batch_*.json")).read_text())
    assert second["gates"]["comparison"]["baseline"] != str(batch)  # the run before it, not the first one
    assert latest.ret == pytest.ExitCode.OK


def test_compare_latest_on_a_first_run_into_a_new_folder_passes_with_a_note(pytester: pytest.Pytester, stub: OpenAIStub) -> None:
    suite = write_suite(pytester.path / "s.json", [{"id": "a"}, {"id": "b"}])

    result = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", "latest",
                 "--llmbench-compare-fail", "latency_p50:10%", "--llmbench-output", "new/results")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    note = (f"no earlier run with a batch file in {pytester.path / 'new' / 'results'}, so nothing to compare with "
            "(--llmbench-compare latest); this run is the baseline of the next; the --llmbench-compare-fail limits "
            "were not checked")
    result.stdout.fnmatch_lines([f"baseline: none: {note}"])
    [batch] = (pytester.path / "new" / "results" / "latest").glob("batch_results_*.json")
    gates = json.loads(batch.read_text())["gates"]
    assert gates["passed"] is True and gates["baseline_note"] == note and gates["comparison"] is None
    first = batch.resolve()  # the next run compares with it
    again = run(pytester, stub, "--llmbench-suite", str(suite), "--llmbench-compare", "latest",
                "--llmbench-output", "new/results")
    again.stdout.fnmatch_lines([f"baseline: {first}"])


def test_a_folder_without_a_batch_file_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no batch_results_"):
        resolve_baseline(tmp_path, tmp_path)


def test_runs_started_in_the_same_second_get_distinct_folders(tmp_path: Path) -> None:
    started = datetime(2026, 11, 29, 17, 30, 12, tzinfo=timezone.utc)
    names = [make_run_folder(tmp_path, started).name for _ in range(3)]
    assert names == ["20261129-173012", "20261129-173012-2", "20261129-173012-3"]


def test_latest_falls_back_to_a_file_where_the_link_cannot_be_made(tmp_path: Path) -> None:
    started = datetime(2026, 11, 29, 17, 30, 12, tzinfo=timezone.utc)
    (tmp_path / "latest").mkdir()  # something not ours sits where the link would go
    (tmp_path / "latest" / "keep").write_text("x")
    folder = make_run_folder(tmp_path, started)
    (folder / "batch_results_20261129-173012.json").write_text("{}")
    point_latest(tmp_path, folder)
    assert (tmp_path / "latest.txt").read_text().strip() == folder.name
    assert latest_folder(tmp_path) == folder
    assert (tmp_path / "latest" / "keep").read_text() == "x"
    found = resolve_baseline(tmp_path / "nowhere" / "latest", tmp_path)[0]
    assert found is not None and found.parent == folder
