"""Results on their way into the recorder.

With server metrics a result waits until the servers' readings cover its window (a reading after its end has come,
or the scraper is late), so that its row gets the servers' figures for it; without, it is recorded at once. Tests
never wait for this. Each process's load report comes in here too: its warm-up and cancellations, and the answers
that arrived for items a stop kept from running.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from .handoff import Delivery
from .load.record import LoadRecord
from .progress import ExecutionProgress
from .recorder import Recorder


class Intake:
    def __init__(self, recorder: Recorder, load: LoadRecord, *, show: Callable[[ExecutionProgress], None],
                 has_read: Callable[[tuple[float, float] | None], bool]) -> None:
        self.recorder = recorder
        self.load = load
        self._show = show  # each recorded result's progress, as it comes
        self._has_read = has_read  # whether the servers' readings cover a window (always, without server metrics)
        self._waiting: deque[tuple[Delivery, bool]] = deque()

    def hold(self, delivery: Delivery, passed: bool) -> None:
        self._waiting.append((delivery, passed))

    def record_ready(self, everything: bool = False) -> None:
        """Record the held results whose window the servers' readings cover (``everything``: all of them)."""
        ready = [item for item in self._waiting if everything or self._has_read(item[0].window)]
        for item in ready:
            self._waiting.remove(item)
            self._show(self.recorder.record(item[0], passed=item[1]))

    def take_load_report(self, report: dict[str, Any]) -> None:
        """A process's warm-up, cancellations and the answers that arrived for items the stop kept from running."""
        self.load.add_process(report)
        for raw, passed in report["leftovers"]:
            self.recorder.record(Delivery.from_json(raw), passed=passed)
