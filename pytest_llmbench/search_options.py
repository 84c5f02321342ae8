"""The capacity search's options (README, Finding capacity): a group of ``options.Settings``, declared apart so
that options.py keeps the session's own. Each field is an option, as there."""

from __future__ import annotations

from dataclasses import dataclass

from .option_field import option


@dataclass(frozen=True)
class SearchOptions:
    search: str | None = option(None, "find the highest load within the run SLOs before the tests run: "
                                      "'concurrency' or 'rate' (see README, Finding capacity)", "KIND")
    search_start: float = option(1.0, "the capacity search's first level; levels double from it until one fails",
                                 "LEVEL", low=0, inclusive=False)
    search_tolerance: float = option(0.1, "bisect until the highest passing and lowest failing levels are within "
                                          "this share of the passing one", "SHARE", low=0, inclusive=False)
    search_max: float = option(1024.0, "the highest level the capacity search tries", "LEVEL", low=0,
                               inclusive=False)
    search_probes: int = option(16, "the most levels the capacity search probes", "N", low=1)
    search_requests: int = option(1000, "the most requests judged per probed level", "N", low=1)
    search_seconds: float = option(60.0, "the longest one probed level runs (a duration)", "DURATION", low=0,
                                   inclusive=False)
    search_warmup: str = option("wave", "answers not counted at the start of each probed level: a number, or "
                                        "'wave' (the level's concurrency, or one second of its rate)", "N")
    capacity_min: float | None = option(None, "fail the session when the capacity found by --llmbench-search (the "
                                              "highest level that passed) is below this", "LEVEL", low=0)
