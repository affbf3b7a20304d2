"""Chat completion streams: create(stream=True) and chat.completions.stream(), sync and async, every exit path."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from typing import Any

import openai
import pytest

import carrot_ai
from tests.fakes import JSONReply, SSEReply
from tests.fakes.openai_server import FakeOpenAI, rate_limit
from tests.ingest_server import IngestServer
from tests.openai.conftest import MODEL, client_for, make_client, no_more_records, records, user
from tests.openai.test_chat import TIME_TOOL, WEATHER_TOOL

LONG = "one two three four five six seven eight nine ten eleven twelve"


def body(text: str, **params: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": user(text), **params}


def dumps(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c.model_dump(exclude={"id"}) for c in chunks]


def test_stream_yields_the_sdks_chunks_and_hides_the_usage_chunk_it_asked_for(
    way: str, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    bare = make_client(fake)
    expected = dumps(list(bare.chat.completions.create(**body(LONG), stream=True)))
    client = client_for(way, fake)
    stream = client.chat.completions.create(**body(LONG), stream=True)
    assert isinstance(stream, openai.Stream)
    got = list(stream)
    assert dumps(got) == expected  # the same chunks: no usage-only chunk, `usage` absent as without carrot
    assert all(c.choices for c in got)  # `chunk.choices[0]` keeps working
    assert fake.last_request.json["stream_options"] == {"include_usage": True}  # type: ignore[index, union-attr]
    record = records(carrot, 2 if way == "instrumentor" else 1)[-1]
    assert record["output"] == {"message": {"role": "assistant", "content": f"Echo: {LONG}"}}
    assert "stream_options" not in record["input"]  # the user's request, not ours
    meta = record["metadata"]
    assert meta["input_tokens"] > 0 and meta["output_tokens"] == len(LONG.split()) + 1
    assert meta["finish_reasons"] == ["stop"]
    assert meta["response_id"] == got[0].id
    assert meta["time_to_first_token_ms"] > 0
    assert meta["request_id"].startswith("req_fake_")
    bare.close()


def test_include_usage_asked_by_the_user_passes_through(client: openai.OpenAI, carrot: IngestServer) -> None:
    got = list(client.chat.completions.create(**body("hi"), stream=True, stream_options={"include_usage": True}))
    assert got[-1].choices == [] and got[-1].usage is not None
    [record] = records(carrot, 1)
    assert record["metadata"]["output_tokens"] == got[-1].usage.completion_tokens
    assert record["input"]["stream_options"] == {"include_usage": True}


def test_include_usage_false_is_respected(client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer) -> None:
    got = list(client.chat.completions.create(**body("hi"), stream=True, stream_options={"include_usage": False}))
    assert all(c.choices for c in got)
    assert fake.last_request.json["stream_options"] == {"include_usage": False}  # type: ignore[index, union-attr]
    [record] = records(carrot, 1)
    assert "output_tokens" not in record["metadata"]
    assert record["output"]["message"]["content"] == "Echo: hi"


def test_other_stream_options_are_kept(client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer) -> None:
    options = {"include_obfuscation": False}
    list(client.chat.completions.create(**body("hi"), stream=True, stream_options=options))
    assert options == {"include_obfuscation": False}  # the caller's dict is not changed
    sent = fake.last_request.json["stream_options"]  # type: ignore[index, union-attr]
    assert sent == {"include_obfuscation": False, "include_usage": True}
    [record] = records(carrot, 1)
    assert record["metadata"]["output_tokens"] > 0


def test_async_stream_records_the_whole_answer(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> list[Any]:
        async with client_for(way, fake, is_async=True) as client:
            stream = await client.chat.completions.create(**body("async stream"), stream=True)
            assert isinstance(stream, openai.AsyncStream)
            return [c async for c in stream]

    got = asyncio.run(main())
    assert all(c.choices for c in got)
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: async stream"
    assert record["metadata"]["output_tokens"] == 3


def _count_parsed_chunks(client: Any) -> list[Any]:
    """Record what the SDK itself builds into chunk objects (its `_process_response_data`, on this instance)."""
    parsed: list[Any] = []
    process = client._process_response_data

    def counting(*, data: Any, cast_to: Any, response: Any) -> Any:
        parsed.append(data)
        return process(data=data, cast_to=cast_to, response=response)

    client._process_response_data = counting
    return parsed


def test_the_sdk_never_builds_the_usage_chunk_carrot_asked_for(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(make_client(fake))
    parsed = _count_parsed_chunks(client)
    got = list(client.chat.completions.create(**body(LONG), stream=True))
    assert fake.last_request.json["stream_options"] == {"include_usage": True}  # type: ignore[index, union-attr]
    assert len(parsed) == len(got) and all(d.get("choices") for d in parsed)  # read by carrot, never by the SDK
    [record] = records(carrot, 1)
    assert record["metadata"]["output_tokens"] == len(LONG.split()) + 1 and record["metadata"]["input_tokens"] > 0
    client.close()


def test_the_async_sdk_never_builds_the_usage_chunk_carrot_asked_for(fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        async with carrot_ai.wrap(make_client(fake, is_async=True)) as client:
            parsed = _count_parsed_chunks(client)
            stream = await client.chat.completions.create(**body(LONG), stream=True)
            return [c async for c in stream], parsed

    got, parsed = asyncio.run(main())
    assert len(parsed) == len(got) and all(c.choices for c in got)
    [record] = records(carrot, 1)
    assert record["metadata"]["output_tokens"] == len(LONG.split()) + 1


def test_usage_chunk_the_user_asked_for_is_built_by_the_sdk(client: openai.OpenAI, carrot: IngestServer) -> None:
    parsed = _count_parsed_chunks(client)
    got = list(client.chat.completions.create(**body("hi"), stream=True, stream_options={"include_usage": True}))
    assert len(parsed) == len(got) and got[-1].choices == [] and got[-1].usage is not None
    records(carrot, 1)


def test_a_loop_over_a_temporary_stream_records_all_of_it(client: openai.OpenAI, carrot: IngestServer) -> None:
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**body(LONG), stream=True))
    [record] = records(carrot, 1)
    assert record["status"] == "success" and record["output"]["message"]["content"] == text == f"Echo: {LONG}"


def test_loops_and_next_can_share_one_stream(client: openai.OpenAI, carrot: IngestServer) -> None:
    stream = client.chat.completions.create(**body(LONG), stream=True)
    first = []
    for chunk in stream:
        first.append(chunk)
        break
    second = next(stream)
    rest = list(stream)
    chunks = [*first, second, *rest]
    assert len({id(c) for c in chunks}) == len(chunks)  # none seen twice, none skipped (the text below is whole)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == text == f"Echo: {LONG}"


def test_streamed_tool_call_deltas_are_assembled(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    chunks = list(client.chat.completions.create(**body("use tools"), tools=[WEATHER_TOOL, TIME_TOOL], stream=True))
    assert sum(1 for c in chunks if c.choices[0].delta.tool_calls) >= 6  # fragments
    reference = client.chat.completions.create(**body("use tools"), tools=[WEATHER_TOOL, TIME_TOOL])
    record = records(carrot, 2)[0]
    calls = reference.choices[0].message.tool_calls
    assert calls is not None
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in record["output"]["message"]["tool_calls"]] == [
        (c.function.name, c.function.arguments) for c in calls
    ]
    recorded = record["output"]["message"]["tool_calls"]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in recorded)
    assert record["output"]["message"]["content"] is None
    assert record["metadata"]["finish_reasons"] == ["tool_calls"]


def test_streamed_n_choices_are_kept(client: openai.OpenAI, carrot: IngestServer) -> None:
    list(client.chat.completions.create(**body("two"), n=2, stream=True))
    [record] = records(carrot, 1)
    assert [m["content"] for m in record["output"]["choices"]] == ["Echo: two", "Echo #2: two"]
    assert record["metadata"]["finish_reasons"] == ["stop", "stop"]


def test_break_then_close_records_the_partial_answer_once(client: openai.OpenAI, carrot: IngestServer) -> None:
    stream = client.chat.completions.create(**body(LONG), stream=True)
    seen = []
    for chunk in stream:
        seen.append(chunk.choices[0].delta.content or "")
        if len(seen) == 3:
            break
    stream.close()
    stream.close()
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"]["message"]["content"] == "".join(seen)
    assert "output_tokens" not in record["metadata"]  # the usage chunk never came
    no_more_records(carrot, 1)


def test_with_block_exit_ends_the_span(client: openai.OpenAI, carrot: IngestServer) -> None:
    with client.chat.completions.create(**body(LONG), stream=True) as stream:
        next(stream)
    [record] = records(carrot, 1)
    assert record["status"] == "success"


def test_abandoned_stream_is_recorded_when_collected(client: openai.OpenAI, carrot: IngestServer) -> None:
    stream = client.chat.completions.create(**body(LONG), stream=True)
    next(stream)
    del stream
    gc.collect()
    [record] = records(carrot, 1)
    assert record["status"] == "success"


def test_error_mid_stream_is_an_error_with_partial_output(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    events = fake.build_chat_chunks(body(LONG, stream_options={"include_usage": True}))
    fake.enqueue(SSEReply([*events[:3], {"error": {"message": "overloaded", "type": "server_error", "code": None}}]))
    seen = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(**body(LONG), stream=True):
            seen.append(chunk)
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["error_code"] == "server_error"
    assert record["metadata"]["response_id"] == seen[0].id
    assert record["output"]["error"] == "overloaded"
    # What the stream delivered before it failed, beside the error.
    delivered = "".join(chunk.choices[0].delta.content or "" for chunk in seen)
    assert delivered and record["output"]["message"] == {"role": "assistant", "content": delivered}


def test_connection_reset_mid_stream_is_an_error(client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer) -> None:
    fake.enqueue(SSEReply(fake.build_chat_chunks(body(LONG)), reset_after=4))
    with pytest.raises(Exception) as raised:
        for _chunk in client.chat.completions.create(**body(LONG), stream=True):
            pass
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error_type"] == type(raised.value).__name__


def test_cancelled_async_stream_is_recorded_as_cancelled(fake: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai

    fake.enqueue(SSEReply(fake.build_chat_chunks(body(LONG)), hang_after=3))

    async def main() -> None:
        client = carrot_ai.wrap(make_client(fake, is_async=True))

        async def consume() -> None:
            async for _chunk in await client.chat.completions.create(**body(LONG), stream=True):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.close()

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["cancelled"] is True
    fake.stop()


def test_http_error_on_stream_request(client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer) -> None:
    fake.enqueue(rate_limit())
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**body("x"), stream=True)
    [record] = records(carrot, 1)
    assert record["metadata"]["http_status"] == 429


def test_malformed_chunks_pass_through_and_are_recorded_as_far_as_known(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    base = {"id": "chatcmpl-odd", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "kept"}}]},
        {**base},  # no choices at all
        {**base, "choices": [{"index": 0, "delta": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": None, "tool_calls": [{"function": None}]}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
        "[DONE]",
    ]
    fake.enqueue(SSEReply(events))
    got = list(client.chat.completions.create(**body("odd"), stream=True))
    assert len(got) == 5
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"]["message"]["content"] == "kept"
    assert record["metadata"]["response_id"] == "chatcmpl-odd"
    assert "input_tokens" not in record["metadata"]


def test_malformed_completion_is_returned_and_recorded(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    fake.enqueue(JSONReply(200, {"id": "chatcmpl-bare", "object": "chat.completion", "model": MODEL, "usage": None}))
    completion = client.chat.completions.create(**body("odd"))
    assert completion.id == "chatcmpl-bare"
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"]["message"] == {"role": "assistant", "content": None}


# --- chat.completions.stream() -------------------------------------------------------------------------------


def test_stream_helper_events_and_final_completion(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    with client.chat.completions.stream(**body(LONG)) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == f"Echo: {LONG}"
    assert final.usage is None  # as without carrot: the helper's stream did not ask for usage
    [record] = records(carrot, 1)
    assert record["name"] == "chat.completions"
    assert record["output"]["message"]["content"] == f"Echo: {LONG}"
    assert record["metadata"]["output_tokens"] > 0


def test_async_stream_helper(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> Any:
        async with client_for(way, fake, is_async=True) as client:
            async with client.chat.completions.stream(**body("async helper")) as stream:
                return await stream.get_final_completion()

    final = asyncio.run(main())
    assert final.choices[0].message.content == "Echo: async helper"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: async helper"


@pytest.mark.parametrize("resource", ["chat.completions", "responses"])
def test_stream_helper_left_early_ends_its_call_where_its_block_ends(
    client: openai.OpenAI, carrot: IngestServer, resource: str
) -> None:
    # The helpers' close() closes the HTTP response, not the stream they read: the call ended only when the helper
    # was collected (from a cycle, seconds later; never, for one still held at exit).
    started = time.perf_counter()
    if resource == "responses":
        helper = client.responses.stream(model=MODEL, input=LONG)
    else:
        helper = client.chat.completions.stream(**body(LONG))
    with helper as stream:
        for event in stream:
            if event.type in ("content.delta", "response.output_text.delta"):
                break
    block_ms = (time.perf_counter() - started) * 1000
    time.sleep(0.2)
    [record] = records(carrot, 1)  # the helper still held
    assert record["name"] == resource
    assert record["status"] == "success"
    assert record["metadata"]["latency_ms"] <= block_ms
    assert stream is not None
    del stream, helper
    no_more_records(carrot, 1)


def test_async_stream_helper_left_early_ends_its_call_where_its_block_ends(
    fake: FakeOpenAI, carrot: IngestServer
) -> None:
    async def main() -> Any:
        client = carrot_ai.wrap(make_client(fake, is_async=True))
        async with client.chat.completions.stream(**body(LONG)) as stream:
            async for event in stream:
                if event.type == "content.delta":
                    break
        records(carrot, 1)  # before the helper is collected
        await client.close()
        return stream

    stream = asyncio.run(main())
    assert carrot.records[0]["status"] == "success"
    del stream
    no_more_records(carrot, 1)


def test_a_stream_the_callers_code_leaves_by_an_exception_is_recorded_as_left_early(
    client: openai.OpenAI, carrot: IngestServer
) -> None:
    # The same record with `with` as without: the call succeeded, the caller's code failed.
    seen = []
    with pytest.raises(KeyError):
        with client.chat.completions.create(**body(LONG), stream=True) as stream:
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
                if len(seen) == 3:
                    raise KeyError("the caller's own bug")
    with pytest.raises(KeyError):
        with client.chat.completions.stream(**body("helper")) as helper:
            helper.get_final_completion()
            raise KeyError("the caller's post-processing")
    first, second = records(carrot, 2)
    assert first["status"] == "success"
    assert first["output"]["message"]["content"] == "".join(seen)
    assert second["status"] == "success"
    assert second["output"]["message"]["content"] == "Echo: helper"


@pytest.mark.parametrize("shape", ["create", "helper"])
def test_a_stream_cancelled_in_its_async_with_block_is_recorded_as_cancelled(
    fake: FakeOpenAI, carrot: IngestServer, shape: str
) -> None:
    async def main() -> None:
        client = carrot_ai.wrap(make_client(fake, is_async=True))

        async def consume() -> None:
            if shape == "create":
                async with await client.chat.completions.create(**body(LONG), stream=True) as stream:
                    async for _chunk in stream:
                        await asyncio.sleep(30)  # cancelled here, in the caller's code, not in the SDK's read
            else:
                async with client.chat.completions.stream(**body(LONG)) as helper:
                    async for _event in helper:
                        await asyncio.sleep(30)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.close()

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["cancelled"] is True


def test_an_async_stream_left_by_break_as_asyncio_run_ends_is_a_success(fake: FakeOpenAI, carrot: IngestServer) -> None:
    # The loop's iterator, dropped at the break, is closed by a task of asyncio's that asyncio.run() cancels as it
    # ends: that cancels the closing of the loop, not the stream, which was left early.
    async def main() -> None:
        client = carrot_ai.wrap(make_client(fake, is_async=True))
        async for _chunk in await client.chat.completions.create(**body(LONG), stream=True):
            break

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert "cancelled" not in record["metadata"]


def test_a_stream_read_from_two_threads_at_once_is_recorded_whole(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    # The generator refuses the thread that comes while the other reads ("generator already executing"), as
    # without carrot; the stream goes on, and is recorded whole, as a success.
    words = " ".join(f"w{i}" for i in range(40))
    fake.event_delay = 0.005
    stream = client.chat.completions.create(**body(words), stream=True)
    texts: list[str] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for chunk in iter(lambda: next(stream, None), None):
                texts.append(chunk.choices[0].delta.content or "")
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"]["message"]["content"] == f"Echo: {words}"
    assert "".join(texts) == f"Echo: {words}"
    assert all(str(exc) == "generator already executing" for exc in errors)


def test_an_async_stream_read_by_two_tasks_at_once_is_recorded_whole(fake: FakeOpenAI, carrot: IngestServer) -> None:
    # The SDK's async generator refuses the second task ("asynchronous generator is already running"), as without
    # carrot; the first goes on, and the stream is recorded whole, as a success.
    words = " ".join(f"w{i}" for i in range(20))
    fake.event_delay = 0.005
    texts: list[str] = []
    errors: list[BaseException] = []

    async def main() -> None:
        client = carrot_ai.wrap(make_client(fake, is_async=True))
        stream = await client.chat.completions.create(**body(words), stream=True)

        async def read() -> None:
            try:
                while True:
                    chunk = await stream.__anext__()
                    texts.append(chunk.choices[0].delta.content or "")
            except StopAsyncIteration:
                pass
            except RuntimeError as exc:
                errors.append(exc)

        await asyncio.gather(read(), read())
        await client.close()

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert errors and all(str(e).endswith("asynchronous generator is already running") for e in errors)
    assert record["status"] == "success"
    assert record["output"]["message"]["content"] == "".join(texts) == f"Echo: {words}"


EXIT_PROGRAM = """
import os, sys
import openai, carrot_ai

