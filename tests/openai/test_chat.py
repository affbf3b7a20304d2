"""chat.completions.create / parse, sync and async, through wrap() and the instrumentor: what one record holds."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import openai
import pydantic
import pytest
from dirty_equals import IsFloat, IsStr

import carrot_ai
from tests.conftest import BACKLOG_QUEUE_BYTES, check_backlogged_streams
from tests.fakes import Reset
from tests.fakes.openai_server import FakeOpenAI, model_not_found, rate_limit, server_error
from tests.ingest_server import IngestServer
from tests.openai.conftest import MODEL, client_for, make_client, no_more_records, records, user

UUID = IsStr(regex=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO = IsStr(regex=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}


def test_create_records_one_trace_with_input_output_and_usage(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    messages = [{"role": "system", "content": "Be brief."}, *user("hello there")]
    completion = client.chat.completions.create(model=MODEL, messages=messages, temperature=0.2, max_tokens=100)

    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.choices[0].message.content == "Echo: hello there"
    [record] = records(carrot, 1)
    cost = record["metadata"].pop("cost_usd", 0.0)
    assert isinstance(cost, float) and cost >= 0
    usage = completion.usage
    assert usage is not None
    assert record == {
        "id": UUID,
        "name": "chat.completions",
        "input": {"model": MODEL, "messages": messages, "temperature": 0.2, "max_tokens": 100},
        "output": {"message": {"role": "assistant", "content": "Echo: hello there"}},
        "metadata": {
            "type": "llm",
            "source": "sdk",
            "model": completion.model,
            "provider": "openai",
            "operation": "chat",
            "input_tokens": usage.prompt_tokens,
            "output_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cache_read_input_tokens": 0,
            "reasoning_tokens": 0,
            "finish_reasons": ["stop"],
            "response_id": completion.id,
            "request_id": completion._request_id,
            "latency_ms": IsFloat(ge=0),
            "trace_id": IsStr(regex=r"^[0-9a-f]{32}$"),
        },
        "status": "success",
        "started_at": ISO,
        "ended_at": ISO,
    }
    client.close()


def test_async_create_records_one_trace(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> Any:
        async with client_for(way, fake, is_async=True) as client:
            return await client.chat.completions.create(model=MODEL, messages=user("async hello"))

    completion = asyncio.run(main())
    assert completion.choices[0].message.content == "Echo: async hello"
    [record] = records(carrot, 1)
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: async hello"}}
    assert record["metadata"]["response_id"] == completion.id


def test_cached_and_reasoning_tokens(client: openai.OpenAI, carrot: IngestServer) -> None:
    long = [{"role": "system", "content": "word " * 50}, *user("same question")]
    client.chat.completions.create(model="o3-mini", messages=long, reasoning_effort="low")
    second = client.chat.completions.create(model="o3-mini", messages=long, reasoning_effort="low")
    first_record, second_record = records(carrot, 2)
    usage = second.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    meta = second_record["metadata"]
    assert meta["input_tokens"] == usage.prompt_tokens  # includes the cached tokens
    assert meta["cache_read_input_tokens"] == usage.prompt_tokens_details.cached_tokens > 0
    assert meta["reasoning_tokens"] == usage.completion_tokens_details.reasoning_tokens == 16
    assert meta["output_tokens"] == usage.completion_tokens
    assert first_record["metadata"]["cache_read_input_tokens"] == 0


def test_wrap_returns_the_same_client_with_its_type(fake: FakeOpenAI, carrot: IngestServer) -> None:
    original = make_client(fake)
    wrapped = carrot_ai.wrap(original)
    assert wrapped is original
    assert type(wrapped) is openai.OpenAI
    assert carrot_ai.wrap(wrapped) is original  # wrapping twice records once
    wrapped.chat.completions.create(model=MODEL, messages=user("once"))
    records(carrot, 1)
    no_more_records(carrot, 1)


def test_wrap_name_and_tags_go_on_every_record(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(make_client(fake), name="support-bot", tags=["prod", "v2"])
    client.chat.completions.create(model=MODEL, messages=user("tagged"))
    client.embeddings.create(model="text-embedding-3-small", input="tagged")
    got = records(carrot, 2)
    assert [r["name"] for r in got] == ["support-bot", "support-bot"]
    assert [r["tags"] for r in got] == [["prod", "v2"], ["prod", "v2"]]


def test_clients_derived_with_with_options_and_copy_are_recorded(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(make_client(fake), name="derived")
    client.with_options(timeout=30).chat.completions.create(model=MODEL, messages=user("with options"))
    client.copy(max_retries=1).chat.completions.create(model=MODEL, messages=user("copy"))
    got = records(carrot, 2)
    assert [r["name"] for r in got] == ["derived", "derived"]
    assert {r["output"]["message"]["content"] for r in got} == {"Echo: with options", "Echo: copy"}


def test_a_wrapped_clients_copy_and_with_options_keep_their_name_and_signature(fake: FakeOpenAI) -> None:
    import inspect

    bare, wrapped = make_client(fake), carrot_ai.wrap(make_client(fake))
    for method in ("copy", "with_options"):
        expected, got = getattr(bare, method), getattr(wrapped, method)
        assert inspect.signature(got) == inspect.signature(expected)
        assert (got.__name__, got.__qualname__) == (expected.__name__, expected.__qualname__)
        assert got.__doc__ == expected.__doc__


def test_a_wrapped_clients_methods_stay_bound_methods_of_their_resource(fake: FakeOpenAI) -> None:
    import inspect

    for is_async in (False, True):
        bare, wrapped = make_client(fake, is_async=is_async), carrot_ai.wrap(make_client(fake, is_async=is_async))
        for resource in ("chat.completions", "responses", "embeddings", "completions"):
            for method in ("create", "parse"):
                expected = getattr(_resolve(bare, resource), method, None)
                if expected is None:
                    continue
                got = getattr(_resolve(wrapped, resource), method)
                assert inspect.ismethod(got) and got.__self__ is _resolve(wrapped, resource)
                assert inspect.signature(got) == inspect.signature(expected)
                assert (got.__name__, got.__qualname__, got.__doc__) == (
                    expected.__name__,
                    expected.__qualname__,
                    expected.__doc__,
                )


def test_a_wrapped_async_clients_methods_are_coroutine_functions_as_the_sdks(fake: FakeOpenAI) -> None:
    """``inspect.iscoroutinefunction`` (which tenacity, for one, reads to pick how to retry) answers as on the SDK's
    method: False for a ``create`` behind the SDK's argument check, True for a plain ``async def``."""
    import inspect

    bare, wrapped = make_client(fake, is_async=True), carrot_ai.wrap(make_client(fake, is_async=True))
    for resource in ("chat.completions", "beta.chat.completions", "responses", "embeddings", "completions"):
        for method in ("create", "parse"):
            expected = getattr(_resolve(bare, resource), method, None)
            if expected is not None:
                got = getattr(_resolve(wrapped, resource), method)
                assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(expected), (resource, method)


