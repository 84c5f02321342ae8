"""The run's account of what servers said about their requests: which source, for how many, and what was dropped.

The figures themselves are pooled like every metric (``result.METRICS``); this counts what the statistics cannot
show: results that carried no server timing at all, and values refused as implausible, by field and reason, so
the summary can say so instead of leaving a thinner pool unexplained.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class ServerTimingTally:
    def __init__(self) -> None:
        self.results = 0  # successful results seen
        self.sources: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()  # "queue_time: negative"

    def add(self, success: Any, server_timing: Any) -> None:
        """One row: its success and its ``server_timing`` ({"source", "dropped"}, or None)."""
        if not success:
            return
        self.results += 1
        if not isinstance(server_timing, dict):
            return
        self.sources[str(server_timing.get("source"))] += 1
        for name, reason in (server_timing.get("dropped") or {}).items():
            self.dropped[f"{name}: {reason}"] += 1

    def section(self) -> dict[str, Any]:
        """The batch file's ``server_timing``: sources with their result counts, and dropped values by reason."""
        return {"results": self.results, "sources": dict(self.sources.most_common()),
                "dropped": sum(self.dropped.values()), "dropped_by_reason": dict(self.dropped.most_common())}


def summary_line(section: dict[str, Any] | None) -> str | None:
    """One line for the terminal: where the server's times came from, or that none came."""
    if not section or not section.get("results"):
        return None
    sources = section.get("sources") or {}
    if not sources:
        return ("server timing: none sent (llama.cpp timings, vLLM metrics with --llmbench-server-timing, "
                "TGI x-* headers or SGLang meta_info)")
    named = ", ".join(f"{name} on {count} of {section['results']}" for name, count in sources.items())
    line = f"server timing: {named}"
    if section.get("dropped"):
        reasons = section.get("dropped_by_reason") or {}
        line += f"; {section['dropped']} values dropped as implausible (" + ", ".join(
            f"{reason} x{count}" for reason, count in list(reasons.items())[:3]) + ")"
    return line