carrot_ai.init(flush_interval=600)
client = carrot_ai.wrap(openai.OpenAI(base_url=os.environ["FAKE_URL"] + "/v1", api_key="sk-test", max_retries=0))
messages = [{"role": "user", "content": "left open at exit"}]
helper_manager = client.chat.completions.stream(model="gpt-4o-mini", messages=messages)
helper = helper_manager.__enter__()
next(iter(helper))  # a helper, entered and never left
stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
next(stream)  # a stream read in part and never closed
closed = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
next(closed)
closed.response.close()  # what the SDK's Stream.close() does, called on the response
"""


def test_streams_still_open_at_exit_are_recorded(fake: FakeOpenAI, carrot: IngestServer) -> None:
    # Module-level variables outlive carrot's exit hook: their streams ended when collected, after it, unsent.
    from tests.export_helpers import run_python

    env = {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": carrot.base_url, "FAKE_URL": fake.base_url}
    result = run_python(EXIT_PROGRAM, env, timeout=60)
    if result.returncode != 0:
        # CPython 3.13.0 crashes (SIGSEGV) collecting an openai stream left open at exit, with or without carrot:
        # the same program with carrot switched off must end the same way for this to be the interpreter's.
        bare = run_python(EXIT_PROGRAM, {**env, "OTEL_SDK_DISABLED": "true"}, timeout=60)
        assert (result.returncode, "carrot off") == (bare.returncode, "carrot off"), result.stderr
    got = carrot.wait_for(3)
    assert [r["status"] for r in got] == ["success"] * 3, got
    assert "not delivered" not in result.stderr


def test_stream_helper_never_entered_records_nothing(client: openai.OpenAI, carrot: IngestServer) -> None:
    client.chat.completions.stream(**body("never"))
    no_more_records(carrot, 0)


def test_stream_inside_trace_is_a_child(client: openai.OpenAI, carrot: IngestServer) -> None:
    import carrot_ai

    @carrot_ai.trace(name="streamer")
    def run() -> str:
        stream = client.chat.completions.create(**body("nested stream"), stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream)

    assert run() == "Echo: nested stream"
    got = records(carrot, 2)
    [llm] = [r for r in got if r["name"] == "chat.completions"]
    [parent] = [r for r in got if r["name"] == "streamer"]
    assert llm["metadata"]["parent_trace_id"] == parent["id"]
    assert llm["metadata"]["output_tokens"] > 0


def test_async_stream_inside_trace_is_a_child(fake: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai

    @carrot_ai.trace(name="async-streamer")
    async def run() -> str:
        async with carrot_ai.wrap(make_client(fake, is_async=True)) as client:
            stream = await client.chat.completions.create(**body("async nested"), stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(run()) == "Echo: async nested"
    got = records(carrot, 2)
    [llm] = [r for r in got if r["name"] == "chat.completions"]
    [parent] = [r for r in got if r["name"] == "async-streamer"]
    assert llm["metadata"]["parent_trace_id"] == parent["id"]


def test_stream_keeps_the_sdks_attributes_and_methods(client: openai.OpenAI, carrot: IngestServer) -> None:
    stream = client.chat.completions.create(**body("attrs"), stream=True)
    assert type(stream).__name__ == "Stream" or isinstance(stream, openai.Stream)
    assert stream.response.headers["x-request-id"].startswith("req_fake_")
    first = next(stream)
    assert first.choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in stream][-1] == "stop"
    [record] = records(carrot, 1)
    assert record["metadata"]["request_id"] == stream.response.headers["x-request-id"]


def test_stream_options_in_extra_body_are_the_callers(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    got = list(
        client.chat.completions.create(
            **body("hi"), stream=True, extra_body={"stream_options": {"include_usage": True}}
        )
    )
    assert got[-1].choices == [] and got[-1].usage is not None  # asked for by the caller: passed through
    [record] = records(carrot, 1)
    assert record["metadata"]["output_tokens"] == got[-1].usage.completion_tokens


def test_the_callers_extra_body_is_kept_when_carrot_asks_for_usage(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    extra = {"user_tier": "gold"}
    got = list(client.chat.completions.create(**body("hi"), stream=True, extra_body=extra))
    assert extra == {"user_tier": "gold"}  # the caller's dict is not changed
    sent = fake.last_request.json  # type: ignore[union-attr]
    assert sent["user_tier"] == "gold" and sent["stream_options"] == {"include_usage": True}  # type: ignore[index]
    assert all(c.choices for c in got)
    [record] = records(carrot, 1)
    assert record["metadata"]["output_tokens"] > 0 and record["input"]["user_tier"] == "gold"
    assert "stream_options" not in record["input"]


class _RefusingStreamOptions:
    """A server that answers 400 to ``stream_options`` (older Azure API versions, some OpenAI-compatible servers)."""

    MESSAGE = "Unrecognized request argument supplied: stream_options"

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake

    def __call__(self, request: Any) -> Any:
        from tests.fakes import ErrorReply

        if "stream_options" in (request.json or {}):
            return ErrorReply(400, message=self.MESSAGE)
        return self.fake.default_reply(request)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_server_that_refuses_stream_options_gets_the_callers_request(
    fake: FakeOpenAI, carrot: IngestServer, is_async: bool
) -> None:
    """Asking for usage must not break a stream the bare client can make: refused, the stream is sent again as the
    caller wrote it, and that client's streams are not asked again."""
    fake.enqueue(*[_RefusingStreamOptions(fake)] * 5)

    def streams(client: Any, count: int) -> list[list[Any]]:
        async def run() -> list[list[Any]]:
            got = []
            for _ in range(count):
                stream = await client.chat.completions.create(**body(LONG), stream=True)
                got.append([c async for c in stream])
            return got

        if is_async:
            return asyncio.run(run())
        return [list(client.chat.completions.create(**body(LONG), stream=True)) for _ in range(count)]

    [bare] = streams(make_client(fake, is_async=is_async), 1)
    assert len(fake.requests) == 1
    first, second = streams(carrot_ai.wrap(make_client(fake, is_async=is_async)), 2)
    assert dumps(first) == dumps(second) == dumps(bare)
    sent = [r.json for r in fake.requests[1:]]
    assert ["stream_options" in b for b in sent] == [True, False, False]  # refused once, then never asked
    got = records(carrot, 2)
    assert all(r["status"] == "success" and r["output"]["message"]["content"] == f"Echo: {LONG}" for r in got)
    assert all("output_tokens" not in r["metadata"] for r in got)  # the server gives no usage without the option


