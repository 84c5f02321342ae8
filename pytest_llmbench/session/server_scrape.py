"""The controller's one scraper of the servers' Prometheus ``/metrics`` (issue 16).

Found once at the start (beside the endpoint's base URL unless told otherwise), then read every interval on one
daemon thread for the whole session; xdist workers never scrape. A scrape that fails or is slow never touches a
test: each has a deadline below the interval, a failure is counted and warned about once per source, and the
next scrape simply comes. Endpoint credentials go only to a metrics URL of the same origin (scheme, host, port).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from ..http.redact import Secrets
from ..metrics.server.catalog import Reading, identify, read, wanted_keys
from ..metrics.server.parse import ExpositionError, SeriesParser, parse
from ..metrics.server.section import build_section
from ..metrics.server.store import ServerStore
from ..options import Settings

OFF, AUTO = "off", "auto"
MAX_BYTES = 16 * 2**20  # a /metrics page past this is cut off and counted as a failed scrape
DISCOVERY_TIMEOUT = 2.0
_API_TAILS = ("/chat/completions", "/completions", "/models", "/v1")


def metrics_url(endpoint: str) -> str:
    """``http://h:8000/v1/chat/completions`` -> ``http://h:8000/metrics``: the API path and any userinfo,
    query or fragment are dropped, a prefix before ``/v1`` is kept (a proxy's route)."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    for tail in _API_TAILS:
        path = path.removesuffix(tail)
    path = path[: path.index("/v1/")] if "/v1/" in path else path
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, f"{path.rstrip('/')}/metrics", "", ""))


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


@dataclass
class Source:
    url: str  # as scraped; shown redacted (Secrets.redact)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    auto: bool = False  # found by looking beside the endpoint, not named by the user
    server: str = "not answering"
    scrapes: int = 0
    failures: int = 0
    last_error: str | None = None

    def to_dict(self, secrets: list[str]) -> dict[str, Any]:
        return {"url": Secrets(secrets).redact(self.url), "server": self.server, "scrapes": self.scrapes,
                "failures": self.failures, "last_error": self.last_error}


