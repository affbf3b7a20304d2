"""The pure extractors on their own, and the GenAI attributes they put on our span."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai import semconv
from carrot_ai.instrumentation.anthropic import _extract
from tests.anthropic.conftest import MODEL, make_client, user
from tests.fakes.anthropic_server import FakeAnthropic
from tests.ingest_server import IngestServer

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.mark.parametrize(
    ("block", "part"),
    [
        ({"type": "text", "text": "hi"}, {"type": "text", "content": "hi"}),
        ({"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "reasoning", "content": "hmm"}),
        ({"type": "redacted_thinking", "data": "opaque"}, {"type": "reasoning", "content": "", "redacted": True}),
        (
            {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"a": 1}},
            {"type": "tool_call", "id": "tu_1", "name": "f", "arguments": {"a": 1}},
        ),
        (
            {"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "ok"}]},
            {"type": "tool_call_response", "id": "tu_1", "response": "ok"},
        ),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "<media: image/png, 70 bytes>"},
        ),
        (
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "uri", "modality": "image", "uri": "https://example.com/a.png"},
        ),
        (
            {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
            {"type": "file", "modality": "document", "file_id": "file_1"},
        ),
        (  # a server tool's result: its type and content, under the call's id
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {
                "type": "server_tool_call_response",
                "id": "srvtoolu_1",
                "server_tool_call_response": {"type": "web_search_tool_result", "content": []},
            },
        ),
        (  # a server tool's call: its input under the tool's type, not a call for the caller
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_fetch", "input": {"url": "https://a.b"}},
            {
                "type": "server_tool_call",
                "id": "srvtoolu_1",
                "name": "web_fetch",
                "server_tool_call": {"type": "web_fetch", "url": "https://a.b"},
            },
        ),
        (  # a tool of an MCP server, run through the MCP connector
            {"type": "mcp_tool_use", "id": "mcptoolu_1", "name": "ask", "server_name": "wiki", "input": {"q": "x"}},
            {
                "type": "server_tool_call",
                "id": "mcptoolu_1",
                "name": "ask",
                "server_tool_call": {"type": "mcp", "q": "x", "server_name": "wiki"},
            },
        ),
        (  # a document of custom content: its text, no blob (it has no bytes)
            {
                "type": "document",
                "source": {
                    "type": "content",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            },
            {"type": "text", "content": "ab"},
        ),
        (
            {"type": "document", "source": {"type": "content", "content": "plain"}},
            {"type": "text", "content": "plain"},
        ),
    ],
)
def test_block_part(block: dict[str, Any], part: dict[str, Any]) -> None:
    assert _extract.block_part(block) == part


def test_usage_input_tokens_include_cache_reads_and_writes() -> None:
    attributes: dict[str, Any] = {}
    usage = {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5, "output_tokens": 7}
    _extract.usage_attributes(usage, attributes)
    assert attributes == {
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 115,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 100,
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 5,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
    }


def test_usage_of_old_responses_without_cache_fields() -> None:
    attributes: dict[str, Any] = {}
    _extract.usage_attributes({"input_tokens": 10, "output_tokens": 2}, attributes)
    assert attributes == {semconv.GEN_AI_USAGE_INPUT_TOKENS: 10, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 2}


def test_materialize_iterables_copies_only_when_needed() -> None:
    kwargs = {"messages": [{"role": "user", "content": "x"}], "model": MODEL}
    assert _extract.materialize_iterables(kwargs) is kwargs
    lazy = {"messages": iter(user("x")), "stop_sequences": (s for s in ["END"]), "system": "s"}
    done = _extract.materialize_iterables(lazy)
    assert done == {"messages": user("x"), "stop_sequences": ["END"], "system": "s"}


def test_record_input_replaces_inline_media_in_tool_results_too() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
    params = {
        "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image]}]}]
    }
    scrubbed = _extract.record_input(params)
    assert PNG_B64 not in json.dumps(scrubbed)
    assert PNG_B64 in json.dumps(params)


def test_output_tool_call_arguments_are_json_text() -> None:
    attributes: dict[str, Any] = {}
    blocks = [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "ü", "n": 2}}]
    output = _extract.output_from_blocks(blocks, "tool_use", attributes)
    assert output["message"]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q":"ü","n":2}'}
    assert json.loads(attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "t1", "name": "lookup", "arguments": {"q": "ü", "n": 2}}],
            "finish_reason": "tool_use",
        }
    ]


def test_error_attributes_of_status_and_connection_errors() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    response = httpx2.Response(429, headers={"request-id": "req_1"}, request=request)
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    status_error = anthropic.RateLimitError("slow down", response=response, body=body)
    assert _extract.error_attributes(status_error) == {
        semconv.HTTP_RESPONSE_STATUS_CODE: 429,
        semconv.CARROT_ERROR_CODE: "rate_limit_error",
        semconv.CARROT_REQUEST_ID: "req_1",
    }
    assert _extract.error_attributes(anthropic.APIConnectionError(request=request)) == {}


def test_span_carries_genai_content_attributes(fake: FakeAnthropic, ingest: IngestServer) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=provider)
    try:
        tool = {"name": "f", "description": "d", "input_schema": {"type": "object"}}
        carrot_ai.wrap(make_client(fake)).messages.create(
            model=MODEL, max_tokens=20, system="Be brief.", tools=[tool], messages=user("hi"), stop_sequences=["END"]
        )
    finally:
        carrot_ai.shutdown()
        provider.shutdown()
    [span] = spans.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert span.name == f"chat {MODEL}"
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 20
    assert attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert json.loads(attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]
    assert json.loads(attributes[semconv.GEN_AI_TOOL_DEFINITIONS]) == [
        {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}
    ]
    assert json.loads(attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Echo: hi"}], "finish_reason": "end_turn"}
    ]
