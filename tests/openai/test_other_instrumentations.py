"""Our instrumentation together with the official OpenTelemetry OpenAI instrumentation: one record per call.

Runs when ``opentelemetry-instrumentation-genai-openai`` is importable (it is not a dependency of the test suite);
skipped otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai.instrumentation.openai import OpenAIInstrumentor
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import MODEL, make_client, no_more_records, records, user

official = pytest.importorskip("opentelemetry.instrumentation.genai.openai")


@pytest.fixture
def spans(tracer_provider: TracerProvider) -> InMemorySpanExporter:
    """Every span made on the test's provider (to check that the official instrumentation did make its own)."""
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(params=["official-first", "ours-first"])
def both(request: pytest.FixtureRequest, carrot: IngestServer, tracer_provider: TracerProvider) -> Iterator[None]:
    theirs = official.OpenAIInstrumentor()
    ours = OpenAIInstrumentor()
    order = [theirs, ours] if request.param == "official-first" else [ours, theirs]
    for instrumentor in order:
        instrumentor.instrument(tracer_provider=tracer_provider)
    yield
    for instrumentor in reversed(order):
        instrumentor.uninstrument()


def official_spans(spans: InMemorySpanExporter) -> list[str]:
    return [s.name for s in spans.get_finished_spans() if not s.instrumentation_scope.name.startswith("carrot_ai")]


def test_one_record_per_call_with_the_official_instrumentation(
    spans: InMemorySpanExporter, both: None, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    client = make_client(fake)
    client.chat.completions.create(model=MODEL, messages=user("official"))
    for _chunk in client.chat.completions.create(model=MODEL, messages=user("official stream"), stream=True):
        pass
    client.embeddings.create(model="text-embedding-3-small", input="official")
    got = records(carrot, 3)
    assert [r["name"] for r in got] == ["chat.completions", "chat.completions", "embeddings"]
    assert got[0]["output"]["message"]["content"] == "Echo: official"
    assert got[1]["output"]["message"]["content"] == "Echo: official stream"
    assert got[1]["metadata"]["output_tokens"] > 0
    no_more_records(carrot, 3)
    assert len(official_spans(spans)) == 3  # the premise: the official instrumentation recorded each call too


def test_wrap_with_the_official_instrumentation(
    spans: InMemorySpanExporter, fake: FakeOpenAI, carrot: IngestServer, tracer_provider: TracerProvider
) -> None:
    theirs = official.OpenAIInstrumentor()
    theirs.instrument(tracer_provider=tracer_provider)
    try:
        client = carrot_ai.wrap(make_client(fake))
        client.chat.completions.create(model=MODEL, messages=user("wrapped"))

        async def main() -> None:
            async with carrot_ai.wrap(make_client(fake, is_async=True)) as aclient:
                await aclient.chat.completions.create(model=MODEL, messages=user("async wrapped"))

        asyncio.run(main())
    finally:
        theirs.uninstrument()
    got = records(carrot, 2)
    assert [r["output"]["message"]["content"] for r in got] == ["Echo: wrapped", "Echo: async wrapped"]
    no_more_records(carrot, 2)
    assert len(official_spans(spans)) == 2
