"""The report's first screen: the question a run answers and its answer, before any figure.

A sweep asks which load still meets the SLOs (the knee, and the SLOs with their limits); a load run asks how the
server did under a given load (the target line says which); a failed run asks why (its failed gates and its
failed tests by reason). Pooled figures never stand beside these verdicts as headline numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...batch import Batch, Row
from ...metrics.slo import parse_run_slos
from ...metrics.stats import finite_number

_STATUS = re.compile(r"\bHTTP (\d{3})\b")
GROUP_TESTS_SHOWN = 50  # each reason's expandable list of its tests


def slos(options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run SLOs a run was judged by, parsed as the gates parsed them: text, summary key, op and limit."""
    specs = options.get("slo") or []
    try:
        parsed = parse_run_slos([str(s) for s in (specs if isinstance(specs, list) else [specs])])
    except ValueError:  # a batch from another version: show none rather than a wrong limit
        return []
    return [{"text": slo.text, "key": slo.key, "op": slo.op, "limit": slo.limit} for slo in parsed]


def _rate(value: Any) -> str | None:
    number = finite_number(value)
    return None if number is None else f"{number:.3g} req/s"


def load_line(batch: Batch) -> list[str]:
    """What load ran, in the words a user asks for it: suites, streaming, concurrency or rate, offered and achieved."""
    run = batch.get("run") or {}
    options: Mapping[str, Any] = run.get("options") or {}
    load: Mapping[str, Any] = batch.get("load") or {}
    suites = options.get("suite") or []
    names = [Path(str(s)).name for s in (suites if isinstance(suites, list) else [suites]) if s]
    parts = [("suite " if len(names) == 1 else "suites ") + ", ".join(names)] if names else []
    parts.append("streaming" if options.get("stream") else "not streaming")
    sweep = batch.get("sweep")
    if isinstance(sweep, dict) and sweep.get("levels"):
        levels = [str(level.get("level")) for level in sweep["levels"] if isinstance(level, dict)]
        parts.append(f"sweep of {sweep.get('kind') or 'load'}: " + ", ".join(levels))
    elif load:  # a batch without its load section (an older or a synthetic one) says nothing of it
        concurrency = finite_number(load.get("concurrency"))
        parts.append(f"concurrency {concurrency:g}" if concurrency else "one request at a time per worker")
        offered = _rate(load.get("request_rate"))
        parts.append(f"offered {offered}" if offered else "offered as fast as answered")
    achieved = _rate(load.get("achieved_rate"))
    if achieved and not (isinstance(sweep, dict) and sweep.get("levels")):
        parts.append(f"achieved {achieved}")
    for key, label in (("repeat", "repeats"), ("duration_s", "s duration"), ("ramp_s", "s ramp")):
        value = finite_number(load.get(key))
        if value and (key != "repeat" or value > 1):
            parts.append(f"{value:g} {label}")
    return parts


def reason_of(row: Row) -> str:
    """Why a test did not pass, as one short group name: the HTTP status, the error's class, the check or SLO."""
    if not row.get("success"):
        message = str(row.get("error_message") or "")
        status = _STATUS.search(message)
        if status:
            return f"HTTP {status.group(1)}"
        head = message.split(":", 1)[0].strip()[:60]  # the error's class or kind: "ReadTimeout", "connection refused"
        return head or "error without a message"
    failure: Mapping[str, Any] = row.get("failure") or {}
    checks = [str(c) for c in failure.get("checks") or []]
    if checks:
        return "check " + checks[0].split(":", 1)[0].strip()[:60]
    misses = [str(m) for m in failure.get("slo_misses") or []]
    if misses:
        return "SLO " + misses[0].split()[0][:60]
    return "failed by a hook or a fixture"


def failure_groups(rows: list[Row], label_of: Any) -> list[dict[str, Any]]:
    """The failed tests grouped by reason, most first, each with its count and its tests' labels."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row.get("success") and row.get("passed", True):
            continue
        groups.setdefault(reason_of(row), []).append(str(label_of(row)))
    return [{"reason": reason, "count": len(tests), "tests": tests[:GROUP_TESTS_SHOWN],
             "more": max(0, len(tests) - GROUP_TESTS_SHOWN)}
            for reason, tests in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))]


def why_failed(batch: Batch, groups: list[dict[str, Any]]) -> list[str]:
    """The run's failed gates (each message) and its failed tests by reason: what a failed run says first."""
    gates = batch.get("gates")
    lines = [str(f.get("message") or f.get("gate")) for f in (gates.get("failed") or [])
             if isinstance(f, dict)] if isinstance(gates, dict) else []
    lines += [f"{g['count']} test{'s' if g['count'] != 1 else ''} failed: {g['reason']}" for g in groups]
    lost = batch.get("lost_tests") or []
    if lost:
        lines.append(f"{len(lost)} tests lost (their worker died before reporting)")
    return lines
