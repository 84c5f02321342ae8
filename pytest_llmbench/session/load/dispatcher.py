"""One process's sender: requests leave on a pool of threads, at planned times, under a ceiling of requests
in flight; each item later waits for its own ticket.

Threads over the session's one synchronous client rather than an event loop with a second, asynchronous
client: retries, deadlines, redirects, TLS, size caps, redaction and SSE parsing stay one implementation, and
the HTTP work releases the GIL while it waits (the benchmarks in benchmarks/load_*.py measure what this
costs). A pool thread carries a request until its streamed answer is handed to the process's reading loop
(``http/reader.py``) and again once it has ended, not while it streams: the threads are those sending or waiting
for headers, not every request in flight. A single sender thread keeps the schedule: it sleeps until a
request's planned time, then waits for a free slot. When it had to wait for a slot, the schedule continues from
the moment it sent (no catch-up burst); ``schedule_lag`` records how late each request left against its plan.
"""

from __future__ import annotations

import collections
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ...http.watchdog import WATCHDOG
from .plan import Level, arrivals, ceiling, concurrency_at

WARMUP_PHASE = -1
SWITCH_INTERVAL_S = 0.0005
STOP_WAIT_S = 5.0  # seconds a stop waits for the reading loop to end the streams it cut
FILES_BESIDE_CONNECTIONS = 256  # open files a process needs besides its connections: pytest's, logs, results

# A ticket's states: waiting to be sent, sent, answered, and the three ways it never gets an answer
QUEUED, SENT, DONE, DROPPED, EXPIRED, CANCELLED = "queued", "sent", "done", "dropped", "expired", "cancelled"


@dataclass(eq=False)
class Ticket:
    """One request, from the moment its item is known until its item takes the answer."""

    key: str  # the item's node id, or warmup-<n>
    api_type: str
    body: dict[str, Any]
    phase: int  # index of the level; WARMUP_PHASE for warm-up requests
    level: Level
    send_at: float | None = None  # seconds from the phase's start: a trace's own time, instead of an arrival
    state: str = QUEUED
    planned: float | None = None  # monotonic; None when the level sends as fast as slots free
    sent: float = 0.0  # monotonic
    sent_unix: float = 0.0
    done: float = 0.0
    schedule_lag: float | None = None
    answer: Any = None  # what send() returned: the TestResult of the request
    error: BaseException | None = None  # the client never raises; a hook-made body might
    event: threading.Event = field(default_factory=threading.Event)

    @property
    def window(self) -> tuple[float, float]:
        return (self.sent, self.done)


