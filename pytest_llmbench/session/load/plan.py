"""What load the options ask for, as plain data: levels, this process's share, and when each request leaves.

No pytest here: the arrival model is tested on its own (its statistics are the benchmark's L4 target).
Arrivals follow vLLM's ``bench serve``: gaps drawn from a gamma distribution of shape ``burstiness`` and mean
``1 / rate`` (shape 1 is Poisson; below 1 burstier, above 1 smoother); ``inf`` sends everything at once.
A ramp raises the rate linearly from 0 over ``ramp`` seconds by a change of time, so that the gaps keep their
shape: a unit-rate renewal process is mapped through the inverse of the cumulative rate.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ...exceptions import ConfigurationError

if TYPE_CHECKING:
    from ...options import Settings

SWEEP_KINDS = ("concurrency", "rate")
TEST_FILES = ("all", "failed", "none")
DEFAULT_RATE_CEILING = 256  # requests in flight per process when only a rate is given


@dataclass(frozen=True)
class Level:
    """One sweep level (or the single level of a run without a sweep)."""

    concurrency: int  # 0: one request at a time per process, as plain pytest (no dispatcher)
    rate: float  # requests/s for the whole session; inf: no pacing
    replay: bool = False  # a trace's requests carry their own send times

    @property
    def label(self) -> str:
        """The node-id part of a sweep level: ``c16`` or ``rate50``."""
        if self.rate != math.inf:
            return f"rate{self.rate:g}"
        return f"c{self.concurrency}"

    @property
    def dispatched(self) -> bool:
        return self.concurrency > 0 or self.rate != math.inf or self.replay


@dataclass(frozen=True)
class LoadPlan:
    """The session's load options, checked; ``share`` gives one process's part of them."""

    levels: tuple[Level, ...]
    sweep_kind: str | None = None
    burstiness: float = 1.0
    ramp_s: float = 0.0
    duration_s: float = 0.0  # 0: no limit
    warmup: int = 0
    repeat: int = 1
    seed: int | None = None  # the arrival times' seed: the same seed, the same schedule

    @property
    def dispatched(self) -> bool:
        return any(level.dispatched for level in self.levels) or self.warmup > 0 or self.duration_s > 0

    @classmethod
    def from_settings(cls, settings: Settings) -> LoadPlan:
        """Raises ConfigurationError naming the option."""
        if settings.test_files not in TEST_FILES:
            raise ConfigurationError(f"--llmbench-test-files: expected one of {', '.join(TEST_FILES)}, "
                                     f"got {settings.test_files!r}")
        base = Level(settings.concurrency, parse_rate(settings.request_rate, "--llmbench-request-rate"))
        kind, levels = parse_sweep(settings.sweep, base) if settings.sweep else (None, (base,))
        return cls(levels=levels, sweep_kind=kind, burstiness=settings.burstiness, ramp_s=settings.ramp,
                   duration_s=settings.duration, warmup=settings.warmup, repeat=settings.repeat, seed=settings.seed)

    def replaying(self) -> LoadPlan:
        """The plan of a run that replays a trace: dispatched whatever the options, under the default ceiling of
        requests in flight that a rate has (a concurrency given replaces it)."""
        return replace(self, levels=tuple(replace(level, replay=True) for level in self.levels))

    def param(self, phase: int, repeat: int) -> str:
        """The node-id part a load run adds: the sweep level and the repetition, e.g. ``c16-r3``."""
        parts = [self.levels[phase].label] if self.sweep_kind else []
        return "-".join(parts + ([f"r{repeat + 1}"] if self.repeat > 1 else []))


def parse_rate(text: str | float, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{flag}: expected requests per second or 'inf', got {text!r}") from None
    if not value > 0:  # NaN fails too
        raise ConfigurationError(f"{flag}: must be more than 0 requests/s (or 'inf'), got {text!r}")
    return value


def parse_sweep(spec: str, base: Level) -> tuple[str, tuple[Level, ...]]:
    """``concurrency=1,4,16`` or ``rate=5,10,inf``; the other dimension stays as the options set it."""
    flag = "--llmbench-sweep"
    kind, sep, values = (part.strip() for part in spec.partition("="))
    if not sep or kind not in SWEEP_KINDS or not values:
        raise ConfigurationError(f"{flag}: expected concurrency=1,4,16 or rate=5,10,20, got {spec!r}")
    levels = []
    for value in (v.strip() for v in values.split(",")):
        if kind == "concurrency":
            if not re.fullmatch(r"[1-9]\d*", value):
                raise ConfigurationError(f"{flag}: concurrency levels are whole numbers >= 1, got {value!r}")
            levels.append(replace(base, concurrency=int(value)))
        else:
            levels.append(replace(base, rate=parse_rate(value, flag)))
    labels = [level.label for level in levels]
    if len(set(labels)) != len(labels):
        raise ConfigurationError(f"{flag}: a level is named twice in {spec!r}")
    return kind, tuple(levels)


def share(total: int, index: int, count: int) -> int:
    """Process ``index`` of ``count``'s part of ``total`` (parts differ by one at most and add up)."""
    return total // count + (index < total % count)


def process_level(level: Level, index: int, count: int) -> Level:
    """One process's part of a level: its share of the concurrency, and rate / count (independent Poisson
    processes add up to one of the full rate)."""
    if count <= 1:
        return level
    concurrency = max(1, share(level.concurrency, index, count)) if level.concurrency else 0
    return replace(level, concurrency=concurrency, rate=level.rate / count)


def in_flight_cap(plan: LoadPlan, index: int, count: int) -> int | None:
    """The most requests process ``index`` of ``count`` may have in flight under ``--llmbench-concurrency`` (its
    share of the largest level); None when no level sets a concurrency."""
    caps = [process_level(level, index, count).concurrency for level in plan.levels if level.concurrency]
    return max(caps) if caps else None


def ceiling(level: Level) -> int:
    """Most requests in flight in this process at the level."""
    if level.concurrency:
        return level.concurrency
    return DEFAULT_RATE_CEILING if level.rate != math.inf or level.replay else 1


def arrivals(rate: float, burstiness: float, ramp_s: float, rng: random.Random) -> Iterator[float]:
    """Planned send times in seconds from the phase's start, one per request, forever."""
    if rate == math.inf:
        while True:
            yield 0.0
    unit = 0.0  # time on the unit-rate clock
    while True:
        yield inverse_cumulative(unit, rate, ramp_s)
        unit += rng.gammavariate(burstiness, 1.0 / burstiness)


def inverse_cumulative(unit: float, rate: float, ramp_s: float) -> float:
    """The time by which ``unit`` requests are due when the rate rises linearly to ``rate`` over ``ramp_s``."""
    if ramp_s <= 0:
        return unit / rate
    if unit < rate * ramp_s / 2:  # the ramp's area: rate * t^2 / (2 * ramp)
        return math.sqrt(2 * ramp_s * unit / rate)
    return unit / rate + ramp_s / 2


def concurrency_at(elapsed: float, top: int, ramp_s: float) -> int:
    """The ceiling ``elapsed`` seconds into a concurrency ramp: rises linearly from 1 to ``top``."""
    if ramp_s <= 0 or elapsed >= ramp_s:
        return top
    return max(1, math.ceil(top * elapsed / ramp_s))
