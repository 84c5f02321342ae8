"""The load lines of the summary: how the load was offered and met, and a sweep's table with its knee."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...metrics.capacity import answer_text, baseline_text
from ...metrics.samples import rule, vouched

SWEEP_COLUMNS = (("level", "level", "{}"), ("req", "requests", "{}"), ("sent/s", "achieved_rate", "{:.2f}"),
                 ("req/s", "request_throughput", "{:.2f}"), ("tok/s", "output_throughput", "{:.1f}"),
                 ("good/s", "goodput_throughput", "{:.2f}"), ("err%", "error_rate", "{:.1%}"),
                 ("p50 ms", "p50_latency_ms", "{:.1f}"), ("p99 ms", "p99_latency_ms", "{:.1f}"),
                 ("TTFT50", "p50_ttft_ms", "{:.1f}"), ("TTFT99", "p99_ttft_ms", "{:.1f}"),
                 ("TPOT50", "p50_tpot_ms", "{:.1f}"), ("SLOs", "meets_slos", "{}"))


def load_lines(load: Mapping[str, Any] | None, sweep: Mapping[str, Any] | None) -> list[str]:
    """Nothing for a plain run; the offered and achieved load, warm-up, skips and the sweep otherwise."""
    if not load or not (load.get("concurrency") or load.get("request_rate") or sweep
                        or load["warmup"]["requests"] or load.get("duration_s") or load.get("repeat", 1) > 1):
        return []
    if sweep:
        offered = [f"sweep {sweep['kind']} " + ",".join(level["level"] for level in sweep["levels"])]
    else:
        offered = [f"concurrency {load['concurrency']}" if load.get("concurrency") else "concurrency 1/process"]
    if load.get("request_rate"):
        offered.append(f"offered {load['request_rate']:g} req/s (burstiness {load['burstiness']:g})")
    if load.get("achieved_rate"):
        offered.append(f"sent {load['achieved_rate']:.2f} req/s")
    lag = load.get("schedule_lag_ms") or {}
    if lag.get("count"):
        offered.append(f"schedule lag p50 {lag['p50']:.2f} ms p99 {lag['p99']:.2f} ms")
    lines = ["load: " + " | ".join(offered)]
    extras = []
    if load["warmup"]["requests"]:
        extras.append(f"warm-up {load['warmup']['requests']} requests ({load['warmup']['errors']} errors)")
    if load.get("duration_skipped"):
        extras.append(f"{load['duration_skipped']} tests skipped after --llmbench-duration")
    if load.get("cancelled_in_flight"):
        extras.append(f"{load['cancelled_in_flight']} requests cancelled in flight")
    if len(load.get("hosts") or {}) > 1:
        extras.append("hosts " + ", ".join(f"{host} {n}" for host, n in sorted(load["hosts"].items())))
    if extras:
        lines.append("load: " + " | ".join(extras))
    if sweep:
        lines += sweep_table(sweep["levels"], sweep.get("knee"))
    return lines


def sweep_table(rows: list[dict[str, Any]], knee: str | None) -> list[str]:
    table = [[title for title, _, _ in SWEEP_COLUMNS]]
    short = False
    for row in rows:
        shown = vouched(row)  # "-" for a percentile on too few samples: metrics/samples.py
        short = short or any(shown[key] is None and row[key] is not None for key in row)
        table.append(["-" if shown.get(key) is None else ("yes" if row[key] else "NO") if key == "meets_slos"
                      else form.format(row[key]) for _, key, form in SWEEP_COLUMNS])
    widths = [max(len(line[n]) for line in table) for n in range(len(SWEEP_COLUMNS))]
    lines = ["sweep:"] + ["  " + " ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in table]
    lines += [f"  -: {rule(rows[0])}"] if short else []
    lines.append(f"knee: {knee} (the highest level that meets the SLOs)" if knee
                 else "knee: none (no level meets the SLOs)")
    return lines + [f"sweep WARNING: level {row['level']}: {note}" for row in rows for note in row.get("undecided")
                    or []]


def capacity_lines(capacity: Mapping[str, Any] | None) -> list[str]:
    """The capacity search's table (one row per probe, in the order probed) and its answer; nothing without one."""
    if not capacity:
        return []
    names = list(capacity["objectives"])
    table = [["level", "req", "judged", "attainment", "interval", "verdict",
              *(name.split(" ", 1)[0] + " ms" for name in names), "s"]]
    for probe in capacity["probes"]:
        low, high = probe["attainment_ci"]
        verdict = probe["verdict"] + (" (over-saturated)" if probe["over_saturated"] else "")
        table.append([probe["label"], str(probe["requests"]), str(probe["counted"]),
                      "-" if probe["attainment"] is None else f"{probe['attainment']:.1%}",
                      "-" if low is None or high is None else f"[{low:.1%}, {high:.1%}]", verdict,
                      *("-" if value is None else f"{value:.1f}" for value in probe["figures"].values()),
                      f"{probe['duration_s']:.1f}"])
    widths = [max(len(line[n]) for line in table) for n in range(len(table[0]))]
    lines = [f"capacity search ({capacity['kind']}): target {capacity['target']:.1%} of requests meeting "
             + " and ".join(names) + f"; intervals {capacity['confidence_level']:.0%} over each level's looks"]
    lines += ["  " + " ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in table]
    lines += [f"  level {p['label']}: {p['unvouched']} answers left out, their token times cannot be vouched for "
              "(timing_degraded)" for p in capacity["probes"] if p["unvouched"]]
    compared = baseline_text(capacity)
    return [*lines, answer_text(capacity), *([compared] if compared else [])]
