"""Which arrival time each text event of a stream gets, and whether the client can vouch for it.

A read is stamped with the arrival of its last bytes (``arrival.py``). A text event is timed exactly when it is
the last thing its read brought: its bytes came in the segment the stamp is of. When a read also brought the
first bytes of a later event (the reader fell behind, and several tokens waited in the socket together), the
event's time is only known to lie between the read before and this one: it is given this read's stamp, and
the width of that span is how far the client may be off. Past ``TOLERANCE_NS`` the stream is marked: its TTFT,
ITL and TPOT are left out of the run's statistics and the summary says how many requests the client fell
behind on. (The finish, usage and ``[DONE]`` events a server writes right after the last text are not counted
against it: they end the stream.) Stamps never go back, so no inter-token latency is negative.

Where the socket gives no stamps (TLS), a read is timed when it returns, and only text events in one read are
seen as sharing it.
"""

from __future__ import annotations

import time

TOLERANCE_NS = 1_000_000  # how far a text event's time may be off and still count (1 ms)


class EventClock:
    """The reads of one streamed answer and its events, in order; ``degraded`` says why its times are not known."""

    def __init__(self, sent_ns: int) -> None:
        self._sent_ns = sent_ns
        self.texts = 0
        self.vague = 0  # text events timed only to a span (shared their read with a later event)
        self.widest_ns = 0  # the widest such span
        self._read = 0  # the current read's number (0: none yet; negative: a read the kernel did not stamp)
        self._own_reads = 0  # numbers for reads the kernel did not stamp
        self._stamp = sent_ns  # arrival of the current read's last bytes
        self._floor = sent_ns  # arrival of the read before: nothing the current read brought came earlier
        self._next_start: int | None = None  # the read that brought the first bytes of the next event
        self._open: tuple[int, int] | None = None  # the last text event's read and span, while a later one may come
        self._shared = False  # a later event started in the last text event's read

    def read(self, mark: tuple[int, int] | None) -> int:
        """A read has just returned bytes (about to be parsed): the ``perf_counter_ns`` its events are given.

        ``mark``: the (number, arrival) of the socket read that brought them (``arrival.last_read()``), or None
        where the kernel gave no stamp; then the read is timed now and counted as a read of its own. A stamp from
        before the request went out is an earlier request's (a socket without stamps read on a thread that once
        read one with them), and is not this read's."""
        if mark is not None and mark[1] < self._sent_ns - TOLERANCE_NS:
            mark = None
        if mark is None:
            self._own_reads += 1
            mark = (-self._own_reads, time.perf_counter_ns())
        number, stamp = mark
        if number != self._read:
            self._floor, self._read = self._stamp, number
        self._stamp = max(stamp, self._stamp)  # never before an earlier read, nor before the request went out
        if self._next_start is None:
            self._next_start = number
        return self._stamp

    def event(self, text: bool) -> None:
        """An event of the current read was parsed; ``text``: it carried text (what TTFT and ITL time)."""
        started, self._next_start = self._next_start, self._read  # what follows in this read starts the next one
        if self._open is not None and started == self._open[0]:
            self._shared = True
        if not text:
            return
        if self._open is not None and self._shared:
            self.vague += 1
            self.widest_ns = max(self.widest_ns, self._open[1])
        self.texts += 1
        self._open, self._shared = (self._read, self._stamp - self._floor), False

    def parsed(self, pending: bool) -> None:
        """The read's events are all parsed; ``pending``: bytes of an unfinished event are held for the next."""
        if not pending:
            self._next_start = None

    @property
    def degraded(self) -> str | None:
        """Why the stream's text times cannot be vouched for, or None."""
        if self.widest_ns <= TOLERANCE_NS:
            return None
        return (f"the client fell behind: {self.vague} of {self.texts} text events were read together with a later "
                f"one, each timed only to within {self.widest_ns / 1e6:.1f} ms (the reader was late, or the server "
                "sent them together)")
