"""What one run's report shows, taken from its batch file: plain data for the template and the charts.

Everything here reads the batch defensively (``.get`` with defaults): a batch from an older version, a partial
run, or one without the optional sections (timeline, sweep, hardware, server) still makes a report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ...batch import Batch, Row, row_value
from ...metrics.baseline import MIN_CHANGE, better_of
from ...metrics.samples import interval_text, short_of, shortfall, vouched
from ...metrics.stats import POOLED, finite_number, format_value, quantiles_key
from ...result import METRICS, Metric
from .breakdown import breakdown
from .capacity import capacity_view
from .sections import (
    batch_timeline,
    derived_timeline,
    hardware_columns,
    hardware_note,
    last_answer,
    level_starts,
    pareto,
    server_columns,
    server_figures,
    sweep_view,
    warmup,
)
from .verdict import failure_groups, load_line, reason_of, slos, why_failed

# What the report shows of each metric is declared in result.METRICS: its distribution, headline figures, group
# table columns and column in the table of every test. Nothing below (nor the template or templates/js/) names one.
DISTRIBUTIONS = tuple(metric for metric in POOLED if metric.distribution)
COLUMNS = tuple(metric for metric in METRICS if metric.column)
TIMELINE = next(metric for metric in METRICS if metric.field == "execution_time")  # the y of the timeline chart
SLOWEST = (TIMELINE, next(metric for metric in METRICS if metric.field == "ttft"))  # beside the slowest tests
# The workload's token lengths as the server's usage counted them (an estimate is left out): (column, row field,
# title, the row field of the length a generated test asked for); drawn with the metrics' distributions, and
# against the lengths asked for.
WORKLOAD = (("input_tokens", "prompt_tokens", "Input tokens (server usage)", "requested_input_tokens"),
            ("output_tokens", "completion_tokens", "Output tokens (server usage)", "requested_output_tokens"))
MARKED = ("p50", "p90", "p99")
FAILURES_SHOWN = 200
SLOWEST_SHOWN = 10

# Headline figures: (summary key, label, which way is better). Units follow stats.format_value.
HEADLINE = (
    ("total_tests", "tests", None),
    ("passed_tests", "passed", "higher"),
    ("success_rate", "request success", "higher"),
    ("goodput", "goodput", "higher"),
    ("request_throughput", "request throughput", "higher"),
    ("output_throughput", "output throughput", "higher"),
    *((metric.summary_key(stat), metric.stat_label(stat), metric.better) for metric in POOLED
      for stat in metric.headline),
    ("evaluation_pass_rate", "answer checks passed", "higher"),
    ("mean_reasoning_score", "reasoning score", "higher"),
    ("duration_s", "duration", None),
)
# The per-category and per-model tables: (summary key, column title)
GROUP_COLUMNS = (
    ("total_tests", "tests"),
    ("success_rate", "success"),
    ("goodput", "goodput"),
    ("evaluation_pass_rate", "checks passed"),
    ("schema_valid", "schema valid"),
    *((metric.summary_key(stat), metric.stat_label(stat)) for metric in POOLED for stat in metric.groups),
    ("mean_reasoning_score", "reasoning"),
)


def shown(key: str, figures: dict[str, Any]) -> str:
    """A figure as the report prints it: "-" for a percentile on too few samples (metrics/samples.py)."""
    return "-" if shortfall(key, figures) else format_value(key, figures.get(key))


def _ms(value: Any) -> float | None:
    number = finite_number(value)
    return None if number is None else round(number * 1000.0, 3)


def label_of(row: Mapping[str, Any]) -> str:
    """The test as its node id names it (``t01[c16-r3]``: repetition, sweep level, model), else its test id."""
    return str(row.get("label") or row.get("test_id", ""))


def _shown(metric: Metric, value: Any) -> float | None:
    """A row's value as the report shows it: times in ms, other figures to two decimals."""
    number = finite_number(value)
    if number is None:
        return None
    return round(number * 1000.0, 3) if metric.seconds else round(number, 2)


def metric_view() -> dict[str, Any]:
    """What the script (templates/js/) needs to know of the metrics: distributions, token lengths asked for, table
    columns and the timeline's figure."""
    return {
        "distributions": [[m.key, m.distribution, m.unit, " (per chunk, from 201 pooled quantiles)" if m.per_chunk
                           else "", "token gaps" if m.per_chunk else "requests"] for m in DISTRIBUTIONS]
        + [[key, title, "tok", "", "requests"] for key, _, title, _ in WORKLOAD],
        "requested": [[key, requested, title] for key, _, title, requested in WORKLOAD],
        "columns": [[m.key, m.label] for m in COLUMNS],
        "timeline": [TIMELINE.key, TIMELINE.title, TIMELINE.unit],
    }


