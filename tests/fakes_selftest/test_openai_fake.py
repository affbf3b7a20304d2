"""FakeOpenAI driven by the real `openai` SDK over HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest
from pydantic import BaseModel

from tests.fakes._http import ErrorReply, Hang, Slow, SSEReply
from tests.fakes.openai_server import FakeOpenAI, model_not_found, rate_limit, server_error

USER = [{"role": "user", "content": "hello there"}]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    },
]


def test_chat_completion(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    completion = openai_client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 3, 8)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0
    request = openai_server.last_request
    assert request.path == "/v1/chat/completions"
    assert request.json == {"model": "gpt-4o-mini", "messages": USER}
    assert request.headers["authorization"] == "Bearer sk-test"


def test_base_url_without_v1_prefix_works(openai_server: FakeOpenAI) -> None:
    with openai.OpenAI(base_url=openai_server.base_url, api_key="sk-test", max_retries=0) as client:
        completion = client.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "Echo: hello there"
    assert openai_server.last_request.path == "/chat/completions"


def test_async_chat_completion(openai_server: FakeOpenAI) -> None:
    async def run() -> str | None:
        async with openai.AsyncOpenAI(base_url=openai_server.base_url + "/v1", api_key="k", max_retries=0) as client:
            completion = await client.chat.completions.create(model="m", messages=USER)
            return completion.choices[0].message.content

    assert asyncio.run(run()) == "Echo: hello there"
    assert openai_server.last_request.headers["x-stainless-async"].startswith("async")


def test_repeated_prompt_reports_cached_tokens(openai_client: openai.OpenAI) -> None:
    first = openai_client.chat.completions.create(model="m", messages=USER)
    second = openai_client.chat.completions.create(model="m", messages=USER)
    assert first.usage and first.usage.prompt_tokens_details
    assert second.usage and second.usage.prompt_tokens_details
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == second.usage.prompt_tokens == 5


def test_reasoning_effort_reports_reasoning_tokens(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(model="o4-mini", messages=USER, reasoning_effort="low")
    assert completion.usage and completion.usage.completion_tokens_details
    assert completion.usage.completion_tokens_details.reasoning_tokens == 16
    assert completion.usage.completion_tokens == 16 + 3


def test_max_tokens_cuts_with_finish_reason_length(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(model="m", messages=USER, max_tokens=2)
    assert completion.choices[0].message.content == "Echo: hello"
    assert completion.choices[0].finish_reason == "length"


def test_chat_stream_without_usage(openai_client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "one two three four five six"}]
    stream = openai_client.chat.completions.create(model="m", messages=messages, stream=True)
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Echo: one two three four five six"
    assert sum(1 for c in chunks if c.choices[0].delta.content) >= 3
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_stream_with_include_usage(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="m", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


def test_tool_calls_non_stream(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "please use tool"}], tools=TOOLS
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "city-value", "unit": "c"}


def test_tool_round_trip_answers_with_the_results(openai_client: openai.OpenAI) -> None:
    messages = [
        {"role": "user", "content": "use tool"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    completion = openai_client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert completion.choices[0].message.content == "Tool results: sunny"
    assert completion.choices[0].finish_reason == "stop"


def test_parallel_tool_call_stream_assembles_valid_json(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "use tools"}], tools=TOOLS, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    fragments: dict[int, int] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            if delta.index not in calls:
                assert delta.id and delta.function and delta.function.name
                calls[delta.index] = {"id": delta.id, "name": delta.function.name, "arguments": ""}
            else:
                assert delta.id is None
                assert delta.function is None or delta.function.name is None
            calls[delta.index]["arguments"] += (delta.function.arguments or "") if delta.function else ""
            fragments[delta.index] = fragments.get(delta.index, 0) + 1
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "city-value", "unit": "c"}
    assert json.loads(calls[1]["arguments"]) == {"tz": "tz-value"}
    assert all(n >= 3 for n in fragments.values())


def test_n_choices_are_distinct(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(model="m", messages=USER, n=2)
    texts = [c.message.content for c in completion.choices]
    assert [c.index for c in completion.choices] == [0, 1]
    assert texts == ["Echo: hello there", "Echo #2: hello there"]

    stream = openai_client.chat.completions.create(model="m", messages=USER, n=2, stream=True)
    streamed = {0: "", 1: ""}
    for chunk in stream:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert list(streamed.values()) == texts


def test_chat_stream_helper(openai_client: openai.OpenAI) -> None:
    with openai_client.chat.completions.stream(model="m", messages=USER) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.delta" in kinds and "content.done" in kinds
    assert final.choices[0].message.content == "Echo: hello there"


class Weather(BaseModel):
    city: str
    temperature: float
    tags: list[str]


def test_chat_parse_with_pydantic_model(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    completion = openai_client.chat.completions.parse(model="m", messages=USER, response_format=Weather)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Weather)
    assert parsed.city == "city-value"
    assert openai_server.last_request.json["response_format"]["type"] == "json_schema"
    assert openai_server.last_request.headers["x-stainless-helper-method"] == "chat.completions.parse"


def test_responses_create(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(model="gpt-4o-mini", input="hi you", instructions="be brief")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "Echo: hi you"
    assert response.output[0].type == "message"
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens == 7 and usage.output_tokens == 3 and usage.total_tokens == 10
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_responses_reasoning_and_tools(openai_client: openai.OpenAI) -> None:
    tools = [
        {"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]} for t in TOOLS
    ]
    response = openai_client.responses.create(
        model="o4-mini", input="use tools", tools=tools, reasoning={"effort": "medium"}
    )
    assert [item.type for item in response.output] == ["reasoning", "function_call", "function_call"]
    assert response.usage and response.usage.output_tokens_details.reasoning_tokens == 32
    assert json.loads(response.output[1].arguments) == {"city": "city-value", "unit": "c"}


def test_responses_stream_event_sequence(openai_client: openai.OpenAI) -> None:
    stream = openai_client.responses.create(model="m", input="one two three four five", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert kinds.count("response.output_text.delta") >= 3
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1].response
    assert completed.usage is not None and completed.usage.total_tokens == 14
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == completed.output_text


def test_responses_stream_helper(openai_client: openai.OpenAI) -> None:
    with openai_client.responses.stream(model="m", input="hi there") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Echo: hi there"


def test_embeddings(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    result = openai_client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert openai_server.last_request.json["encoding_format"] == "base64"
    assert [len(d.embedding) for d in result.data] == [1536, 1536]
    assert result.usage.prompt_tokens == 3
    floats = openai_client.embeddings.create(model="text-embedding-3-small", input="a b", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, abs=1e-5)
    small = openai_client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=8)
    assert len(small.data[0].embedding) == 8
    b64 = openai_client.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="base64")
    assert isinstance(b64.data[0].embedding, str)


def test_legacy_completions(openai_client: openai.OpenAI) -> None:
    completion = openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say this")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Echo: say this"
    stream = openai_client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="say this", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Echo: say this"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5


def test_with_raw_response(openai_client: openai.OpenAI) -> None:
    raw = openai_client.chat.completions.with_raw_response.create(model="m", messages=USER)
    assert raw.status_code == 200
    assert raw.headers["x-request-id"].startswith("req_fake_")
    assert raw.headers["content-type"] == "application/json"
    assert raw.parse().choices[0].message.content == "Echo: hello there"


def test_with_streaming_response(openai_client: openai.OpenAI) -> None:
    with openai_client.chat.completions.with_streaming_response.create(model="m", messages=USER, stream=True) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_scripted_rate_limit_is_retried_by_the_sdk(openai_server: FakeOpenAI) -> None:
    openai_server.enqueue(rate_limit(retry_after=0.01))
    with openai.OpenAI(base_url=openai_server.base_url + "/v1", api_key="k", max_retries=2) as client:
        completion = client.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "Echo: hello there"
    assert [r.headers["x-stainless-retry-count"] for r in openai_server.requests] == ["0", "1"]


def test_rate_limit_without_retries_raises(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    openai_server.enqueue(rate_limit())
    with pytest.raises(openai.RateLimitError) as info:
        openai_client.chat.completions.create(model="gpt-4o", messages=USER)
    assert info.value.status_code == 429
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after-ms"] == "10"


def test_server_error_and_not_found(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    openai_server.enqueue(server_error(), model_not_found("gpt-nope"), ErrorReply(400, message="bad thing"))
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.NotFoundError) as info:
        openai_client.chat.completions.create(model="gpt-nope", messages=USER)
    assert info.value.code == "model_not_found"
    assert "gpt-nope" in info.value.message
    with pytest.raises(openai.BadRequestError, match="bad thing"):
        openai_client.chat.completions.create(model="m", messages=USER)


def test_mid_stream_reset_raises_in_the_sdk(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "a b c d e f g h"}], "stream": True}
    openai_server.enqueue(SSEReply(openai_server.build_chat_chunks(body), reset_after=3))
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in openai_client.chat.completions.create(**body):
            received.append(chunk)
    assert len(received) == 3


def test_hang_times_out_in_the_sdk(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    openai_server.enqueue(Hang())
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        openai_client.with_options(timeout=0.3).chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - started < 3


def test_slow_reply_still_answers(openai_client: openai.OpenAI, openai_server: FakeOpenAI) -> None:
    openai_server.enqueue(Slow(0.15))
    started = time.monotonic()
    completion = openai_client.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - started >= 0.15
    assert completion.choices[0].message.content == "Echo: hello there"
