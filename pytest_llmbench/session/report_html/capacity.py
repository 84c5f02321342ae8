"""The capacity search's section of the report: the answer, one table row per probe in the order probed, and the
chart of each probe's attainment with its interval against the target."""

from __future__ import annotations

from typing import Any

from ...metrics.capacity import answer_text
from ...metrics.stats import finite_number


def _share(value: Any) -> str:
    number = finite_number(value)
    return "-" if number is None else f"{number:.1%}"


def capacity_view(section: Any) -> dict[str, Any] | None:
    """None without a search (or from a batch whose section is not the declared shape)."""
    if not isinstance(section, dict) or not isinstance(section.get("probes"), list):
        return None
    probes = [p for p in section["probes"] if isinstance(p, dict)]
    table, points = [], []
    for order, probe in enumerate(probes, 1):
        ci = probe.get("attainment_ci")
        low, high = (ci[0], ci[1]) if isinstance(ci, list) and len(ci) == 2 else (None, None)
        figures: dict[str, Any] = probe["figures"] if isinstance(probe.get("figures"), dict) else {}
        table.append({"order": order, "label": str(probe.get("label")), "requests": probe.get("requests"),
                      "counted": probe.get("counted"), "attainment": _share(probe.get("attainment")),
                      "interval": "-" if finite_number(low) is None or finite_number(high) is None
                      else f"[{_share(low)}, {_share(high)}]",
                      "verdict": str(probe.get("verdict")), "passed": bool(probe.get("passed")),
                      "over": bool(probe.get("over_saturated")), "reason": str(probe.get("reason") or ""),
                      "figures": ["-" if finite_number(v) is None else f"{v:.1f}" for v in figures.values()],
                      "seconds": f"{finite_number(probe.get('duration_s')) or 0:.1f}",
                      "found": finite_number(probe.get("level")) == finite_number(section.get("capacity"))})
        points.append({"x": finite_number(probe.get("level")), "y": finite_number(probe.get("attainment")),
                       "low": finite_number(low), "high": finite_number(high), "level": str(probe.get("label")),
                       "order": order, "passed": bool(probe.get("passed"))})
    names = [str(name).split(" ", 1)[0] for name in section.get("objectives") or []]
    try:
        answer = answer_text(section)
    except (KeyError, TypeError, ValueError):  # another version's section: the table still shows
        answer = ""
    return {"kind": str(section.get("kind") or ""), "answer": answer, "table": table, "points": points,
            "objectives": [str(o) for o in section.get("objectives") or []], "columns": [f"{n} ms" for n in names],
            "target": finite_number(section.get("target")), "capacity": finite_number(section.get("capacity")),
            "level_label": "offered request rate, req/s" if section.get("kind") == "rate" else "concurrency"}
