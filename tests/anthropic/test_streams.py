"""Streams: create(stream=True) and the messages.stream() helper, sync and async, on every exit path."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import anthropic
import pytest

import carrot_ai
from tests.anthropic.conftest import MODEL, client_for, make_client, no_more_records, records, takes, user
from tests.conftest import BACKLOG_QUEUE_BYTES, check_backlogged_streams
from tests.fakes import JSONReply, SSEEvent, SSEReply
from tests.fakes.anthropic_server import FakeAnthropic, error_event, stream_failing_with
from tests.ingest_server import IngestServer

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
LONG = "one two three four five six seven eight nine ten eleven twelve"


def body(text: str, **params: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": user(text), **params}


def test_stream_yields_the_sdks_events_unchanged_and_records_the_whole_answer(
    way: str, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    bare = make_client(fake)
    expected = [e.to_dict() for e in bare.messages.create(**body(LONG), stream=True)]
    client = client_for(way, fake)
    stream = client.messages.create(**body(LONG), stream=True)
    assert isinstance(stream, anthropic.Stream)
    got = [e.to_dict() for e in stream]
    assert [{k: v for k, v in e.items() if k != "message"} for e in got] == [
        {k: v for k, v in e.items() if k != "message"} for e in expected
    ]
    # With the instrumentor, the reference client is instrumented too: its record comes first.
    record = records(carrot, 2 if way == "instrumentor" else 1)[-1]
    final_usage = got[-2]["usage"]
    assert record["output"] == {"message": {"role": "assistant", "content": f"Echo: {LONG}"}}
    assert record["status"] == "success"
    meta = record["metadata"]
    assert meta["output_tokens"] == final_usage["output_tokens"]
    assert meta["input_tokens"] == got[0]["message"]["usage"]["input_tokens"]
    assert meta["finish_reasons"] == ["end_turn"]
    assert meta["response_id"] == got[0]["message"]["id"]
    assert meta["time_to_first_token_ms"] > 0
    assert meta["request_id"].startswith("req_fake_")
    bare.close()


def test_with_the_export_queue_backlogged_a_stream_is_folded_in_at_its_end_and_recorded_the_same(
    fake: FakeAnthropic, ingest: IngestServer, backlogged: dict[str, str]
) -> None:
    # A stream's events are kept where the SDK decodes them and folded into its record when it ends: on the export
    # worker while the queue has room, on the calling thread past a quarter of its byte budget.
    client = carrot_ai.wrap(make_client(fake))
    for text in ("first question", "second question"):
        events = list(client.messages.create(**body(text), stream=True))
        assert events[-1].type == "message_stop"
    assert carrot_ai.stats()["queued_bytes"] > BACKLOG_QUEUE_BYTES // 4

    check_backlogged_streams(records(ingest, 2), backlogged, "end_turn")


def test_async_stream_records_the_whole_answer(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    async def main() -> list[Any]:
        async with client_for(way, fake, is_async=True) as client:
            stream = await client.messages.create(**body("async stream"), stream=True)
            assert isinstance(stream, anthropic.AsyncStream)
            return [event async for event in stream]

    events = asyncio.run(main())
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: async stream"
    assert record["metadata"]["time_to_first_token_ms"] > 0


def test_streamed_usage_is_not_double_counted(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    system = [{"type": "text", "text": "cached context " * 40, "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):
        for _event in client.messages.create(**body("cache me"), system=system, stream=True):
            pass
    first = client.messages.create(**body("cache me"), system=system)  # the non-streamed reference
    write, read, reference = (r["metadata"] for r in records(carrot, 3))
    assert write["cache_write_input_tokens"] > 0 and write["cache_read_input_tokens"] == 0
    assert read["cache_read_input_tokens"] == write["cache_write_input_tokens"]
    for key in ("input_tokens", "output_tokens", "total_tokens", "cache_read_input_tokens"):
        assert read[key] == reference[key], key
    assert reference["input_tokens"] == (
        first.usage.input_tokens + first.usage.cache_read_input_tokens + first.usage.cache_creation_input_tokens
    )


def test_streamed_tool_use_is_assembled_into_tool_calls(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    events = list(client.messages.create(**body("use tools please"), tools=[WEATHER_TOOL], stream=True))
    start = next(e for e in events if e.type == "content_block_start" and e.content_block.type == "tool_use")
    arguments = "".join(
        e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    [record] = records(carrot, 1)
    assert record["output"]["message"]["tool_calls"] == [
        {
            "id": start.content_block.id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps(json.loads(arguments), separators=(",", ":"))},
        }
    ]
    assert record["metadata"]["finish_reasons"] == ["tool_use"]


@pytest.mark.skipif(not takes(anthropic.resources.messages.Messages.create, "thinking"), reason="SDK without thinking")
def test_streamed_thinking_becomes_reasoning(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    events = list(
        client.messages.create(**body("think"), thinking={"type": "enabled", "budget_tokens": 50}, stream=True)
    )
    thinking = "".join(
        e.delta.thinking for e in events if e.type == "content_block_delta" and e.delta.type == "thinking_delta"
    )
    [record] = records(carrot, 1)
    assert record["output"]["message"] == {"role": "assistant", "content": "Echo: think", "reasoning": thinking}


def test_streamed_thinking_tokens_are_recorded_as_for_the_same_answer_not_streamed(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    # The API reports thinking tokens in `usage.output_tokens_details`; a stream has them in its `message_delta`.
    request = body("think", thinking={"type": "enabled", "budget_tokens": 50})
    message = fake.build_message(request)
    message["usage"]["output_tokens_details"] = {"thinking_tokens": 9}
    events = fake.build_message_events(request)
    events[-2].data["usage"]["output_tokens_details"] = {"thinking_tokens": 9}
    fake.enqueue(JSONReply(200, message), SSEReply(events), SSEReply(events))
    extra = {"extra_body": {"thinking": request.pop("thinking")}}
    client.messages.create(**request, **extra)
    for _event in client.messages.create(**request, **extra, stream=True):
        pass
    with client.messages.stream(**request, **extra) as stream:
        stream.until_done()
    metas = [r["metadata"] for r in records(carrot, 3)]
    assert [m.get("reasoning_tokens") for m in metas] == [9, 9, 9]
    assert [m["output_tokens"] for m in metas] == [message["usage"]["output_tokens"]] * 3


def test_break_then_close_records_the_partial_answer_once(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    stream = client.messages.create(**body(LONG), stream=True)
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "content_block_delta":
            break
    stream.close()
    stream.close()
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"]["message"]["content"] == seen[-1].delta.text
    assert "output_tokens" not in record["metadata"]  # message_delta never came: no placeholder count
    assert record["metadata"]["input_tokens"] > 0
    no_more_records(carrot, 1)


def test_with_block_exit_ends_the_span(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    with client.messages.create(**body(LONG), stream=True) as stream:
        next(iter(stream))
    [record] = records(carrot, 1)
    assert record["status"] == "success"


def test_abandoned_stream_is_recorded_when_collected(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    stream = client.messages.create(**body(LONG), stream=True)
    next(stream)
    del stream
    gc.collect()
    [record] = records(carrot, 1)
    assert record["status"] == "success"


def test_error_event_mid_stream_is_an_error_with_partial_output(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    fake.enqueue(stream_failing_with(fake.build_message_events(body(LONG)), after=5))
    stream = client.messages.create(**body(LONG), stream=True)
    seen = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in stream:
            seen.append(event)
    assert raised.value.body["error"]["type"] == "overloaded_error"
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error_type"] == "APIStatusError"
    assert record["metadata"]["error_code"] == "overloaded_error"
    assert record["metadata"]["request_id"].startswith("req_fake_")
    assert record["metadata"]["input_tokens"] > 0
    assert record["metadata"]["response_id"] == seen[0].message.id
    no_more_records(carrot, 1)


def test_connection_reset_mid_stream_is_an_error(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    fake.enqueue(SSEReply(fake.build_message_events(body(LONG)), reset_after=4))
    with pytest.raises(Exception) as raised:
        for _event in client.messages.create(**body(LONG), stream=True):
            pass
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error_type"] == type(raised.value).__name__


def test_cancelled_async_stream_is_recorded_as_cancelled(
    aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    fake.enqueue(SSEReply(fake.build_message_events(body(LONG)), hang_after=3))

    async def main() -> None:
        async def consume() -> None:
            async for _event in await aclient.messages.create(**body(LONG), stream=True):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await aclient.close()

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["cancelled"] is True
    fake.stop()


def test_an_async_stream_left_by_break_as_asyncio_run_ends_is_a_success_with_what_it_delivered(
    fake: FakeAnthropic, carrot: IngestServer
) -> None:
    # The loop's iterator, dropped at the break, is closed by a task of asyncio's that asyncio.run() cancels as it
    # ends: that cancels the closing of the loop, not the stream, which was left early.
    texts: list[str] = []

    async def main() -> None:
        client = carrot_ai.wrap(make_client(fake, is_async=True))
        async for event in await client.messages.create(**body(LONG), stream=True):
            if event.type == "content_block_delta":
                texts.append(event.delta.text)
                break

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert "cancelled" not in record["metadata"]
    assert texts and record["output"]["message"]["content"] == texts[0]


@pytest.mark.parametrize("shape", ["create", "helper"])
def test_a_stream_cancelled_in_its_async_with_block_is_recorded_as_cancelled_with_what_it_delivered(
    aclient: anthropic.AsyncAnthropic, carrot: IngestServer, shape: str
) -> None:
    # Cancelled in the caller's code inside the block (not in the SDK's read): the block's end closes the stream
    # while the cancellation is being handled. (A caller's own exception there leaves the stream early instead.)
    texts: list[str] = []

    async def main() -> None:
        async def consume() -> None:
            if shape == "create":
                async with await aclient.messages.create(**body(LONG), stream=True) as stream:
                    async for event in stream:
                        if event.type == "content_block_delta":
                            texts.append(event.delta.text)
                            await asyncio.sleep(30)
            else:
                async with aclient.messages.stream(**body(LONG)) as helper:
                    async for text in helper.text_stream:
                        texts.append(text)
                        await asyncio.sleep(30)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await aclient.close()

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["cancelled"] is True
    assert texts and record["output"]["message"]["content"] == "".join(texts)


def test_the_callers_exception_in_a_stream_helpers_block_leaves_the_stream_early(
    client: anthropic.Anthropic, carrot: IngestServer
) -> None:
    with pytest.raises(KeyError):
        with client.messages.stream(**body(LONG)) as helper:
            for _text in helper.text_stream:
                raise KeyError("the caller's own bug")
    with pytest.raises(KeyError):
        with client.messages.create(**body(LONG), stream=True) as stream:
            for _event in stream:
                raise KeyError("the caller's own bug")
    first, second = records(carrot, 2)
    assert first["status"] == second["status"] == "success"


# --- messages.stream() ---------------------------------------------------------------------------------------


def test_stream_helper_text_stream_and_final_message(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    with client.messages.stream(**body(LONG)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        assert stream.get_final_text() == text
    assert text == f"Echo: {LONG}"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == text
    assert record["metadata"]["output_tokens"] == final.usage.output_tokens
    assert record["metadata"]["response_id"] == final.id
    assert record["metadata"]["time_to_first_token_ms"] > 0
    assert record["input"] == body(LONG)


def test_stream_helper_iteration_yields_helper_events(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    with client.messages.stream(**body("events")) as stream:
        kinds = [event.type for event in stream]
    assert "text" in kinds and kinds[0] == "message_start" and kinds[-1] == "message_stop"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: events"


def test_stream_helper_get_final_message_alone(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    with client.messages.stream(**body("final only"), tools=[WEATHER_TOOL]) as stream:
        message = stream.get_final_message()
    assert message.content[0].text == "Echo: final only"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: final only"


def test_async_stream_helper(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    async def main() -> str:
        async with client_for(way, fake, is_async=True) as client:
            async with client.messages.stream(**body("async helper")) as stream:
                text = "".join([t async for t in stream.text_stream])
                assert (await stream.get_final_text()) == text
                return text

    assert asyncio.run(main()) == "Echo: async helper"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: async helper"


def test_beta_stream_helper(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    with client.beta.messages.stream(**body("beta helper"), betas=["interleaved-thinking-2025-05-14"]) as stream:
        assert stream.get_final_text() == "Echo: beta helper"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: beta helper"


def test_stream_helper_left_early_records_once(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    with client.messages.stream(**body(LONG)) as stream:
        for _text in stream.text_stream:
            break
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"]["message"]["content"].startswith("Echo:")
    no_more_records(carrot, 1)


def test_stream_helper_never_entered_records_nothing(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    client.messages.stream(**body("never sent"))
    assert fake.requests == []
    no_more_records(carrot, 0)


def test_stream_helper_http_error_on_enter(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    from tests.fakes.anthropic_server import not_found

    fake.enqueue(not_found(MODEL))
    with pytest.raises(anthropic.NotFoundError), client.messages.stream(**body("missing")):
        pass
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["http_status"] == 404
    assert record["metadata"]["error_code"] == "not_found_error"


def test_stream_helper_error_event(client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer) -> None:
    fake.enqueue(SSEReply([*fake.build_message_events(body(LONG))[:4], error_event("api_error", "boom")]))
    with pytest.raises(anthropic.APIStatusError), client.messages.stream(**body(LONG)) as stream:
        stream.get_final_message()
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["error_code"] == "api_error"


def test_malformed_events_pass_through_and_are_recorded_as_far_as_known(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [
        {"type": "message_start", "message": {"id": "msg_odd", "type": "message", "role": "assistant", "model": MODEL}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "kept"}},
        {"type": "content_block_delta", "index": 7, "delta": {"type": "text_delta", "text": "no such block"}},
        {"type": "content_block_delta", "index": 0},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": None}},
        {"type": "brand_new_event", "payload": [1, 2, 3]},
        {"type": "message_delta", "delta": {"stop_reason": None}, "usage": None},
        {"type": "message_stop"},
    ]
    # The events the SDK itself yields (anthropic 0.43 drops an unknown event type); its own span is off, so the
    # bare call makes no record.
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    bare = make_client(fake)
    fake.enqueue(SSEReply([SSEEvent(e, e["type"]) for e in events]))
    expected = [e.type for e in bare.messages.create(**body("odd"), stream=True)]
    bare.close()
    assert len(expected) >= len(events) - 1
    fake.enqueue(SSEReply([SSEEvent(e, e["type"]) for e in events]))
    got = [e.type for e in client.messages.create(**body("odd"), stream=True)]
    assert got == expected
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"]["message"]["content"] == "kept"
    assert record["metadata"]["response_id"] == "msg_odd"
    assert "input_tokens" not in record["metadata"]


def test_malformed_message_is_returned_and_recorded(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    from tests.fakes import JSONReply

    fake.enqueue(JSONReply(200, {"id": "msg_bare", "type": "message", "model": MODEL, "content": None, "usage": None}))
    message = client.messages.create(**body("odd"))
    assert message.id == "msg_bare"
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"]["message"] == {"role": "assistant", "content": None}
    assert "input_tokens" not in record["metadata"]
