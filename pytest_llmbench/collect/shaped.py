"""Generated tests' prompts, built by the process that sends them (collection sends nothing and runs in every
xdist worker), with the tokenizer it resolves once."""

from __future__ import annotations

import dataclasses
import threading
import warnings

from ..exceptions import ClientError, LLMBenchWarning
from ..http.client import LLMClient
from .case import TestCase
from .workload.prompts import PromptBuilder
from .workload.tokens import resolve_tokenizer


class ShapedPrompts:
    """One process's prompt builder for generated tests; the tokenizer is resolved once, on first use.

    Collection sends nothing (it runs in every xdist worker): the process that sends a generated request builds its
    text just before. A load run prepares every body before its first request leaves, so building is never inside
    a measured request."""

    def __init__(self, client: LLMClient, local_tokenizer: str | None) -> None:
        self._client = client
        self._local = local_tokenizer
        self._builder: PromptBuilder | None = None
        self._context: dict[str, int] | None = None
        self._lock = threading.Lock()

    @property
    def builder(self) -> PromptBuilder:
        with self._lock:
            if self._builder is None:
                tokenizer, warning = resolve_tokenizer(self._client, self._client.model, self._local)
                if warning:
                    warnings.warn(LLMBenchWarning(f"llmbench: {warning}"), stacklevel=2)
                self._builder = PromptBuilder(tokenizer)
            return self._builder

    @property
    def estimated(self) -> bool:
        """Whether the lengths are estimates (known once a prompt was built)."""
        return self._builder is not None and self._builder.tokenizer.estimated

    def apply(self, case: TestCase, model: str | None) -> TestCase:
        """The case with its prompt (or its user message) built; raises LLMBenchError when it cannot be."""
        shape = case.shape
        assert shape is not None
        self._check_context(case, model)
        builder = self.builder
        head = [i for block in shape.blocks for i in builder.block(block.key, block.tokens)]
        text, _ = builder.text(shape.input_tokens, shape.key, head)
        if case.messages is None:
            return dataclasses.replace(case, prompt=text)
        return dataclasses.replace(case, messages=(*case.messages[:-1], {**case.messages[-1], "content": text}))

    def _check_context(self, case: TestCase, model: str | None) -> None:
        """Refuse a request longer than the model's context, when /v1/models says how long that is (vLLM)."""
        shape = case.shape
        assert shape is not None
        limit = self.context_lengths.get(model or self._client.model or "")
        total = shape.input_tokens + (shape.output_tokens or 0)
        if limit is not None and total > limit:
            raise ClientError(f"{case.id} asks for {shape.input_tokens} input + {shape.output_tokens or 0} output "
                              f"tokens, beyond the model's context of {limit} tokens (max_model_len in /v1/models)")

    @property
    def context_lengths(self) -> dict[str, int]:
        """Each listed model's ``max_model_len`` (vLLM lists it), from GET /v1/models once per process; none when
        the server lists none or cannot be asked (the request then finds out)."""
        with self._lock:
            if self._context is None:
                try:
                    if self._client.listed is None:
                        self._client.list_models()
                except ClientError:
                    pass
                self._context = {entry["id"]: entry["max_model_len"] for entry in self._client.listed or ()
                                 if isinstance(entry.get("max_model_len"), int) and entry["max_model_len"] > 0}
            return self._context
