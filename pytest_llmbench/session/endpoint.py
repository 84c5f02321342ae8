"""Where the session's requests go: a configured server, checked once, or the embedded local one.

Done once per session by the process that owns it (the controller under xdist), so that an unreachable
server stops the run with one error instead of failing every test the same way. ``EndpointLifecycle`` is the
one object that decides it, with the controller's path (``prepare``, ``for_workers``) and the path of a process
that sends requests (``for_requests``) written apart.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import ClientError, EndpointError
from ..http.client import LLMClient
from ..options import Settings

WORKERINPUT_KEY = "llmbench_endpoint"  # where a worker finds the controller's endpoint in its workerinput


@dataclass
class Endpoint:
    url: str
    model: str | None  # None when several models were named: each item carries its own
    server: Any = None  # the embedded server, which the owner stops at session end
    listed: list[dict[str, Any]] | None = None  # GET /v1/models entries; None when the server lists none
    embedded: bool = False  # the embedded server, started here or by the process that handed it on

    def to_workerinput(self) -> dict[str, Any]:
        return {"url": self.url, "model": self.model, "embedded": self.embedded}

    @classmethod
    def from_workerinput(cls, given: dict[str, Any]) -> Endpoint:
        return cls(url=given["url"], model=given["model"], embedded=bool(given.get("embedded")))

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
        client = LLMClient(settings.client_config(url), model=single_model(settings))
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
    return Endpoint(url=url, model=model, server=server, listed=client.listed, embedded=server is not None)


def single_model(settings: Settings) -> str | None:
    """The one model named, if exactly one was; several mean one item per model, each naming its own."""
    return settings.model[0] if len(settings.model) == 1 else None


WORKER_LOGS = ".llmbench-worker-servers"  # under the output folder, until the controller moves them into the run's


def worker_log_folder(output: Path, worker_id: str) -> Path:
    """Where a worker's own embedded server logs while the run's folder may not exist yet: the controller makes that
    folder at the first result and, at the end, moves each worker's log into ``<run>/<worker id>/``."""
    return output / WORKER_LOGS / f"{worker_id}-{os.getpid()}"


def output_folder(settings: Settings, invocation_dir: Path) -> Path:
    return settings.output if settings.output.is_absolute() else invocation_dir / settings.output


class EndpointLifecycle:
    """This process's endpoint: who checks or starts the server, who uses it, who stops it.

    The controller (the only process without xdist) prepares the endpoint once, before the first item, and hands
    it to every worker. A process that sends requests uses the endpoint it was handed or the controller's; only
    when neither exists (a worker the controller had nothing to hand, a hand-written test using ``llm_client``
    in a run without suite items) does it prepare one of its own. Whoever prepared a server stops it.
    """

    def __init__(self, settings: Settings, output: Path, workerinput: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.output = output
        self._worker_id: str | None = None
        self.endpoint: Endpoint | None = None
        if workerinput is not None:
            self._worker_id = workerinput.get("workerid")
            given = workerinput.get(WORKERINPUT_KEY)
            if given:
                self.endpoint = Endpoint.from_workerinput(given)

    # -- the controller's path ----------------------------------------------------------------------

    def prepare(self) -> Endpoint:
        """Start or check the server once (raises EndpointError); the embedded one logs into the output folder."""
        if self.endpoint is None:
            self.endpoint = prepare(self.settings, self.output)
        return self.endpoint

    def for_workers(self) -> dict[str, Any] | None:
        """What a starting worker is handed: the prepared endpoint, or a remote one to be checked later (the
        controller checks it once the workers have collected). None: the worker starts its own server."""
        if self.endpoint is not None:
            return self.endpoint.to_workerinput()
        if not self.settings.uses_local_server:
            return Endpoint(url=str(self.settings.endpoint), model=single_model(self.settings)).to_workerinput()
        return None

    # -- the path of a process that sends requests --------------------------------------------------

    def for_requests(self) -> Endpoint:
        """The endpoint handed down or prepared by the controller, else one of this process's own (raises
        EndpointError). A worker's own embedded server logs into a folder of its own, so the logs stay apart."""
        if self.endpoint is None:
            output = worker_log_folder(self.output, self._worker_id) if self._worker_id else self.output
            self.endpoint = prepare(self.settings, output)
        return self.endpoint

    def stop(self) -> None:
        """Stop the embedded server this process started, if any (an endpoint handed down has none)."""
        if self.endpoint is not None:
            self.endpoint.stop()


class WorkersEndpoints:
    """The endpoints xdist workers found for themselves (hand-written tests alone, no endpoint named: each worker
    starts its own embedded server). The first one names what the run tests (``on_first``); each server's log,
    written under the output folder while the run's folder may not exist yet, moves into ``<run>/<worker id>/``."""

    def __init__(self, output: Path, on_first: Callable[[Endpoint], None]) -> None:
        self.output = output
        self.endpoint: Endpoint | None = None
        self._on_first = on_first
        self._logs: dict[str, Path] = {}

    def adopt(self, worker: str | None, described: dict[str, Any]) -> None:
        if self.endpoint is None:
            self.endpoint = Endpoint.from_workerinput(described)
            self._on_first(self.endpoint)
        log = Path(described["log"]) if described.get("log") else None
        if worker and log is not None and log.parent.parent == self.output / WORKER_LOGS:  # only logs of ours
            self._logs[worker] = log

    def move_logs(self, run_dir: Path) -> list[str]:
        """Move each worker's server log into the run's folder; returns what could not be moved."""
        problems = []
        for worker, log in self._logs.items():
            target = run_dir / worker / log.name
            try:
                target.parent.mkdir(exist_ok=True)
                os.replace(log, target)  # a server still writing keeps writing into the moved file
            except OSError as exc:
                problems.append(f"cannot move {log} into the run folder: {exc.strerror or exc}")
                continue
            for folder in (log.parent, log.parent.parent):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # left when another session's worker still logs there
        self._logs.clear()
        return problems
