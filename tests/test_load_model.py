"""The load's parts on their own: the arrival model's statistics, ramps, shares, the dispatcher's ceiling and
stop, the timeline's buckets and the sweep's knee."""

from __future__ import annotations

import math
import random
import statistics
import threading
import time
from itertools import islice, pairwise
from typing import Any

import pytest
from faultserver import FaultServer, Reply

from pytest_llmbench.exceptions import ConfigurationError
from pytest_llmbench.http.client import ClientConfig, LLMClient
from pytest_llmbench.metrics.slo import parse_run_slos
from pytest_llmbench.metrics.sweep import knee, level_row
from pytest_llmbench.metrics.timeline import Timeline
from pytest_llmbench.session.load.dispatcher import CANCELLED, DONE, Dispatcher, Ticket
from pytest_llmbench.session.load.plan import (
    Level,
    arrivals,
    concurrency_at,
    inverse_cumulative,
    parse_sweep,
    process_level,
    share,
)


def gaps(rate: float, burstiness: float, count: int = 20000) -> list[float]:
    times = list(islice(arrivals(rate, burstiness, 0.0, random.Random(7)), count))
    return [b - a for a, b in pairwise(times)]


def test_poisson_arrivals_have_the_rate_and_a_coefficient_of_variation_of_one() -> None:
    observed = gaps(50.0, 1.0)
    assert statistics.fmean(observed) == pytest.approx(1 / 50, rel=0.03)
    assert statistics.stdev(observed) / statistics.fmean(observed) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_burstiness_is_the_gamma_shape_and_keeps_the_mean(burstiness: Any) -> None:
    observed = gaps(20.0, burstiness)
    assert statistics.fmean(observed) == pytest.approx(1 / 20, rel=0.05)
    cv = statistics.stdev(observed) / statistics.fmean(observed)
    assert cv == pytest.approx(1 / math.sqrt(burstiness), rel=0.08)  # CV of a gamma of shape k: 1/sqrt(k)


def test_an_infinite_rate_sends_everything_at_once() -> None:
    assert list(islice(arrivals(math.inf, 1.0, 0.0, random.Random(1)), 3)) == [0.0, 0.0, 0.0]


def test_a_rate_ramp_sends_half_the_full_rate_over_the_ramp_then_the_full_rate() -> None:
    rate, ramp = 10.0, 4.0
    assert inverse_cumulative(rate * ramp / 2, rate, ramp) == pytest.approx(ramp)  # 20 requests by t = 4 s
    assert inverse_cumulative(rate * ramp / 8, rate, ramp) == pytest.approx(ramp / 2)  # a quarter by half-way
    assert inverse_cumulative(rate * ramp / 2 + 10, rate, ramp) == pytest.approx(ramp + 1.0)


def test_a_concurrency_ramp_rises_from_one_to_the_top() -> None:
    assert [concurrency_at(t, 8, 2.0) for t in (0.0, 0.5, 1.0, 1.99, 2.0, 9.0)] == [1, 2, 4, 8, 8, 8]


def test_process_shares_add_up_to_the_session_load() -> None:
    assert [share(10, n, 3) for n in range(3)] == [4, 3, 3]
    parts = [process_level(Level(5, 30.0), n, 2) for n in range(2)]
    assert [p.concurrency for p in parts] == [3, 2] and all(p.rate == 15.0 for p in parts)


def test_sweep_levels_are_parsed_with_the_other_dimension_kept() -> None:
    kind, levels = parse_sweep("rate=5, 10,inf", Level(16, math.inf))
    assert kind == "rate" and [lv.label for lv in levels] == ["rate5", "rate10", "c16"]
    with pytest.raises(ConfigurationError, match="named twice"):
        parse_sweep("concurrency=4,4", Level(0, math.inf))
    with pytest.raises(ConfigurationError, match="whole numbers"):
        parse_sweep("concurrency=0,2", Level(0, math.inf))