def outcome_of(row: Row) -> str:
    """passed / failed (a check, an SLO or a hook failed it) / error (no usable answer)."""
    if not row.get("success"):
        return "error"
    return "passed" if row.get("passed", True) else "failed"


def link_base(batch_dir: Path | None, report_dir: Path) -> str | None:
    """The URL prefix from the report to the batch's folder (relative; an absolute file URL across drives)."""
    if batch_dir is None:
        return None
    try:
        relative = os.path.relpath(batch_dir.resolve(), report_dir.resolve())
    except ValueError:  # another drive on Windows
        return batch_dir.resolve().as_uri() + "/"
    return "" if relative == "." else "/".join(quote(part) for part in Path(relative).parts) + "/"


def file_link(base: str | None, completion_file: Any) -> str | None:
    """A test's completion file as a URL from the report; every character that is not a path's is %-escaped.

    Only a relative path inside the run folder makes a link: a crafted ``//host/share/x.txt`` (a protocol-relative
    URL, a network share on Windows), ``/etc/passwd`` or ``../../x`` makes none."""
    if base is None or not isinstance(completion_file, str) or not completion_file:
        return None
    parts = completion_file.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") for part in parts) or ":" in parts[0]:
        return None
    return base + "/".join(quote(part) for part in parts)


def _tests(rows: list[Row], batch_dir: Path | None, report_dir: Path) -> dict[str, Any]:
    """Columns, not objects: a 10,000-test report stays small and parses fast; repeated texts go by index."""
    names: dict[str, int] = {}
    base = link_base(batch_dir, report_dir)

    def index(text: Any) -> int:
        return names.setdefault("" if text is None else str(text), len(names))

    shown = {m.key: m for m in (*COLUMNS, *DISTRIBUTIONS, TIMELINE)}
    tests: dict[str, list[Any]] = {key: [] for key in (
        "id", "name", "category", "model", "outcome", "level", *shown, "tokens", "start", "file",
        *(key for key, _, _, _ in WORKLOAD), *(requested for _, _, _, requested in WORKLOAD))}
    for row in rows:
        tests["id"].append(label_of(row))
        tests["name"].append(str(row.get("test_name", "")))
        tests["category"].append(index(row.get("category")))
        tests["model"].append(index(row.get("model")))
        tests["outcome"].append(outcome_of(row))
        tests["level"].append(index(row.get("level")))  # a sweep's level: its distributions on demand
        timed = not row.get("timing_degraded")  # the client fell behind: its token times are not known
        for key, metric in shown.items():  # a failed request's figures say how it failed: not shown, as in stats
            known = row.get("success") and (timed or not metric.arrival_timed)
            tests[key].append(_shown(metric, row_value(row, metric.row_field)) if known else None)
        tests["tokens"].append(row.get("completion_tokens"))
        counted = row.get("success") and not row.get("tokens_estimated")
        for key, field, _, requested in WORKLOAD:
            tests[key].append(finite_number(row_value(row, field)) if counted else None)
            tests[requested].append(finite_number(row.get(requested)))
        start = finite_number(row.get("start_s"))
        tests["start"].append(None if start is None else round(start, 4))
        tests["file"].append(file_link(base, row.get("completion_file")))
    tests["texts"] = list(names)
    unused = [asked for *_, asked in WORKLOAD if all(v is None for v in tests[asked])]
    for key in unused + ([] if any(row.get("level") for row in rows) else ["level"]):
        del tests[key]  # columns most runs do not have: not written at all
    return tests


