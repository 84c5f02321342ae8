"""Token-length distributions of a synthetic workload, and each request's draw from them.

A request's lengths depend only on the workload's seed and the request's index, never on the order in which
requests are drawn: every xdist worker, and a rerun with ``--lf``, gives request 42 the same lengths without
drawing the 41 before it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_NO_MAX = 10**9


@dataclass(frozen=True)
class Lengths:
    """``fixed`` alone, or ``mean``/``stddev`` (normal, clipped to min/max), or ``min``/``max`` (uniform)."""

    fixed: int | None = None
    mean: float | None = None
    stddev: float = 0.0
    low: int = 1
    high: int = _NO_MAX

    def draw(self, rng: Draws) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.mean is None:
            return rng.randint(self.low, self.high)
        value = round(rng.gauss(self.mean, self.stddev)) if self.stddev else round(self.mean)
        return min(self.high, max(self.low, value))

    def to_dict(self) -> dict[str, Any]:
        if self.fixed is not None:
            return {"fixed": self.fixed}
        shown: dict[str, Any] = {"mean": self.mean, "stddev": self.stddev} if self.mean is not None else {}
        return {**shown, "min": self.low, "max": None if self.high == _NO_MAX else self.high}


@dataclass(frozen=True)
class Mix:
    """Weighted (input, output) pairs, as AIPerf's ``--seq-dist``."""

    pairs: tuple[tuple[int, int], ...]
    weights: tuple[float, ...]

    def draw(self, rng: Draws) -> tuple[int, int]:
        return rng.weighted(self.pairs, self.weights)


class Draws:
    """One request's random numbers: each a hash of (seed, index, what, its number), the same in every process.

    No generator state: seeding a Mersenne Twister per request cost about 19 µs, most of the time collection took
    for 100,000 requests; a hash costs about 1 µs."""

    def __init__(self, seed: int, index: int, what: str = "lengths") -> None:
        self._key = f"llmbench/{seed}/{index}/{what}/".encode()
        self._count = 0

    def random(self) -> float:
        """A float in [0, 1)."""
        self._count += 1
        digest = hashlib.blake2b(self._key + str(self._count).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def randint(self, low: int, high: int) -> int:
        return low + min(int(self.random() * (high - low + 1)), high - low)

    def randrange(self, stop: int) -> int:
        return self.randint(0, stop - 1)

    def gauss(self, mean: float, stddev: float) -> float:
        """Box-Muller: a normal draw from two uniform ones."""
        radius = math.sqrt(-2.0 * math.log(1.0 - self.random()))
        return mean + stddev * radius * math.cos(2 * math.pi * self.random())

    def weighted(self, items: Sequence[T], weights: Sequence[float]) -> T:
        point, total = self.random() * sum(weights), 0.0
        for item, weight in zip(items, weights):
            total += weight
            if point < total:
                return item
        return items[-1]


def parse_lengths(value: Any, name: str, add: Any) -> Lengths | None:
    """``value`` as a Lengths; ``add(message)`` is told what is wrong (naming ``name``) and None returned."""
    if _is_count(value):
        return Lengths(fixed=value)
    if not isinstance(value, dict):
        add(f"{name} must be a whole number of tokens or an object ({{mean, stddev, min, max}} or {{min, max}}), "
            f"got {type(value).__name__}")
        return None
    unknown = sorted(set(value) - {"mean", "stddev", "min", "max"})
    if unknown:
        add(f"{name}: unknown field '{unknown[0]}' (allowed: mean, stddev, min, max)")
        return None
    bad = [key for key in ("min", "max") if key in value and not _is_count(value[key])]
    bad += [key for key in ("mean", "stddev") if key in value and not _is_number(value[key], key == "stddev")]
    if bad:
        add(f"{name}.{bad[0]} must be a {'number' if bad[0] in ('mean', 'stddev') else 'whole number'} "
            f"{'>= 0' if bad[0] == 'stddev' else '> 0'}, got {value[bad[0]]!r}")
        return None
    low, high = value.get("min", 1), value.get("max", _NO_MAX)
    if low > high:
        add(f"{name}: min {low} is more than max {high}")
        return None
    if "mean" in value:
        return Lengths(mean=float(value["mean"]), stddev=float(value.get("stddev", 0)), low=low, high=high)
    if "stddev" in value:
        add(f"{name}: stddev needs a mean")
        return None
    if "max" not in value:
        add(f"{name}: give a mean, or both min and max (uniform)")
        return None
    return Lengths(low=low, high=high)


def parse_mix(value: Any, name: str, add: Any) -> Mix | None:
    rows = value if isinstance(value, list) and value else None
    if rows is None or not all(isinstance(r, list) and len(r) == 3 and _is_count(r[0]) and _is_count(r[1])
                               and _is_number(r[2], True) for r in rows):
        add(f"{name} must be a non-empty list of [input_tokens, output_tokens, weight] "
            "(e.g. [[128, 64, 0.7], [2048, 256, 0.3]])")
        return None
    if not sum(r[2] for r in rows) > 0:
        add(f"{name}: the weights add up to 0")
        return None
    return Mix(tuple((r[0], r[1]) for r in rows), tuple(float(r[2]) for r in rows))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_number(value: Any, zero_ok: bool) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (value >= 0 if zero_ok else value > 0))
