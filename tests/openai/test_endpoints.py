"""Responses API, embeddings, legacy completions, and with_raw_response / with_streaming_response of each."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from typing import Any

import openai
import pytest

import carrot_ai
from tests.fakes.openai_server import FakeOpenAI, rate_limit
from tests.ingest_server import IngestServer
from tests.openai.conftest import MODEL, client_for, make_client, records, user
from tests.openai.test_chat import Weather

FUNCTION_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
EMBEDDING_MODEL = "text-embedding-3-small"
LONG = "one two three four five six seven eight nine ten"


# --- Responses API -----------------------------------------------------------------------------------------------


def test_responses_create_records_input_output_and_usage(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    response = client.responses.create(model=MODEL, instructions="Be brief.", input="hello responses")
    assert response.output_text == "Echo: hello responses"
    [record] = records(carrot, 1)
    assert record["name"] == "responses"
    assert record["input"] == {"model": MODEL, "instructions": "Be brief.", "input": "hello responses"}
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: hello responses"}}
    meta = record["metadata"]
    assert response.usage is not None
    assert meta["input_tokens"] == response.usage.input_tokens
    assert meta["output_tokens"] == response.usage.output_tokens
    assert meta["cache_read_input_tokens"] == response.usage.input_tokens_details.cached_tokens
    assert meta["finish_reasons"] == ["stop"]
    assert meta["response_id"] == response.id
    assert meta["request_id"] == response._request_id
    assert meta["operation"] == "chat"


def test_responses_reasoning_and_tool_calls(client: openai.OpenAI, carrot: IngestServer) -> None:
    response = client.responses.create(
        model="o3-mini", input="use tool now", tools=[FUNCTION_TOOL], reasoning={"effort": "medium"}
    )
    [call] = [item for item in response.output if item.type == "function_call"]
    [record] = records(carrot, 1)
    message = record["output"]["message"]
    assert message["tool_calls"] == [
        {"id": call.call_id, "type": "function", "function": {"name": "get_weather", "arguments": call.arguments}}
    ]
    assert record["metadata"]["finish_reasons"] == ["tool_calls"]
    assert response.usage is not None
    assert record["metadata"]["reasoning_tokens"] == response.usage.output_tokens_details.reasoning_tokens == 32


def test_responses_input_history_items(client: openai.OpenAI, carrot: IngestServer) -> None:
    first = client.responses.create(model=MODEL, input="use tool", tools=[FUNCTION_TOOL])
    [call] = [item for item in first.output if item.type == "function_call"]
    history: list[Any] = [
        {"role": "user", "content": "use tool"},
        call,
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    second = client.responses.create(model=MODEL, input=history, tools=[FUNCTION_TOOL])
    assert second.output_text == "Tool results: sunny"
    _, record = records(carrot, 2)
    assert record["input"]["input"][2] == {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    assert record["output"]["message"]["content"] == "Tool results: sunny"


def test_responses_stream(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    stream = client.responses.create(model=MODEL, input=LONG, stream=True)
    assert isinstance(stream, openai.Stream)
    events = list(stream)
    assert events[-1].type == "response.completed"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == f"Echo: {LONG}"
    final = events[-1].response
    assert final.usage is not None
    assert record["metadata"]["output_tokens"] == final.usage.output_tokens
    assert record["metadata"]["response_id"] == final.id
    assert record["metadata"]["time_to_first_token_ms"] > 0


def test_responses_stream_cut_short_keeps_the_partial_text(client: openai.OpenAI, carrot: IngestServer) -> None:
    stream = client.responses.create(model=MODEL, input=LONG, stream=True)
    texts = []
    for event in stream:
        if event.type == "response.output_text.delta":
            texts.append(event.delta)
            if len(texts) == 2:
                break
    stream.close()
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "".join(texts)
    assert record["metadata"]["response_id"].startswith("resp_")


def test_async_responses_create_and_stream(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> None:
        async with client_for(way, fake, is_async=True) as client:
            await client.responses.create(model=MODEL, input="async one")
            stream = await client.responses.create(model=MODEL, input="async two", stream=True)
            async for _event in stream:
                pass

    asyncio.run(main())
    got = records(carrot, 2)
    assert [r["output"]["message"]["content"] for r in got] == ["Echo: async one", "Echo: async two"]


def test_responses_stream_helper(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    with client.responses.stream(model=MODEL, input="helper") as stream:
        for _event in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "Echo: helper"
    [record] = records(carrot, 1)
    assert record["name"] == "responses"
    assert record["output"]["message"]["content"] == "Echo: helper"


def test_async_responses_stream_helper(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> Any:
        async with client_for(way, fake, is_async=True) as client:
            async with client.responses.stream(model=MODEL, input="async helper") as stream:
                return await stream.get_final_response()

    assert asyncio.run(main()).output_text == "Echo: async helper"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: async helper"


def test_responses_parse(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    parsed = client.responses.parse(model=MODEL, input="weather?", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather)
    [record] = records(carrot, 1)
    assert json.loads(record["output"]["message"]["content"]) == parsed.output_parsed.model_dump()
    assert record["input"]["text_format"] == "Weather"


def test_responses_error(client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer) -> None:
    fake.enqueue(rate_limit())
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model=MODEL, input="x")
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["http_status"] == 429


def test_the_beta_twins_of_the_resources_are_recorded(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    # `beta.chat.completions` is another instance of the chat completions class; `beta.responses` another resource.
    client = client_for(way, fake)
    parsed = client.beta.chat.completions.parse(model=MODEL, messages=user("beta parse"), response_format=Weather)
    with client.beta.chat.completions.stream(model=MODEL, messages=user("beta stream")) as stream:
        final = stream.get_final_completion()
    if not hasattr(client.beta, "responses"):  # (openai 1.x has no `beta.responses`)
        first, second = records(carrot, 2)
    else:
        created = client.beta.responses.create(model=MODEL, input="beta responses")
        first, second, third = records(carrot, 3)
        assert third["name"] == "responses"
        assert third["output"]["message"]["content"] == created.output[0].content[0].text  # (no output_text: beta)
        assert third["metadata"]["response_id"] == created.id
    assert first["name"] == "chat.completions"
    assert json.loads(first["output"]["message"]["content"]) == parsed.choices[0].message.parsed.model_dump()
    assert second["output"]["message"]["content"] == final.choices[0].message.content == "Echo: beta stream"


# --- embeddings --------------------------------------------------------------------------------------------------


def test_embeddings_record_counts_not_vectors(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    result = client.embeddings.create(model=EMBEDDING_MODEL, input=["first text", "second text"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 1536
    [record] = records(carrot, 1)
    assert record["name"] == "embeddings"
    assert record["input"] == {"model": EMBEDDING_MODEL, "input": ["first text", "second text"]}
    # (embeddings_count, and output_tokens 0: as carrot-ai 0.2.1's records had them)
    assert record["output"] == {"embeddings": 2, "dimensions": 1536, "embeddings_count": 2}
    assert record["metadata"]["operation"] == "embeddings"
    assert record["metadata"]["input_tokens"] == result.usage.prompt_tokens
    assert record["metadata"]["output_tokens"] == 0


def test_async_embeddings(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    async def main() -> Any:
        async with client_for(way, fake, is_async=True) as client:
            return await client.embeddings.create(model=EMBEDDING_MODEL, input="x", dimensions=64)

    assert len(asyncio.run(main()).data[0].embedding) == 64
    [record] = records(carrot, 1)
    assert record["output"] == {"embeddings": 1, "dimensions": 64, "embeddings_count": 1}


# --- legacy completions ------------------------------------------------------------------------------------------


def test_legacy_completion(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=20)
    [record] = records(carrot, 1)
    assert record["name"] == "completions"
    assert record["output"]["message"]["content"] == completion.choices[0].text
    assert record["metadata"]["operation"] == "text_completion"
    assert completion.usage is not None
    assert record["metadata"]["output_tokens"] == completion.usage.completion_tokens


def test_legacy_completion_stream_hides_the_usage_chunk(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    chunks = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt=LONG, stream=True))
    assert all(c.choices for c in chunks)
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "".join(c.choices[0].text for c in chunks)
    assert record["metadata"]["output_tokens"] > 0


# --- raw responses -----------------------------------------------------------------------------------------------


def test_with_raw_response_records_the_parsed_body(way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=user("raw"))
    assert raw.headers["x-request-id"].startswith("req_fake_")
    completion = raw.parse()
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == completion.choices[0].message.content == "Echo: raw"
    assert record["metadata"]["request_id"] == raw.headers["x-request-id"]
    assert completion.usage is not None
    assert record["metadata"]["output_tokens"] == completion.usage.completion_tokens


def test_client_level_with_raw_response(fake: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai

    client = make_client(fake)
    client.with_raw_response.chat.completions.create(model=MODEL, messages=user("warm"))  # cached before wrap
    carrot_ai.wrap(client)
    client.with_raw_response.chat.completions.create(model=MODEL, messages=user("client raw"))
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: client raw"


def test_with_raw_response_stream_is_not_changed(client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=user("raw stream"), stream=True)
    assert "stream_options" not in fake.last_request.json  # type: ignore[operator, union-attr]
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    assert raw.parse() is stream
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "Echo: raw stream"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: raw stream"


def test_a_raw_stream_parsed_to_another_type_is_the_sdks(fake: FakeOpenAI, carrot: IngestServer) -> None:
    """``parse(to=...)`` asks the SDK for a stream of another type: the caller gets that one, as without carrot."""
    got = []
    for client in (make_client(fake), carrot_ai.wrap(make_client(fake))):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=user("typed"), stream=True)
        first = raw.parse()
        other = raw.parse(to=openai.Stream[dict])  # type: ignore[type-arg]
        got.append((type(other), other is first, raw.parse() is first))
    assert got[0] == got[1] == (openai.Stream, False, True)


def test_abandoned_raw_stream_response_is_recorded_when_collected(client: openai.OpenAI, carrot: IngestServer) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=user("never parsed"), stream=True)
    assert raw.status_code == 200
    del raw
    gc.collect()
    [record] = records(carrot, 1)
    assert record["status"] == "success"


@pytest.mark.parametrize("endpoint", ["chat", "responses", "embeddings", "completions"])
def test_with_streaming_response_parse(endpoint: str, way: str, fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    calls: dict[str, Any] = {
        "chat": lambda r: r.chat.completions.with_streaming_response.create(model=MODEL, messages=user("sr")),
        "responses": lambda r: r.responses.with_streaming_response.create(model=MODEL, input="sr"),
        "embeddings": lambda r: r.embeddings.with_streaming_response.create(model=EMBEDDING_MODEL, input="sr"),
        "completions": lambda r: r.completions.with_streaming_response.create(
            model="gpt-3.5-turbo-instruct", prompt="sr"
        ),
    }
    with calls[endpoint](client) as response:
        result = response.parse()
    assert result is not None
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["metadata"].get("response_id") or endpoint == "embeddings"
    if endpoint != "embeddings":
        assert "sr" in record["output"]["message"]["content"]


@pytest.mark.parametrize("endpoint", ["responses", "embeddings", "completions"])
def test_with_raw_response_of_each_endpoint(endpoint: str, client: openai.OpenAI, carrot: IngestServer) -> None:
    calls: dict[str, Any] = {
        "responses": lambda: client.responses.with_raw_response.create(model=MODEL, input="raw"),
        "embeddings": lambda: client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input="raw"),
        "completions": lambda: client.completions.with_raw_response.create(
            model="gpt-3.5-turbo-instruct", prompt="raw"
        ),
    }
    calls[endpoint]().parse()
    [record] = records(carrot, 1)
    assert record["name"] == endpoint
    assert record["metadata"]["input_tokens"] > 0


def test_with_streaming_response_sse_lines_end_the_span_on_close(client: openai.OpenAI, carrot: IngestServer) -> None:
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=user("lines"), stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    [record] = records(carrot, 1)
    assert record["status"] == "success"


def test_async_with_raw_and_streaming_response(fake: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai

    async def main() -> None:
        async with carrot_ai.wrap(make_client(fake, is_async=True)) as client:
            raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=user("araw"))
            raw.parse()  # the legacy raw response parses synchronously
            async with client.responses.with_streaming_response.create(model=MODEL, input="asr") as response:
                await response.parse()

    asyncio.run(main())
    got = records(carrot, 2)
    assert [r["output"]["message"]["content"] for r in got] == ["Echo: araw", "Echo: asr"]


def test_responses_error_event_mid_stream_is_an_error(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    from tests.fakes import SSEEvent, SSEReply

    events = fake.build_response_events({"model": MODEL, "input": LONG})
    error = {"type": "error", "code": "server_error", "message": "The model crashed.", "param": None}
    fake.enqueue(SSEReply([*events[:5], SSEEvent({**error, "sequence_number": 5}, "error")]))
    got = list(client.responses.create(model=MODEL, input=LONG, stream=True))
    # The SDK yields it, nothing is raised (openai < 2 yields it as {"data": ..., "event": "error"}).
    assert got[-1].type == "error" or getattr(got[-1], "event", None) == "error"
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error"] == "The model crashed."
    assert record["metadata"]["error_code"] == "server_error"


def test_responses_failed_response_is_an_error(client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer) -> None:
    from tests.fakes import JSONReply

    failed = {
        **fake.build_response({"model": MODEL, "input": "x"}),
        "status": "failed",
        "output": [],
        "error": {"code": "rate_limit_exceeded", "message": "Too many requests."},
    }
    fake.enqueue(JSONReply(200, failed))
    response = client.responses.create(model=MODEL, input="x")
    assert response.status == "failed"
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["error_code"] == "rate_limit_exceeded"
    assert record["output"]["error"] == "Too many requests."


def test_responses_failed_event_mid_stream_is_an_error(
    client: openai.OpenAI, fake: FakeOpenAI, carrot: IngestServer
) -> None:
    from tests.fakes import SSEEvent, SSEReply

    events = fake.build_response_events({"model": MODEL, "input": LONG})
    failed = {
        **events[0].data["response"],  # type: ignore[index]
        "status": "failed",
        "error": {"code": "server_error", "message": "The model failed."},
    }
    fake.enqueue(
        SSEReply(
            [
                *events[:4],
                SSEEvent({"type": "response.failed", "sequence_number": 4, "response": failed}, "response.failed"),
            ]
        )
    )
    with contextlib.suppress(
        openai.APIError
    ):  # the SDK raises it (openai 1.x, 3.x); an SDK that yields it: same record
        for _event in client.responses.create(model=MODEL, input=LONG, stream=True):
            pass
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["error_code"] == "server_error"
    assert record["output"]["error"] == "The model failed."


def test_with_raw_response_parse_helpers(client: openai.OpenAI, carrot: IngestServer) -> None:
    chat = client.chat.completions.with_raw_response.parse(model=MODEL, messages=user("w"), response_format=Weather)
    parsed_chat = chat.parse()
    responses = client.responses.with_raw_response.parse(model=MODEL, input="w", text_format=Weather)
    parsed_response = responses.parse()
    got = records(carrot, 2)
    assert [r["name"] for r in got] == ["chat.completions", "responses"]
    assert json.loads(got[0]["output"]["message"]["content"]) == parsed_chat.choices[0].message.parsed.model_dump()  # type: ignore[union-attr]
    assert json.loads(got[1]["output"]["message"]["content"]) == parsed_response.output_parsed.model_dump()  # type: ignore[union-attr]


def test_async_legacy_completion_stream(fake: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai

    async def main() -> list[Any]:
        async with carrot_ai.wrap(make_client(fake, is_async=True)) as client:
            stream = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="async legacy", stream=True)
            assert isinstance(stream, openai.AsyncStream)
            return [c async for c in stream]

    chunks = asyncio.run(main())
    assert all(c.choices for c in chunks)
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "".join(c.choices[0].text for c in chunks)
    assert record["metadata"]["output_tokens"] > 0
