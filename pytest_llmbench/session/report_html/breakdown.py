"""Where each request's time went, from the servers' own timings (issue 22): the report's stacked breakdown.

A request's latency as the client saw it is split into the parts the server reported (queue, prefill, decode:
the registry's ``breakdown="part"`` metrics, stacked in declaration order), the server's time it did not split
(its whole time, ``breakdown="server"``, less the parts), and the rest: the client and the network. Only what a
server sent is drawn; a run whose server sent nothing gets no breakdown, not zeros.
"""

from __future__ import annotations

from typing import Any

from ...batch import Row, row_value
from ...metrics.samples import min_samples
from ...metrics.stats import finite_number, percentile
from ...result import METRICS

PARTS = tuple(metric for metric in METRICS if metric.breakdown == "part")
WHOLE = next((metric for metric in METRICS if metric.breakdown == "server"), None)
LATENCY = next(metric for metric in METRICS if metric.field == "execution_time")
UNSPLIT = "server, not split"
REST = "client and network"
SHOWN = 100  # the slowest requests drawn one bar each; the percentiles pool every timed request
MARKS = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


def _split(row: Row) -> list[float] | None:
    """The row's latency in ms as [parts..., server not split, client and network] (to the microsecond); None if
    the server timed nothing of it."""
    latency = finite_number(row_value(row, LATENCY.row_field))
    parts = [finite_number(row_value(row, metric.row_field)) for metric in PARTS]
    whole = finite_number(row_value(row, WHOLE.row_field)) if WHOLE else None
    if not row.get("success") or latency is None or (whole is None and all(part is None for part in parts)):
        return None
    known = sum(part or 0.0 for part in parts)
    unsplit = max(0.0, whole - known) if whole is not None else 0.0
    split = [part or 0.0 for part in parts] + [unsplit, max(0.0, latency - known - unsplit)]
    return [round(value * 1000.0, 3) for value in split]


def breakdown(rows: list[Row]) -> dict[str, Any] | None:
    """The chart data: the slowest timed requests' stacked parts, and each part's p50/p90/p99, in ms (a
    percentile on fewer samples than metrics/samples.py asks for is left out, as everywhere)."""
    timed = [(row, split) for row in rows if (split := _split(row)) is not None]
    if not timed:
        return None
    names = [metric.title for metric in PARTS] + [UNSPLIT, REST]
    used = [any(split[i] > 0 for _, split in timed) for i in range(len(names))]
    slowest = sorted(timed, key=lambda pair: sum(pair[1]), reverse=True)[:SHOWN]
    columns = [sorted(split[i] for _, split in timed) for i in range(len(names))]
    return {
        "parts": [name for name, keep in zip(names, used) if keep],
        "ids": [str(row.get("label") or row.get("test_id", "")) for row, _ in slowest],
        "values": [[value for value, keep in zip(split, used) if keep] for _, split in slowest],
        "percentiles": {mark: [round(percentile(column, q), 3) for column, keep in zip(columns, used) if keep]
                        for mark, q in MARKS if len(timed) >= min_samples(mark)},
        "timed": len(timed),
        "total": len(rows),
    }
