from __future__ import annotations

import datetime
import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from carrot_ai.server import TraceServer, TraceStore

T0 = datetime.datetime(2025, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def make_record(
    name: str,
    *,
    parent: str | None = None,
    at: float = 0.0,
    status: str = "success",
    tags: list[str] | None = None,
    input: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """A valid trace record, ``at`` seconds after T0, lasting 0.5 s."""
    start = T0 + datetime.timedelta(seconds=at)
    meta: dict[str, Any] = {"type": "function", "source": "decorator", "latency_ms": 500.0, **metadata}
    if parent is not None:
        meta["parent_trace_id"] = parent
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": name,
        "input": input if input is not None else {"question": f"about {name}"},
        "output": output if output is not None else {"result": f"done {name}"},
        "metadata": meta,
        "status": status,
        "started_at": start.isoformat(),
        "ended_at": (start + datetime.timedelta(seconds=0.5)).isoformat(),
    }
    if tags is not None:
        record["tags"] = tags
    return record


def llm_record(parent: str | None = None, *, at: float = 0.0, model: str = "gpt-4o-mini", **kw: Any) -> dict[str, Any]:
    metadata = {
        "type": "llm",
        "source": "sdk",
        "model": model,
        "provider": "openai",
        "input_tokens": 120,
        "output_tokens": 30,
        "total_tokens": 150,
        "cost_usd": 0.000135,
    }
    metadata.update(kw.pop("metadata", {}))
    return make_record(
        "chat.completions",
        parent=parent,
        at=at,
        input={"model": model, "messages": [{"role": "user", "content": "How do I reset my password?"}]},
        output={"message": {"role": "assistant", "content": "Go to Settings > Security."}},
        **metadata,
        **kw,
    )


class Client:
    """HTTP calls to a running TraceServer, as any client would make them."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.url = url
        self.api_key = api_key

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        headers.update(extra or {})
        return headers

    def ingest(self, records: list[Any], *, compress: bool = True) -> httpx2.Response:
        body = json.dumps({"traces": records}).encode()
        headers = {"Content-Type": "application/json"}
        if compress:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return httpx2.post(self.url + "/v1/traces/ingest", content=body, headers=self._headers(headers))

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx2.Response:
        return httpx2.post(self.url + path, content=body, headers=self._headers(headers))

    def get(self, path: str, **params: Any) -> httpx2.Response:
        return httpx2.get(self.url + path, params=params, headers=self._headers())

    def search(self, **params: Any) -> list[dict[str, Any]]:
        response = self.get("/v1/traces", **params)
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["traces"]
        return records

    def names(self, **params: Any) -> list[str]:
        return [r["name"] for r in self.search(**params)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TraceStore]:
    trace_store = TraceStore(tmp_path / "traces.db")
    yield trace_store
    trace_store.close()


@pytest.fixture
def server(store: TraceStore) -> Iterator[TraceServer]:
    with TraceServer(store) as running:
        yield running


@pytest.fixture
def client(server: TraceServer) -> Client:
    return Client(server.url)
