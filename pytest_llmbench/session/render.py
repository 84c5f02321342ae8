"""What the result files say: the readable completion text of a test, and the batch file's JSON layout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..batch import Batch
from ..result import METRICS, Metric, dumps_strict


def _content_text(content: Any) -> str:
    """Chat content is a string or a list of parts; only text parts are readable as text."""
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") if part.get("type") == "text" else f"<{part.get('type')}>"
            for part in content
            if isinstance(part, dict)
        )
    return "" if content is None else str(content)


def _prompt_text(request: dict[str, Any]) -> str:
    if isinstance(request.get("messages"), list):
        return "\n".join(
            f"[{m.get('role', '?')}] {_content_text(m.get('content'))}"
            for m in request["messages"]
            if isinstance(m, dict)
        )
    if "input" in request:  # embeddings: one text or a batch
        texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
        return "\n".join(f"[input {n}] {text}" for n, text in enumerate(texts))
    prompt = request.get("prompt")
    if isinstance(prompt, list):  # the completions API takes a list of prompts too
        return "\n".join(str(p) for p in prompt)
    return "(no prompt recorded)" if prompt is None else str(prompt)


def _completion_text(result: dict[str, Any]) -> str:
    text = result.get("response_text") or ""
    if result.get("success"):
        return text
    error = result.get("error") or {}
    message = result.get("error_message") or error.get("message") or "unknown error"
    kind = f" ({error['kind']})" if error.get("kind") else ""
    partial = f"\n\n--- partial response ---\n{text}" if text else ""
    return f"ERROR{kind}: {message}{partial}"


def _tokens(value: Any, estimated: bool) -> str:
    if value is None:
        return "n/a"
    return f"{value} (estimated)" if estimated else str(value)


def _metric_value(metric: Metric, value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} s" if metric.seconds else f"{value:.2f}"


def _metric_lines(result: dict[str, Any]) -> list[str]:
    estimated = bool(result.get("tokens_estimated"))
    lines = [
        f"model: {result.get('model') or 'n/a'}",
        f"category: {result.get('category') or 'n/a'}",
        f"success: {bool(result.get('success'))}",
        f"prompt_tokens: {_tokens(result.get('prompt_tokens'), estimated)}",
        f"completion_tokens: {_tokens(result.get('completion_tokens'), estimated)}",
        f"attempts: {result.get('attempts', 0)}",
    ]
    lines += [f"{m.field}: {_metric_value(m, result.get(m.field))}" for m in METRICS
              if not m.per_chunk and (m.always_shown or result.get(m.field) is not None)]
    if result.get("timing_degraded"):
        lines.append(f"timing_degraded: {result.get('timing_degraded_reason')}")
    if result.get("reasoning_score") is not None:
        lines.append(f"reasoning_score: {result['reasoning_score']}")
    evaluation = result.get("evaluation_result")
    if isinstance(evaluation, dict) and "passed" in evaluation:
        lines.append(f"evaluation_passed: {evaluation['passed']}")
    for key, value in (result.get("performance_metrics") or {}).items():
        shown = value if isinstance(value, (str, int, float, bool)) or value is None else dumps_strict(value)
        lines.append(f"{key}: {shown}")
    return lines


def render_completion_text(result: dict[str, Any]) -> str:
    """The human-readable file: what was asked, what came back (raw), and how it went."""
    return "".join(completion_pieces(result))


def completion_pieces(result: dict[str, Any]) -> list[str]:
    """The completion file in pieces, the answer's text one of them as it is: a 32 MiB answer is written without
    being copied into a larger string first (each copy is another 32 MiB of memory)."""
    text = result.get("response_text") or ""
    if result.get("embedding_dimensions") and result.get("success"):  # the vectors are never written
        text = f"({result.get('input_count')} vectors of {result['embedding_dimensions']} dimensions, not kept)"
    if result.get("ranking") and result.get("success"):  # a rerank answer: its documents best first
        text = "\n".join(f"{n}. document {item['index']}: score {item['score']:.4g}"
                         for n, item in enumerate(result["ranking"], 1))
    if result.get("success") or not text:
        answer = [text] if result.get("success") else [_completion_text(result)]
    else:  # a failure with a partial answer: the error line, then the text as it came
        answer = [_completion_text({**result, "response_text": ""}), "\n\n--- partial response ---\n", text]
    return [f"=== PROMPT ===\n{_prompt_text(result.get('request') or {})}\n\n=== COMPLETION ===\n", *answer,
            "\n\n=== METRICS ===\n" + "\n".join(_metric_lines(result)) + "\n"]


def batch_json(batch: Batch) -> Iterator[str]:
    """The batch file in pieces: indented, but one line per test row, so that neither the whole text nor the
    pure-Python indenting encoder's millions of fragments are ever held at once (10,000 rows made 35 MB)."""
    rows = batch.get("tests")
    head = {key: value for key, value in batch.items() if key != "tests"}
    if rows is None:
        yield dumps_strict(head, indent=2)
        return
    yield (dumps_strict(head, indent=2)[:-2] + ",\n" if head else "{\n") + '  "tests": ['
    for number, row in enumerate(rows):
        yield ("\n    " if number == 0 else ",\n    ") + dumps_strict(row)
    yield ("\n  ]" if rows else "]") + "\n}"
