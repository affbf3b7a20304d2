"""FakeAnthropic driven by the real `anthropic` SDK over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import pytest

from tests.fakes._http import SSEReply
from tests.fakes.anthropic_server import FakeAnthropic, error_event, not_found, overloaded, stream_failing_with

USER = [{"role": "user", "content": "hello there"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}


def test_create(anthropic_client: anthropic.Anthropic, anthropic_server: FakeAnthropic) -> None:
    message = anthropic_client.messages.create(model="claude-x", max_tokens=100, messages=USER, system="be nice")
    assert message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 7 and message.usage.output_tokens == 3
    assert message.usage.cache_creation_input_tokens == 0 and message.usage.cache_read_input_tokens == 0
    request = anthropic_server.last_request
    assert request.path == "/v1/messages"
    assert request.json["system"] == "be nice"


def test_request_id_header(anthropic_client: anthropic.Anthropic) -> None:
    raw = anthropic_client.messages.with_raw_response.create(model="m", max_tokens=10, messages=USER)
    assert raw.headers["request-id"].startswith("req_fake_")
    assert raw.parse().content[0].text == "Echo: hello there"


def test_stream_true_sends_the_real_event_sequence(anthropic_client: anthropic.Anthropic) -> None:
    stream = anthropic_client.messages.create(model="m", max_tokens=100, messages=USER, stream=True)
    assert isinstance(stream, anthropic.Stream)
    events = list(stream)
    kinds = [e.type for e in events]  # the SDK drops `ping`
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[0].message.usage.input_tokens == 5
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Echo: hello there"
    delta = events[-2]
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens == 3


def test_stream_includes_a_ping(anthropic_client: anthropic.Anthropic) -> None:
    with anthropic_client.messages.with_streaming_response.create(
        model="m", max_tokens=10, messages=USER, stream=True
    ) as resp:
        text = "\n".join(resp.iter_lines())
    assert "event: ping" in text and "event: message_stop" in text


def test_messages_stream_helper(anthropic_client: anthropic.Anthropic) -> None:
    created = anthropic_client.messages.create(model="m", max_tokens=100, messages=USER)
    with anthropic_client.messages.stream(model="m", max_tokens=100, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) >= 2
    assert "".join(pieces) == final.content[0].text == created.content[0].text
    assert final.usage.output_tokens == created.usage.output_tokens
    assert final.stop_reason == "end_turn"


def test_tools(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(
        model="m", max_tokens=100, messages=[{"role": "user", "content": "use tools"}], tools=[WEATHER, TIME]
    )
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.stop_reason == "tool_use"
    assert message.content[1].input == {"city": "city-value"}

    forced = anthropic_client.messages.create(
        model="m",
        max_tokens=100,
        messages=USER,
        tools=[WEATHER, TIME],
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert [b.name for b in forced.content if b.type == "tool_use"] == ["get_time"]


def test_tool_use_streamed_in_json_fragments(anthropic_client: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {"model": "m", "max_tokens": 100, "tools": [WEATHER, TIME]}
    events = list(
        anthropic_client.messages.create(messages=[{"role": "user", "content": "use tools"}], stream=True, **kwargs)
    )
    partials = [e.delta.partial_json for e in events if e.type == "content_block_delta" and e.index == 1]
    assert len(partials) >= 3
    with anthropic_client.messages.stream(messages=[{"role": "user", "content": "use tools"}], **kwargs) as stream:
        final = stream.get_final_message()
    assert [b.input for b in final.content if b.type == "tool_use"] == [{"city": "city-value"}, {"tz": "tz-value"}]


def test_tool_result_round_trip(anthropic_client: anthropic.Anthropic) -> None:
    messages = [
        {"role": "user", "content": "use tool"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]},
    ]
    message = anthropic_client.messages.create(model="m", max_tokens=100, messages=messages, tools=[WEATHER])
    assert message.content[0].text == "Tool results: sunny"


def test_thinking(anthropic_client: anthropic.Anthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    message = anthropic_client.messages.create(model="m", max_tokens=2000, messages=USER, thinking=thinking)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].signature.startswith("fakesig")

    events = list(
        anthropic_client.messages.create(model="m", max_tokens=2000, messages=USER, thinking=thinking, stream=True)
    )
    delta_types = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert "thinking_delta" in delta_types and "signature_delta" in delta_types and "text_delta" in delta_types
    with anthropic_client.messages.stream(model="m", max_tokens=2000, messages=USER, thinking=thinking) as stream:
        final = stream.get_final_message()
    assert final.content[0].thinking == message.content[0].thinking
    assert final.content[0].signature == message.content[0].signature


def test_prompt_caching(anthropic_client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "a long shared system prompt", "cache_control": {"type": "ephemeral"}}]
    first = anthropic_client.messages.create(model="m", max_tokens=100, messages=USER, system=system)
    second = anthropic_client.messages.create(model="m", max_tokens=100, messages=USER, system=system)
    assert (first.usage.cache_creation_input_tokens, first.usage.cache_read_input_tokens) == (5, 0)
    assert (second.usage.cache_creation_input_tokens, second.usage.cache_read_input_tokens) == (0, 5)
    assert first.usage.input_tokens == second.usage.input_tokens == 5


def test_stop_sequence_and_max_tokens(anthropic_client: anthropic.Anthropic) -> None:
    stopped = anthropic_client.messages.create(model="m", max_tokens=100, messages=USER, stop_sequences=["there"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "there"
    cut = anthropic_client.messages.create(model="m", max_tokens=2, messages=USER)
    assert cut.stop_reason == "max_tokens" and cut.content[0].text == "Echo: hello"


def test_error_event_mid_stream(anthropic_client: anthropic.Anthropic, anthropic_server: FakeAnthropic) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": USER, "stream": True}
    anthropic_server.enqueue(stream_failing_with(anthropic_server.build_message_events(body), 3))
    received = []
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in anthropic_client.messages.create(**body):
            received.append(event.type)
    assert received == ["message_start", "content_block_start"]  # the third event was the (skipped) ping
    assert info.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    anthropic_server.enqueue(SSEReply([*anthropic_server.build_message_events(body)[:4], error_event()]))
    with pytest.raises(anthropic.APIStatusError):
        with anthropic_client.messages.stream(model="m", max_tokens=100, messages=USER) as stream:
            stream.get_final_message()


def test_mid_stream_reset_raises_a_transport_error(
    anthropic_client: anthropic.Anthropic, anthropic_server: FakeAnthropic
) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 100, "messages": USER, "stream": True}
    anthropic_server.enqueue(SSEReply(anthropic_server.build_message_events(body), reset_after=4))
    # Unlike openai 3.x, anthropic 2.x does not wrap errors raised while reading the stream body.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        list(anthropic_client.messages.create(**body))


def test_http_errors(anthropic_client: anthropic.Anthropic, anthropic_server: FakeAnthropic) -> None:
    anthropic_server.enqueue(not_found("claude-nope"))
    with pytest.raises(anthropic.NotFoundError) as info:
        anthropic_client.messages.create(model="claude-nope", max_tokens=10, messages=USER)
    assert info.value.body["error"] == {"type": "not_found_error", "message": "model: claude-nope"}
    anthropic_server.enqueue(overloaded())
    with pytest.raises(anthropic.APIStatusError) as overloaded_info:
        anthropic_client.messages.create(model="m", max_tokens=10, messages=USER)
    assert overloaded_info.value.status_code == 529


def test_overloaded_is_retried_by_the_sdk(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.enqueue(overloaded(0.01))
    with anthropic.Anthropic(base_url=anthropic_server.base_url, api_key="k", max_retries=2) as client:
        message = client.messages.create(model="m", max_tokens=10, messages=USER)
    assert message.content[0].text == "Echo: hello there"
    assert len(anthropic_server.requests) == 2


def test_beta_messages(anthropic_client: anthropic.Anthropic, anthropic_server: FakeAnthropic) -> None:
    message = anthropic_client.beta.messages.create(model="m", max_tokens=10, messages=USER, betas=["beta-1"])
    assert message.content[0].text == "Echo: hello there"
    assert anthropic_server.last_request.headers["anthropic-beta"] == "beta-1"
    # anthropic 2.x no longer adds ?beta=true (older SDKs did, see the cassettes); the server takes both.
    with httpx2.Client() as http:
        response = http.post(
            anthropic_server.base_url + "/v1/messages?beta=true", json={"model": "m", "max_tokens": 5, "messages": USER}
        )
    assert response.json()["content"][0]["text"] == "Echo: hello there"


def test_structured_output_format(anthropic_client: anthropic.Anthropic) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    message = anthropic_client.beta.messages.create(
        model="m",
        max_tokens=100,
        messages=USER,
        extra_body={"output_format": {"type": "json_schema", "schema": schema}},
    )
    assert message.content[0].text == '{"answer": 1}'


def test_async_create_and_stream(anthropic_server: FakeAnthropic) -> None:
    async def run() -> tuple[str, str]:
        async with anthropic.AsyncAnthropic(base_url=anthropic_server.base_url, api_key="k", max_retries=0) as client:
            message = await client.messages.create(model="m", max_tokens=10, messages=USER)
            async with client.messages.stream(model="m", max_tokens=10, messages=USER) as stream:
                text = "".join([piece async for piece in stream.text_stream])
            return message.content[0].text, text

    assert asyncio.run(run()) == ("Echo: hello there", "Echo: hello there")
