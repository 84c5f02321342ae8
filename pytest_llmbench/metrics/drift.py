"""Answer drift: each test's answer beside a baseline's answer for the same test id and model.

Latency deltas say a model, quantization or server swap made answers slower; drift says it made them different.
Three levels, cheapest first: ``identical``, ``normalized-equal`` (only case, whitespace or punctuation differ), and
``changed`` with a similarity in 0-1 (rapidfuzz's Indel ratio of the normalized texts, ``fuzz.ratio / 100``: C speed,
so 10,000 answers of 2 KB take well under the R2 target of 2 s). Drift means something only with deterministic
sampling (temperature 0, a seed): ``sampling_warnings`` names the tests whose sampling is not, or differs.
"""

from __future__ import annotations

import heapq
import itertools
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz.distance import Indel

IDENTICAL, NORMALIZED, CHANGED = "identical", "normalized-equal", "changed"
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "seed")
DIFF_CHARS = 4000  # of each answer, compared word by word for the report
DIFFS_KEPT = 200  # word-level diffs kept for the most changed answers
SEMANTIC_CHARS = 8000  # of each answer, embedded for the semantic cosine (embedding models take ~512-8k tokens)
_TOKEN = re.compile(r"\w+")
_ASCII_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation if c != "_"})  # \w keeps "_" too
_WORD = re.compile(r"\S+\s*|\s+")

Key = tuple[str, str]


def key_of(row: Mapping[str, Any]) -> Key:
    """A test's identity across runs, as ``--llmbench-compare`` pairs them: test id and model."""
    return str(row.get("test_id")), str(row.get("model") or "")


def normalize(text: str) -> str:
    """Case folded, punctuation and runs of whitespace as one space. ASCII text (most answers) takes the
    translate table, twice as fast as the Unicode-aware regex that any other text takes (R2's hot path)."""
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_PUNCTUATION).split())
    return " ".join(_TOKEN.findall(text.casefold()))


def answer_drift(before: str, after: str) -> dict[str, Any]:
    """The row's ``answer_drift``: level and similarity (1.0 when only case, spacing or punctuation differ)."""
    if before == after:
        return {"level": IDENTICAL, "similarity": 1.0}
    a, b = normalize(before), normalize(after)
    if a == b:
        return {"level": NORMALIZED, "similarity": 1.0}
    return {"level": CHANGED, "similarity": round(Indel.normalized_similarity(a, b), 4)}


def word_diff(before: str, after: str) -> list[list[str]]:
    """Word-level diff segments ``[op, text]`` with op ``=``, ``-`` (only before) or ``+`` (only after); texts are
    raw (the report escapes them) and cut to DIFF_CHARS each."""
    a, b = _WORD.findall(before[:DIFF_CHARS]), _WORD.findall(after[:DIFF_CHARS])
    segments: list[list[str]] = []
    for op in Indel.opcodes(a, b):
        if op.tag == "equal":
            segments.append(["=", "".join(a[op.src_start:op.src_end])])
            continue
        if op.src_end > op.src_start:
            segments.append(["-", "".join(a[op.src_start:op.src_end])])
        if op.dest_end > op.dest_start:
            segments.append(["+", "".join(b[op.dest_start:op.dest_end])])
    return segments


def sampling_of(request: dict[str, Any] | None) -> dict[str, Any]:
    """The request's sampling parameters that decide whether an answer can be reproduced."""
    return {k: request[k] for k in SAMPLING_KEYS if isinstance(request, dict) and k in request}


def outcome_change(before: Any, after: Any) -> str | None:
    """A check that passed and now fails is a regression; one that failed and now passes an improvement."""
    if before is True and after is False:
        return "regression"
    if before is False and after is True:
        return "improvement"
    return None


