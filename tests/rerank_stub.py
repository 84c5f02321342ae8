"""A rerank server: vLLM's (and Jina's, Cohere's) ``POST /v1/rerank``, or TEI's ``POST /rerank`` at the root.

A document's score is the share of the query's words it holds, so a suite can say which document must win.
Scores come in document order (the client ranks them); ``tei=True`` serves TEI's shape (a bare list of ``{"index", "score"}``) at ``/rerank`` and answers 404 at
``/v1/rerank``; ``bad_index`` answers with an index past the documents sent, as a broken server might.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from werkzeug import Request, Response


@dataclass
class RerankStub:
    tei: bool = False
    bad_index: bool = False
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def install(self, httpserver: Any) -> str:
        httpserver.expect_request("/v1/models").respond_with_json(
            {"object": "list", "data": [{"id": "rerank-model", "object": "model"}]})
        not_found = Response(json.dumps({"error": "Not Found"}), status=404, content_type="application/json")
        httpserver.expect_request("/v1/rerank", method="POST").respond_with_handler(
            (lambda request: self._seen(request, not_found)) if self.tei else self._answer)
        if self.tei:
            httpserver.expect_request("/rerank", method="POST").respond_with_handler(self._answer)
        url: str = httpserver.url_for("/v1")
        return url

    def _seen(self, request: Request, response: Response) -> Response:
        self.requests.append((request.path, json.loads(request.get_data())))
        return response

    def _answer(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        self.requests.append((request.path, body))
        words = set(body["query"].lower().split())
        scores = [len(words & set(doc.lower().split())) / len(words) for doc in body["documents"]]
        results = [{"index": n + (len(scores) if self.bad_index else 0), "relevance_score": score}
                   for n, score in enumerate(scores)]
        if self.tei:  # TEI sorts by score; vLLM's are left in document order, which the client must not trust
            results.sort(key=lambda item: -item["relevance_score"])
            payload: Any = [{"index": item["index"], "score": item["relevance_score"]} for item in results]
        else:
            payload = {"id": "r", "model": body.get("model"), "results": results,
                       "usage": {"total_tokens": sum(len(doc.split()) for doc in body["documents"])}}
        return Response(json.dumps(payload), content_type="application/json")
