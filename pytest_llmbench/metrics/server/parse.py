"""Prometheus exposition text to plain readings, with prometheus_client's own parser.

Exporters spell counters two ways: with ``_total`` (vLLM, SGLang, llama.cpp, anything on prometheus_client) and
without (DCGM's ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION``, TGI's ``tgi_request_count``), and the parser appends
``_total`` to the latter. Readings are therefore keyed by the sample name with one trailing ``_total`` taken off,
so either spelling of a counter finds the same key (see ``series_key``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

Labels = dict[str, str]
Readings = dict[str, list[tuple[Labels, float]]]  # series key -> (labels, value) for each label set
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
MAX_SERIES = 20_000  # series read from one page; a page with more is read only that far
MAX_VALUE = 1e15  # larger values are no server's figures (a token counter at 1e15 is 30 years at 1M tokens/s)
_UNSEEN: Any = object()


class ExpositionError(ValueError):
    """The text is not Prometheus exposition format."""


class ParseTimeout(ValueError):
    """A page took longer to read than its scrape had left."""


def series_key(name: str) -> str:
    """``vllm:prompt_tokens_total`` and ``vllm:prompt_tokens`` are one series; histogram parts keep their names."""
    return name.removesuffix("_total")


def _families(text: str) -> Iterable[Metric]:
    """prometheus_client's parser, imported by the first page read: it takes 7 ms to load, which a run against
    a server without /metrics would otherwise spend for nothing."""
    from prometheus_client.parser import text_string_to_metric_families

    return text_string_to_metric_families(text)


def parse(text: str, wanted: Callable[[str], bool] | None = None) -> Readings:
    """Every sample whose series key ``wanted`` accepts (all when None); NaN and implausible values are left out.

    Raises ExpositionError for text the parser refuses (an HTML error page, JSON, a truncated line).
    """
    readings: Readings = {}
    try:
        for family in _families(text):
            for sample in family.samples:
                key = series_key(sample.name)
                if (wanted is None or wanted(key)) and plausible(sample.value):
                    readings.setdefault(key, []).append((sample.labels, sample.value))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ExpositionError(f"not Prometheus exposition text ({exc})") from None
    return readings


class SeriesParser:
    """``parse`` for one source scraped again and again, at a fraction of the cost, bounded for hostile pages.

    prometheus_client reads each series (``name{labels}``) the first time it appears, with its family's TYPE
    line; the series' key and labels are then remembered, and later scrapes only read the value after them (a
    float, and an optional timestamp that is ignored). Label parsing is what costs (~100 us a series under the
    GIL), so a series whose metric name is not wanted is skipped by its name alone, a page past ``max_series``
    series is read only that far (``capped``), and a parse past its ``deadline`` stops (``ParseTimeout``): what it
    learnt is kept, so the next scrape goes on from there. Series a page no longer has are forgotten once the
    memory holds twice the cap; a page whose labels change every scrape never makes the parser start over.
    """

    def __init__(self, wanted: Callable[[str], bool] | None = None, max_series: int = MAX_SERIES) -> None:
        self.wanted = wanted
        self.max_series = max_series
        self.capped = False  # the last page had more series than max_series
        self.dropped = 0  # values refused so far: not finite, or past MAX_VALUE
        self._known: dict[str, tuple[str, Labels] | None] = {}  # series text -> (key, labels), None: unwanted

    def parse(self, text: str, deadline: float = math.inf, clock: Callable[[], float] = time.monotonic) -> Readings:
        readings: Readings = {}
        seen: dict[str, tuple[str, Labels] | None] = {}
        type_line = ""
        self.capped = False
        try:
            for line in text.splitlines():
                line = line.strip()
                if not line or line[0] == "#":
                    if line.startswith("# TYPE "):
                        type_line = line
                    continue
                end = line.rindex("}") + 1 if "{" in line else len(line.split(None, 1)[0])
                series = line[:end]
                known = seen.get(series, _UNSEEN)
                if known is _UNSEEN:
                    if len(seen) >= self.max_series:
                        self.capped = True
                        break
                    if len(seen) % 64 == 63 and clock() > deadline:
                        raise ParseTimeout(f"page not read within its deadline ({len(seen):,} series read)")
                    known = self._known[series] if series in self._known else self._read_series(type_line, line)
                    seen[series] = known
                if known is not None:
                    self._add(readings, known, line, end)
        finally:
            self._known.update(seen)
            if len(self._known) > 2 * self.max_series:
                self._known = seen
        return readings

    def _add(self, readings: Readings, known: tuple[str, Labels], line: str, end: int) -> None:
        try:
            value = float(line[end:].split()[0])
        except (IndexError, ValueError):
            raise ExpositionError(f"not Prometheus exposition text (no value in {line[:80]!r})") from None
        if not plausible(value):
            self.dropped += not math.isnan(value)  # NaN is a series with no value yet, not a bad one
            return
        readings.setdefault(known[0], []).append((known[1], value))

    def _read_series(self, type_line: str, line: str) -> tuple[str, Labels] | None:
        name = _name(line)
        if name and self.wanted is not None and not self.wanted(series_key(name)):
            return None  # decided by the name, without parsing the labels
        try:
            samples = [s for f in _families(f"{type_line}\n{line}\n") for s in f.samples]
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ExpositionError(f"not Prometheus exposition text ({exc})") from None
        if len(samples) != 1:
            return None
        key = series_key(samples[0].name)
        return (key, samples[0].labels) if self.wanted is None or self.wanted(key) else None


def plausible(value: float) -> bool:
    """A value a server can mean: finite and within MAX_VALUE either way (+Inf or 1e308 are none)."""
    return math.isfinite(value) and abs(value) <= MAX_VALUE


def series_names(text: str) -> set[str]:
    """The metric names on a page, by their lines alone (to tell which server it is)."""
    return {_name(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")}


def _name(line: str) -> str:
    """A sample line's metric name ("" for a quoted name inside the braces, or no name at all)."""
    words = line.split("{", 1)[0].split(None, 1)
    return words[0] if words else ""


