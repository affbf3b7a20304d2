from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from carrot_ai.export import span_to_trace_record
from carrot_ai.server import TraceServer
from tests.server.conftest import Client


def test_otlp_protobuf_spans_are_stored_as_the_carrot_exporter_would_convert_them(
    server: TraceServer, client: Client
) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.url + "/v1/traces")))
    tracer = provider.get_tracer("some.genai.instrumentation")
    with tracer.start_as_current_span("invoke_agent helper", attributes={"gen_ai.operation.name": "invoke_agent"}):
        with tracer.start_as_current_span("GET /search", kind=SpanKind.CLIENT) as http_span:
            http_span.set_attribute("http.response.status_code", 200)
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.usage.input_tokens": 42,
                    "gen_ai.usage.output_tokens": 7,
                    "gen_ai.response.finish_reasons": ("stop",),
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": "Hello!"}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                }
            )
        with tracer.start_as_current_span("execute_tool lookup") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"})
            tool.set_status(StatusCode.ERROR, "no such order")
    provider.shutdown()

    expected = [span_to_trace_record(span) for span in memory.get_finished_spans()]
    expected = [record for record in expected if record is not None]
    assert len(expected) == 3  # the HTTP span is elided, as the carrot exporter elides it
    stored = {r["id"]: r for r in client.search()}
    assert stored == {r["id"]: r for r in expected}
    chat_record = next(r for r in expected if r["name"] == "chat.completions")
    assert chat_record["metadata"]["model"] == "gpt-4o-2024-08-06"
    assert chat_record["metadata"]["service_name"] == "support-bot"
    tree = client.get(f"/v1/traces/{chat_record['id']}").json()
    assert tree["tree"]["name"] == "invoke_agent helper"
    assert [c["name"] for c in tree["tree"]["children"]] == ["chat.completions", "lookup"]


OTLP_JSON: dict[str, Any] = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "node-app"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "@opentelemetry/instrumentation-openai", "version": "0.1.0"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "parentSpanId": "",
                            "name": "chat gpt-4o-mini",
                            "kind": 3,
                            "startTimeUnixNano": "1746100800000000000",
                            "endTimeUnixNano": "1746100801250000000",
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                                {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "12"}},
                                {"key": "gen_ai.usage.completion_tokens", "value": {"intValue": 3}},
                                {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.5}},
                                {
                                    "key": "gen_ai.response.finish_reasons",
                                    "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}},
                                },
                            ],
                            "status": {"code": 0},
                        },
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "aaa19b7ec3c1b175",
                            "parentSpanId": "eee19b7ec3c1b174",
                            "name": "POST /v1/chat/completions",
                            "kind": 3,
                            "startTimeUnixNano": "1746100800100000000",
                            "endTimeUnixNano": "1746100801200000000",
                            "attributes": [{"key": "http.request.method", "value": {"stringValue": "POST"}}],
                        },
                    ],
                }
            ],
        }
    ]
}


def test_otlp_json_spans_are_converted_and_non_genai_spans_elided(client: Client) -> None:
    response = client.post("/v1/traces", json.dumps(OTLP_JSON).encode(), {"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    [record] = client.search()
    assert record["name"] == "chat.completions"
    assert record["started_at"] == "2025-05-01T12:00:00+00:00"
    assert record["input"] == {"model": "gpt-4o-mini", "temperature": 0.5}
    assert {
        k: record["metadata"][k] for k in ("model", "provider", "input_tokens", "output_tokens", "total_tokens")
    } == {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "input_tokens": 12,
        "output_tokens": 3,
        "total_tokens": 15,
    }
    assert record["metadata"]["latency_ms"] == 1250.0
    assert record["metadata"]["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert record["metadata"]["finish_reasons"] == ["stop"]
    assert record["metadata"]["service_name"] == "node-app"


def test_otlp_protobuf_response_is_an_export_trace_service_response(client: Client) -> None:
    response = client.post("/v1/traces", b"", {"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(response.content)
    assert not parsed.HasField("partial_success")


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"\xff\xff\xff", "application/x-protobuf", 400),
        (b"{not json", "application/json", 400),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json", 400),
        (b"{}", "text/plain", 415),
    ],
)
def test_malformed_otlp_body_is_refused(client: Client, body: bytes, content_type: str, status: int) -> None:
    assert client.post("/v1/traces", body, {"Content-Type": content_type}).status_code == status


def test_otlp_genai_spans_name_their_nearest_genai_ancestor_through_elided_spans_of_the_same_request(
    server: TraceServer, client: Client
) -> None:
    """An application's HTTP server span above its GenAI spans is elided; a record names its nearest exported
    ancestor, as the carrot exporter's records do, and a call whose ancestors are all elided is top-level."""
    provider = TracerProvider(shutdown_on_exit=False)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("some.genai.instrumentation")
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme", "gen_ai.request.model": "acme-1"}
    with tracer.start_as_current_span("POST /ask", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("chat alone", kind=SpanKind.CLIENT, attributes=chat):
            pass
        agent_attributes = {"gen_ai.operation.name": "invoke_agent"}
        with tracer.start_as_current_span("invoke_agent helper", attributes=agent_attributes):
            with tracer.start_as_current_span("middleware"):
                with tracer.start_as_current_span("chat under agent", kind=SpanKind.CLIENT, attributes=chat):
                    pass
    provider.shutdown()
    # One request, as a batch span processor (or a collector) sends the spans that ended together.
    assert OTLPSpanExporter(endpoint=server.url + "/v1/traces").export(memory.get_finished_spans()).name == "SUCCESS"

    by_name = {r["name"]: r for r in client.search()}
    assert set(by_name) == {"chat alone", "invoke_agent helper", "chat under agent"}
    assert "parent_trace_id" not in by_name["chat alone"]["metadata"]
    assert "parent_trace_id" not in by_name["invoke_agent helper"]["metadata"]
    assert by_name["chat under agent"]["metadata"]["parent_trace_id"] == by_name["invoke_agent helper"]["id"]
    assert sorted(client.names(root="true")) == ["chat alone", "invoke_agent helper"]
