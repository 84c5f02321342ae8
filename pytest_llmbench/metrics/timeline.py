"""The run second by second: what was sent, completed and in flight, output tokens and errors per bucket.

Fed one request at a time with Unix times (every process's clock, xdist workers on other hosts included);
kept as flat arrays so that a long run stays small. The batch file's ``timeline`` section holds one point per
bucket: ``{"t", "sent", "completed", "in_flight", "output_tokens", "errors"}`` (``t`` in seconds from the
first send; ``in_flight`` the time-weighted mean over the bucket).
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable
from typing import Any


class Timeline:
    def __init__(self) -> None:
        self._sent = array("d")
        self._done = array("d")
        self._tokens = array("d")
        self._errors = array("b")

    def __len__(self) -> int:
        return len(self._sent)

    def add(self, sent: float, done: float, output_tokens: int | None, error: bool) -> None:
        self._sent.append(sent)
        self._done.append(max(done, sent))
        self._tokens.append(output_tokens or 0)
        self._errors.append(error)

    def span(self) -> float:
        """Seconds from the first send to the last answer (0 without requests)."""
        return max(self._done) - min(self._sent) if self._sent else 0.0

    def send_rate(self) -> float | None:
        """Requests sent per second, first send to last (the achieved arrival rate)."""
        if len(self._sent) < 2:
            return None
        span = max(self._sent) - min(self._sent)
        return (len(self._sent) - 1) / span if span > 0 else None

    def buckets(self, width: float) -> dict[str, Any]:
        """Per bucket of ``width`` seconds from the first send: requests sent and completed, the mean number in
        flight (time-weighted), output tokens and errors of the requests completed in it."""
        if not self._sent:
            return {"bucket_s": width, "start_unix": None, "buckets": []}
        start = min(self._sent)
        count = max(1, math.ceil((max(self._done) - start) / width + 1e-9))
        sent, completed, errors = [0] * count, [0] * count, [0] * count
        tokens = [0.0] * count
        busy = [0.0] * count  # request-seconds inside each bucket
        for begin, end, produced, failed in zip(self._sent, self._done, self._tokens, self._errors):
            first, last = self._index(begin - start, width, count), self._index(end - start, width, count)
            sent[first] += 1
            completed[last] += 1
            tokens[last] += produced
            errors[last] += failed
            for bucket in range(first, last + 1):
                low, high = start + bucket * width, start + (bucket + 1) * width
                busy[bucket] += max(0.0, min(end, high) - max(begin, low))
        return {"bucket_s": width, "start_unix": start, "buckets": [
            {"t": round(n * width, 6), "sent": sent[n], "completed": completed[n],
             "in_flight": round(busy[n] / width, 3), "output_tokens": int(tokens[n]), "errors": errors[n]}
            for n in range(count)]}

    @staticmethod
    def _index(offset: float, width: float, count: int) -> int:
        return min(count - 1, max(0, int(offset // width)))


def _merged(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of intervals as disjoint intervals, in order."""
    out: list[tuple[float, float]] = []
    for low, high in sorted(spans):
        if out and low <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        elif high > low:
            out.append((low, high))
    return out


def uncovered(spans: Iterable[tuple[float, float]], cover: Iterable[tuple[float, float]]) -> float:
    """Seconds inside ``spans`` (overlaps counted once) that no interval of ``cover`` overlaps: the time an LLM
    judge graded while no request was in flight, which belongs to no request and so not to the run's span."""
    covered = _merged(cover)
    ends = [high for _, high in covered]
    total = 0.0
    for low, high in _merged(spans):
        total += high - low
        for c_low, c_high in covered[bisect.bisect_right(ends, low):]:
            if c_low >= high:
                break
            total -= min(high, c_high) - max(low, c_low)
    return total