class SlowSend:
    """A send that takes its time and counts how many run at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.active, self.peak = seconds, 0, 0
        self._lock = threading.Lock()

    def __call__(self, api_type: str, body: dict[str, Any]) -> str:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.seconds)
        with self._lock:
            self.active -= 1
        number: str = body["n"]
        return number


def tickets(count: int, level: Level, phase: int = 0) -> list[Ticket]:
    return [Ticket(key=f"{phase}-{n}", api_type="chat", body={"n": n}, phase=phase, level=level)
            for n in range(count)]


def test_the_ceiling_holds_and_each_item_gets_its_own_answer() -> None:
    send = SlowSend(0.05)
    dispatcher = Dispatcher(send, threads=4)
    dispatcher.add(tickets(12, Level(4, math.inf)))
    answers = [dispatcher.take(f"0-{n}") for n in range(12)]
    assert [t.answer for t in answers] == list(range(12)) and send.peak == 4
    assert all(t.state == DONE and t.done >= t.sent for t in answers)
    dispatcher.stop()


def test_phases_never_overlap() -> None:
    send = SlowSend(0.05)
    dispatcher = Dispatcher(send, threads=4)
    dispatcher.add(tickets(4, Level(4, math.inf), phase=0) + tickets(4, Level(4, math.inf), phase=1))
    first = [dispatcher.take(f"0-{n}") for n in range(4)]
    second = [dispatcher.take(f"1-{n}") for n in range(4)]
    assert min(t.sent for t in second) >= max(t.done for t in first)
    dispatcher.stop()


def test_stop_cuts_what_is_in_flight_keeps_what_was_answered_and_joins_every_thread(fault_server: FaultServer, v1: str) -> None:
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
    fault_server.reply(Reply.json(answer), Reply.json(answer)).always(Reply.json(answer, delay=30.0))
    client = LLMClient(ClientConfig(v1, retries=0), model="m")
    dispatcher = Dispatcher(client.send, threads=2)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    dispatcher.add([Ticket(key=f"t{n}", api_type="chat", body=body, phase=0, level=Level(1, math.inf))
                    for n in range(4)])
    dispatcher.take("t0")
    while len(fault_server.received) < 3:  # t1 answered, t2 waiting for its answer
        time.sleep(0.01)
    started = time.monotonic()
    kept = dispatcher.stop()
    assert time.monotonic() - started < 5 and [t.key for t in kept] == ["t1"]
    assert len(fault_server.received) == 3  # t3 was never sent
    assert not [t for t in threading.enumerate() if t.name.startswith(("llmbench-load", "llmbench-sender"))]
    client.close()


def test_a_dropped_ticket_is_never_sent() -> None:
    send = SlowSend(0.05)
    dispatcher = Dispatcher(send, threads=1)
    dispatcher.add(tickets(3, Level(1, math.inf)))
    dispatcher.drop("0-2")
    assert dispatcher.take("0-1").answer == 1
    dispatcher.stop()
    assert send.peak == 1 and CANCELLED != DONE


def test_the_timeline_counts_per_bucket_and_weighs_in_flight_by_time() -> None:
    timeline = Timeline()
    timeline.add(100.0, 101.5, 10, False)
    timeline.add(100.5, 100.9, 4, True)
    buckets = timeline.buckets(1.0)["buckets"]
    assert buckets == [{"t": 0.0, "sent": 2, "completed": 1, "in_flight": 1.4, "output_tokens": 4, "errors": 1},
                       {"t": 1.0, "sent": 0, "completed": 1, "in_flight": 0.5, "output_tokens": 10, "errors": 0}]
    assert timeline.span() == pytest.approx(1.5) and timeline.send_rate() == pytest.approx(2.0)


def test_the_knee_is_the_highest_level_meeting_the_slos() -> None:
    slos = parse_run_slos(["latency_p99=100ms"])

    def row(label: str, concurrency: int, p99: float, goodput: float = 1.0) -> dict[str, Any]:
        summary = {"total_tests": 10, "failed_tests": 0, "goodput": goodput, "duration_s": 1.0,
                   "p99_latency_ms": p99}
        return level_row(label, concurrency, math.inf, summary, None, slos)

    rows = [row("c1", 1, 50), row("c4", 4, 90), row("c16", 16, 400), row("c8", 8, 80, goodput=0.9)]
    assert [r["meets_slos"] for r in rows] == [True, True, False, False]
    assert "1 of 10 requests failed or missed a per-test SLO" in rows[3]["slo_misses"]
    assert knee(rows) == "c4" and knee(rows[2:]) is None
