"""Checks on a rerank test's ranking: the best document, the order of the first ones, and the top score.

A document is named by its index in the test's ``documents`` or by its text, whichever reads better in the suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .check import Check


def _need_document(value: Any) -> str | None:
    if (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (isinstance(value, str) and value):
        return None
    return "must name a document: its index in 'documents' (0 or more) or its text"


def _need_order(value: Any) -> str | None:
    if isinstance(value, list) and value and all(_need_document(item) is None for item in value):
        return None
    return "must be a non-empty list of documents (indexes or texts), best first"


def _need_score(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    return None if ok else "must be a number"


RERANK_VALIDATORS = {"top": _need_document, "order": _need_order, "min_score": _need_score}
RERANK_KEYS = frozenset(RERANK_VALIDATORS)


def unknown_documents(expected: dict[str, Any], documents: Sequence[str]) -> list[str]:
    """Documents ``expected`` names that the test does not send: a suite error, since no answer could pass."""
    named = [expected["top"]] if "top" in expected else []
    named += expected.get("order") or []
    return [f"expected names document {item!r}, which is not in 'documents'" for item in named
            if (item not in documents if isinstance(item, str) else item >= len(documents))]


def rerank_checks(expected: dict[str, Any], ranking: Sequence[dict[str, Any]], documents: Sequence[str]) -> list[Check]:
    """Every ranking check ``expected`` asks for; ``ranking`` is best first (http/rerank.py)."""
    order = [item["index"] for item in ranking]
    checks: list[Check] = []
    if "top" in expected:
        want = _index(expected["top"], documents)
        got = order[0] if order else None
        checks.append(Check("top", got == want, expected["top"], "" if got == want else
                            f"ranked first: {_shown(got, documents)}"))
    if "order" in expected:
        want_order = [_index(item, documents) for item in expected["order"]]
        got_order = order[:len(want_order)]
        checks.append(Check("order", got_order == want_order, expected["order"], "" if got_order == want_order else
                            f"ranked first: {', '.join(_shown(i, documents) for i in got_order)}"))
    if "min_score" in expected:
        top = ranking[0]["score"] if ranking else None
        passed = top is not None and top >= expected["min_score"]
        checks.append(Check("min_score", passed, expected["min_score"], f"the best document scored {top}"))
    return checks


def _index(document: int | str, documents: Sequence[str]) -> int:
    return document if isinstance(document, int) else documents.index(document)


def _shown(index: int | None, documents: Sequence[str]) -> str:
    if index is None:
        return "nothing"
    text = documents[index]
    return f"{index} ({text[:40]!r}{'…' if len(text) > 40 else ''})"
