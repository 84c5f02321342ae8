"""The batch file's ``workload`` section: the token lengths generated tests asked for beside what the server's
usage says they got, so that a run's shape can be put next to the figures other benchmarks publish."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .stats import describe_sorted

_SHOWN = ("count", "mean", "stdev", "min", "p50", "p99", "max")


def workload_section(rows: Iterable[Mapping[str, Any]], tokenizer: str | None = None) -> dict[str, Any] | None:
    """None when no row is a generated test; ``rows`` are the batch rows."""
    shaped = [row for row in rows if row.get("requested_input_tokens") is not None]
    if not shaped:
        return None
    answered = [row for row in shaped if row.get("success")]
    pairs = [(row["requested_input_tokens"], row["prompt_tokens"]) for row in answered
             if row.get("prompt_tokens") is not None]
    return {
        "requests": len(shaped),
        "tokenizer": tokenizer,
        "estimated_lengths": sum(bool(row.get("input_tokens_estimated")) for row in shaped),
        "input_tokens": {"requested": _describe(row["requested_input_tokens"] for row in shaped),
                         "achieved": _describe(achieved for _, achieved in pairs)},
        "output_tokens": {"requested": _describe(row.get("requested_output_tokens") for row in shaped),
                          "achieved": _describe(row.get("completion_tokens") for row in answered
                                                if not row.get("tokens_estimated"))},
        "input_exact": sum(wanted == got for wanted, got in pairs),
        "input_off_max_pct": max((abs(got - wanted) * 100 / wanted for wanted, got in pairs), default=None),
        "stopped_early": sum(bool(row.get("stopped_early")) for row in shaped),
        "cached_tokens": _cached(answered),
        "trace": _trace([row["send_at_s"] for row in shaped if row.get("send_at_s") is not None]),
    }


def _cached(rows: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The prompt tokens the server's usage says came from its prefix cache, and their share of the prompts."""
    told = [row for row in rows if row.get("cached_tokens") is not None and row.get("prompt_tokens")]
    if not told:
        return None
    cached, prompts = sum(row["cached_tokens"] for row in told), sum(row["prompt_tokens"] for row in told)
    return {"requests": len(told), "total": cached, "share": cached / prompts}


def _trace(times: list[float]) -> dict[str, Any] | None:
    """A replay's offered rate: its requests over the span of their planned send times."""
    if not times:
        return None
    span = max(times) - min(times)
    return {"requests": len(times), "span_s": span, "offered_rate": (len(times) - 1) / span if span > 0 else None}


def _describe(values: Iterable[Any]) -> dict[str, Any]:
    described = describe_sorted(sorted(float(v) for v in values if v is not None))
    return {key: described[key] for key in _SHOWN}


def workload_lines(section: Mapping[str, Any] | None, server_hit_rate: float | None = None) -> list[str]:
    """The summary's lines about a generated workload: lengths, the prefix cache (by usage, and by the server's
    own counters beside when they were scraped) and a trace's offered rate."""
    if not section:
        return []

    def shown(stats: Mapping[str, Any]) -> str:
        if not stats["count"]:
            return "n/a"
        return f"mean {stats['mean']:.1f} (min {stats['min']:g}, p50 {stats['p50']:g}, max {stats['max']:g})"

    inputs, outputs = section["input_tokens"], section["output_tokens"]
    achieved = inputs["achieved"]["count"]
    lines = [f"workload: {section['requests']} generated requests | input tokens requested {shown(inputs['requested'])}"
             f", achieved by server usage {shown(inputs['achieved'])}; {section['input_exact']}/{achieved} exact",
             f"workload: output tokens requested {shown(outputs['requested'])}, achieved {shown(outputs['achieved'])}"
             + (f"; {section['stopped_early']} stopped early" if section["stopped_early"] else "")]
    cached = section.get("cached_tokens")
    if cached:
        lines.append(f"workload: {cached['total']} prompt tokens cached by usage ({cached['share'] * 100:.1f}% of "
                     f"{cached['requests']} prompts)" + ("" if server_hit_rate is None else
                                                         f" | server prefix cache hits {server_hit_rate * 100:.1f}%"))
    trace = section.get("trace")
    if trace and trace["offered_rate"]:
        lines.append(f"workload: trace replay of {trace['requests']} requests over {trace['span_s']:.2f} s, offered "
                     f"{trace['offered_rate']:.2f} req/s (the achieved rate and schedule lag are in the load line)")
    if section["estimated_lengths"]:
        lines.append(f"workload: ESTIMATED prompt lengths in {section['estimated_lengths']} requests (no server "
                     "tokenizer and no --llmbench-tokenizer): input lengths are not exact")
    return lines