def open_files_for(connections: int) -> None:
    """Raise this process's limit of open files (soft, up to the hard one) so that every request in flight has its
    connection: many systems start processes at 1,024, which 1,000 streams and pytest's own files pass."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FILES_BESIDE_CONNECTIONS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard),
                                                    hard))


class Dispatcher:
    """Sends tickets in the order added, phase by phase (a phase starts when the previous one has drained).

    ``send(api_type, body)`` is the client's own call; it runs on the pool's threads.
    """

    def __init__(self, send: Callable[[str, dict[str, Any]], Any], *, burstiness: float = 1.0,
                 ramp_s: float = 0.0, duration_s: float = 0.0, seed: int | None = None,
                 threads: int = 1, on_finish: Callable[[Ticket], None] | None = None) -> None:
        self._send = send
        self._on_finish = on_finish  # told of each ticket as it ends: the capacity search judges as answers come
        self._burstiness = burstiness
        self._ramp_s = ramp_s
        self._duration_s = duration_s
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self._queue: collections.deque[Ticket] = collections.deque()
        self._tickets: dict[str, Ticket] = {}
        self._in_flight = 0
        self._stopped = False
        open_files_for(threads)
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="llmbench-load")
        self._sender: threading.Thread | None = None
        self._switch_interval = sys.getswitchinterval()
        self.warmup: list[Ticket] = []
        self.cancelled = 0  # requests cut in flight by stop()
        self.streaming = 0  # requests whose answer the reading loop is reading: they hold no thread
        self.phase_starts: dict[int, float] = {}  # phase -> unix time its first request was due

    # -- the main thread's side -------------------------------------------------------------------

    def add(self, tickets: Iterable[Ticket]) -> None:
        with self._cond:
            for ticket in tickets:
                if ticket.phase == WARMUP_PHASE:
                    self.warmup.append(ticket)
                else:
                    self._tickets[ticket.key] = ticket
                self._queue.append(ticket)
            self._cond.notify_all()
            if self._sender is None:
                # A thread waiting for the GIL gets it after the switch interval (5 ms): too coarse for a send
                # schedule or for stamping arrivals while pytest's thread works; restored by stop().
                self._switch_interval = sys.getswitchinterval()
                sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
                self._sender = threading.Thread(target=self._run, name="llmbench-sender", daemon=True)
                self._sender.start()

    def knows(self, key: str) -> bool:
        return key in self._tickets

    def take(self, key: str, holder: dict[str, Ticket] | None = None) -> Ticket:
        """Block until the ticket is answered, expired or cancelled; the caller owns it from then on.

        With ``holder``, the ticket is put there before it leaves the dispatcher, so that a Ctrl-C arriving
        with the answer (the usual moment) finds it in one place or the other, never in neither."""
        ticket = self._tickets[key]
        ticket.event.wait()
        if holder is not None:
            holder[key] = ticket
        with self._cond:
            self._tickets.pop(key, None)
        return ticket

    def drop(self, key: str) -> None:
        """The item will not run (skipped): its request must not be sent, or its answer is not wanted."""
        with self._cond:
            ticket = self._tickets.pop(key, None)
            if ticket is not None and ticket.state == QUEUED:
                ticket.state = DROPPED
                ticket.event.set()

    def stop(self) -> list[Ticket]:
        """Send nothing more, cut what is in flight, join every thread; returns the answered tickets no item
        took (they are kept: the run stopped, not the requests)."""
        with self._cond:
            self._stopped = True
            in_flight = [t for t in self._tickets.values() if t.state == SENT]
            for ticket in in_flight:
                ticket.state = CANCELLED
            for ticket in self._tickets.values():
                if ticket.state == QUEUED:
                    ticket.state = DROPPED
                ticket.event.set()  # nobody waits on a stopped dispatcher
            self._cond.notify_all()
        if in_flight:
            WATCHDOG.expire_all()  # the blocked reads return at once, and the loop ends the streams it reads
        with self._cond:  # each ended stream's request goes on on the pool: wait for them before shutting it
            self._cond.wait_for(lambda: not self.streaming, STOP_WAIT_S)
        self._pool.shutdown(wait=True)  # queued jobs see the stop and send nothing; resumed requests finish
        # counted once every job has ended: a job that had started when the stop came still sent its request
        self.cancelled = sum(t.sent > 0 for t in in_flight)  # on the wire; the rest never left
        if self._sender is not None:
            self._sender.join()
            sys.setswitchinterval(self._switch_interval)
        with self._cond:
            left = [t for t in self._tickets.values() if t.state == DONE]
            self._tickets.clear()
        return left

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- the sender thread -----------------------------------------------------------------------

    def _next(self) -> Ticket | None:
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            return None if self._stopped else self._queue.popleft()

    def _run(self) -> None:
        phase: int | None = None
        start = shift = 0.0
        times: Iterator[float] = iter(())
        while (ticket := self._next()) is not None:
            if ticket.state != QUEUED:
                continue
            if ticket.phase != phase:
                if not self._drain():
                    return
                phase, shift = ticket.phase, 0.0
                start = time.monotonic()
                self.phase_starts.setdefault(phase, time.time())
                times = arrivals(ticket.level.rate, self._burstiness, self._ramp_s, self._rng)
            paced = ticket.level.rate != math.inf or ticket.send_at is not None
            planned = start + shift + (next(times) if ticket.send_at is None else ticket.send_at)
            if self._past_duration(ticket, planned - start - shift):
                self._finish(ticket, EXPIRED)
                continue
            if paced and not self._sleep_until(planned):
                return
            waited = self._acquire(ticket, start)
            if waited is None:
                return
            now = time.monotonic()
            if ticket.state != SENT:  # dropped while it waited for a slot
                continue
            if self._past_duration(ticket, now - start):  # the slot came too late
                self._release()
                self._finish(ticket, EXPIRED)
                continue
            if paced:
                ticket.planned = planned
                if waited:  # no catch-up burst: the schedule goes on from here
                    shift += now - planned
            self._pool.submit(self._job, ticket)

    def _sleep_until(self, when: float) -> bool:
        with self._cond:
            while not self._stopped:
                left = when - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(left)
        return False

    def _acquire(self, ticket: Ticket, start: float) -> bool | None:
        """Take a slot for ``ticket``: True if it had to wait for one, None if the dispatcher stopped."""
        top = ceiling(ticket.level)
        ramping = ticket.level.rate == math.inf and self._ramp_s > 0 and ticket.phase != WARMUP_PHASE
        waited = False
        with self._cond:
            while not self._stopped:
                limit = concurrency_at(time.monotonic() - start, top, self._ramp_s) if ramping else top
                if self._in_flight < limit and ticket.state == QUEUED:
                    self._in_flight += 1
                    ticket.state = SENT
                    return waited
                if ticket.state != QUEUED:
                    return waited
                waited = True
                self._cond.wait(0.05 if ramping else None)
        return None

    def _past_duration(self, ticket: Ticket, elapsed: float) -> bool:
        return bool(self._duration_s) and ticket.phase != WARMUP_PHASE and elapsed >= self._duration_s

    def _release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _drain(self) -> bool:
        """Wait until nothing is in flight: phases never overlap."""
        with self._cond:
            while self._in_flight and not self._stopped:
                self._cond.wait()
            return not self._stopped

    def _job(self, ticket: Ticket) -> None:
        # The stop came between the slot and this thread: nothing leaves (a warm-up ticket is not cancelled, but
        # the stop holds for it too; queued jobs run after a stop, for the requests the loop gives back).
        if ticket.state == CANCELLED or self._stopped:
            self._release()
            ticket.event.set()
            return
        ticket.sent_unix, ticket.sent = time.time(), time.monotonic()
        if ticket.planned is not None:  # measured where the request leaves, pool hand-over included
            ticket.schedule_lag = max(0.0, ticket.sent - ticket.planned)
        try:
            answer = self._send(ticket.api_type, ticket.body)
        except BaseException as exc:  # noqa: BLE001 - handed to the item, which reports it as its failure
            ticket.error = exc
        else:
            if isinstance(answer, Generator):
                self._advance(ticket, answer)
                return
            ticket.answer = answer
        self._answered(ticket)

    def _advance(self, ticket: Ticket, steps: Generator[Any, None, Any]) -> None:
        """Runs the request's steps on this thread up to the next stream handed to the reading loop, which gives
        it a thread again once that stream has ended: no thread waits while its answer streams."""
        try:
            stream = next(steps)
        except StopIteration as stop:
            ticket.answer = stop.value
        except BaseException as exc:  # noqa: BLE001 - handed to the item, which reports it as its failure
            ticket.error = exc
        else:
            with self._cond:
                self.streaming += 1
            stream.when_ended(lambda: self._resume(ticket, steps))
            return
        self._answered(ticket)

    def _resume(self, ticket: Ticket, steps: Generator[Any, None, Any]) -> None:
        """On the reading thread, as a stream ends: its request goes on on the pool (kept short: every stream
        waits for this thread). A pool already shut down (a stop that could not wait) goes on here."""
        with self._cond:
            self.streaming -= 1
            self._cond.notify_all()
        try:
            self._pool.submit(self._advance, ticket, steps)
        except RuntimeError:
            self._advance(ticket, steps)

    def _answered(self, ticket: Ticket) -> None:
        ticket.done = time.monotonic()
        self._release()
        self._finish(ticket, DONE)

    def _finish(self, ticket: Ticket, state: str) -> None:
        with self._cond:
            if ticket.state not in (CANCELLED, DROPPED):
                ticket.state = state
        ticket.event.set()
        if self._on_finish is not None:
            self._on_finish(ticket)
