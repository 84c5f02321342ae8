"""The controller's one scraper of the servers' Prometheus ``/metrics`` (issue 16).

Found once at the start (beside the endpoint's base URL unless told otherwise), then read every interval on one
daemon thread for the whole session; xdist workers never scrape. A scrape that fails or is slow never touches a
test: each has a deadline below the interval, a failure is counted and warned about once per source, and the
next scrape simply comes. Endpoint credentials go only to a metrics URL of the same origin (scheme, host, port).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ..http.redact import Secrets
from ..http.transport import Transport
from ..metrics.periodic import Periodic
from ..metrics.server.catalog import Reading, identify, read, wanted_keys
from ..metrics.server.parse import ExpositionError, SeriesParser, series_names
from ..metrics.server.section import build_section
from ..metrics.server.store import ServerStore
from ..options import Settings

OFF, AUTO = "off", "auto"
MAX_BYTES = 16 * 2**20  # a /metrics page past this is cut off and counted as a failed scrape
DISCOVERY_TIMEOUT = 2.0  # seconds for discovery of all sources together, parsing included, before the first test
STOP_TIMEOUT = 1.0  # seconds the session's end waits for the scraper
LAST_SCRAPE_TIMEOUT = 0.8  # the last scrape's deadline for all sources together, within STOP_TIMEOUT
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
    """(scheme, host, port) as urllib3 reads them, which is where requests connects: urlsplit reads
    ``http://h:B\\@h:A/`` as port A, urllib3 as port B (a backslash ends the host, as in browsers)."""
    try:
        parts = parse_url(url)
    except LocationParseError:
        return "", "", None
    scheme = (parts.scheme or "").lower()
    return scheme, (parts.host or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


def unsafe(url: str) -> str | None:
    """Why a metrics URL may not be used by a session that holds credentials: parsers disagree on such URLs."""
    if "\\" in url:
        return "a backslash"
    if any(ord(char) < 32 or ord(char) == 127 for char in url):
        return "a control character"
    if "@" in url:
        return "userinfo (@)"
    return None


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
    capped: bool = False  # a page had more series than the parser reads (parse.MAX_SERIES)
    refused: bool = False  # never scraped: the URL could send credentials elsewhere (``unsafe``)

    def to_dict(self, secrets: list[str]) -> dict[str, Any]:
        return {"url": Secrets(secrets).redact(self.url), "server": self.server, "scrapes": self.scrapes,
                "failures": self.failures, "last_error": self.last_error, "series_capped": self.capped}


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
        source = Source(url, headers=headers if same else {}, auth=userinfo if same else None,
                        auto=url == urls[0] and (not given or AUTO in given))
        why = unsafe(url) if headers or userinfo else None
        if why is not None:
            source.refused = True
            source.last_error = f"refused: a URL with {why} is not used while the session holds credentials"
        sources.append(source)
    return sources


class ScrapeFailed(ValueError):
    """A scrape got no page: the message says why (HTTP status, deadline, size, connection)."""


class Fetcher:
    """GETs metrics pages through the client's transport: one total deadline per page, however slowly the server
    drips it (the transport's watchdog ends the attempt), and a size cap. One transport per source, since
    credentials go only to sources of the endpoint's origin."""

    def __init__(self, verify: bool | str, secrets: Secrets) -> None:
        self.verify = verify
        self.secrets = secrets
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()

    def get(self, source: Source, timeout: float) -> str:
        """The page's text; raises ScrapeFailed."""
        reply = self._transport(source, timeout).attempt("GET", source.url, None, None, timeout)
        error = reply.error
        if error is None and reply.status == 200:
            return reply.payload.decode("utf-8", errors="replace")
        if error is not None and error.kind == "deadline":
            raise ScrapeFailed(f"not complete within {timeout:.2g} s")
        if error is not None and error.kind == "too_large":
            raise ScrapeFailed(f"page larger than {MAX_BYTES // 2**20} MiB")
        if reply.status is None:
            raise ScrapeFailed("connection failed")
        raise ScrapeFailed(f"HTTP {reply.status}" if reply.status != 200 or error is None else error.message)

    def _transport(self, source: Source, timeout: float) -> Transport:
        with self._lock:
            if source.url not in self._transports:
                headers = dict(source.headers)
                if source.auth is not None:
                    credentials = base64.b64encode(":".join(source.auth).encode("utf-8")).decode("ascii")
                    headers["Authorization"] = f"Basic {credentials}"
                self._transports[source.url] = Transport(headers, source.url, self.verify, connect_timeout=timeout,
                                                         max_response_bytes=MAX_BYTES, secrets=self.secrets,
                                                         connections=1, direct=True)
            return self._transports[source.url]

    def close(self) -> None:
        with self._lock:
            for transport in self._transports.values():
                transport.close()


class ServerScraper:
    """Reads every source each ``interval`` into ``store``; ``messages`` holds one warning per failing source.

    Every wait has a total deadline: discovery 2 s for all sources together, each scrape 0.8 x the interval per
    source (fetching and parsing), the last one at stop 0.8 s. A scrape that overruns its tick skips the ticks it
    missed and counts them (``skipped_scrapes``): the scraper never catches up in a burst."""

    def __init__(self, sources: list[Source], interval: float, raw: tuple[str, ...], verify: bool | str,
                 secrets: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.sources = [source for source in sources if not source.refused]
        self.planned = list(sources)
        self.interval = interval
        self.timeout = 0.8 * interval  # below the interval, always
        self.raw = raw
        self.store = ServerStore(raw, near=max(3 * interval, 1.0))
        self.secrets = secrets
        self._redactor = Secrets(secrets)
        self.failed_scrapes = 0
        self.skipped_scrapes = 0
        self._parsers = {source.url: SeriesParser(wanted_keys(raw).__contains__) for source in sources}
        self._fetcher = Fetcher(verify, self._redactor)
        self._clock = clock
        self._lock = threading.Lock()
        self._messages: list[str] = []
        self._warned: set[tuple[str, str]] = set()
        self._stopped = False
        self._scraper = Periodic("llmbench-server-metrics", interval, self._tick, steady=True, on_missed=self._skipped,
                                 on_exit=self._fetcher.close, clock=clock)

    def discover(self, timeout: float = DISCOVERY_TIMEOUT) -> list[Source]:
        """One look at each source, all at once within ``timeout``; names the servers that answer and keeps what
        they said as the first reading (so counters count from the run's start without a scrape before the first
        test). Returns those that answered; the scraper keeps them and every source named by the user (an
        exporter may come up later), drops the rest."""
        deadline = self._clock() + timeout
        parts: dict[str, Reading] = {}
        looks = [threading.Thread(target=self._look, args=(source, deadline, parts), daemon=True,
                                  name="llmbench-server-metrics-discovery") for source in self.sources]
        for look in looks:
            look.start()
        for look in looks:
            look.join(max(deadline - self._clock(), 0.0) + 0.2)  # the transport's watchdog ends each by then
        with self._lock:
            found = [source for source in self.sources if source.url in parts]
            self._keep(list(parts.values()))
        self.sources = [s for s in self.sources if s in found or not s.auto]
        return found

    def _look(self, source: Source, deadline: float, parts: dict[str, Reading]) -> None:
        started = self._clock()
        try:
            text = self._fetcher.get(source, max(deadline - started, 0.01))
            part = self._read(source, text, deadline, started)
        except (ScrapeFailed, ValueError, OSError) as exc:
            source.last_error = self._describe(exc)
            return
        servers = identify(series_names(text[:2**20]))  # the first MiB names the server
        source.server = ", ".join(servers) if servers else "Prometheus"
        source.scrapes += 1
        with self._lock:
            parts[source.url] = part

    def header_line(self, found: list[Source]) -> str:
        parts = [f"{self._redactor.redact(s.url)} ({s.server})" for s in found]
        missing = [f"{self._redactor.redact(s.url)} ({s.last_error})" for s in self.planned if s not in found]
        if not parts:
            return "server metrics: none found at " + ", ".join(missing)
        return "server metrics: " + ", ".join(parts) + (f"; not answering: {', '.join(missing)}" if missing else "")

    def start(self) -> None:
        """Scraping goes on on a daemon thread; discovery's reading is the first, so nothing here waits."""
        self._scraper.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """One last scrape covers the end of the last test, within ``timeout``; a scrape still running after it is
        left to the daemon thread, and what it reads is not recorded."""
        if self._scraper.stop(timeout) is None:
            return
        with self._lock:
            self._stopped = True

    def _tick(self, final: bool) -> None:
        if final:
            self.scrape_once(LAST_SCRAPE_TIMEOUT, shared=True)
        else:
            self.scrape_once(self.timeout)

    def scrape_once(self, timeout: float, shared: bool = False) -> None:
        """Each source within ``timeout`` (all of them together when ``shared``)."""
        parts = []
        deadline = self._clock() + timeout
        for source in self.sources:
            started = self._clock()
            budget = deadline - started if shared else timeout
            try:
                if budget <= 0:
                    raise ScrapeFailed(f"not complete within {timeout:g} s")
                parts.append(self._read(source, self._fetcher.get(source, budget), started + budget, started))
            except (ScrapeFailed, ValueError, OSError) as exc:
                self._failed(source, exc)
                continue
            source.scrapes += 1
        with self._lock:
            if not self._stopped:
                self._keep(parts)

    def _read(self, source: Source, text: str, deadline: float, started: float) -> Reading:
        """One page as a reading, parsed by ``deadline``; a page past the series cap is read that far."""
        parser = self._parsers[source.url]
        dropped = parser.dropped
        readings = parser.parse(text, deadline, self._clock)
        part = read(readings, (started + self._clock()) / 2, self.raw)
        part.dropped += parser.dropped - dropped
        source.capped = source.capped or parser.capped
        if parser.capped:
            self._warn(source, "capped", f"server metrics: {self._redactor.redact(source.url)} serves more than "
                                         f"{parser.max_series:,} series; only the first {parser.max_series:,} "
                                         "are read")
        return part

    def _keep(self, parts: list[Reading]) -> None:
        if not parts:
            return
        reading = parts[0]
        for part in parts[1:]:
            reading.merge(part)
        self.store.add(reading)

    def _failed(self, source: Source, exc: BaseException) -> None:
        source.failures += 1
        source.last_error = self._describe(exc)
        with self._lock:
            self.failed_scrapes += 1
        self._warn(source, "failed", f"server metrics: a scrape of {self._redactor.redact(source.url)} failed "
                                     f"({source.last_error}); tests go on, failures are counted in the batch")

    def _skipped(self, missed: int) -> None:
        with self._lock:
            self.skipped_scrapes += missed
        self._warn(None, "skipped", f"server metrics: scrapes take longer than the {self.interval:g} s interval; "
                                    "the ones that could not start on time are skipped and counted in the batch")

    def _warn(self, source: Source | None, what: str, message: str) -> None:
        """One warning per source and kind of trouble."""
        with self._lock:
            if (source.url if source else "", what) not in self._warned:
                self._warned.add((source.url if source else "", what))
                self._messages.append(message)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ExpositionError):
            return "not Prometheus exposition text"
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

    def batch_section(self, aggregate: dict[str, Any], first_sent: float | None = None) -> dict[str, Any]:
        """The batch's ``server`` section, beside the client's figures in ``aggregate``; ``first_sent`` (monotonic)
        is the client's first request, from which the section's ``start_s`` counts the first scrape, so that the
        report draws the server's timeline on the client's time axis."""
        first = self.store.first_t
        return build_section(self.store.summary(), sources=self.section_sources(), interval=self.interval,
                             failed_scrapes=self.failed_scrapes, skipped_scrapes=self.skipped_scrapes,
                             aggregate=aggregate,
                             start_s=None if first is None or first_sent is None else round(first - first_sent, 3))


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
