"""``--llmbench-search`` inside pytest: its options checked when the session is configured, the search run on the
controller before the first test (the selected suite tests give its requests, cycled, through the runner's client
and a ``Dispatcher`` as every load run sends), and ``--llmbench-capacity-min`` as a gate that pytest counts.

The search drives the whole load from one process, so it refuses xdist's ``-n``; the run SLOs are its objectives,
not gates over the tests that run after it (as a sweep's are).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..batch import Batch, Capacity, CapacityProbe
from ..exceptions import ConfigurationError
from ..metrics.capacity import against_baseline, answer_text, minimum_check
from ..metrics.gates import GateResult
from ..metrics.slo import RunSlo
from ..options import Settings
from ..runner import Runner
from ..session.load.search import CapacitySearch, SearchSetup, search_setup
from .items import LLMBenchItem
from .live import LiveOutput

SEARCH_KEY = pytest.StashKey[SearchSetup]()
_SEARCH_RUN = pytest.StashKey[CapacitySearch]()
GATE = "capacity[min]"


def configure_search(config: pytest.Config, settings: Settings, slos: list[RunSlo]) -> None:
    """Check the search's options as the session is configured. Raises ConfigurationError naming the option."""
    setup = search_setup(settings, slos)
    if setup is None:
        return
    if config.getoption("numprocesses", None) or config.getoption("dist", "no") != "no":
        raise ConfigurationError("--llmbench-search drives the whole load from one process: drop -n/--dist (xdist)")
    config.stash[SEARCH_KEY] = setup


def search_in_flight(config: pytest.Config) -> int:
    """The most requests the search keeps in flight (1 without a search): the client keeps as many connections."""
    setup = config.stash.get(SEARCH_KEY, None)
    return 1 if setup is None else setup.in_flight


def run_search(config: pytest.Config, session: pytest.Session, make_runner: Callable[[], Runner],
               settings: Settings, live: LiveOutput) -> None:
    """The search, before the first test, unless there is none or no test to send; ``found`` is its answer."""
    setup = config.stash.get(SEARCH_KEY, None)
    if setup is None:
        return
    items = [item for item in session.items if isinstance(item, LLMBenchItem) and item.case.turns is None]
    if not items:
        live.warn(["--llmbench-search: no selected suite test sends a single request (conversations are not "
                   "sent by the search): no capacity was searched"])
        return
    runner = make_runner()
    bodies = [(item.case.api_type, runner.prepare(item.case, item.model)) for item in items]
    streamed = [o.name for o in setup.objectives if o.streamed]
    if streamed and not all(body.get("stream") for _, body in bodies):
        pytest.exit(f"llmbench: --llmbench-search: {', '.join(streamed)} is measured only on streamed answers, and "
                    "not every test streams: run with --llmbench-stream", returncode=pytest.ExitCode.USAGE_ERROR)
    live.interrupt()
    live.say(f"capacity search ({setup.spec.kind}) within " + ", ".join(o.text for o in setup.objectives)
             + f": {len(bodies)} test request{'' if len(bodies) == 1 else 's'}, cycled")

    def show(probe: CapacityProbe) -> None:
        live.say("  " + probe_line(probe))

    search = CapacitySearch(runner.client.send_steps, bodies, setup.spec, setup.objectives, setup.caps,
                            confidence=settings.confidence, undecided=settings.slo_undecided,
                            rate_ceiling=setup.rate_ceiling, burstiness=settings.burstiness, seed=settings.seed,
                            on_probe=show)
    config.stash[_SEARCH_RUN] = search  # found() reads its answer when the run ends
    section = search.run()
    live.say(answer_text(section))
    undecided = [p["label"] for p in section["probes"] if p["verdict"] == "undecided"]
    if undecided and settings.slo_undecided != "pass":
        live.warn([f"capacity search: level {', '.join(undecided)} undecided at its cap (its attainment interval "
                   "still straddles the target), taken as a fail (--llmbench-slo-undecided pass takes it as a pass)"])


def found(config: pytest.Config, baseline: Batch | None) -> Capacity | None:
    """The search's section of the batch, with --llmbench-capacity-min's verdict and the baseline's capacity beside
    it; None when no search ran."""
    search = config.stash.get(_SEARCH_RUN, None)
    if search is None:
        return None
    section = search.section
    minimum = config.stash[SEARCH_KEY].minimum
    if minimum is not None:
        section["minimum"], section["minimum_passed"] = minimum, minimum_check(section, minimum)[0]
    section["baseline"] = against_baseline(section, None if baseline is None else baseline.get("capacity"))
    return section


def probe_line(probe: CapacityProbe) -> str:
    """"c16 pass: attainment 100.0% [83.9%, 100%] of 20 (4 warm-up), latency_p90 212.0 ms, 0.9 s"."""
    low, high = probe["attainment_ci"]
    share = "-" if probe["attainment"] is None else f"{probe['attainment']:.1%}"
    bounds = "" if low is None or high is None else f" [{low:.1%}, {high:.1%}]"
    figures = ", ".join(f"{name} {'-' if value is None else f'{value:.1f} ms'}"
                        for name, value in probe["figures"].items())
    verdict = probe["verdict"].upper() if probe["verdict"] != "pass" else "pass"
    note = f" ({probe['reason']})" if probe["reason"] != "decided" else ""
    return (f"{probe['label']} {verdict}{note}: attainment {share}{bounds} of {probe['counted']} "
            f"({probe['warmup']} warm-up), {figures}, {probe['duration_s']:.1f} s")


def capacity_gate(result: GateResult | None, section: Capacity | None) -> GateResult | None:
    """--llmbench-capacity-min as a gate beside the others: a failed gate is a failed report pytest counts."""
    if section is None or section["minimum"] is None:
        return result
    result = result if result is not None else GateResult()
    passed, message = minimum_check(section, section["minimum"])
    if passed:
        result.passed_gates.append(message)
    else:
        result.capacity.append(message)
        result.failed_gates.append((GATE, message))
    return result

