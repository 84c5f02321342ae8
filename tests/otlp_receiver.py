"""A small OTLP/HTTP traces receiver on 127.0.0.1: what a collector (Jaeger, Tempo, the OTel Collector) would get.

It decodes each ``POST /v1/traces`` body with the OTLP protobuf messages and keeps every span as a plain dict
(ids in hex), so a test can follow a request's span to the ``traceparent`` the LLM server received. ``hang`` makes
it accept requests and never answer (a collector that is up but stuck).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class OTLPReceiver:
    def __init__(self, hang: bool = False) -> None:
        self.spans: list[dict[str, Any]] = []
        self.hang = hang
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.hang:
                    time.sleep(30)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._keep(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1/traces"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [span for span in self.spans if span["name"] == name]

    def _keep(self, request: Any) -> None:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "events": [event.name for event in span.events],
                        "links": [(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                        "status": span.status.code,
                    })


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
