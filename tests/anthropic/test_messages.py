"""messages.create / parse, sync and async, through wrap() and the instrumentor: what one record holds."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import anthropic
import pydantic
import pytest
from dirty_equals import IsFloat, IsPartialDict, IsStr

import carrot_ai
from tests.anthropic.conftest import MODEL, client_for, make_client, no_more_records, records, takes, user
from tests.fakes.anthropic_server import FakeAnthropic
from tests.ingest_server import IngestServer

UUID = IsStr(regex=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO = IsStr(regex=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize("stream", [False, True])
def test_the_input_is_what_was_sent_when_the_caller_changes_its_messages_after_the_call(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer, stream: bool
) -> None:
    # The record's input is read on the export worker, after the call: a snapshot taken at the call must hold the
    # blocks as they were, not as a chat loop leaves them (the caching marker moved, the last turn edited).
    content: list[Any] = [{"type": "text", "text": "original question", "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user", "content": content}]
    result = client.messages.create(model=MODEL, max_tokens=20, messages=messages, stream=stream)
    if stream:
        list(result)
    sent = json.loads(fake.last_request.body)["messages"]
    del content[0]["cache_control"]
    content[0]["text"] = "edited after the call"
    content.append({"type": "text", "text": "appended after the call"})
    [record] = records(carrot, 1)
    assert record["input"]["messages"] == sent
    assert sent[0]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_create_records_one_trace_with_input_output_and_usage(
    way: str, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    client = client_for(way, fake)
    message = client.messages.create(model=MODEL, max_tokens=100, system="Be brief.", messages=user("hello there"))

    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].text == "Echo: hello there"
    [record] = records(carrot, 1)
    cost = record["metadata"].pop("cost_usd", 0.0)  # present where the cost tables are installed
    assert isinstance(cost, float) and cost >= 0
    assert record == {
        "id": UUID,
        "name": "messages",
        "input": {"model": MODEL, "max_tokens": 100, "system": "Be brief.", "messages": user("hello there")},
        "output": {"message": {"role": "assistant", "content": "Echo: hello there"}},
        "metadata": {
            "type": "llm",
            "source": "sdk",
            "model": MODEL,
            "provider": "anthropic",
            "operation": "chat",
            "input_tokens": message.usage.input_tokens,
            "output_tokens": message.usage.output_tokens,
            "total_tokens": message.usage.input_tokens + message.usage.output_tokens,
            "cache_read_input_tokens": 0,
            "cache_write_input_tokens": 0,
            "finish_reasons": ["end_turn"],
            "response_id": message.id,
            "request_id": IsStr(regex=r"^req_fake_\d+$"),
            "latency_ms": IsFloat(ge=0),
            "trace_id": IsStr(regex=r"^[0-9a-f]{32}$"),
        },
        "status": "success",
        "started_at": ISO,
        "ended_at": ISO,
    }
    client.close()


def test_async_create_records_one_trace(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    async def main() -> Any:
        async with client_for(way, fake, is_async=True) as client:
            return await client.messages.create(model=MODEL, max_tokens=50, messages=user("async hello"))

    message = asyncio.run(main())
    assert message.content[0].text == "Echo: async hello"
    [record] = records(carrot, 1)
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: async hello"}}
    assert record["metadata"]["response_id"] == message.id


def test_wrap_returns_the_same_client_with_its_type(fake: FakeAnthropic, carrot: IngestServer) -> None:
    original = make_client(fake)
    wrapped = carrot_ai.wrap(original)
    assert wrapped is original
    assert type(wrapped) is anthropic.Anthropic
    assert carrot_ai.wrap(wrapped) is original  # wrapping twice records once
    wrapped.messages.create(model=MODEL, max_tokens=10, messages=user("once"))
    records(carrot, 1)
    no_more_records(carrot, 1)


def test_wrap_name_and_tags_go_on_every_record(fake: FakeAnthropic, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(make_client(fake), name="support-bot", tags=["prod", "v2"])
    client.messages.create(model=MODEL, max_tokens=10, messages=user("tagged"))
    [record] = records(carrot, 1)
    assert record["name"] == "support-bot"
    assert record["tags"] == ["prod", "v2"]


def test_a_wrapped_clients_methods_stay_bound_methods_of_their_resource(fake: FakeAnthropic) -> None:
    import inspect

    for is_async in (False, True):
        bare, wrapped = make_client(fake, is_async=is_async), carrot_ai.wrap(make_client(fake, is_async=is_async))
        for method in ("create", "stream"):
            expected, got = getattr(bare.messages, method), getattr(wrapped.messages, method)
            assert inspect.ismethod(got) and got.__self__ is wrapped.messages
            assert inspect.signature(got) == inspect.signature(expected)
            assert (got.__name__, got.__qualname__) == (expected.__name__, expected.__qualname__)


def test_a_wrapped_async_clients_methods_are_coroutine_functions_as_the_sdks(fake: FakeAnthropic) -> None:
    import inspect

    bare, wrapped = make_client(fake, is_async=True), carrot_ai.wrap(make_client(fake, is_async=True))
    for resource in ("messages", "beta.messages"):
        for method in ("create", "parse", "stream"):
            expected = getattr(_resolve(bare, resource), method)
            got = getattr(_resolve(wrapped, resource), method)
            assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(expected), (resource, method)


def _resolve(client: Any, path: str) -> Any:
    for name in path.split("."):
        client = getattr(client, name)
    return client


def test_clients_derived_with_with_options_and_copy_are_recorded(fake: FakeAnthropic, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(make_client(fake), name="derived")
    client.with_options(timeout=30).messages.create(model=MODEL, max_tokens=10, messages=user("with options"))
    client.copy(max_retries=1).messages.create(model=MODEL, max_tokens=10, messages=user("copy"))
    got = records(carrot, 2)
    assert [r["name"] for r in got] == ["derived", "derived"]
    assert {r["output"]["message"]["content"] for r in got} == {"Echo: with options", "Echo: copy"}


def test_system_blocks_become_system_instructions_and_input(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    system = [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in English."}]
    client.messages.create(model=MODEL, max_tokens=20, system=system, messages=user("hi"))
    [record] = records(carrot, 1)
    assert record["input"]["system"] == system


def test_tool_use_becomes_openai_like_tool_calls(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=100, tools=[WEATHER_TOOL], messages=user("use tool for Paris")
    )
    tool_use = [b for b in message.content if b.type == "tool_use"][0]
    [record] = records(carrot, 1)
    assert record["output"]["message"] == {
        "role": "assistant",
        "content": "I'll use get_weather.",
        "tool_calls": [
            {
                "id": tool_use.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(tool_use.input, separators=(",", ":"))},
            }
        ],
    }
    assert record["metadata"]["finish_reasons"] == ["tool_use"]
    assert record["input"]["tools"] == [WEATHER_TOOL]


def test_tool_result_history_is_kept_in_input(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    first = client.messages.create(model=MODEL, max_tokens=100, tools=[WEATHER_TOOL], messages=user("use tool"))
    tool_use = [b for b in first.content if b.type == "tool_use"][0]
    history = [
        *user("use tool"),
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18 C, sunny"}]},
    ]
    second = client.messages.create(model=MODEL, max_tokens=100, tools=[WEATHER_TOOL], messages=history)
    assert second.content[0].text == "Tool results: 18 C, sunny"
    record = records(carrot, 2)[1]
    sent = record["input"]["messages"]
    # Blocks of an earlier response are models: recorded as their dump.
    assert sent[1]["content"][1] == IsPartialDict(
        type="tool_use", id=tool_use.id, name="get_weather", input=tool_use.input
    )
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18 C, sunny"}]
    assert record["output"]["message"]["content"] == "Tool results: 18 C, sunny"


@pytest.mark.skipif(not takes(anthropic.resources.messages.Messages.create, "thinking"), reason="SDK without thinking")
def test_thinking_becomes_reasoning(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=200, thinking={"type": "enabled", "budget_tokens": 100}, messages=user("think")
    )
    thinking = [b for b in message.content if b.type == "thinking"][0]
    [record] = records(carrot, 1)
    assert record["output"]["message"] == {
        "role": "assistant",
        "content": "Echo: think",
        "reasoning": thinking.thinking,
    }


def test_image_is_a_placeholder_with_media_type_and_size(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    data = base64.b64encode(png).decode()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    messages = [{"role": "user", "content": [image, {"type": "text", "text": "what is this"}]}]
    client.messages.create(model=MODEL, max_tokens=20, messages=messages)
    [record] = records(carrot, 1)
    assert data not in json.dumps(record)
    sent_image = record["input"]["messages"][0]["content"][0]
    assert sent_image == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": f"<media: image/png, {len(png)} bytes>"},
    }
    assert messages[0]["content"][0] is image and image["source"]["data"] == data  # the caller's dict is untouched


def test_prompt_cache_tokens_follow_the_token_convention(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    system = [{"type": "text", "text": "long context " * 50, "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model=MODEL, max_tokens=20, system=system, messages=user("q1"))
    second = client.messages.create(model=MODEL, max_tokens=20, system=system, messages=user("q1"))
    assert first.usage.cache_creation_input_tokens and second.usage.cache_read_input_tokens
    write, read = (r["metadata"] for r in records(carrot, 2))
    # input_tokens INCLUDES cached tokens; cache read / write are subsets of it.
    assert write["input_tokens"] == first.usage.input_tokens + first.usage.cache_creation_input_tokens
    assert write["cache_write_input_tokens"] == first.usage.cache_creation_input_tokens
    assert write["cache_read_input_tokens"] == 0
    assert read["input_tokens"] == second.usage.input_tokens + second.usage.cache_read_input_tokens
    assert read["cache_read_input_tokens"] == second.usage.cache_read_input_tokens
    assert read["total_tokens"] == read["input_tokens"] + read["output_tokens"]


@pytest.mark.parametrize("stream", [False, True])
def test_one_hour_cache_writes_are_recorded_apart_from_five_minute_ones(
    client: anthropic.Anthropic, carrot: IngestServer, stream: bool
) -> None:
    # A 1-hour write is billed at 2x the input rate, a 5-minute one at 1.25x: the record must tell them apart.
    system = [{"type": "text", "text": "hour " * 60, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    if stream:
        with client.messages.stream(model=MODEL, max_tokens=20, system=system, messages=user("q")) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(model=MODEL, max_tokens=20, system=system, messages=user("q"))
    assert message.usage.cache_creation is not None
    written_1h = message.usage.cache_creation.ephemeral_1h_input_tokens
    assert written_1h and written_1h == message.usage.cache_creation_input_tokens
    [record] = records(carrot, 1)
    assert record["metadata"]["cache_write_input_tokens"] == written_1h
    assert record["metadata"]["cache_write_1h_input_tokens"] == written_1h


def test_messages_given_as_a_generator_reach_the_sdk_whole(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    def history() -> Any:
        yield {"role": "user", "content": "first"}
        yield {"role": "assistant", "content": "ok"}
        yield {"role": "user", "content": "second"}

    message = client.messages.create(model=MODEL, max_tokens=20, messages=history())
    assert message.content[0].text == "Echo: second"
    assert [m["content"] for m in fake.last_request.json["messages"]] == ["first", "ok", "second"]
    [record] = records(carrot, 1)
    assert [m["content"] for m in record["input"]["messages"]] == ["first", "ok", "second"]


def test_extra_body_params_are_part_of_the_input(client: anthropic.Anthropic, carrot: IngestServer) -> None:
    client.messages.create(
        model=MODEL, max_tokens=20, messages=user("params"), extra_body={"temperature": 0.2, "top_k": 5}, timeout=30
    )
    [record] = records(carrot, 1)
    assert record["input"] == {
        "model": MODEL,
        "max_tokens": 20,
        "messages": user("params"),
        "temperature": 0.2,
        "top_k": 5,
    }


def test_metadata_only_header_drops_content_and_is_not_sent(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    headers = {"X-Carrot-Trace": "metadata-only", "X-App": "kept"}
    client.messages.create(model=MODEL, max_tokens=20, messages=user("secret prompt"), extra_headers=headers)
    assert "x-carrot-trace" not in fake.last_request.headers
    assert fake.last_request.headers["x-app"] == "kept"
    assert headers == {"X-Carrot-Trace": "metadata-only", "X-App": "kept"}
    [record] = records(carrot, 1)
    assert "secret prompt" not in json.dumps(record)
    assert record["input"] == {"model": MODEL}
    assert record["output"] == {}
    assert record["metadata"]["output_tokens"] > 0


def test_other_trace_header_values_are_sent_on(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    client.messages.create(model=MODEL, max_tokens=20, messages=user("kept"), extra_headers={"X-Carrot-Trace": "true"})
    assert fake.last_request.headers["x-carrot-trace"] == "true"
    [record] = records(carrot, 1)
    assert record["input"]["messages"] == user("kept")


def test_content_capture_off_keeps_metadata_only(fake: FakeAnthropic, carrot: IngestServer) -> None:
    carrot_ai.init(api_key="ck-test-key", base_url=carrot.base_url, flush_interval=0.05, capture_content=False)
    client = carrot_ai.wrap(make_client(fake))
    client.messages.create(model=MODEL, max_tokens=20, messages=user("private"))
    [record] = records(carrot, 1)
    assert "private" not in json.dumps(record)
    assert record["metadata"]["input_tokens"] > 0


@pytest.mark.skipif(not hasattr(anthropic.resources.messages.Messages, "parse"), reason="SDK without messages.parse")
def test_parse_records_the_structured_answer(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    class Answer(pydantic.BaseModel):
        city: str
        degrees: int

    client = client_for(way, fake)
    parsed = client.messages.parse(model=MODEL, max_tokens=100, messages=user("weather"), output_format=Answer)
    assert isinstance(parsed.parsed_output, Answer)
    [record] = records(carrot, 1)
    assert json.loads(record["output"]["message"]["content"]) == parsed.parsed_output.model_dump()
    assert record["input"]["output_format"] == "Answer"  # the class, by name (as openai's `text_format`)
    with client.messages.stream(model=MODEL, max_tokens=100, messages=user("weather"), output_format=Answer) as stream:
        stream.until_done()
    assert records(carrot, 2)[1]["input"]["output_format"] == "Answer"


def test_beta_messages_create_is_recorded(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    message = client.beta.messages.create(
        model=MODEL, max_tokens=20, messages=user("beta"), betas=["structured-outputs-2025-11-13"]
    )
    assert fake.last_request.headers["anthropic-beta"] == "structured-outputs-2025-11-13"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == message.content[0].text
    assert record["input"]["betas"] == ["structured-outputs-2025-11-13"]


def test_nested_under_trace_the_record_has_the_function_as_parent(
    client: anthropic.Anthropic, carrot: IngestServer
) -> None:
    @carrot_ai.trace
    def pipeline() -> str:
        return client.messages.create(model=MODEL, max_tokens=10, messages=user("nested")).content[0].text

    pipeline()
    got = records(carrot, 2)
    llm = next(r for r in got if r["name"] == "messages")
    function = next(r for r in got if r["name"] != "messages")
    assert llm["metadata"]["parent_trace_id"] == function["id"]


def test_count_tokens_is_not_a_model_call(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    from tests.fakes import JSONReply

    fake.enqueue(JSONReply(200, {"input_tokens": 7}))
    assert client.messages.count_tokens(model=MODEL, messages=user("count")).input_tokens == 7
    no_more_records(carrot, 0)


@pytest.mark.parametrize("bad", [None, "not a client", object()])
def test_wrap_of_an_unsupported_object_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        carrot_ai.wrap(bad)


def test_the_record_keeps_the_messages_as_sent_when_the_caller_changes_them_afterwards(
    way: str, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    # The request is read on the export worker, after the call: the caller's usual next steps must not reach it.
    client = client_for(way, fake)
    messages: list[Any] = user("hello there")
    sent = json.loads(json.dumps(messages))
    message = client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    messages.append({"role": "assistant", "content": message.content})
    messages.append({"role": "user", "content": "and again"})
    messages[0]["content"] = "changed"
    message.content[0].text = "edited by the caller"  # type: ignore[union-attr]

    [record] = records(carrot, 1)
    assert record["input"] == {"model": MODEL, "max_tokens": 100, "messages": sent}
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: hello there"}}
