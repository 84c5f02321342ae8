"""Hostile batch files, round three: baselines, planted ``latest`` targets and ``llmbench-report`` inputs that are
malformed on purpose are refused at the boundary, naming the file and the first problem, before any test runs."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faultserver import COMPLETION, FaultServer, Reply
from openai_stub import write_suite

MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}
REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def good_batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real batch file from a real session: two tests, one failing its check (so rows carry a ``failure``)."""
    work = tmp_path_factory.mktemp("good")
    suite = write_suite(work / "s.json", [{"id": "ok"}, {"id": "wrong", "expected": {"contains": "Berlin"}}])
    with FaultServer() as server:
        server.always(Reply.json(MODELS), path="/v1/models")
        server.always(Reply.json(COMPLETION), path="/v1/completions")
        subprocess.run([sys.executable, "-m", "pytest", "--llmbench-suite", str(suite), "--llmbench-endpoint",
                        server.url_for("/v1"), "--llmbench-model", "m", "-p", "no:cacheprovider", "-q",
                        "--llmbench-server-metrics", "off"], cwd=work, capture_output=True, timeout=120, check=False,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    [path] = (work / "llmbench_results").rglob("batch_results_*.json")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _set(where: Callable[[dict[str, Any]], dict[str, Any] | list[Any]], key: Any, value: Any) -> Callable[..., None]:
    def change(batch: dict[str, Any]) -> None:
        where(batch)[key] = value
    return change


# name -> (change to the document, what the error must say)
MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "400-digit number": (_set(lambda b: b["aggregate"], "p50_latency_ms", 10**400), "integer with 401 digits"),
    "row that is a string": (_set(lambda b: b["tests"], 0, "x"), 'tests[0]: "x" is not an object'),
    "run not an object": (_set(lambda b: b, "run", "x"), 'run: "x" is not an object'),
    "failure that is a string": (_set(lambda b: b["tests"][1], "failure", "boom"),
                                 'tests[1].failure: "boom" is not an object'),
    "success that is a string": (_set(lambda b: b["tests"][0], "success", "yes"), "tests[0].success"),
    "categories a list": (_set(lambda b: b, "categories", [1]), "categories: [1] is not an object"),
    "figure that is a string": (_set(lambda b: b["aggregate"], "p99_latency_ms", "slow"),
                                "aggregate.p99_latency_ms"),
    "models a string": (_set(lambda b: b["run"], "models", "m"), "run.models"),
    "time that is a string": (_set(lambda b: b["tests"][0], "execution_time", "fast"), "tests[0].execution_time"),
}
DEEP = "deep nesting"


def malformed(good: dict[str, Any], name: str, path: Path) -> tuple[Path, str]:
    if name == DEEP:
        text = json.dumps(good).replace('"alerts": []', '"alerts": ' + "[" * 50_000 + "]" * 50_000)
        path.write_text(text, encoding="utf-8")
        return path, "nesting deeper than 32 levels"
    batch = copy.deepcopy(good)
    change, why = MALFORMED[name]
    change(batch)
    path.write_text(json.dumps(batch), encoding="utf-8")
    return path, why


@pytest.mark.parametrize("name", [*MALFORMED, DEEP])
def test_llmbench_report_refuses_a_malformed_batch_naming_the_file_and_its_first_problem(tmp_path: Path, good_batch: Any, name: Any) -> None:
    bad, why = malformed(good_batch, name, tmp_path / "crafted.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(good_batch), encoding="utf-8")

    done = subprocess.run([sys.executable, "-m", "pytest_llmbench.session.report_html.cli", str(good), str(bad),
                           "-o", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith(f"llmbench-report: {bad}: ") and why in done.stderr, done.stderr
    assert not (tmp_path / "r.html").exists()


def run(pytester: pytest.Pytester, server: FaultServer, *args: str) -> pytest.RunResult:
    server.always(Reply.json(MODELS), path="/v1/models")
    server.always(Reply.json(COMPLETION), path="/v1/completions")
    suite = write_suite(pytester.path / "s.json", [{"id": "t"}])
    return pytester.runpytest_subprocess("--llmbench-suite", str(suite), "--llmbench-endpoint", server.url_for("/v1"),
                                         "--llmbench-model", "m", "--llmbench-server-metrics", "off",
                                         "-p", "no:cacheprovider", *args, timeout=120)


@pytest.mark.parametrize("name", ["400-digit number", "row that is a string", "run not an object", DEEP])
def test_a_malformed_baseline_is_a_usage_error_before_any_test(pytester: pytest.Pytester, fault_server: FaultServer, good_batch: Any, name: Any) -> None:
    bad, why = malformed(good_batch, name, pytester.path / "baseline.json")

    result = run(pytester, fault_server, "--llmbench-compare", str(bad))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    assert f"baseline file {bad}: " in output and why in output
    assert "/v1/completions" not in fault_server.paths()  # refused before any request


def test_a_planted_latest_link_to_a_malformed_batch_is_refused_before_any_test(pytester: pytest.Pytester, fault_server: FaultServer, good_batch: Any) -> None:
    planted = pytester.path / "elsewhere"
    planted.mkdir()
    _bad, why = malformed(good_batch, "row that is a string", planted / "batch_results_1.json")
    (pytester.path / "llmbench_results").mkdir()
    (pytester.path / "llmbench_results" / "latest").symlink_to(planted)

    result = run(pytester, fault_server, "--llmbench-compare", "latest")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and why in output and "batch_results_1.json" in output
    assert "/v1/completions" not in fault_server.paths()


def test_links_from_result_data_stay_relative_inside_the_run_folder(tmp_path: Path, good_batch: Any) -> None:
    batch = copy.deepcopy(good_batch)
    crafted = ["//evil-host/share/x.txt", "../../../../etc/passwd", "/etc/passwd", "\\\\evil-host\\share\\y.txt",
               "C:/Windows/z.txt", "javascript:alert(1)"]
    row = batch["tests"][0]
    batch["tests"] = [{**row, "test_id": f"c{n}", "completion_file": name} for n, name in enumerate(crafted)]
    batch["tests"].append({**row, "test_id": "fine", "completion_file": "fine_completion.txt"})
    path = tmp_path / "run" / "batch_results_1.json"
    path.parent.mkdir()
    path.write_text(json.dumps(batch), encoding="utf-8")

    done = subprocess.run([sys.executable, "-m", "pytest_llmbench.session.report_html.cli", str(path), "-o",
                           str(tmp_path / "run" / "report.html")], capture_output=True, text=True, timeout=120,
                          check=False)

    assert done.returncode == 0, done.stderr
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "fine_completion.txt" in html  # a file of the run folder keeps its link
    for needle in ("evil-host", "etc/passwd", "Windows", "javascript"):
        assert needle not in html, needle