def _resolve(client: Any, path: str) -> Any:
    for name in path.split("."):
        client = getattr(client, name)
    return client


def test_async_client_derived_clients_are_recorded(fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> None:
        async with carrot_ai.wrap(make_client(fake, is_async=True)) as client:
            await client.with_options(timeout=5).chat.completions.create(model=MODEL, messages=user("derived"))

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: derived"


def test_wrap_rejects_objects_that_are_not_clients() -> None:
    with pytest.raises(TypeError, match="OpenAI"):
        carrot_ai.wrap(object())
    with pytest.raises(TypeError, match="not an OpenAI client"):
        carrot_ai.wrap(openai.types.chat.ChatCompletionMessage(role="assistant", content="x"))
    # carrot-ai 0.2.1 raised ValueError: a program catching that keeps working.
    with pytest.raises(ValueError, match="OpenAI"):
        carrot_ai.wrap(object())
    with pytest.raises(ValueError, match="not an OpenAI client"):
        carrot_ai.wrap(openai.types.chat.ChatCompletionMessage(role="assistant", content="x"))


def test_wrap_takes_an_applications_subclass_of_a_client(fake: FakeOpenAI, carrot: IngestServer) -> None:
    class MyClient(openai.OpenAI):  # defined outside the SDK's modules
        pass

    client = carrot_ai.wrap(MyClient(base_url=fake.base_url + "/v1", api_key="sk-test", max_retries=0))
    assert type(client) is MyClient
    client.chat.completions.create(model=MODEL, messages=user("subclass"))
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: subclass"


def test_parallel_tool_calls_become_tool_calls(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    completion = client.chat.completions.create(
        model=MODEL, messages=user("use tools please"), tools=[WEATHER_TOOL, TIME_TOOL]
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 2
    [record] = records(carrot, 1)
    assert record["output"]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in calls
        ],
    }
    assert record["metadata"]["finish_reasons"] == ["tool_calls"]
    assert record["input"]["tools"] == [WEATHER_TOOL, TIME_TOOL]


def test_tool_result_history_is_kept_in_input(client: openai.OpenAI, carrot: IngestServer) -> None:
    first = client.chat.completions.create(model=MODEL, messages=user("use tool"), tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    history = [
        *user("use tool"),
        first.choices[0].message,
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "Tool results: sunny"
    _, record = records(carrot, 2)
    assert record["input"]["messages"][1]["tool_calls"][0]["id"] == call.id
    assert record["input"]["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    assert record["output"]["message"]["content"] == "Tool results: sunny"


def test_n_choices_are_all_kept(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    completion = client.chat.completions.create(model=MODEL, messages=user("three"), n=3)
    [record] = records(carrot, 1)
    texts = [c.message.content for c in completion.choices]
    assert record["output"]["message"]["content"] == texts[0] == "Echo: three"
    assert [m["content"] for m in record["output"]["choices"]] == texts
    assert record["metadata"]["finish_reasons"] == ["stop", "stop", "stop"]


def test_legacy_functions_are_recorded(client: openai.OpenAI, carrot: IngestServer) -> None:
    function = WEATHER_TOOL["function"]
    completion = client.chat.completions.create(
        model=MODEL, messages=user("use tool"), functions=[function], function_call={"name": "get_weather"}
    )
    call = completion.choices[0].message.function_call
    assert call is not None
    [record] = records(carrot, 1)
    assert record["output"]["message"]["function_call"] == {"name": "get_weather", "arguments": call.arguments}


class Weather(pydantic.BaseModel):
    city: str
    degrees: int


def test_parse_records_the_structured_answer(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    parsed = client.chat.completions.parse(model=MODEL, messages=user("weather?"), response_format=Weather)
    weather = parsed.choices[0].message.parsed
    assert isinstance(weather, Weather)
    [record] = records(carrot, 1)
    assert record["name"] == "chat.completions"
    assert json.loads(record["output"]["message"]["content"]) == weather.model_dump()
    assert record["input"]["response_format"] == {"type": "json_schema", "json_schema": {"name": "Weather"}}


def test_async_parse(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> Any:
        async with client_for(way, fake, is_async=True) as client:
            return await client.chat.completions.parse(model=MODEL, messages=user("w"), response_format=Weather)

    parsed = asyncio.run(main())
    [record] = records(carrot, 1)
    assert json.loads(record["output"]["message"]["content"]) == parsed.choices[0].message.parsed.model_dump()


# --- errors ------------------------------------------------------------------------------------------------------


def test_rate_limit_error_propagates_unchanged_and_is_recorded(
    way: str, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    client = client_for(way, fake)
    fake.enqueue(rate_limit())
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=user("too fast"))
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error_type"] == "RateLimitError"
    assert record["output"]["error"] == IsStr(regex=".*Rate limit reached.*")
    meta = record["metadata"]
    assert meta["http_status"] == 429
    assert meta["error_code"] == "rate_limit_exceeded"
    assert meta["request_id"] == caught.value.request_id
    assert record["input"]["messages"] == user("too fast")


def test_async_not_found_error(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> None:
        async with client_for(way, fake, is_async=True) as client:
            fake.enqueue(model_not_found("gpt-nope"))
            await client.chat.completions.create(model="gpt-nope", messages=user("x"))

    with pytest.raises(openai.NotFoundError):
        asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["metadata"]["http_status"] == 404
    assert record["metadata"]["error_code"] == "model_not_found"


def test_retries_are_inside_one_record(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(make_client(fake, max_retries=2))
    fake.enqueue(server_error(), rate_limit())
    completion = client.chat.completions.create(model=MODEL, messages=user("retry me"))
    assert completion.choices[0].message.content == "Echo: retry me"
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert len(fake.requests) == 3


def test_connection_error_is_recorded(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(make_client(fake))
    fake.enqueue(Reset())
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model=MODEL, messages=user("reset"))
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error_type"] == "APIConnectionError"
    assert "http_status" not in record["metadata"]


def test_timeout_is_recorded(fake: FakeOpenAI, carrot: IngestServer) -> None:
    from tests.fakes import Hang

    client = carrot_ai.wrap(make_client(fake, timeout=0.3))
    fake.enqueue(Hang())
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model=MODEL, messages=user("hang"))
    [record] = records(carrot, 1)
    assert record["output"]["error_type"] == "APITimeoutError"


def test_inside_trace_the_call_is_a_child(client: openai.OpenAI, carrot: IngestServer) -> None:
    @carrot_ai.trace
    def pipeline() -> str:
        completion = client.chat.completions.create(model=MODEL, messages=user("nested"))
        return completion.choices[0].message.content or ""

    assert pipeline() == "Echo: nested"
    got = records(carrot, 2)
    [llm] = [r for r in got if r["name"] == "chat.completions"]
    [function] = [r for r in got if r["name"] != "chat.completions"]
    assert llm["metadata"]["parent_trace_id"] == function["id"]


def test_metadata_only_header_keeps_content_out(client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client.chat.completions.create(
        model=MODEL, messages=user("secret prompt"), extra_headers={"X-Carrot-Trace": "metadata-only"}
    )
    [record] = records(carrot, 1)
    assert "secret prompt" not in json.dumps(record)
    assert record["metadata"]["content_captured"] is False
    assert record["metadata"]["output_tokens"] > 0
    assert "x-carrot-trace" not in fake.last_request.headers  # type: ignore[union-attr]


def test_inline_image_data_is_replaced_by_a_placeholder(client: openai.OpenAI, carrot: IngestServer) -> None:
    import base64

    payload = base64.b64encode(bytes(range(256)) * 64).decode()
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{payload}"}},
    ]
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    [record] = records(carrot, 1)
    assert payload not in json.dumps(record)
    url = record["input"]["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith(("<media: image/png", "data:image/png")), url


def test_azure_client_is_wrapped(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(
        openai.AzureOpenAI(base_url=fake.base_url + "/v1", api_key="azure-key", api_version="2024-10-21", max_retries=0)
    )
    assert type(client) is openai.AzureOpenAI
    from tests.fakes import JSONReply

    # The fake has no /deployments/ routes: script the answer (an enqueued reply answers any path).
    fake.enqueue(JSONReply(200, fake.build_chat_completion({"model": MODEL, "messages": user("azure")})))
    client.chat.completions.create(model=MODEL, messages=user("azure"))
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: azure"


def test_the_record_keeps_the_messages_as_sent_when_the_caller_changes_them_afterwards(
    way: str, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    # The request is read on the export worker, after the call: the caller's usual next steps must not reach it (nor
    # a change to the response object, which is read at once).
    client = client_for(way, fake)
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, *user("hello there")]
    sent = json.loads(json.dumps(messages))
    completion = client.chat.completions.create(model=MODEL, messages=messages)
    messages.append(completion.choices[0].message)
    messages.append({"role": "user", "content": "and again"})
    messages[0]["content"] = "Be verbose."
    completion.choices[0].message.content = "edited by the caller"

    [record] = records(carrot, 1)
    assert record["input"] == {"model": MODEL, "messages": sent}
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: hello there"}}


def test_with_the_export_queue_backlogged_calls_are_read_at_once_and_recorded_the_same(
    fake: FakeOpenAI, ingest: IngestServer, backlogged: dict[str, str]
) -> None:
    # A deferred call's request is read on the export worker; past a quarter of the queue's byte budget, calls are read
    # on the calling thread, so a backlog keeps the queue's capacity in records. Where the input is read shows in the
    # thread that runs the redaction function on it.
    client = carrot_ai.wrap(make_client(fake))
    for text in ("first question", "second question"):
        messages: list[Any] = user(text)
        client.chat.completions.create(model=MODEL, messages=messages)
        messages[0]["content"] = "changed"
    assert carrot_ai.stats()["queued_bytes"] > BACKLOG_QUEUE_BYTES // 4

    got = sorted(records(ingest, 2), key=lambda r: str(r["input"]["messages"][0]["content"]))
    assert [r["input"]["messages"] for r in got] == [user("first question"), user("second question")]
    assert got[1]["output"] == {"message": {"role": "assistant", "content": "Echo: second question"}}
    main = threading.current_thread().name
    assert backlogged["first question"] != main  # the queue was empty: read on the export worker
    assert backlogged["second question"] == main  # the queue was past a quarter: read at once


def test_with_the_export_queue_backlogged_a_stream_is_folded_in_at_its_end_and_recorded_the_same(
    fake: FakeOpenAI, ingest: IngestServer, backlogged: dict[str, str]
) -> None:
    # A stream's events are kept where the SDK decodes them and folded into its record when it ends: on the export
    # worker while the queue has room, on the calling thread past a quarter of its byte budget.
    client = carrot_ai.wrap(make_client(fake))
    for text in ("first question", "second question"):
        chunks = list(client.chat.completions.create(model=MODEL, messages=user(text), stream=True))
        assert chunks and all(chunk.choices for chunk in chunks)  # the usage chunk carrot asked for stays hidden
    assert carrot_ai.stats()["queued_bytes"] > BACKLOG_QUEUE_BYTES // 4

    check_backlogged_streams(records(ingest, 2), backlogged, "stop")


def test_a_call_from_another_thread_started_inside_a_call_is_a_call_of_its_own(
    fake: FakeOpenAI, carrot: IngestServer
) -> None:
    """Work a call starts elsewhere inherits its context (a callback run in a thread with a copy of it) but is not
    part of it: an LLM call made there gets its own record; a call nested on the same thread does not."""
    import contextvars
    import threading

    client = carrot_ai.wrap(make_client(fake))
    done: list[str] = []

    def on_request(request: Any) -> None:
        if b"outer" not in request.content:
            return
        context = contextvars.copy_context()  # as litellm and executors hand their callbacks the caller's context

        def callback() -> None:
            client.chat.completions.create(model=MODEL, messages=user("from a thread"))
            done.append("thread")

        thread = threading.Thread(target=context.run, args=(callback,))
        thread.start()
        thread.join(10)
        client.chat.completions.create(model=MODEL, messages=user("nested, same thread"))  # the same call

    client._client = type(client._client)(event_hooks={"request": [on_request]})  # (httpx2, or httpx for openai 1.x)
    client.chat.completions.create(model=MODEL, messages=user("outer"))
    assert done == ["thread"]
    got = records(carrot, 2)
    assert sorted(r["input"]["messages"][-1]["content"] for r in got) == ["from a thread", "outer"]
