"""Responses API items beyond messages and function calls: built-in tools the API ran itself (web search, file search,
code interpreter, MCP, ...) and calls the caller must carry out other than function calls (computer use, shell).

The record keeps what the model produced: the caller's calls in ``output.message.tool_calls``, the server's in
``output.message.server_tool_calls`` (in output order, with their input and result); the span has them as GenAI
``tool_call`` / ``server_tool_call`` / ``server_tool_call_response`` parts. Answered whole or streamed, the same."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai import semconv
from tests.export_helpers import json_attribute as _json_attribute
from tests.fakes import JSONReply, SSEEvent, SSEReply
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import make_client, records

WEB_SEARCH = {
    "type": "web_search_call",
    "id": "ws_1",
    "status": "completed",
    "action": {"type": "search", "query": "carrot prices 2025"},
}
FILE_SEARCH = {
    "type": "file_search_call",
    "id": "fs_1",
    "status": "completed",
    "queries": ["refund policy"],
    "results": [{"file_id": "file_1", "filename": "policy.md", "score": 0.9, "text": "Refunds within 30 days."}],
}
CODE_INTERPRETER = {
    "type": "code_interpreter_call",
    "id": "ci_1",
    "status": "completed",
    "code": "print(6 * 7)",
    "container_id": "cntr_1",
    "outputs": [{"type": "logs", "logs": "42\n"}],
}
MCP_CALL = {
    "type": "mcp_call",
    "id": "mcp_1",
    "status": "completed",
    "server_label": "wiki",
    "name": "ask_question",
    "arguments": '{"question": "What is MCP?"}',
    "output": "A protocol for tools.",
}
COMPUTER_CALL = {
    "type": "computer_call",
    "id": "cu_1",
    "call_id": "call_cu1",
    "status": "completed",
    "action": {"type": "click", "button": "left", "x": 10, "y": 20},
    "pending_safety_checks": [],
}
MESSAGE = {
    "type": "message",
    "id": "msg_1",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Refunds within 30 days; 6 * 7 = 42.", "annotations": []}],
}
OUTPUT = [WEB_SEARCH, FILE_SEARCH, CODE_INTERPRETER, MCP_CALL, MESSAGE, COMPUTER_CALL]

SERVER_TOOL_CALLS = [
    {
        "id": "ws_1",
        "type": "web_search_call",
        "name": "web_search",
        "input": {"type": "search", "query": "carrot prices 2025"},
        "status": "completed",
    },
    {
        "id": "fs_1",
        "type": "file_search_call",
        "name": "file_search",
        "input": ["refund policy"],
        "status": "completed",
        "result": FILE_SEARCH["results"],
    },
    {
        "id": "ci_1",
        "type": "code_interpreter_call",
        "name": "code_interpreter",
        "input": "print(6 * 7)",
        "status": "completed",
        "result": [{"type": "logs", "logs": "42\n"}],
    },
    {
        "id": "mcp_1",
        "type": "mcp_call",
        "name": "mcp",
        "input": {"server_label": "wiki", "name": "ask_question", "arguments": '{"question": "What is MCP?"}'},
        "status": "completed",
        "result": "A protocol for tools.",
    },
]
COMPUTER_TOOL_CALL = {
    "id": "call_cu1",
    "type": "computer_call",
    "computer_call": {"action": COMPUTER_CALL["action"], "pending_safety_checks": []},
}
EXPECTED_MESSAGE = {
    "role": "assistant",
    "content": "Refunds within 30 days; 6 * 7 = 42.",
    "tool_calls": [COMPUTER_TOOL_CALL],
    "server_tool_calls": SERVER_TOOL_CALLS,
}
EXPECTED_PARTS = [
    {
        "type": "server_tool_call",
        "id": "ws_1",
        "name": "web_search",
        "server_tool_call": {"type": "web_search", "action": WEB_SEARCH["action"], "status": "completed"},
    },
    {
        "type": "server_tool_call",
        "id": "fs_1",
        "name": "file_search",
        "server_tool_call": {"type": "file_search", "queries": ["refund policy"], "status": "completed"},
    },
    {
        "type": "server_tool_call_response",
        "id": "fs_1",
        "server_tool_call_response": {"type": "file_search", "results": FILE_SEARCH["results"]},
    },
    {
        "type": "server_tool_call",
        "id": "ci_1",
        "name": "code_interpreter",
        "server_tool_call": {
            "type": "code_interpreter",
            "code": "print(6 * 7)",
            "container_id": "cntr_1",
            "status": "completed",
        },
    },
    {
        "type": "server_tool_call_response",
        "id": "ci_1",
        "server_tool_call_response": {"type": "code_interpreter", "outputs": CODE_INTERPRETER["outputs"]},
    },
    {
        "type": "server_tool_call",
        "id": "mcp_1",
        "name": "mcp",
        "server_tool_call": {
            "type": "mcp",
            "server_label": "wiki",
            "name": "ask_question",
            "arguments": '{"question": "What is MCP?"}',
            "status": "completed",
        },
    },
    {
        "type": "server_tool_call_response",
        "id": "mcp_1",
        "server_tool_call_response": {"type": "mcp", "output": "A protocol for tools."},
    },
    {"type": "text", "content": "Refunds within 30 days; 6 * 7 = 42."},
    {
        "type": "tool_call",
        "id": "call_cu1",
        "name": "computer",
        "arguments": {"action": COMPUTER_CALL["action"], "pending_safety_checks": []},
    },
]


def _response(fake: FakeOpenAI, output: list[dict[str, Any]]) -> dict[str, Any]:
    return {**fake.build_response({"model": "gpt-5", "input": "hi"}), "output": copy.deepcopy(output)}


def _events(response: dict[str, Any]) -> list[SSEEvent]:
    """``response`` streamed as the API streams built-in tools: each item added in progress (without its results),
    its progress events, then done whole; the message's text in deltas."""
    events: list[SSEEvent] = []

    def emit(kind: str, **data: Any) -> None:
        events.append(SSEEvent({"type": kind, "sequence_number": len(events), **data}, kind))

    emit("response.created", response={**response, "status": "in_progress", "output": [], "usage": None})
    for index, item in enumerate(response["output"]):
        kind = item["type"]
        if kind == "message":
            emit("response.output_item.added", output_index=index, item={**item, "content": []})
            text = item["content"][0]["text"]
            for piece in (text[:10], text[10:]):
                emit(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                )
        else:
            started = {k: v for k, v in item.items() if k not in ("results", "outputs", "output")}
            emit("response.output_item.added", output_index=index, item={**started, "status": "in_progress"})
            if kind == "web_search_call":
                emit("response.web_search_call.in_progress", item_id=item["id"], output_index=index)
                emit("response.web_search_call.completed", item_id=item["id"], output_index=index)
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return events


