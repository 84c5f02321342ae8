"""The batch's ``server`` section: the run's server figures beside the client's, SLO inputs and summary lines.

Server latency comes from the servers' histograms, so it covers every request they served in the run (other
clients' too) and its quantiles are bucket estimates; the difference to the client's figure is the share of the
network and the client (connection, queueing in the client, reading the answer).
"""

from __future__ import annotations

from typing import Any

from ..stats import metric_key

# server histogram -> the client's pooled metric it is compared with (e2e: the streamed e2el, else latency)
_CLIENT_METRIC = {"ttft": "ttft", "tpot": "tpot", "itl": "itl", "e2e": "e2el"}
_STATS = ("mean", "p50", "p90", "p99")
SLO_KEYS = {  # run SLO name -> key of slo_view(); all are upper limits
    "kv_cache_usage_max": "server_kv_cache_usage_peak_share",
    "kv_cache_usage_mean": "server_kv_cache_usage_mean_share",
    "preemptions_total": "server_preemptions",
    "requests_waiting_max": "server_requests_waiting_peak",
}


def build_section(summary: dict[str, Any], *, sources: list[dict[str, Any]], interval: float,
                  failed_scrapes: int, skipped_scrapes: int, aggregate: dict[str, Any],
                  start_s: float | None = None) -> dict[str, Any]:
    """``summary`` is ``ServerStore.summary()``; ``aggregate`` the batch's client-side statistics; ``start_s`` the
    first scrape in seconds from the client's first request (the timeline's ``t`` counts from that scrape)."""
    section: dict[str, Any] = {"sources": sources, "interval_s": interval, "failed_scrapes": failed_scrapes,
                               "skipped_scrapes": skipped_scrapes, **summary, "start_s": start_s}
    section["latency"] = compare_latency(summary, aggregate)
    if section.get("gpu_energy_j") and not section.get("joules_per_token"):
        tokens = aggregate.get("total_completion_tokens")
        section["joules_per_token"] = section["gpu_energy_j"] / tokens if tokens else None
    section["timeline"] = section.pop("timeline")  # last: the long part of the section
    return section


def compare_latency(summary: dict[str, Any], aggregate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, client_metric in _CLIENT_METRIC.items():
        if summary.get(f"{name}_count") is None:
            continue
        if name == "e2e" and not aggregate.get(f"count_{client_metric}"):
            client_metric = "latency"
        row: dict[str, Any] = {"client_metric": client_metric, "server_count": summary[f"{name}_count"],
                               "client_count": aggregate.get(f"count_{client_metric}")}
        for stat in _STATS:
            server = summary.get(f"{name}_{stat}_ms")
            client = aggregate.get(metric_key(stat, client_metric))
            row[f"server_{stat}_ms"], row[f"client_{stat}_ms"] = server, client
            row[f"client_minus_server_{stat}_ms"] = None if server is None or client is None else client - server
        out[name] = row
    return out


def slo_view(section: dict[str, Any] | None) -> dict[str, Any]:
    """The figures run SLOs can name, under keys apart from the client's; usage as a share (0..1)."""
    if not section:
        return {}
    peak, mean = section.get("kv_cache_usage_peak_pct"), section.get("kv_cache_usage_mean_pct")
    return {"server_kv_cache_usage_peak_share": None if peak is None else peak / 100.0,
            "server_kv_cache_usage_mean_share": None if mean is None else mean / 100.0,
            "server_preemptions": _count(section.get("preemptions")),
            "server_requests_waiting_peak": _count(section.get("requests_waiting_peak"))}


def _count(value: float | None) -> int | None:
    return None if value is None else round(value)


def _n(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def summary_lines(section: dict[str, Any]) -> list[str]:
    """Plain lines for the terminal summary (the caller escapes and colours them)."""
    names = ", ".join(f"{s['url']} ({s['server']})" for s in section["sources"]) or "none"
    lines = [f"server: {names} | {section['readings']} scrapes every {section['interval_s']:g} s"
             + (f", {section['failed_scrapes']} failed" if section["failed_scrapes"] else "")
             + (f", {section['skipped_scrapes']} skipped" if section.get("skipped_scrapes") else "")
             + (f", {section['dropped_values']} implausible values dropped" if section.get("dropped_values") else "")]
    queue = []
    if section.get("requests_running_mean") is not None:
        queue.append(f"running mean {_n(section['requests_running_mean'])} peak "
                     f"{_n(section['requests_running_peak'], 0)}")
    if section.get("requests_waiting_mean") is not None:
        queue.append(f"waiting mean {_n(section['requests_waiting_mean'])} peak "
                     f"{_n(section['requests_waiting_peak'], 0)}")
    if section.get("kv_cache_usage_peak_pct") is not None:
        queue.append(f"KV cache mean {_n(section['kv_cache_usage_mean_pct'])}% peak "
                     f"{_n(section['kv_cache_usage_peak_pct'])}%")
    if section.get("preemptions") is not None:
        queue.append(f"preemptions {_n(section['preemptions'], 0)}")
    if section.get("prefix_cache_hit_rate") is not None:
        queue.append(f"prefix cache hits {section['prefix_cache_hit_rate'] * 100:.1f}%")
    if queue:
        lines.append("  " + " | ".join(queue))
    if section.get("generation_tokens_per_s") is not None:
        lines.append(f"  tokens: {_n(section.get('prompt_tokens_per_s'))} prompt/s, "
                     f"{_n(section['generation_tokens_per_s'])} generated/s (server counters)")
    for name, row in section.get("latency", {}).items():
        lines.append(f"  {name:<5} server p50 {_n(row['server_p50_ms'])} p99 {_n(row['server_p99_ms'])} ms"
                     f" | client ({row['client_metric']}) p50 {_n(row['client_p50_ms'])} p99"
                     f" {_n(row['client_p99_ms'])} ms | network+client p50 {_n(row['client_minus_server_p50_ms'])} ms")
    for gpu in section.get("gpus") or []:
        lines.append(f"  GPU {gpu['gpu']} ({gpu['name']}): util mean {_n(gpu['gpu_util_mean_pct'])}% | power mean"
                     f" {_n(gpu['gpu_power_mean_w'])} W | memory peak {_n(gpu['gpu_memory_peak_gb'], 2)} GB"
                     f" | energy {_n(gpu['gpu_energy_j'])} J")
    if section.get("joules_per_token"):
        lines.append(f"  energy per generated token: {section['joules_per_token']:.3f} J")
    return lines