def test_another_bad_request_on_a_stream_is_not_sent_again(fake: FakeOpenAI, carrot: IngestServer) -> None:
    from tests.fakes import ErrorReply

    fake.enqueue(ErrorReply(400, message="This model's maximum context length is 128000 tokens"))
    client = carrot_ai.wrap(make_client(fake))
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        list(client.chat.completions.create(**body(LONG), stream=True))
    assert len(fake.requests) == 1
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    list(client.chat.completions.create(**body(LONG), stream=True))
    assert fake.last_request.json["stream_options"] == {"include_usage": True}  # type: ignore[index]


def test_a_wrapped_stream_copies_as_the_sdks(fake: FakeOpenAI, carrot: IngestServer) -> None:
    import copy

    counts = []
    for client in (make_client(fake), carrot_ai.wrap(make_client(fake))):
        stream = client.chat.completions.create(**body(LONG), stream=True)
        duplicate = copy.copy(stream)
        assert type(duplicate) is openai.Stream  # the SDK's own stream (a copy is not recorded)
        assert type(duplicate._decoder).__name__ != "EventTap"  # nor read for the original's record
        counts.append(len(list(stream)))
    assert counts[0] == counts[1] > 2
    assert len(records(carrot, 1)) == 1


def test_a_wrapped_streams_repr_is_the_sdk_streams(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    bare = make_client(fake).chat.completions.create(**body(LONG), stream=True)
    stream = client_for(way, fake).chat.completions.create(**body(LONG), stream=True)
    assert repr(stream) == repr(stream.__wrapped__)
    assert repr(stream).split(" at ")[0] == repr(bare).split(" at ")[0] == "<openai.Stream object"
    assert len(list(stream)) == len(list(bare))
    records(carrot, 1 if way == "wrap" else 2)  # (the instrumentor records the bare client's call too)


def test_pickling_a_wrapped_stream_fails_as_the_sdks(fake: FakeOpenAI, carrot: IngestServer) -> None:
    """``pickle`` of a stream raises the SDK's own error (a TypeError), not the proxy's NotImplementedError."""
    import pickle

    errors = []
    for client in (make_client(fake), carrot_ai.wrap(make_client(fake))):
        stream = client.chat.completions.create(**body(LONG), stream=True)
        with pytest.raises(Exception) as info:
            pickle.dumps(stream)
        errors.append((type(info.value), str(info.value)))
        assert len(list(stream)) > 2
    assert errors[1] == errors[0]
    assert errors[0][0] is TypeError
    assert len(records(carrot, 1)) == 1


def test_an_async_streams_iterator_is_a_new_async_generator_each_time(fake: FakeOpenAI, carrot: IngestServer) -> None:
    """As the SDK's ``AsyncStream.__aiter__``: closing the iterator an ``async for`` got leaves the stream open."""

    async def run(client: Any) -> tuple[bool, int, bool]:
        stream = await client.chat.completions.create(**body(LONG), stream=True)
        iterator = stream.__aiter__()
        fresh = iterator is not stream and iterator is not stream.__aiter__()
        await iterator.__anext__()
        await iterator.aclose()
        rest = [chunk async for chunk in stream]
        return fresh, len(rest), hasattr(stream, "aclose")

    bare = asyncio.run(run(make_client(fake, is_async=True)))
    wrapped = asyncio.run(run(carrot_ai.wrap(make_client(fake, is_async=True))))
    assert wrapped == bare and bare[0] and bare[1] > 1
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == f"Echo: {LONG}"


def _echoing_validation_error(fake: FakeOpenAI) -> Any:
    """A server whose validation errors quote the request back (vLLM, FastAPI model validators): the quoted body holds
    the ``stream_options`` carrot added, though the error is about something else."""
    from tests.fakes import JSONReply

    def reply(request: Any) -> Any:
        sent = request.json or {}
        if "tool_choice" in sent and "tools" not in sent:
            error = {"type": "value_error", "loc": ("body",), "msg": "`tool_choice` needs `tools`", "input": sent}
            return JSONReply(400, {"object": "error", "message": f"1 validation error:\n  {error}", "code": 400})
        return fake.default_reply(request)

    return reply


def test_a_bad_request_that_quotes_stream_options_back_is_not_a_refusal(fake: FakeOpenAI, carrot: IngestServer) -> None:
    chains = []
    for client in (make_client(fake), carrot_ai.wrap(make_client(fake))):
        fake.clear_requests()
        fake.enqueue(_echoing_validation_error(fake))
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(**body(LONG), tool_choice="auto", stream=True)
        assert len(fake.requests) == 1  # not sent again
        chain, error = [], caught.value
        while error is not None:
            chain.append(type(error).__name__)
            error = error.__context__  # type: ignore[assignment]
        chains.append(chain)
        list(client.chat.completions.create(**body(LONG), stream=True))
    assert chains[0] == chains[1]
    assert fake.last_request.json["stream_options"] == {"include_usage": True}  # type: ignore[index]  # still asked
    records(carrot, 2)


def test_a_validation_error_located_at_stream_options_is_a_refusal(fake: FakeOpenAI, carrot: IngestServer) -> None:
    """FastAPI's 422: ``{"detail": [{"loc": ["body", "stream_options"], "msg": "Extra inputs are not permitted"}]}``."""
    from tests.fakes import JSONReply

    def reply(request: Any) -> Any:
        if "stream_options" in (request.json or {}):
            detail = [
                {"type": "extra_forbidden", "loc": ["body", "stream_options"], "msg": "Extra inputs are not permitted"}
            ]
            return JSONReply(422, {"detail": detail})
        return fake.default_reply(request)

    fake.enqueue(reply, reply)
    client = carrot_ai.wrap(make_client(fake))
    chunks = list(client.chat.completions.create(**body(LONG), stream=True))
    assert chunks and ["stream_options" in r.json for r in fake.requests] == [True, False]  # type: ignore[operator]
    [record] = records(carrot, 1)
    assert record["status"] == "success"


def test_a_wrapped_stream_has_the_context_manager_protocols_of_the_sdks(fake: FakeOpenAI, carrot: IngestServer) -> None:
    """``with`` on an async stream and ``async with`` on a sync one fail as on the SDK's own streams (a TypeError
    since Python 3.11, an AttributeError on 3.10)."""

    def with_async(client: Any) -> str:
        async def run() -> str:
            stream = await client.chat.completions.create(**body(LONG), stream=True)
            try:
                with stream:
                    return "entered"
            except (TypeError, AttributeError) as exc:
                return f"{type(exc).__name__}: {exc}"
            finally:
                await stream.close()

        return asyncio.run(run())

    def async_with_sync(client: Any) -> str:
        stream = client.chat.completions.create(**body(LONG), stream=True)

        async def run() -> str:
            try:
                async with stream:
                    return "entered"
            except (TypeError, AttributeError) as exc:
                return f"{type(exc).__name__}: {exc}"

        try:
            return asyncio.run(run())
        finally:
            stream.close()

    bare = (with_async(make_client(fake, is_async=True)), async_with_sync(make_client(fake)))
    wrapped = (
        with_async(carrot_ai.wrap(make_client(fake, is_async=True))),
        async_with_sync(carrot_ai.wrap(make_client(fake))),
    )
    assert wrapped == bare
    if sys.version_info >= (3, 11):
        assert "context manager protocol" in bare[0] and "asynchronous context manager" in bare[1]
    else:
        assert bare == ("AttributeError: __enter__", "AttributeError: __aenter__")
    assert len(records(carrot, 2)) == 2


FORK_PROGRAM = """
import multiprocessing, os
import openai, carrot_ai

carrot_ai.init(flush_interval=600)
client = carrot_ai.wrap(openai.OpenAI(base_url=os.environ["FAKE_URL"] + "/v1", api_key="sk-test", max_retries=0))
messages = [{"role": "user", "content": "open across a fork"}]
stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
next(stream)

def child():
    carrot_ai.trace(name="child")(lambda: None)()

if __name__ == "__main__":
    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    for _chunk in stream:
        pass
    assert carrot_ai.flush(10)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_send_its_parents_open_streams(fake: FakeOpenAI, carrot: IngestServer) -> None:
    # The child ends the streams still open when it exits: its own, never the ones it inherited from its parent.
    from tests.export_helpers import run_python

    env = {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": carrot.base_url, "FAKE_URL": fake.base_url}
    result = run_python(FORK_PROGRAM, env, timeout=60)
    assert result.returncode == 0, result.stderr
    time.sleep(0.5)
    assert sorted(r["name"] for r in carrot.records) == ["chat.completions", "child"]
    [stream_record] = [r for r in carrot.records if r["name"] == "chat.completions"]
    assert stream_record["output"]["message"]["content"] == "Echo: open across a fork"