@dataclass
class BaselineAnswers:
    """The baseline's answers by test, its rows' check outcomes and sampling; compares answers as they come and
    keeps the word-level diffs of the most changed."""

    answers: dict[Key, str]
    rows: Mapping[Key, Mapping[str, Any]] = field(default_factory=dict)
    sampling: dict[Key, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    semantic: bool = False  # --llmbench-embedding-model: keep each changed pair's texts for their cosine

    def __post_init__(self) -> None:
        # the most changed answers' texts, for their diffs: a heap whose top is the least changed kept
        self._diffs: list[tuple[float, int, Key, str, str]] = []
        self._order = itertools.count()
        self.sampling_notes: dict[str, int] = {}
        self.pending: list[tuple[dict[str, Any], str, str]] = []  # changed answers awaiting their cosine

    def compare(self, row: Mapping[str, Any], answer: str, sampling: dict[str, Any]) -> dict[str, Any] | None:
        """The row's ``answer_drift`` (None when the baseline has no answer for this test)."""
        key = key_of(row)
        before = self.answers.get(key)
        if before is None:
            return None
        drift = answer_drift(before, answer)
        self._note_sampling(key, sampling)
        if self.semantic:  # the same texts need no embedding: their cosine is 1
            if drift["level"] == CHANGED:
                self.pending.append((drift, before[:SEMANTIC_CHARS], answer[:SEMANTIC_CHARS]))
            else:
                drift["cosine"] = 1.0
        if drift["level"] != IDENTICAL:
            entry = (-drift["similarity"], next(self._order), key, before[:DIFF_CHARS], answer[:DIFF_CHARS])
            if len(self._diffs) < DIFFS_KEPT:
                heapq.heappush(self._diffs, entry)
            elif entry > self._diffs[0]:  # more changed than the least changed kept
                heapq.heapreplace(self._diffs, entry)
        return drift

    def _note_sampling(self, key: Key, now: dict[str, Any]) -> None:
        before = self.sampling.get(key)
        if before is not None and before != now:
            note = f"sampled differently: {_text(before)} in the baseline, {_text(now)} now"
        elif now.get("temperature", 1.0) != 0 and "seed" not in now:
            note = f"sampled without a seed at {_text(now) or 'the server default temperature'}"
        else:
            return
        self.sampling_notes[note] = self.sampling_notes.get(note, 0) + 1

    def changes(self, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The batch's ``answer_changes``: every test whose answer changed, most changed first, with its check
        outcomes before and after and, for the most changed, the word-level diff."""
        diffs = {key: word_diff(before, after) for _, _, key, before, after in self._diffs}
        found = []
        for row in rows:
            drift = row.get("answer_drift")
            if not isinstance(drift, dict) or drift.get("level") == IDENTICAL:
                continue
            key = key_of(row)
            old = self.rows.get(key, {})
            before, after = old.get("evaluation_passed"), row.get("evaluation_passed")
            found.append({"test_id": key[0], "model": key[1], "level": drift.get("level"),
                          "similarity": drift.get("similarity"), "cosine": drift.get("cosine"),
                          "checks_before": before, "checks_after": after,
                          "outcome": outcome_change(before, after), "diff": diffs.get(key)})
        found.sort(key=lambda change: (change["similarity"], change["test_id"], change["model"]))
        return found

    def summary(self, rows: Iterable[Mapping[str, Any]], fail_below: float | None) -> dict[str, Any]:
        """The batch's ``drift``: counts per level, the gate, and the sampling warnings."""
        levels = [row["answer_drift"]["level"] for row in rows if isinstance(row.get("answer_drift"), dict)]
        similarities = [row["answer_drift"]["similarity"] for row in rows
                        if isinstance(row.get("answer_drift"), dict)]
        return {"baseline": self.source, "compared": len(levels), "identical": levels.count(IDENTICAL),
                "normalized_equal": levels.count(NORMALIZED), "changed": levels.count(CHANGED),
                "without_baseline_answer": sum(1 for row in rows if not row.get("llm_client")) - len(levels),
                "min_similarity": min(similarities, default=None), "fail_below": fail_below,
                "min_cosine": min((row["answer_drift"]["cosine"] for row in rows if isinstance(
                    row.get("answer_drift"), dict) and row["answer_drift"].get("cosine") is not None), default=None),
                "sampling_warnings": [f"{count} tests {note}" for note, count in sorted(self.sampling_notes.items())]}


def drift_failures(rows: Iterable[Mapping[str, Any]], fail_below: float) -> list[str]:
    """``--llmbench-drift-fail``: one message for the answers below the similarity, the worst named."""
    below = sorted((row["answer_drift"]["similarity"], key_of(row)) for row in rows
                   if isinstance(row.get("answer_drift"), dict) and row["answer_drift"]["similarity"] < fail_below)
    if not below:
        return []
    worst = ", ".join(f"{test_id}{f' ({model})' if model else ''} {similarity:.2f}"
                      for similarity, (test_id, model) in below[:5])
    return [f"{len(below)} answers drifted below similarity {fail_below:g} from the baseline: {worst}"
            + (" …" if len(below) > 5 else "")]


def _text(sampling: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(sampling.items()))
