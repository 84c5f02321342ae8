"""Prompt building on its own: exact lengths through an unstable tokenizer round trip, shared blocks, and the
lengths a seed draws, the same in any order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_llmbench.collect.workload.lengths import Draws, Lengths
from pytest_llmbench.collect.workload.prompts import PromptBuilder
from pytest_llmbench.collect.workload.tokens import EstimateTokenizer


class MergingTokenizer:
    """One token per character, but "th" is one token: ids decoded side by side can merge when encoded again,
    as BPE merges do at the edges of a cut."""

    name = "merging"
    estimated = False

    def encode(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            if text.startswith("th", i):
                ids.append(1 << 20)
                i += 2
            else:
                ids.append(ord(text[i]))
                i += 1
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return "".join("th" if i == 1 << 20 else chr(i) for i in ids)


def test_lengths_are_exact_through_an_unstable_round_trip() -> None:
    builder = PromptBuilder(MergingTokenizer())
    head = builder.tokenizer.encode("a shared prefix that ends in t")  # "t" then a body's "h" merge into one
    unstable = 0
    for n in range(300):
        count = 40 + n * 7
        ids = head + builder.ids(f"k{n}", count - len(head))
        unstable += len(builder.tokenizer.encode(builder.tokenizer.decode(ids))) != count
        text, got = builder.text(count, f"k{n}", head)
        assert got == count == len(builder.tokenizer.encode(text))
    assert unstable > 3  # the round trip did change lengths: the adjustment was needed


def test_shared_blocks_start_the_prompts_that_name_them() -> None:
    builder = PromptBuilder(EstimateTokenizer())
    head = builder.block("prefix/1", 30)
    first, _ = builder.text(50, "a", head)
    second, _ = builder.text(80, "b", head)
    other, _ = builder.text(50, "c", builder.block("prefix/2", 30))
    assert first.split()[:30] == second.split()[:30] != other.split()[:30]


def test_a_requests_lengths_do_not_depend_on_the_order_they_are_drawn() -> None:
    spec = Lengths(mean=100, stddev=30, low=50, high=150)
    forward = [spec.draw(Draws(7, i)) for i in range(50)]
    backward = [spec.draw(Draws(7, i)) for i in reversed(range(50))][::-1]
    assert forward == backward and min(forward) >= 50 and max(forward) <= 150 and len(set(forward)) > 10
    assert forward != [spec.draw(Draws(8, i)) for i in range(50)]


def test_the_workload_examples_load_and_cover_every_kind() -> None:
    from pathlib import Path

    from pytest_llmbench.collect.suite import load_suite

    folder = Path(__file__).resolve().parent.parent / "example_suites" / "workloads"
    suites = {path.stem: load_suite(path).tests for path in sorted(folder.glob("*.json"))}
    def blocks(case: Any) -> Any:
        assert case.shape is not None
        return case.shape.blocks

    assert len(suites["rand"]) == 1000 and blocks(suites["rand"][0])  # the README's JSON, as written
    assert len(suites["chats"]) == 12 and suites["chats"][0].api_type == "chat"
    assert (suites["replay"][-1].send_at_s or 0) > 0 and blocks(suites["replay"][0])
    assert all(case.turns for case in suites["conversation"])
    assert {block.key for case in suites["prefix"] for block in blocks(case)} == {
        f"prefix/3/{group}" for group in range(4)}
