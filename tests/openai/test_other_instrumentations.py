"""Our instrumentation together with another OpenAI instrumentation: one record per call.

The others are the official OpenTelemetry one (``opentelemetry-instrumentation-genai-openai``), OpenInference's
(``openinference-instrumentation-openai``) and OpenLLMetry's (``opentelemetry-instrumentation-openai``). None is a
dependency of the test suite: each case runs when its package is importable and is skipped otherwise.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai.instrumentation.openai import OpenAIInstrumentor
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import MODEL, make_client, no_more_records, records, user

OTHERS = {
    "official": "opentelemetry.instrumentation.genai.openai",
    "openinference": "openinference.instrumentation.openai",
    "openllmetry": "opentelemetry.instrumentation.openai",
}


def other_instrumentor(name: str) -> Any:
    try:
        module = importlib.import_module(OTHERS[name])
    except ImportError:
        pytest.skip(f"{OTHERS[name]} is not installed")
    instrumentor = module.OpenAIInstrumentor()
    conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
    if conflict is not None:  # (OpenInference 0.1.66 instruments nothing below openai 2.8)
        pytest.skip(str(conflict))
    return instrumentor


@pytest.fixture
def spans(tracer_provider: TracerProvider) -> InMemorySpanExporter:
    """Every span made on the test's provider (to check that the other instrumentation did make its own)."""
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(params=[(name, order) for name in OTHERS for order in ("theirs-first", "ours-first")])
def both(request: pytest.FixtureRequest, carrot: IngestServer, tracer_provider: TracerProvider) -> Iterator[None]:
    name, order = request.param
    theirs = other_instrumentor(name)
    saved = _snapshot()
    ours = OpenAIInstrumentor()
    sequence = [theirs, ours] if order == "theirs-first" else [ours, theirs]
    for instrumentor in sequence:
        instrumentor.instrument(tracer_provider=tracer_provider)
    yield
    for instrumentor in reversed(sequence):
        instrumentor.uninstrument()
    _restore(saved)


def _snapshot() -> dict[type, dict[str, Any]]:
    """The methods of every openai class: OpenLLMetry's uninstrument() leaves its wrappers on some of them."""
    import pkgutil
    import sys

    import openai.resources

    for info in pkgutil.walk_packages(openai.resources.__path__, "openai.resources."):
        importlib.import_module(info.name)  # lazily imported modules included: the others patch them on import
    saved: dict[type, dict[str, Any]] = {}
    for module_name, module in list(sys.modules.items()):
        if module_name == "openai" or module_name.startswith("openai."):
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__.startswith("openai"):
                    saved.setdefault(value, dict(vars(value)))
    return saved


def _restore(saved: dict[type, dict[str, Any]]) -> None:
    for cls, attributes in saved.items():
        for name, value in attributes.items():
            if vars(cls).get(name) is not value:
                setattr(cls, name, value)


def other_spans(spans: InMemorySpanExporter) -> list[str]:
    return [s.name for s in spans.get_finished_spans() if not s.instrumentation_scope.name.startswith("carrot_ai")]


def test_one_record_per_call_with_another_instrumentation(
    spans: InMemorySpanExporter, both: None, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    client = make_client(fake)
    client.chat.completions.create(model=MODEL, messages=user("other"))
    for _chunk in client.chat.completions.create(model=MODEL, messages=user("other stream"), stream=True):
        pass
    client.embeddings.create(model="text-embedding-3-small", input="other")
    got = records(carrot, 3)
    assert [r["name"] for r in got] == ["chat.completions", "chat.completions", "embeddings"]
    assert got[0]["output"]["message"]["content"] == "Echo: other"
    assert got[1]["output"]["message"]["content"] == "Echo: other stream"
    assert got[1]["metadata"]["output_tokens"] > 0
    assert all("parent_trace_id" not in r["metadata"] for r in got)  # no dangling parent: the other span is elided
    no_more_records(carrot, 3)
    assert len(other_spans(spans)) == 3  # the premise: the other instrumentation recorded each call too


@pytest.mark.parametrize("name", list(OTHERS))
def test_wrap_with_another_instrumentation(
    name: str, spans: InMemorySpanExporter, fake: FakeOpenAI, carrot: IngestServer, tracer_provider: TracerProvider
) -> None:
    theirs = other_instrumentor(name)
    saved = _snapshot()
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
        _restore(saved)
    got = records(carrot, 2)
    assert [r["output"]["message"]["content"] for r in got] == ["Echo: wrapped", "Echo: async wrapped"]
    no_more_records(carrot, 2)
    assert len(other_spans(spans)) == 2


@pytest.mark.parametrize("way", ["wrap", "instrumentor"])
def test_one_record_when_other_instrumentations_are_stacked_above_ours(
    way: str, fake: FakeOpenAI, carrot: IngestServer, tracer_provider: TracerProvider
) -> None:
    """Two other instrumentations installed on top of ours: an official-style span that names its operation at the
    start, and below it an OpenLLMetry-style one that names it only before it ends. Ours is innermost: both of
    theirs are the same call, and none of them becomes a second record."""
    tracer = tracer_provider.get_tracer("some.other.instrumentation")
    instrumentor = OpenAIInstrumentor()
    if way == "instrumentor":
        instrumentor.instrument()
    try:
        client = make_client(fake) if way == "instrumentor" else carrot_ai.wrap(make_client(fake))
        with tracer.start_as_current_span("chat " + MODEL, attributes={"gen_ai.operation.name": "chat"}):
            with tracer.start_as_current_span("openai.chat") as late:
                client.chat.completions.create(model=MODEL, messages=user("stacked"))
                late.set_attribute("gen_ai.operation.name", "chat")
    finally:
        if way == "instrumentor":
            instrumentor.uninstrument()
    [record] = records(carrot, 1)
    assert record["metadata"]["source"] == "sdk"
    assert record["output"]["message"]["content"] == "Echo: stacked"
    no_more_records(carrot, 1)
