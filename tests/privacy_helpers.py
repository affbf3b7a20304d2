"""Shared helpers of the privacy, context, cost, tool and manual-capture tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai._core import _content
from tests.ingest_server import IngestServer


@contextlib.contextmanager
def carrot_session(
    ingest: IngestServer, tracer_provider: TracerProvider, **options: Any
) -> Iterator[InMemorySpanExporter]:
    """``init()`` against the local ingest server with ``options``; yields an in-memory copy of every span."""
    spans = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    carrot_ai.init(
        api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=tracer_provider, **options
    )
    try:
        yield spans
    finally:
        carrot_ai.shutdown()
        _content.set_policy(_content.ContentPolicy())


def records_after_flush(ingest: IngestServer, count: int) -> list[dict[str, Any]]:
    assert carrot_ai.flush(5)
    return ingest.wait_for(count)


def payload_text(ingest: IngestServer) -> str:
    """Every request body the ingest server received, decoded."""
    return "\n".join(request.body.decode("utf-8") for request in ingest.requests)


def span_attribute_text(spans: InMemorySpanExporter) -> str:
    """Every attribute (and status description) of every finished span, as one JSON text."""
    return json.dumps(
        [
            {
                "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (s.attributes or {}).items()},
                "status": s.status.description,
            }
            for s in spans.get_finished_spans()
        ],
        ensure_ascii=False,
    )
