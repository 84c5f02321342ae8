"""What a run tests, said once in one line: endpoint, models, server, suites, streaming and parallelism.

The same record opens the terminal output, the llmbench summary and the batch file, so that a run meant for one
server can never pass quietly with another's numbers (a forgotten ``--llmbench-endpoint`` starts the embedded
model: the line says so).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..http.redact import Secrets

if TYPE_CHECKING:
    from ..options import Settings
    from .endpoint import Endpoint

# owned_by in GET /v1/models, as each server fills it
_OWNERS = {"vllm": "vLLM", "llamacpp": "llama.cpp", "openai": "OpenAI", "system": "OpenAI",
           "openai-internal": "OpenAI", "sglang": "SGLang", "tgi": "TGI"}
EMBEDDED = "embedded llama.cpp (llama-cpp-python)"
SHOWN_SUITES = 3


def recognize_server(entries: list[dict[str, Any]] | None) -> str | None:
    """The server's kind from its model list, when it says; None when it does not."""
    for entry in entries or ():
        owner = str(entry.get("owned_by") or "").lower()
        if owner in _OWNERS:
            return _OWNERS[owner]
        if isinstance(entry.get("meta"), dict) and "n_ctx_train" in entry["meta"]:
            return "llama.cpp"
    return None


def unlisted_models(named: tuple[str, ...], listed: list[str] | None) -> list[str]:
    """One warning per named model the server does not list (no warning when it lists nothing)."""
    if not listed:
        return []
    warnings = []
    for model in named:
        if model in listed:
            continue
        close = difflib.get_close_matches(model, listed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        shown = ", ".join(listed[:5]) + (" …" if len(listed) > 5 else "")
        warnings.append(f"model '{model}' is not listed by GET /v1/models (it lists: {shown}){hint}")
    return warnings


@dataclass
class Target:
    endpoint: str  # without credentials
    endpoint_source: str  # "--llmbench-endpoint", "ini llmbench_endpoint", "LLMBENCH_ENDPOINT", ... or "default"
    models: list[str]
    model_source: str  # "--llmbench-model" or "first of GET /v1/models"
    server: str | None
    embedded: bool
    suites: list[str] = field(default_factory=list)
    stream: bool = False
    workers: int = 0  # xdist workers; 0 without -n
    concurrency: int | None = None  # requests in flight, when the session sets it
    warnings: list[str] = field(default_factory=list)  # named models the server does not list

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line()}

    def line(self) -> str:
        if self.embedded:
            why = "no --llmbench-endpoint" if self.endpoint_source == "default" else self.endpoint_source
            where = f"EMBEDDED model server {self.endpoint} ({why}, LLMBENCH_ENDPOINT or OPENAI_BASE_URL set)"
            if self.endpoint_source != "default":
                where = f"EMBEDDED model server {self.endpoint} ({self.endpoint_source} = local)"
        else:
            where = f"{self.endpoint} (from {self.endpoint_source})"
            if self.server:
                where += f", {self.server}"
        models = ", ".join(self.models) or "?"
        suites = ", ".join(self.suites[:SHOWN_SUITES]) or "none"
        if len(self.suites) > SHOWN_SUITES:
            suites += f" +{len(self.suites) - SHOWN_SUITES} more"
        parallel = f"{self.workers} workers" if self.workers else "1 process"
        if self.concurrency:
            parallel += f", concurrency {self.concurrency}"
        return (f"llmbench: {where} | model{'s' if len(self.models) > 1 else ''} {models} ({self.model_source})"
                f" | suites {suites} | stream {'on' if self.stream else 'off'} | {parallel}")


def describe_target(settings: Settings, endpoint: Endpoint, source: str, suites: list[str], workers: int) -> Target:
    """The prepared endpoint as the header line tells it; ``workers``: xdist's (0 without -n)."""
    listed = [str(entry.get("id")) for entry in endpoint.listed] if endpoint.listed is not None else None
    return Target(
        endpoint=Secrets(settings.secrets()).redact(endpoint.url), endpoint_source=source,
        models=list(settings.model) or ([endpoint.model] if endpoint.model else []),
        model_source="--llmbench-model" if settings.model else "first of GET /v1/models",
        server=EMBEDDED if endpoint.embedded else recognize_server(endpoint.listed),
        embedded=endpoint.embedded, suites=suites, stream=settings.stream,
        workers=workers,
        concurrency=getattr(settings, "concurrency", None) or None,
        warnings=unlisted_models(settings.model, listed))
