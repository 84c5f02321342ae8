"""Checks on an embeddings test's vectors: their size, their norm, and how near a reference text they lie.

``similar_to`` and ``dissimilar_to`` embed their text with the same model (the caller's ``reference``), so a test
reads "this passage must land near that query", as retrieval needs, without pasting a vector into the suite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .check import Check

Vector = Sequence[float]
NORM_TOLERANCE = 1e-3  # |length - 1| a normalized vector may be off: float32 rounding over thousands of numbers


def cosine(a: Vector, b: Vector) -> float | None:
    """The cosine of two vectors of one length; None when either is all zeros or their lengths differ."""
    if len(a) != len(b):
        return None
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return None if norms == 0 else math.fsum(x * y for x, y in zip(a, b)) / norms


def embedding_checks(expected: dict[str, Any], vectors: Sequence[Vector],
                     reference: Callable[[str], Vector | str]) -> list[Check]:
    """Every vector check ``expected`` asks for, each over every input of the test (a batch's too).

    ``reference(text)`` is the text's vector by the same model, or a message why it could not be had."""
    checks: list[Check] = []
    if "dimensions" in expected:
        want = expected["dimensions"]
        sizes = sorted({len(vector) for vector in vectors})
        checks.append(Check("dimensions", sizes == [want], want, "" if sizes == [want] else
                            f"the vectors have {', '.join(map(str, sizes))} dimensions"))
    if "normalized" in expected:
        lengths = [math.sqrt(math.fsum(x * x for x in vector)) for vector in vectors]
        unit = all(abs(length - 1) <= NORM_TOLERANCE for length in lengths)
        passed = unit == expected["normalized"]
        checks.append(Check("normalized", passed, expected["normalized"], "" if passed else
                            f"vector lengths {min(lengths):.4g} to {max(lengths):.4g}"))
    for key, limit_name, holds in (("similar_to", "min_cosine", lambda c, limit: c >= limit),
                                   ("dissimilar_to", "max_cosine", lambda c, limit: c <= limit)):
        if key in expected:
            checks.append(_near(key, expected[key], expected[key][limit_name], vectors, reference, holds))
    return checks


def _near(name: str, spec: dict[str, Any], limit: float, vectors: Sequence[Vector],
          reference: Callable[[str], Vector | str], holds: Callable[[float, float], bool]) -> Check:
    text = spec["text"] if len(spec["text"]) <= 60 else spec["text"][:57] + "..."
    other = reference(spec["text"])
    if isinstance(other, str):
        return Check(name, False, limit, f"the reference text {text!r} could not be embedded: {other}")
    cosines = [cosine(vector, other) for vector in vectors]
    if any(c is None for c in cosines):
        return Check(name, False, limit, f"the vector of {text!r} has other dimensions or is all zeros")
    known = [c for c in cosines if c is not None]
    worst = min(known) if name == "similar_to" else max(known)
    return Check(name, all(holds(c, limit) for c in known), limit, f"cosine {worst:.4f} with {text!r}")
