"""The one periodic sampling thread: the hardware monitor and the server-metrics scraper both run on it.

A daemon thread, so that a reading hung in a driver or on the network never keeps the process alive; stop() waits
a bounded time and says whether the thread ended, so its owner knows whether it may release what the thread uses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Periodic:
    """Calls ``tick(final)`` every ``interval`` seconds, and once more with ``final=True`` when stopped (that last
    call covers the partial interval before the stop).

    ``steady``: ticks keep to a fixed schedule from the start, so that slow readings do not drift it (a scrape over
    the network); ticks a slow one overran are skipped and counted to ``on_missed``. Otherwise each wait is the
    interval itself (a sample's figures are rates over the time since the last one, whatever it was).
    ``on_exit`` runs on the thread as it ends, whatever ended it."""

    def __init__(self, name: str, interval: float, tick: Callable[[bool], None], *, steady: bool = False,
                 on_missed: Callable[[int], None] | None = None, on_exit: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.interval = interval
        self._tick = tick
        self._steady = steady
        self._on_missed = on_missed
        self._on_exit = on_exit
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool | None:
        """Ask for the last tick and wait up to ``timeout`` s: True when the thread ended, False when it is hung
        (left to die with the process), None when it never started."""
        thread, self._thread = self._thread, None
        if thread is None:
            return None
        self._stop.set()
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        try:
            due = self._clock()
            while True:
                wait = due + self.interval - self._clock() if self._steady else self.interval
                if self._stop.wait(max(wait, 0.0)):
                    self._tick(True)
                    return
                due += self.interval
                self._tick(False)
                missed = int((self._clock() - due) // self.interval) if self._steady else 0
                if missed > 0:
                    due += missed * self.interval
                    if self._on_missed is not None:
                        self._on_missed(missed)
        finally:
            if self._on_exit is not None:
                self._on_exit()
