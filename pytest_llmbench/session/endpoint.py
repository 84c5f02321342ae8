"""Where the session's requests go: a configured server, checked once, or the embedded local one.

Done once per session by the process that owns it (the controller under xdist), so that an unreachable
server stops the run with one error instead of failing every test the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import ClientError, EndpointError
from ..http.client import ClientConfig, LLMClient
from ..options import Settings


@dataclass
class Endpoint:
    url: str
    model: str | None  # None when several models were named: each item carries its own
    server: Any = None  # the embedded server, which the owner stops at session end

    def to_workerinput(self) -> dict[str, Any]:
        return {"url": self.url, "model": self.model}

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def prepare(settings: Settings, output: Path) -> Endpoint:
    """Start or check the server and settle the default model. Raises EndpointError.

    ``output`` is the resolved output folder, where the embedded server writes its log.
    """
    server = None
    if settings.uses_local_server:
        from .embedded import (
            start_embedded_server,  # raises LocalServerError, an EndpointError
        )

        server = start_embedded_server(output, startup_timeout=settings.local_startup_timeout)
        url = server.url
    else:
        url = str(settings.endpoint)
    try:
        client = LLMClient(ClientConfig.from_settings(settings, url), model=single_model(settings))
        try:
            client.check_reachable()
            model = client.resolve_model() if len(settings.model) <= 1 else None
        finally:
            client.close()
    except ClientError as exc:
        if server is not None:
            server.stop()
        raise EndpointError(str(exc)) from None
    except BaseException:
        if server is not None:
            server.stop()
        raise
    return Endpoint(url=url, model=model, server=server)


def chat_endpoint(url: str) -> str:
    """Where the judge can chat: a session fixed on ``/completions`` (a base model) judges through the base URL."""
    stripped = url.rstrip("/")
    if stripped.endswith("/completions") and not stripped.endswith("/chat/completions"):
        return stripped[: -len("/completions")]
    return url


def single_model(settings: Settings) -> str | None:
    """The one model named, if exactly one was; several mean one item per model, each naming its own."""
    return settings.model[0] if len(settings.model) == 1 else None


def output_folder(settings: Settings, invocation_dir: Path) -> Path:
    return settings.output if settings.output.is_absolute() else invocation_dir / settings.output