def _percentiles(aggregate: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """The marks on each distribution's charts: none for a percentile on too few samples."""
    marked = vouched(aggregate)
    return {metric.key: {mark: finite_number(marked.get(metric.summary_key(mark))) for mark in MARKED}
            for metric in DISTRIBUTIONS}


def _quantiles(batch: Batch) -> dict[str, list[float]]:
    """Per-chunk metrics' distributions, from the batch's pooled quantiles (their values are too many to keep)."""
    stored = batch.get("distributions") or {}
    return {metric.key: [q for q in stored.get(quantiles_key(metric)) or [] if finite_number(q) is not None]
            for metric in DISTRIBUTIONS if metric.per_chunk}


def _level_percentiles(sweep: Any) -> dict[str, dict[str, dict[str, float | None]]]:
    """Each sweep level's p50/p90/p99 marks, for its distributions drawn on demand (none on too few samples)."""
    levels = sweep.get("levels") if isinstance(sweep, dict) else None
    return {str(level.get("level")): _percentiles(level) for level in levels or [] if isinstance(level, dict)}


def baseline_chart(batch: Batch, label: str, report_dir: Path) -> dict[str, Any]:
    """The ``--llmbench-compare`` baseline as the distributions draw it beside the run: its values and marks."""
    rows = [row for row in batch.get("tests") or [] if isinstance(row, dict)]
    return {"label": label, "tests": _tests(rows, None, report_dir),
            "percentiles": _percentiles(batch.get("aggregate") or {}), "quantiles": _quantiles(batch)}


def _group_table(groups: dict[str, Any]) -> list[dict[str, str]]:
    table = []
    for name, figures in (groups or {}).items():
        if not isinstance(figures, dict):
            continue
        table.append({"name": str(name), **{key: shown(key, figures) for key, _ in GROUP_COLUMNS}})
    return table


def _failures(rows: list[Row]) -> list[dict[str, Any]]:
    failed = [row for row in rows if outcome_of(row) != "passed"]
    shown = []
    for row in failed[:FAILURES_SHOWN]:
        failure: Mapping[str, Any] = row.get("failure") or {}
        shown.append({
            "id": label_of(row),
            "name": str(row.get("test_name", "")),
            "model": str(row.get("model") or ""),
            "outcome": outcome_of(row),
            "reason": reason_of(row),
            "error": row.get("error_message") or "",
            "checks": [str(c) for c in failure.get("checks") or []],
            "slo_misses": [str(m) for m in failure.get("slo_misses") or []],
            "answer": str(failure.get("answer_excerpt") or ""),
            "trace": str(row.get("trace_id") or ""),  # to find the request's spans on the server
        })
    return shown


def _slowest(rows: list[Row]) -> list[dict[str, Any]]:
    timed = [row for row in rows if row.get("success") and finite_number(row_value(row, TIMELINE.row_field))]
    timed.sort(key=lambda row: float(row_value(row, TIMELINE.row_field)), reverse=True)
    return [{"id": label_of(row), "name": str(row.get("test_name", "")),
             "model": str(row.get("model") or ""),
             "figures": [format_value(metric.summary_key("x"), _shown(metric, row_value(row, metric.row_field)))
                         for metric in SLOWEST],
             "tokens": format_value("n", row.get("completion_tokens"))}
            for row in timed[:SLOWEST_SHOWN]]


def _header(batch: Batch, label: str) -> dict[str, Any]:
    run = batch.get("run") or {}
    aggregate = batch.get("aggregate") or {}
    options = run.get("options") or {}
    shown = {key: value for key, value in options.items() if value not in (None, "", [], False)}
    return {
        "label": label,
        "endpoint": run.get("endpoint") or "",
        "models": ", ".join(str(m) for m in run.get("models") or []),
        "versions": f"pytest-llmbench {run.get('plugin_version', '?')} · pytest {run.get('pytest_version', '?')}"
                    f" · Python {run.get('python_version', '?')}",
        "host": run.get("hostname") or "",
        "start": run.get("start_time") or "",
        "end": run.get("end_time") or "",
        "workers": run.get("workers"),
        "partial": bool(batch.get("partial")),
        "partial_reason": batch.get("partial_reason") or "",
        "total": aggregate.get("total_tests", 0),
        "passed": aggregate.get("passed_tests", 0),
        "failed": (aggregate.get("total_tests") or 0) - (aggregate.get("passed_tests") or 0),
        "options": sorted((str(k), v if isinstance(v, str) else str(v)) for k, v in shown.items()),
        "behind": aggregate.get("timing_degraded_requests") or 0,
        "alerts": [str(a) for a in batch.get("alerts") or []],
        "lost": batch.get("lost_tests") or [],
    }


def _gates(batch: Batch) -> dict[str, Any] | None:
    gates = batch.get("gates")
    if not isinstance(gates, dict):
        return None
    comparison = gates.get("comparison") or None
    deltas = delta_rows([dict(d) for d in comparison.get("deltas") or []] if comparison else [])
    return {
        "passed": bool(gates.get("passed", True)),
        "slo_misses": [str(m.get("message") if isinstance(m, dict) else m) for m in gates.get("slo_misses") or []],
        "baseline": None if comparison is None else str(comparison.get("baseline") or ""),
        "baseline_note": str(gates.get("baseline_note") or ""),
        "regressions": [str(r) for r in comparison.get("regressions") or []] if comparison else [],
        "deltas": deltas,
        "passed_gates": [str(g) for g in gates.get("passed_gates") or []],  # listed by newer batches
    }


def delta_rows(deltas: list[dict[str, Any]], min_change: float = MIN_CHANGE) -> list[dict[str, str]]:
    """A baseline table's rows (``Delta``s as dicts): each figure before and now, and the change, coloured only when
    it is significant (or untestable) and at least ``min_change`` percent (metrics/significance.py)."""
    rows = []
    for delta in deltas:
        name, change = str(delta.get("name")), finite_number(delta.get("change_pct"))
        before, now = (short_of(name, delta.get(f"{side}_count")) for side in ("baseline", "current"))
        change = None if before or now else change  # a percentile on too few samples (metrics/samples.py)
        better = _better(name)
        noted = delta.get("significant") is not False and change is not None and abs(change) >= min_change
        verdict = "" if change is None or better is None or change == 0 or not noted else (
            "better" if (change < 0) == (better == "lower") else "worse")
        rows.append({"name": name, "baseline": "-" if before else format_value(name, delta.get("baseline")),
                     "current": "-" if now else format_value(name, delta.get("current")),
                     "change": "n/a" if change is None else f"{change:+.1f}%", "verdict": verdict,
                     "significance": _significance_text(delta)})
    return rows


def _significance_text(delta: dict[str, Any]) -> str:
    """"p=0.003 [+4.1, +9.8]%", "not significant (p=0.41)" or "" (untested), from a batch's delta."""
    p_value = finite_number(delta.get("p_value"))
    if p_value is None:
        return ""
    interval = delta.get("change_interval")
    sides = " [" + ", ".join("open" if finite_number(side) is None else f"{side:+.1f}" for side in interval) + "]%" \
        if isinstance(interval, list) and len(interval) == 2 else ""
    return f"p={p_value:.3g}{sides}" if delta.get("significant") else f"not significant (p={p_value:.2g}){sides}"


def _better(key: str) -> str | None:
    """Which way a summary figure should move: the report's headline says, else metrics/baseline.py."""
    for known, _, better in HEADLINE:
        if known == key:
            return better
    return better_of(key)


def build_run(batch: Batch, *, label: str, batch_dir: Path | None, report_dir: Path) -> dict[str, Any]:
    """One run's part of the report: header and tables for the template, `chart` data for the scripts."""
    rows = [row for row in batch.get("tests") or [] if isinstance(row, dict)]
    aggregate = batch.get("aggregate") or {}
    hardware = batch.get("hardware") if isinstance(batch.get("hardware"), dict) else None
    server = batch.get("server") if isinstance(batch.get("server"), dict) else None
    run_slos = slos((batch.get("run") or {}).get("options") or {})
    groups = failure_groups(rows, label_of)
    chart = {
        "label": label,
        "tests": _tests(rows, batch_dir, report_dir),
        "percentiles": _percentiles(aggregate),
        "quantiles": _quantiles(batch),
        "timeline": batch_timeline(batch, last_answer(rows)) or derived_timeline(rows),
        "sweep": sweep_view(batch.get("sweep"), run_slos),
        "capacity": capacity_view(batch.get("capacity")),
        "hardware": hardware_columns(hardware or {}),
        "hardware_aligned": bool(hardware and finite_number(hardware.get("start_s")) is not None),
        "server": server_columns(server) if server else None,
        "server_aligned": bool(server and finite_number(server.get("start_s")) is not None),
        "breakdown": breakdown(rows),
        "levels": level_starts(rows),
        "level_percentiles": _level_percentiles(batch.get("sweep")),
        "warmup": warmup(batch),
        "pareto": pareto(aggregate),
    }
    return {
        "header": _header(batch, label),
        "figures": {key: shown(key, aggregate) for key, _, _ in HEADLINE},
        "shortfalls": {key: shortfall(key, aggregate) or "" for key, _, _ in HEADLINE},  # the "-" figures' why
        "intervals": {key: "" if shortfall(key, aggregate) else interval_text(key, aggregate)
                      for key, _, _ in HEADLINE},
        "raw": {key: finite_number(vouched(aggregate).get(key)) for key, _, _ in HEADLINE},
        "gates": _gates(batch),
        "categories": _group_table(batch.get("categories") or {}),
        "models": _group_table(batch.get("models") or {}),
        "apis": _group_table(batch.get("apis") or {}),
        "failures": _failures(rows),
        "failure_groups": groups,
        "why_failed": why_failed(batch, groups),
        "load": load_line(batch),
        "slos": run_slos,
        "slowest": _slowest(rows),
        "hardware": hardware_note(hardware) if hardware else None,
        "server": server_figures(server) if server else None,
        "sweep": chart["sweep"],
        "capacity": chart["capacity"],
        "chart": chart,
    }
