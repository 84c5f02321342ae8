"""The HTML report's cost: write time and size for 10,000 and 100 tests, and drawing time in headless Chromium.

The batch is made by the controller's own code (Recorder: rows, pooled statistics, per-test files, batch file)
from synthetic streamed results — log-normal latencies, 20-80 ITL gaps each, three models, eight categories,
3 % failed checks and 1 % server errors — so the report reads what a real 10,000-test run writes. The floor for
the write time is writing that run's batch file (same process, same data, fsynced as the plugin does); the
report is rendered and written the way the plugin writes it (`write_report`). Drawing is timed in Debian's
Chromium through playwright, from navigation to the report's `llmbenchReady` flag (HTML and JSON parsed, every
chart drawn, the 10,000-row table built). Targets: 10,000 tests written in <= 2 s, <= 8 MB, drawn in <= 3 s;
100 tests <= 5 MB.

    python benchmarks/report_html.py [--tests 10000 --small 100 --repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_llmbench._version import __version__
from pytest_llmbench.result import TestResult
from pytest_llmbench.session.handoff import Delivery
from pytest_llmbench.session.recorder import Recorder
from pytest_llmbench.session.report_html import write_report

WRITE_TARGET_S = 2.0
SIZE_TARGET_MB = 8.0
DRAW_TARGET_S = 3.0
SMALL_SIZE_TARGET_MB = 5.0
MB = 2**20


def synthetic_result(n: int, rng: random.Random) -> TestResult:
    ttft = rng.lognormvariate(-2.3, 0.5)  # ~100 ms
    gaps = [rng.lognormvariate(-4.0, 0.35) for _ in range(rng.randint(20, 80))]  # ~18 ms
    latency = ttft + sum(gaps)
    error = rng.random() < 0.01
    wrong = not error and rng.random() < 0.03
    result = TestResult(
        test_id=f"case_{n:05d}", test_name=f"Case {n}: a prompt about topic {n % 97}", success=not error,
        response_text="" if error else f"The answer to case {n} is {n * 7}. " * 4,
        execution_time=latency, prompt_tokens=40 + n % 60, completion_tokens=None if error else len(gaps) + 1,
        model=f"model-{n % 3}", category=f"category_{n % 8}", attempts=1, ttft=None if error else ttft,
        itl=[] if error else gaps, tpot=None if error else sum(gaps) / len(gaps), e2e_latency=latency,
        error_message="HTTP 503 (Service Unavailable): overloaded" if error else None, stream=True)
    if not error:
        result.tokens_per_second = (len(gaps) + 1) / latency
        check = {"name": "contains", "passed": not wrong, "expected": "answer", "detail": "not found" if wrong else ""}
        result.evaluation_result = {"passed": not wrong, "checks": [check]}
    return result


def make_batch(tests: int, folder: Path, seed: int = 7) -> tuple[dict[str, Any], float]:
    """A run of `tests` results recorded by the controller's Recorder; returns the batch and its write time."""
    rng = random.Random(seed)
    recorder = Recorder(folder)
    clock = 1000.0
    for n in range(tests):
        result = synthetic_result(n, rng)
        clock += rng.expovariate(50.0)  # arrivals at about 50 requests/s
        passed = result.success and bool((result.evaluation_result or {}).get("passed"))
        recorder.record(Delivery(result, f"case_{n:05d}", None, (clock, clock + result.execution_time)), passed=passed)
    run = {"plugin_version": __version__, "pytest_version": pytest.__version__,
           "python_version": platform.python_version(), "hostname": "synthetic", "endpoint": "http://127.0.0.1:8000/v1",
           "models": ["model-0", "model-1", "model-2"], "workers": 2, "start_time": "2026-01-01T00:00:00+00:00",
           "end_time": "2026-01-01T00:03:20+00:00", "options": {"stream": True, "api_key": "***"}}
    batch = recorder.build_batch(run=run, partial_reason=None, wall_time_s=clock - 1000.0)
    started = time.perf_counter()
    recorder.write_batch(batch, datetime.now(timezone.utc))
    return batch, time.perf_counter() - started


def timed_writes(batch: dict[str, Any], folder: Path, repeats: int) -> tuple[list[float], Path]:
    times = []
    path = folder / "report.html"
    for _ in range(repeats):
        started = time.perf_counter()
        write_report([(batch, f"synthetic {len(batch['tests']):,}-test run", folder)], path)
        times.append(time.perf_counter() - started)
    return times, path


