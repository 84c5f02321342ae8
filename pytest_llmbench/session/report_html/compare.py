"""Comparison of runs: headline figures side by side and the tests whose latency moved most.

The first run is the reference: a change is coloured better or worse by the direction its figure should move.
"""

from __future__ import annotations

from typing import Any

from ...batch import Batch, Row
from ...metrics.baseline import DEFAULT_METRICS, MIN_CHANGE
from ...metrics.baseline_tests import delta_of, keys_of, latencies, only, shared_aggregate
from ...metrics.samples import level_of, shortfall, vouched
from ...metrics.significance import Significance, describe, judge_change
from ...metrics.stats import finite_number, format_value, metric_of
from .build import HEADLINE, TIMELINE, shown

TEST_CHANGES_SHOWN = 15  # the largest slow-downs, and a third as many speed-ups


def _compared_label(key: str) -> str:
    metric = metric_of(key)
    return f"{metric.title} {key.split('_', 1)[0]}" if metric is not None else key


# The one table of a comparison: the headline figures and every figure --llmbench-compare compares.
COMPARED = HEADLINE + tuple((key, _compared_label(key), metric.better if (metric := metric_of(key)) else None)
                            for key in DEFAULT_METRICS if key not in {known for known, _, _ in HEADLINE})


def verdict(change: float | None, better: str | None, tested: Significance | None = None) -> str:
    """"better", "worse" or "" (no change worth a colour: not significant or under --llmbench-compare-min-change's
    default, or a figure with no good direction)."""
    if change is None or better is None or abs(change) < MIN_CHANGE or (tested is not None and not tested.significant):
        return ""
    return "better" if (change < 0) == (better == "lower") else "worse"


def shared_figures(batches: list[Batch]) -> tuple[list[dict[str, Any]], list[list[Row]], dict[str, int]]:
    """Each run's figures and rows on the tests every run has (by test id and model), as ``--llmbench-compare``
    compares two runs, and how many tests that is (``shared``) and how many are left out (``left_out``)."""
    rows: list[list[Row]] = [[row for row in batch.get("tests") or [] if isinstance(row, dict)] for batch in batches]
    every = [keys_of(run_rows) for run_rows in rows]
    shared = set.intersection(*every)
    left_out = len(set.union(*every) - shared)
    aggregates = [batch.get("aggregate") or {} for batch in batches]
    if left_out:
        aggregates = [{**whole, **shared_aggregate(run_rows, shared, whole)}
                      for whole, run_rows in zip(aggregates, rows)]
        rows = [only(run_rows, shared) for run_rows in rows]
    return aggregates, rows, {"shared": len(shared), "left_out": left_out}


def comparison(aggregates: list[dict[str, Any]], rows: list[list[Row]]) -> list[dict[str, Any]]:
    """Headline figures side by side, each later run's change against the first, coloured better or worse when the
    change is significant on both runs' per-request values (metrics/significance.py); its test in the title."""
    table = []
    for key, label, better in COMPARED:
        raw = [finite_number(vouched(aggregate).get(key)) for aggregate in aggregates]
        cells = []
        for aggregate, value, run_rows in zip(aggregates, raw, rows):
            change = None if value is None or not raw[0] else (value - raw[0]) / abs(raw[0]) * 100.0
            tested = judge_change(key, rows[0], run_rows, level_of(aggregate)) if change is not None else None
            cells.append({"value": shown(key, aggregate), "why": shortfall(key, aggregate) or "",
                          "change": None if change is None else f"{change:+.1f}%",
                          "verdict": verdict(change, better, tested), "test": describe(tested) if tested else ""})
        if any(value is not None or cell["value"] == "-" for value, cell in zip(raw, cells)):
            table.append({"label": label, "cells": cells})
    return table


def test_changes(first: Batch, last: Batch) -> dict[str, Any]:
    """Per test, on the tests both runs share: the largest latency changes from the first run to the last (medians
    over ``--llmbench-repeat``'s repeats; a change its repeats show is not significant stays uncoloured)."""
    before, after = latencies(first.get("tests") or []), latencies(last.get("tests") or [])
    shared = before.keys() & after.keys()
    level = level_of(last.get("aggregate") or {})
    changes = sorted((delta_of(key, before[key], after[key], level) for key in shared),
                     key=lambda delta: delta.change_pct or 0.0, reverse=True)
    slower = [d for d in changes if (d.change_pct or 0.0) > 0][:TEST_CHANGES_SHOWN]
    faster = [d for d in reversed(changes) if (d.change_pct or 0.0) < 0][:TEST_CHANGES_SHOWN // 3]
    return {
        "shared": len(shared), "only_first": len(before.keys() - shared), "only_last": len(after.keys() - shared),
        "rows": [{"id": d.test_id, "model": d.model, "before": format_value("x_ms", d.baseline_s * 1000),
                  "after": format_value("x_ms", d.now_s * 1000), "change": f"{d.change_pct or 0.0:+.1f}%",
                  "verdict": "" if d.significant is False else verdict(d.change_pct, TIMELINE.better)}
                 for d in slower + faster],
    }