def plan(settings: Settings, endpoint: str) -> list[Source]:
    """The sources the options ask for: ``off``; the default, discovery (``auto``); URLs replace it unless
    ``auto`` is named too. Credentials of the endpoint go only to URLs of its own origin."""
    given = [value.strip() for value in settings.server_metrics if value.strip()]
    if OFF in given:
        return []
    urls = [value for value in given if value != AUTO]
    if not urls or AUTO in given:
        urls.insert(0, metrics_url(endpoint))
    headers = {**({"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}), **settings.headers()}
    endpoint_parts = urlsplit(endpoint)
    userinfo = (endpoint_parts.username or "", endpoint_parts.password or "") if endpoint_parts.username else None
    sources = []
    for url in dict.fromkeys(urls):
        same = origin(url) == origin(endpoint)
        sources.append(Source(url, headers=headers if same else {}, auth=userinfo if same else None,
                              auto=url == urls[0] and (not given or AUTO in given)))
    return sources


class Fetcher:
    """GETs a metrics page with a total deadline and a size cap, on one keep-alive session."""

    def __init__(self, verify: bool | str) -> None:
        self.session = requests.Session()
        self.session.verify = verify
        self.session.trust_env = False  # an exporter beside the server is reached directly, never via a proxy

    def get(self, source: Source, timeout: float) -> str:
        """The page's text; raises OSError/requests errors, or ValueError for a bad answer."""
        deadline = time.monotonic() + timeout
        with self.session.get(source.url, headers=source.headers, auth=source.auth, timeout=timeout,
                              stream=True, allow_redirects=False) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            parts, size = [], 0
            for chunk in response.iter_content(65536):
                parts.append(chunk)
                size += len(chunk)
                if size > MAX_BYTES:
                    raise ValueError(f"page larger than {MAX_BYTES // 2**20} MiB")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not complete within {timeout:g} s")
            return b"".join(parts).decode(response.encoding or "utf-8", errors="replace")

    def close(self) -> None:
        self.session.close()


class ServerScraper:
    """Reads every source each ``interval`` into ``store``; ``messages`` holds one warning per failing source."""

    def __init__(self, sources: list[Source], interval: float, raw: tuple[str, ...], verify: bool | str,
                 secrets: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.sources = sources
        self.planned = list(sources)
        self.interval = interval
        self.timeout = 0.8 * interval  # below the interval, always
        self.raw = raw
        self.store = ServerStore(raw, near=max(3 * interval, 1.0))
        self.secrets = secrets
        self._redactor = Secrets(secrets)
        self.failed_scrapes = 0
        self._parsers = {source.url: SeriesParser(wanted_keys(raw).__contains__) for source in sources}
        self._fetcher = Fetcher(verify)
        self._clock = clock
        self._lock = threading.Lock()
        self._messages: list[str] = []
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def discover(self, timeout: float = DISCOVERY_TIMEOUT) -> list[Source]:
        """One look at each source; names the servers that answer. Returns those that answered; the scraper
        keeps them and every source named by the user (an exporter may come up later), drops the rest."""
        found = []
        for source in self.sources:
            try:
                readings = parse(self._fetcher.get(source, timeout))
            except (requests.RequestException, OSError, ValueError) as exc:
                source.last_error = self._describe(exc)
                continue
            servers = identify(readings)
            source.server = ", ".join(servers) if servers else "Prometheus"
            found.append(source)
        self.sources = [s for s in self.sources if s in found or not s.auto]
        return found

    def header_line(self, found: list[Source]) -> str:
        parts = [f"{self._redactor.redact(s.url)} ({s.server})" for s in found]
        missing = [f"{self._redactor.redact(s.url)} ({s.last_error})" for s in self.planned if s not in found]
        if not parts:
            return "server metrics: none found at " + ", ".join(missing)
        return "server metrics: " + ", ".join(parts) + (f"; not answering: {', '.join(missing)}" if missing else "")

    def start(self) -> None:
        """The first reading is taken here, before any test starts, so counters count from the run's start."""
        self.scrape_once()
        self._thread = threading.Thread(target=self._run, name="llmbench-server-metrics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """One last scrape covers the end of the last test; a hung one is left to the daemon thread."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None
        self._fetcher.close()

    def _run(self) -> None:
        began = self._clock()
        while True:
            stopping = self._stop.wait(max(self.interval - (self._clock() - began), 0.0))
            began = self._clock()
            self.scrape_once()
            if stopping:
                return

    def scrape_once(self) -> None:
        reading: Reading | None = None
        for source in self.sources:
            started = self._clock()
            try:
                text = self._fetcher.get(source, self.timeout)
                part = read(self._parsers[source.url].parse(text), (started + self._clock()) / 2, self.raw)
            except (requests.RequestException, OSError, ValueError) as exc:
                self._failed(source, exc)
                continue
            source.scrapes += 1
            if reading is None:
                reading = part
            else:
                reading.merge(part)
        if reading is not None:
            self.store.add(reading)

    def _failed(self, source: Source, exc: BaseException) -> None:
        source.failures += 1
        source.last_error = self._describe(exc)
        with self._lock:
            self.failed_scrapes += 1
            if source.url not in self._warned:
                self._warned.add(source.url)
                self._messages.append(f"server metrics: a scrape of {self._redactor.redact(source.url)} failed "
                                      f"({source.last_error}); tests go on, failures are counted in the batch")

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ExpositionError):
            return "not Prometheus exposition text"
        if isinstance(exc, requests.Timeout):
            return f"no answer within {self.timeout:g} s"
        if isinstance(exc, requests.ConnectionError):
            return "connection failed"
        return self._redactor.redact(str(exc))[:200] or type(exc).__name__

    def pop_messages(self) -> list[str]:
        with self._lock:
            messages, self._messages = self._messages, []
        return messages

    def section_sources(self) -> list[dict[str, Any]]:
        return [source.to_dict(self.secrets) for source in self.sources]

    def has_read(self, window: tuple[float, float] | None) -> bool:
        """Whether a result of this window can be recorded: a reading after its end has come, or the scraper
        is too late for it (2 intervals and a second), so that a result never waits long."""
        if not window:
            return True
        last = self.store.last_t
        late = time.monotonic() - window[1] > 2 * self.interval + 1.0
        return late or (last is not None and last >= window[1])

    def batch_section(self, aggregate: dict[str, Any]) -> dict[str, Any]:
        """The batch's ``server`` section, beside the client's figures in ``aggregate``."""
        return build_section(self.store.summary(), sources=self.section_sources(), interval=self.interval,
                             failed_scrapes=self.failed_scrapes, aggregate=aggregate)


EMBEDDED_LINE = ("server metrics: none from the embedded server (llama-cpp-python serves no /metrics; llama.cpp's "
                 "own llama-server does with --metrics)")


def start_scraper(settings: Settings, endpoint: str, embedded: bool = False) -> tuple[ServerScraper | None, str | None]:
    """Look for the servers' /metrics once the endpoint answers and start reading the ones found.

    Returns the running scraper (None when nothing answered or it is off) and the line that says what was found
    (None when there was nothing to look for). Beside the ``embedded`` server nothing is looked for: it has no
    page, and a 404 on every run would read as a fault."""
    sources = plan(settings, endpoint)
    if embedded:
        sources = [source for source in sources if not source.auto]
        if not sources:
            return None, None if OFF in settings.server_metrics else EMBEDDED_LINE
    if not sources:
        return None, None
    verify: bool | str = False if settings.insecure else (settings.ca_bundle or True)
    scraper = ServerScraper(sources, settings.server_metrics_interval, settings.server_metric, verify,
                            settings.secrets())
    line = scraper.header_line(scraper.discover())
    if not scraper.sources:
        return None, line
    scraper.start()
    return scraper, line