@pytest.mark.parametrize("read", ["body", "objects"])
def test_server_and_computer_items_are_recorded_answered_and_streamed_alike(
    fake: FakeOpenAI, ingest: IngestServer, request: pytest.FixtureRequest, read: str
) -> None:
    # Read from the body on the export worker (carrot's processor alone), or from the SDK's objects (a second one).
    exporter = request.getfixturevalue("spans") if read == "objects" else request.getfixturevalue("carrot") and None
    response = _response(fake, OUTPUT)
    events = _events(response)
    fake.enqueue(JSONReply(200, response), SSEReply(events))
    client = carrot_ai.wrap(make_client(fake))
    answered = client.responses.create(model="gpt-5", input="refunds?", tools=[{"type": "web_search"}])
    assert [item.type for item in answered.output] == [item["type"] for item in OUTPUT]  # unchanged for the caller
    streamed = list(client.responses.create(model="gpt-5", input="refunds?", stream=True))
    assert len(streamed) == len(events)
    got = records(ingest, 2)
    for record in got:
        assert record["output"]["message"] == EXPECTED_MESSAGE
        assert record["metadata"]["finish_reasons"] == ["tool_calls"]
    if exporter is not None:
        for span in exporter.get_finished_spans():
            assert _json_attribute(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [
                {"role": "assistant", "parts": EXPECTED_PARTS, "finish_reason": "tool_calls"}
            ]


def test_a_stream_cut_short_keeps_the_server_items_it_has(
    fake: FakeOpenAI, spans: InMemorySpanExporter, ingest: IngestServer
) -> None:
    response = _response(fake, [WEB_SEARCH, FILE_SEARCH, MESSAGE])
    events = _events(response)
    # Up to the file search's done event: the web search and the file search whole, no message, no response.
    done = [i for i, e in enumerate(events) if e.data.get("type") == "response.output_item.done"][1]
    fake.enqueue(SSEReply(events[: done + 1]))
    client = carrot_ai.wrap(make_client(fake))
    list(client.responses.create(model="gpt-5", input="refunds?", stream=True))
    [record] = records(ingest, 1)
    assert record["output"]["message"] == {
        "role": "assistant",
        "content": None,
        "server_tool_calls": SERVER_TOOL_CALLS[:2],
    }
    [span] = spans.get_finished_spans()
    assert _json_attribute(span, semconv.GEN_AI_OUTPUT_MESSAGES) == [{"role": "assistant", "parts": EXPECTED_PARTS[:3]}]


def test_caller_executed_shell_and_patch_calls_are_tool_calls(fake: FakeOpenAI, carrot: IngestServer) -> None:
    local_shell = {
        "type": "local_shell_call",
        "id": "ls_1",
        "call_id": "call_ls1",
        "status": "completed",
        "action": {"type": "exec", "command": ["ls", "-l"], "env": {}},
    }
    shell = {
        "type": "shell_call",
        "id": "sh_1",
        "call_id": "call_sh1",
        "status": "completed",
        "action": {"commands": ["pwd"], "timeout_ms": 1000},
    }
    patch = {
        "type": "apply_patch_call",
        "id": "ap_1",
        "call_id": "call_ap1",
        "status": "completed",
        "operation": {"type": "create_file", "path": "a.txt", "diff": "+hello"},
    }
    fake.enqueue(JSONReply(200, _response(fake, [local_shell, shell, patch])))
    carrot_ai.wrap(make_client(fake)).responses.create(model="gpt-5", input="work")
    [record] = records(carrot, 1)
    assert record["output"]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_ls1", "type": "local_shell_call", "local_shell_call": {"action": local_shell["action"]}},
            {"id": "call_sh1", "type": "shell_call", "shell_call": {"action": shell["action"]}},
            {"id": "call_ap1", "type": "apply_patch_call", "apply_patch_call": {"operation": patch["operation"]}},
        ],
    }
    assert record["metadata"]["finish_reasons"] == ["tool_calls"]