PAINTED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now()))))"


def draw_times(path: Path, repeats: int, parts: list[dict[str, float]]) -> list[float] | str:
    """Seconds from navigation to every chart and the table drawn, per fresh page; or why it could not run."""
    executable = shutil.which("chromium")
    if executable is None:
        return "no chromium (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "no playwright (pip install playwright)"
    times: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            page.goto(path.as_uri(), wait_until="commit")
            page.wait_for_function("window.llmbenchReady === true", timeout=60_000, polling=20)
            # performance.now() counts from the navigation's start; two animation frames after the report's script
            # ended, the page has been laid out and painted: parse, scripts, charts, table and layout included
            times.append(page.evaluate(PAINTED) / 1000.0)
            parts.append(page.evaluate("window.llmbenchTimings"))
            charts = page.evaluate("window.llmbenchCharts.length")
            if errors or charts < 10:
                raise SystemExit(f"report did not draw: {charts} charts, errors {errors}")
            page.close()
        browser.close()
    return times


def screenshot(png: Path, tests: int = 1000) -> None:
    """The README's picture: the top of a report (header, figures, distributions) at a readable width."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="llmbench-report-shot-") as tmp:
        batch, _ = make_batch(tests, Path(tmp))
        _, path = timed_writes(batch, Path(tmp), 1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1700}, device_scale_factor=1)
            page.goto(path.as_uri())
            page.wait_for_function("window.llmbenchReady === true")
            page.screenshot(path=str(png))
            browser.close()
    print(f"screenshot: {png}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--screenshot", type=Path, help="only write a PNG of a 1,000-test report here (README)")
    args = parser.parse_args(argv)
    if args.screenshot:
        screenshot(args.screenshot)
        return 0
    ok = True
    with tempfile.TemporaryDirectory(prefix="llmbench-report-bench-") as tmp:
        for tests, size_target in ((args.tests, SIZE_TARGET_MB), (args.small, SMALL_SIZE_TARGET_MB)):
            folder = Path(tmp) / str(tests)
            started = time.perf_counter()
            batch, batch_s = make_batch(tests, folder)
            print(f"\n{tests} tests: recorded in {time.perf_counter() - started:.1f} s; batch file written in "
                  f"{batch_s:.3f} s ({next(folder.glob('batch_results_*.json')).stat().st_size / MB:.2f} MB)")
            writes, path = timed_writes(batch, folder, args.repeats)
            size_mb = path.stat().st_size / MB
            best, median = min(writes), statistics.median(writes)
            size_ok = size_mb <= size_target
            print(f"  report written: fastest {best:.3f} s, median {median:.3f} s of {args.repeats} "
                  f"= {best / batch_s:.2f} x the batch file's write; size {size_mb:.2f} MB "
                  f"({size_mb / size_target:.2f} of the {size_target:g} MB target) — {verdict(size_ok)}")
            ok &= size_ok
            if tests != args.tests:
                continue
            write_ok = median <= WRITE_TARGET_S
            print(f"  write time: median {median:.3f} s = {median / WRITE_TARGET_S:.2f} of the "
                  f"{WRITE_TARGET_S:g} s target — {verdict(write_ok)}")
            parts: list[dict[str, float]] = []
            drawn = draw_times(path, args.repeats, parts)
            if isinstance(drawn, str):
                print(f"  drawing: not measured: {drawn}")
                continue
            draw_median = statistics.median(drawn)
            draw_ok = draw_median <= DRAW_TARGET_S
            print(f"  drawn in headless Chromium (navigation to every chart and the table done): fastest "
                  f"{min(drawn):.2f} s, median {draw_median:.2f} s of {len(drawn)} = {draw_median / DRAW_TARGET_S:.2f}"
                  f" of the {DRAW_TARGET_S:g} s target — {verdict(draw_ok)}")
            ok &= write_ok and draw_ok
            fastest = parts[drawn.index(min(drawn))]
            print("  in the fastest: script started at {:.0f} ms; ".format(fastest.pop("start")) + ", ".join(
                f"{name} {ms:.0f} ms" for name, ms in fastest.items()) + "; the rest is parsing, layout and paint")
    print(f"\n{verdict(ok)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
