"""LiteLLM's own OpenTelemetry callback (``litellm.callbacks = ["otel"]``) beside carrot's LiteLLM instrumentation:
still one record per call, and the callback's own spans still reach the application's pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.litellm.conftest import OPENAI_MODEL, records, user, via_openai

pytestmark = pytest.mark.litellm

litellm = pytest.importorskip("litellm")


@pytest.fixture
def app_spans(tracer_provider: TracerProvider) -> InMemorySpanExporter:
    """The application's own exporter on the same provider."""
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def otel_callback(tracer_provider: TracerProvider) -> Iterator[Any]:
    from litellm.integrations.opentelemetry import OpenTelemetry

    callback = OpenTelemetry(tracer_provider=tracer_provider)
    saved = litellm.callbacks
    litellm.callbacks = [callback]
    yield callback
    litellm.callbacks = saved
    # litellm copies its callbacks into lists of its own: this test's must not outlive its tracer provider there.
    for name in ("success_callback", "failure_callback", "_async_success_callback", "_async_failure_callback"):
        setattr(litellm, name, [cb for cb in getattr(litellm, name) if cb is not callback])


def _litellm_spans(spans: InMemorySpanExporter) -> list[Any]:
    return [s for s in spans.get_finished_spans() if s.name == "litellm_request"]


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True])
def test_one_record_per_call_with_litellms_otel_callback(
    stream: bool,
    way: str,
    oai: FakeOpenAI,
    carrot: IngestServer,
    app_spans: InMemorySpanExporter,
    otel_callback: Any,
) -> None:
    if stream:
        chunks = list(
            litellm.completion(model=OPENAI_MODEL, messages=user("otel stream"), stream=True, **via_openai(oai))
        )
        assert chunks
        _wait_for(lambda: _litellm_spans(app_spans))  # LiteLLM logs a stream's success on a thread of its own
        assert _litellm_spans(app_spans)  # the premise: LiteLLM made its own span of the call
    else:
        litellm.completion(model=OPENAI_MODEL, messages=user("otel"), **via_openai(oai))
    [record] = records(carrot, 1)
    assert record["name"] == "chat.completions"
    assert record["metadata"]["source"] == "litellm"


def test_one_record_per_async_stream_with_litellms_otel_callback(
    way: str, oai: FakeOpenAI, carrot: IngestServer, app_spans: InMemorySpanExporter, otel_callback: Any
) -> None:
    async def main() -> None:
        stream = await litellm.acompletion(
            model=OPENAI_MODEL, messages=user("otel async stream"), stream=True, **via_openai(oai)
        )
        async for _chunk in stream:
            pass
        await asyncio.sleep(0.3)  # LiteLLM logs an async stream's success in a task of its own

    asyncio.run(main())
    _wait_for(lambda: _litellm_spans(app_spans))
    assert _litellm_spans(app_spans)
    [record] = records(carrot, 1)
    assert record["metadata"]["source"] == "litellm"
