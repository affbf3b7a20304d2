"""What the API says, as the record and the span say it: shapes the default fake answers do not have (custom tools,
streamed refusals and audio, Responses items beyond text and function calls), scripted as the API sends them."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai import semconv
from tests.export_helpers import json_attribute as _json_attribute
from tests.fakes import JSONReply, SSEEvent, SSEReply
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import make_client, records, user

CUSTOM_TOOL = {"type": "custom", "custom": {"name": "code_exec", "description": "Run Python"}}


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


def _response_with(fake: FakeOpenAI, output: list[dict[str, Any]]) -> dict[str, Any]:
    return {**fake.build_response({"model": "gpt-5", "input": "hi"}), "output": output}


def _response_events(response: dict[str, Any], items: list[list[tuple[str, dict[str, Any]]]]) -> list[SSEEvent]:
    """``response`` streamed: created, then per output item its events (kind, data) between added and done."""
    events: list[SSEEvent] = []

    def emit(kind: str, **data: Any) -> None:
        events.append(SSEEvent({"type": kind, "sequence_number": len(events), **data}, kind))

    emit("response.created", response={**response, "status": "in_progress", "output": [], "usage": None})
    for index, (item, item_events) in enumerate(zip(response["output"], items, strict=True)):
        emit("response.output_item.added", output_index=index, item=item_events[0][1])
        for kind, data in item_events[1:]:
            emit(kind, item_id=item["id"], output_index=index, **data)
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return events


CUSTOM_CALL_ITEM = {
    "type": "custom_tool_call",
    "id": "ctc_1",
    "call_id": "call_c1",
    "name": "code_exec",
    "input": "print(1 + 1)",
    "status": "completed",
}


def test_a_responses_custom_tool_call_is_recorded_as_a_tool_call(
    fake: FakeOpenAI, spans: InMemorySpanExporter, ingest: IngestServer
) -> None:
    response = _response_with(fake, [CUSTOM_CALL_ITEM])
    added = {**CUSTOM_CALL_ITEM, "input": "", "status": "in_progress"}
    deltas = [("response.custom_tool_call_input.delta", {"delta": piece}) for piece in ("print(1", " + 1)")]
    events = _response_events(response, [[("", added), *deltas]])
    fake.enqueue(JSONReply(200, response), SSEReply(events), SSEReply(events[:-2]))
    client = carrot_ai.wrap(make_client(fake))
    tool = {"type": "custom", "name": "code_exec"}
    client.responses.create(model="gpt-5", input="run it", tools=[tool])
    list(client.responses.create(model="gpt-5", input="run it", tools=[tool], stream=True))
    history = ["run it", CUSTOM_CALL_ITEM, {"type": "custom_tool_call_output", "call_id": "call_c1", "output": "2"}]
    list(
        client.responses.create(
            model="gpt-5", input=[{"role": "user", "content": history[0]}, *history[1:]], stream=True
        )
    )
    got = records(ingest, 3)
    recorded = {"id": "call_c1", "type": "custom", "function": {"name": "code_exec", "arguments": "print(1 + 1)"}}
    for record in got:  # answered, streamed, and streamed up to the call's end only (its done event, no response)
        assert record["output"]["message"] == {"role": "assistant", "content": None, "tool_calls": [recorded]}
    assert [r["metadata"].get("finish_reasons") for r in got] == [["tool_calls"], ["tool_calls"], None]
    part = {"type": "tool_call", "id": "call_c1", "name": "code_exec", "arguments": "print(1 + 1)"}
    answered, streamed, cut = spans.get_finished_spans()
    assert _json_attribute(answered, semconv.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [part], "finish_reason": "tool_calls"}
    ]
    assert _json_attribute(streamed, semconv.GEN_AI_OUTPUT_MESSAGES) == _json_attribute(
        answered, semconv.GEN_AI_OUTPUT_MESSAGES
    )
    assert _json_attribute(cut, semconv.GEN_AI_INPUT_MESSAGES)[1:] == [
        {"role": "assistant", "parts": [part]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_c1", "response": "2"}]},
    ]


def test_a_streamed_refusal_is_recorded_as_the_same_refusal_answered_whole(
    fake: FakeOpenAI, spans: InMemorySpanExporter, ingest: IngestServer
) -> None:
    fake.enqueue(JSONReply(200, _completion("gpt-4o", {"content": None, "refusal": "I can't help with that."}, "stop")))
    deltas = [{"refusal": piece} for piece in ("I can't", " help with", " that.")]
    fake.enqueue(SSEReply(_chunks("gpt-4o", deltas, "stop")))
    client = carrot_ai.wrap(make_client(fake))
    answered = client.chat.completions.create(model="gpt-4o", messages=user("how to pick a lock"))
    streamed = list(client.chat.completions.create(model="gpt-4o", messages=user("how to pick a lock"), stream=True))
    assert answered.choices[0].message.content is None
    assert all(chunk.choices[0].delta.content is None for chunk in streamed)
    got = records(ingest, 2)
    expected = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    assert [record["output"]["message"] for record in got] == [expected, expected]
    refusal = [
        {
            "role": "assistant",
            "parts": [{"type": "refusal", "content": "I can't help with that."}],
            "finish_reason": "stop",
        }
    ]
    assert [_json_attribute(span, semconv.GEN_AI_OUTPUT_MESSAGES) for span in spans.get_finished_spans()] == [
        refusal,
        refusal,
    ]


def test_a_streamed_audio_answer_is_recorded_with_its_transcript_as_answered_whole(
    fake: FakeOpenAI, spans: InMemorySpanExporter, ingest: IngestServer
) -> None:
    audio = {"id": "audio_1", "data": "UklGRg==", "expires_at": 1700003600, "transcript": "Hello there."}
    fake.enqueue(JSONReply(200, _completion("gpt-4o-audio-preview", {"content": None, "audio": audio}, "stop")))
    deltas = [
        {"audio": {"id": "audio_1", "transcript": "Hello"}},
        {"audio": {"data": "UklGRg==", "transcript": " there."}},
        {"audio": {"expires_at": 1700003600}},
    ]
    fake.enqueue(SSEReply(_chunks("gpt-4o-audio-preview", deltas, "stop")))
    client = carrot_ai.wrap(make_client(fake))
    request = {
        "model": "gpt-4o-audio-preview",
        "messages": user("say hello"),
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "pcm16"},
    }
    client.chat.completions.create(**request)
    list(client.chat.completions.create(**request, stream=True))
    got = records(ingest, 2)
    assert [record["output"]["message"] for record in got] == [{"role": "assistant", "content": "Hello there."}] * 2
    text = [{"role": "assistant", "parts": [{"type": "text", "content": "Hello there."}], "finish_reason": "stop"}]
    assert [_json_attribute(span, semconv.GEN_AI_OUTPUT_MESSAGES) for span in spans.get_finished_spans()] == [text] * 2


def test_reasoning_summary_parts_are_kept_apart_as_paragraphs(fake: FakeOpenAI, carrot: IngestServer) -> None:
    summary = [
        {"type": "summary_text", "text": "**Reading**\n\nThe user greets."},
        {"type": "summary_text", "text": "**Answering**\n\nGreet back."},
    ]
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": summary}
    message = {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Hi!", "annotations": []}],
    }
    fake.enqueue(JSONReply(200, _response_with(fake, [reasoning, message])))
    carrot_ai.wrap(make_client(fake)).responses.create(model="gpt-5", input="hi", reasoning={"summary": "auto"})
    [record] = records(carrot, 1)
    assert record["output"]["message"]["reasoning"] == "**Reading**\n\nThe user greets.\n\n**Answering**\n\nGreet back."


def test_a_responses_stream_cut_during_its_reasoning_keeps_the_summary_so_far(
    fake: FakeOpenAI, carrot: IngestServer
) -> None:
    summary = [
        {"type": "summary_text", "text": "**Reading**\n\nThe user greets."},
        {"type": "summary_text", "text": "**Answering**\n\nGreet back."},
    ]
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": summary}
    response = _response_with(fake, [reasoning])
    added = {"type": "reasoning", "id": "rs_1", "summary": []}
    deltas = [
        ("response.reasoning_summary_text.delta", {"summary_index": index, "delta": piece})
        for index, text in enumerate(part["text"] for part in summary)
        for piece in (text[:9], text[9:])
    ]
    events = _response_events(response, [[("", added), *deltas]])
    fake.enqueue(SSEReply(events[:-2]))  # cut before the reasoning item's done event: its summary only in deltas
    stream = carrot_ai.wrap(make_client(fake)).responses.create(
        model="gpt-5", input="hi", reasoning={"summary": "auto"}, stream=True
    )
    for _event in stream:
        pass
    [record] = records(carrot, 1)
    assert record["output"]["message"]["reasoning"] == "**Reading**\n\nThe user greets.\n\n**Answering**\n\nGreet back."