@dataclass(frozen=True)
class Histogram:
    """One histogram at one moment: cumulative bucket counts by upper bound (the last is +Inf), sum, count."""

    bounds: tuple[float, ...]
    counts: tuple[float, ...]
    total: float  # the histogram's _sum
    count: float

    def minus(self, earlier: Histogram) -> Histogram:
        """What was observed since ``earlier``; after a restart (fewer observations, other buckets) all of it."""
        if earlier.bounds != self.bounds or self.count < earlier.count:
            return self
        return Histogram(self.bounds, tuple(a - b for a, b in zip(self.counts, earlier.counts)),
                         self.total - earlier.total, self.count - earlier.count)

    def plus(self, other: Histogram | None) -> Histogram:
        if other is None:
            return self
        if other.bounds != self.bounds:  # two servers with other buckets: keep the one with more observations
            return self if self.count >= other.count else other
        return Histogram(self.bounds, tuple(a + b for a, b in zip(self.counts, other.counts)),
                         self.total + other.total, self.count + other.count)

    def quantile(self, q: float) -> float | None:
        """Prometheus' ``histogram_quantile``: linear inside the bucket the rank falls in; in +Inf, the last bound."""
        if self.count <= 0 or not self.counts:
            return None
        rank = q * self.counts[-1]
        for index, (bound, cumulative) in enumerate(zip(self.bounds, self.counts)):
            if cumulative >= rank:
                if math.isinf(bound):
                    return self.bounds[index - 1] if index > 0 else None
                lower = self.bounds[index - 1] if index > 0 else min(0.0, bound)
                below = self.counts[index - 1] if index > 0 else 0.0
                inside = cumulative - below
                return bound if inside <= 0 else lower + (bound - lower) * (rank - below) / inside
        return None

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None


def histogram(readings: Readings, base: str, match: Callable[[Labels], bool] = lambda labels: True
              ) -> Histogram | None:
    """The histogram ``base`` summed over its label sets (engines, ranks), or None when it is not exposed."""
    buckets: dict[float, float] = {}
    for labels, value in readings.get(f"{base}_bucket", ()):
        bound = _bound(labels.get("le")) if match(labels) else None
        if bound is not None:
            buckets[bound] = buckets.get(bound, 0.0) + value
    if not buckets:
        return None
    bounds = tuple(sorted(buckets))
    return Histogram(bounds, tuple(buckets[b] for b in bounds), _sum(readings.get(f"{base}_sum", ()), match),
                     _sum(readings.get(f"{base}_count", ()), match))


def _bound(le: str | None) -> float | None:
    """A bucket's upper bound; None for a missing, unreadable or negative one (latencies and sizes are >= 0)."""
    try:
        bound = float(le) if le is not None else math.nan
    except ValueError:
        return None
    return bound if bound >= 0 else None


def _sum(values: Iterable[tuple[Labels, float]], match: Callable[[Labels], bool]) -> float:
    return sum(value for labels, value in values if match(labels))
