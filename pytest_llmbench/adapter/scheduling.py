"""An xdist scheduler for load runs: each worker gets its whole share at once, so its dispatcher can send ahead.

xdist's ``LoadScheduling`` hands out small chunks and refills a worker when it runs low; a worker then knows
two or three items ahead, and a dispatcher cannot keep 32 requests in flight with three known items. This one
hands every worker a contiguous block of the selection (its order kept), and in a sweep one level at a time:
the next level goes out once every worker is on its last item of the last level (an xdist worker waits to
know its next item before it runs one), so levels overlap by at most one request per worker.
When ``-x``/``--maxfail`` stop the session, what the workers still hold is taken back (xdist's ``steal``).
Used only for ``--dist load`` (the default of ``-n``); the other modes keep xdist's own schedulers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from ..session.load.plan import LoadPlan
from .internals import xdist_stopping

_LEVEL = re.compile(r"\[(?:.*-)?(c\d+|rate[^-\]]+)(?:-r\d+)?\]$")


def make_scheduler(config: pytest.Config, plan: LoadPlan) -> Any:
    if not plan.dispatched or config.getvalue("dist") != "load":
        return None
    return _scheduler_class()(config, plan)


def phase_of(nodeid: str, labels: dict[str, int]) -> int:
    """The sweep level of a node id (``t01[c16]``, ``t01[model-c16-r2]``); tests of other kinds go first."""
    match = _LEVEL.search(nodeid)
    return labels.get(match.group(1), 0) if match else 0


def _scheduler_class() -> type:
    from xdist.scheduler import LoadScheduling  # type: ignore[import-untyped]  # only under xdist

    class LoadShareScheduling(LoadScheduling):  # type: ignore[misc]
        def __init__(self, config: pytest.Config, plan: LoadPlan) -> None:
            super().__init__(config)
            self._labels = {level.label: n for n, level in enumerate(plan.levels)} if plan.sweep_kind else {}
            self._phases: list[int] = []
            self._stopping = False
            self.collection: list[str] | None = None

        def schedule(self) -> None:
            assert self.collection_is_completed
            if self.collection is not None:  # a restarted worker joined: it gets the next level
                for node in self.nodes:
                    self.check_schedule(node)
                return
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            collection: list[str] = next(iter(self.node2collection.values()))
            self.collection = collection
            self._phases = [phase_of(nodeid, self._labels) for nodeid in collection]
            self.pending[:] = range(len(collection))
            self._send_level()

        def check_schedule(self, node: Any, duration: float = 0) -> None:
            if self._stopping:
                return
            if self._session_stops():
                self._take_back()
            elif all(len(indices) <= 1 for indices in self.node2pending.values()):
                # Every worker is done with the level but for its last item, which an xdist worker only runs
                # once it knows what comes next (its request was sent with the level's, under its dispatcher)
                self._send_level()

        def remove_pending_tests_from_node(self, node: Any, indices: Sequence[int]) -> None:
            for index in indices:
                self.node2pending[node].remove(index)

        def _send_level(self) -> None:
            if self.pending:
                level = self._phases[self.pending[0]]
                batch = [i for i in self.pending if self._phases[i] == level]
                taken = set(batch)
                self.pending[:] = [i for i in self.pending if i not in taken]
                nodes = self.nodes
                for number, node in enumerate(nodes):  # contiguous blocks: each worker keeps the order
                    block = batch[len(batch) * number // len(nodes):len(batch) * (number + 1) // len(nodes)]
                    if block:
                        self.node2pending[node].extend(block)
                        node.send_runtest_some(block)
            if not self.pending:
                for node in self.nodes:
                    node.shutdown()

        def _session_stops(self) -> bool:
            return xdist_stopping(self.config)

        def _take_back(self) -> None:
            """-x/--maxfail: what the workers have not started is not run (xdist would run it all)."""
            self._stopping = True
            self.pending.clear()
            for node, indices in self.node2pending.items():
                for index in indices[1:]:  # the first is running; all-or-none steals, so one each
                    node.send_steal([index])
                node.shutdown()

    return LoadShareScheduling
