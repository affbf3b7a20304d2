"""Server tools (web search, web fetch, code execution, MCP connector): Anthropic runs them itself, so their
``server_tool_use`` blocks are not calls for the caller to make. The record keeps them apart, in
``output.message.server_tool_calls``, each with its result (the ``*_tool_result`` block of the same ``tool_use_id``);
the span has them as GenAI ``server_tool_call`` / ``server_tool_call_response`` parts. Answered whole or streamed,
the same."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai import semconv
from tests.anthropic.conftest import MODEL, make_client, records, user
from tests.export_helpers import json_attribute as _json_attribute
from tests.fakes import JSONReply, SSEEvent, SSEReply
from tests.fakes.anthropic_server import FakeAnthropic
from tests.ingest_server import IngestServer

SEARCH_USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_1",
    "name": "web_search",
    "input": {"query": "carrot prices 2025"},
}
SEARCH_RESULTS = [
    {
        "type": "web_search_result",
        "url": "https://example.com/carrots",
        "title": "Carrot prices",
        "encrypted_content": "EqgfCioIARgBIiQ3YTAw",
        "page_age": "April 30, 2025",
    }
]
SEARCH_RESULT = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": SEARCH_RESULTS}
CODE_USE = {"type": "server_tool_use", "id": "srvtoolu_2", "name": "code_execution", "input": {"code": "print(6 * 7)"}}
CODE_OUTPUT = {"type": "code_execution_result", "stdout": "42\n", "stderr": "", "return_code": 0, "content": []}
CODE_RESULT = {"type": "code_execution_tool_result", "tool_use_id": "srvtoolu_2", "content": CODE_OUTPUT}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
CONTENT = [
    {"type": "text", "text": "Let me look."},
    SEARCH_USE,
    SEARCH_RESULT,
    CODE_USE,
    CODE_RESULT,
    {"type": "text", "text": "Carrots cost 1 EUR; 6 * 7 = 42."},
    TOOL_USE,
]
SERVER_TOOL_CALLS = [
    {
        "id": "srvtoolu_1",
        "type": "server_tool_use",
        "name": "web_search",
        "input": {"query": "carrot prices 2025"},
        "result": SEARCH_RESULTS,
    },
    {
        "id": "srvtoolu_2",
        "type": "server_tool_use",
        "name": "code_execution",
        "input": {"code": "print(6 * 7)"},
        "result": CODE_OUTPUT,
    },
]
EXPECTED_MESSAGE = {
    "role": "assistant",
    "content": "Let me look.Carrots cost 1 EUR; 6 * 7 = 42.",
    "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    ],
    "server_tool_calls": SERVER_TOOL_CALLS,
}
SEARCH_PARTS = [
    {
        "type": "server_tool_call",
        "id": "srvtoolu_1",
        "name": "web_search",
        "server_tool_call": {"type": "web_search", "query": "carrot prices 2025"},
    },
    {
        "type": "server_tool_call_response",
        "id": "srvtoolu_1",
        "server_tool_call_response": {"type": "web_search_tool_result", "content": SEARCH_RESULTS},
    },
]
EXPECTED_PARTS = [
    {"type": "text", "content": "Let me look."},
    *SEARCH_PARTS,
    {
        "type": "server_tool_call",
        "id": "srvtoolu_2",
        "name": "code_execution",
        "server_tool_call": {"type": "code_execution", "code": "print(6 * 7)"},
    },
    {
        "type": "server_tool_call_response",
        "id": "srvtoolu_2",
        "server_tool_call_response": {"type": "code_execution_tool_result", "content": CODE_OUTPUT},
    },
    {"type": "text", "content": "Carrots cost 1 EUR; 6 * 7 = 42."},
    {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
]


def _message(fake: FakeAnthropic, content: list[dict[str, Any]], stop_reason: str = "tool_use") -> dict[str, Any]:
    base = fake.build_message({"model": MODEL, "max_tokens": 100, "messages": user("hi")})
    return {**base, "content": copy.deepcopy(content), "stop_reason": stop_reason}


def _events(message: dict[str, Any]) -> list[SSEEvent]:
    """``message`` streamed as the API streams server tools: a ``server_tool_use`` block's input in
    ``input_json_delta`` pieces, a result block whole in its ``content_block_start``."""
    events: list[SSEEvent] = []

    def emit(kind: str, **data: Any) -> None:
        events.append(SSEEvent({"type": kind, **data}, kind))

    emit("message_start", message={**message, "content": [], "stop_reason": None})
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            emit("content_block_start", index=index, content_block={"type": "text", "text": ""})
            text = block["text"]
            for piece in (text[:5], text[5:]):
                emit("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
        elif kind in ("tool_use", "server_tool_use"):
            emit("content_block_start", index=index, content_block={**block, "input": {}})
            raw = json.dumps(block["input"])
            for piece in ("", raw[:7], raw[7:]):
                emit("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": piece})
        else:
            emit("content_block_start", index=index, content_block=block)
        emit("content_block_stop", index=index)
    emit("message_delta", delta={"stop_reason": message["stop_reason"], "stop_sequence": None}, usage=message["usage"])
    emit("message_stop")
    return events


@pytest.mark.parametrize("read", ["body", "objects"])
def test_server_tool_blocks_are_recorded_apart_answered_and_streamed_alike(
    fake: FakeAnthropic, ingest: IngestServer, request: pytest.FixtureRequest, read: str
) -> None:
    # Read from the body on the export worker (carrot's processor alone), or from the SDK's objects (a second one).
    exporter = request.getfixturevalue("spans") if read == "objects" else request.getfixturevalue("carrot") and None
    message = _message(fake, CONTENT)
    fake.enqueue(JSONReply(200, message), SSEReply(_events(message)), SSEReply(_events(message)))
    client = carrot_ai.wrap(make_client(fake))
    answered = client.messages.create(model=MODEL, max_tokens=100, messages=user("carrots?"))
    assert [block.type for block in answered.content] == [block["type"] for block in CONTENT]  # unchanged
    list(client.messages.create(model=MODEL, max_tokens=100, messages=user("carrots?"), stream=True))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=user("carrots?")) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == [block["type"] for block in CONTENT]
    got = records(ingest, 3)
    for record in got:
        assert record["output"]["message"] == EXPECTED_MESSAGE
        assert record["metadata"]["finish_reasons"] == ["tool_use"]
    if exporter is not None:
        for span in exporter.get_finished_spans():
            assert _json_attribute(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
                {"role": "assistant", "parts": EXPECTED_PARTS, "finish_reason": "tool_use"}
            ]


def test_a_stream_cut_short_keeps_the_server_call_without_its_result(
    fake: FakeAnthropic, spans: InMemorySpanExporter, ingest: IngestServer
) -> None:
    message = _message(fake, [SEARCH_USE, SEARCH_RESULT])
    events = _events(message)
    result_start = next(i for i, e in enumerate(events) if e.data.get("content_block") == SEARCH_RESULT)
    fake.enqueue(SSEReply(events[:result_start]))
    client = carrot_ai.wrap(make_client(fake))
    list(client.messages.create(model=MODEL, max_tokens=100, messages=user("carrots?"), stream=True))
    [record] = records(ingest, 1)
    assert record["output"]["message"] == {
        "role": "assistant",
        "content": None,
        "server_tool_calls": [{k: v for k, v in SERVER_TOOL_CALLS[0].items() if k != "result"}],
    }


def test_server_tool_blocks_in_the_history_are_server_tool_parts(
    fake: FakeAnthropic, spans: InMemorySpanExporter, ingest: IngestServer
) -> None:
    history = [
        *user("carrots?"),
        {"role": "assistant", "content": [SEARCH_USE, SEARCH_RESULT, {"type": "text", "text": "1 EUR."}]},
        *user("thanks"),
    ]
    carrot_ai.wrap(make_client(fake)).messages.create(model=MODEL, max_tokens=100, messages=history)
    records(ingest, 1)
    [span] = spans.get_finished_spans()
    assert _json_attribute(span, semconv.GEN_AI_INPUT_MESSAGES)[1] == {
        "role": "assistant",
        "parts": [*SEARCH_PARTS, {"type": "text", "content": "1 EUR."}],
    }


def test_content_off_records_no_server_tool_input_or_result(fake: FakeAnthropic, carrot: IngestServer) -> None:
    ingest = carrot  # set up and shut down by the fixture; init() again changes the settings
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, capture_content=False)
    fake.enqueue(JSONReply(200, _message(fake, CONTENT)))
    carrot_ai.wrap(make_client(fake)).messages.create(model=MODEL, max_tokens=100, messages=user("carrots?"))
    [record] = records(ingest, 1)
    text = json.dumps(record)
    for secret in ("carrot prices 2025", "example.com", "print(6 * 7)", "Carrots cost", "encrypted_content"):
        assert secret not in text
    assert record["metadata"]["content_captured"] is False


def test_redaction_masks_server_tool_input_and_result(fake: FakeAnthropic, carrot: IngestServer) -> None:
    ingest = carrot  # set up and shut down by the fixture; init() again changes the settings
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, redact=True)
    use = {**SEARCH_USE, "input": {"query": "jane.doe@example.com"}}
    result = {**SEARCH_RESULT, "content": [{**SEARCH_RESULTS[0], "title": "Call +44 20 7946 0958"}]}
    fake.enqueue(JSONReply(200, _message(fake, [use, result], "end_turn")))
    carrot_ai.wrap(make_client(fake)).messages.create(model=MODEL, max_tokens=100, messages=user("who?"))
    [record] = records(ingest, 1)
    [call] = record["output"]["message"]["server_tool_calls"]
    assert call["input"] == {"query": "[EMAIL]"}
    assert call["result"][0]["title"] == "Call [PHONE]"