def test_server_items_in_the_input_history_are_server_tool_parts(
    fake: FakeOpenAI, spans: InMemorySpanExporter, ingest: IngestServer
) -> None:
    history: list[Any] = [
        {"role": "user", "content": "refunds?"},
        FILE_SEARCH,
        COMPUTER_CALL,
        {
            "type": "computer_call_output",
            "call_id": "call_cu1",
            "output": {"type": "computer_screenshot", "file_id": "f"},
        },
    ]
    client = carrot_ai.wrap(make_client(fake))
    client.responses.create(model="gpt-5", input=history)
    records(ingest, 1)
    [span] = spans.get_finished_spans()
    assert _json_attribute(span, semconv.GEN_AI_INPUT_MESSAGES)[1:] == [
        {"role": "assistant", "parts": EXPECTED_PARTS[1:3]},
        {"role": "assistant", "parts": [EXPECTED_PARTS[-1]]},
        {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": "call_cu1",
                    "response": {"type": "computer_screenshot", "file_id": "f"},
                }
            ],
        },
    ]


def test_content_off_records_no_server_tool_input_or_result(fake: FakeOpenAI, carrot: IngestServer) -> None:
    ingest = carrot  # set up and shut down by the fixture; init() again changes the settings
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, capture_content=False)
    fake.enqueue(JSONReply(200, _response(fake, OUTPUT)))
    carrot_ai.wrap(make_client(fake)).responses.create(model="gpt-5", input="refunds?")
    [record] = records(ingest, 1)
    text = json.dumps(record)
    for secret in ("carrot prices 2025", "refund policy", "Refunds within 30 days", "print(6 * 7)", "ask_question"):
        assert secret not in text
    assert record["metadata"]["content_captured"] is False


def test_redaction_masks_server_tool_input_and_result(fake: FakeOpenAI, carrot: IngestServer) -> None:
    ingest = carrot  # set up and shut down by the fixture; init() again changes the settings
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, redact=True)
    search = {**WEB_SEARCH, "action": {"type": "search", "query": "jane.doe@example.com"}}
    mcp = {**MCP_CALL, "output": "Call +44 20 7946 0958"}
    fake.enqueue(JSONReply(200, _response(fake, [search, mcp])))
    carrot_ai.wrap(make_client(fake)).responses.create(model="gpt-5", input="who?")
    [record] = records(ingest, 1)
    calls = record["output"]["message"]["server_tool_calls"]
    assert calls[0]["input"] == {"type": "search", "query": "[EMAIL]"}
    assert calls[1]["result"] == "Call [PHONE]"
