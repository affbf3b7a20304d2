"""What the API says, as the record and the span say it: shapes the default fake answers do not have (custom tools,
streamed refusals and audio, Responses items beyond text and function calls), scripted as the API sends them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai import semconv
from tests.fakes import JSONReply, SSEReply
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import make_client, records, user

CUSTOM_TOOL = {"type": "custom", "custom": {"name": "code_exec", "description": "Run Python"}}


@pytest.fixture
def spans(ingest: IngestServer) -> Iterator[InMemorySpanExporter]:
    """carrot_ai set up against the ingest server, on a tracer provider whose finished spans are kept here."""
    provider = TracerProvider(shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=provider)
    yield exporter
    carrot_ai.shutdown()
    provider.shutdown()


def _json_attribute(span: ReadableSpan, name: str) -> Any:
    return json.loads((span.attributes or {})[name])  # type: ignore[arg-type]


def _completion(model: str, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", **message}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }


def _chunks(model: str, deltas: list[dict[str, Any]], finish_reason: str) -> list[Any]:
    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return {
            "id": "chatcmpl-streamed",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [choice],
        }

    return [chunk({"role": "assistant", "content": None}), *map(chunk, deltas), chunk({}, finish_reason), "[DONE]"]


def test_a_chat_custom_tool_call_is_recorded_with_its_name_and_input(
    fake: FakeOpenAI, spans: InMemorySpanExporter, ingest: IngestServer
) -> None:
    call = {"id": "call_c1", "type": "custom", "custom": {"name": "code_exec", "input": "print(1 + 1)"}}
    fake.enqueue(JSONReply(200, _completion("gpt-5", {"content": None, "tool_calls": [call]}, "tool_calls")))
    deltas = [
        {"tool_calls": [{"index": 0, "id": "call_c1", "type": "custom", "custom": {"name": "code_exec", "input": ""}}]},
        {"tool_calls": [{"index": 0, "custom": {"input": "print(1"}}]},
        {"tool_calls": [{"index": 0, "custom": {"input": " + 1)"}}]},
    ]
    fake.enqueue(SSEReply(_chunks("gpt-5", deltas, "tool_calls")))
    client = carrot_ai.wrap(make_client(fake))
    completion = client.chat.completions.create(model="gpt-5", messages=user("run it"), tools=[CUSTOM_TOOL])
    history = [
        *user("run it"),
        completion.choices[0].message,
        {"role": "tool", "tool_call_id": "call_c1", "content": "2"},
    ]
    list(client.chat.completions.create(model="gpt-5", messages=history, tools=[CUSTOM_TOOL], stream=True))
    got = records(ingest, 2)
    recorded = {"id": "call_c1", "type": "custom", "function": {"name": "code_exec", "arguments": "print(1 + 1)"}}
    for record in got:
        assert record["output"]["message"] == {"role": "assistant", "content": None, "tool_calls": [recorded]}
    part = {"type": "tool_call", "id": "call_c1", "name": "code_exec", "arguments": "print(1 + 1)"}
    first, second = spans.get_finished_spans()
    for span in (first, second):
        assert _json_attribute(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
            {"role": "assistant", "parts": [part], "finish_reason": "tool_calls"}
        ]
        assert _json_attribute(span, semconv.GEN_AI_TOOL_DEFINITIONS) == [
            {"type": "custom", "name": "code_exec", "description": "Run Python"}
        ]
    assert _json_attribute(second, semconv.GEN_AI_INPUT_MESSAGES)[1] == {"role": "assistant", "parts": [part]}
