"""Other instrumentations' GenAI spans as records (pure conversion: spans made by a real SDK tracer provider)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carrot_ai.export import span_to_trace_record


def record_of(attributes: dict[str, Any]) -> dict[str, Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("some.genai.instrumentation").start_as_current_span("chat m", attributes=attributes):
        pass
    provider.shutdown()
    [span] = memory.get_finished_spans()
    record = span_to_trace_record(span)
    assert record is not None
    return dict(record)


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (("stop",), ["stop"]),
        (("stop", "length"), ["stop", "length"]),
        ('["stop"]', ["stop"]),  # litellm's own spans write the list as JSON text
        ("stop", ["stop"]),
        ("[not json", ["[not json"]),
    ],
)
def test_finish_reasons_are_a_list_of_reasons_never_of_characters(reasons: Any, expected: list[str]) -> None:
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.response.finish_reasons": reasons}
    assert record_of(chat)["metadata"]["finish_reasons"] == expected


def test_an_embeddings_record_has_no_output_tokens_as_zero() -> None:
    embeddings = {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e", "gen_ai.usage.input_tokens": 8}
    metadata = record_of(embeddings)["metadata"]
    assert (metadata["input_tokens"], metadata["output_tokens"], metadata["total_tokens"]) == (8, 0, 8)
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 8}
    assert "output_tokens" not in record_of(chat)["metadata"]  # unknown, not zero
