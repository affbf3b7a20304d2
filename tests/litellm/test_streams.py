"""Streaming: the caller gets LiteLLM's CustomStreamWrapper (isinstance holds) with every chunk, unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fakes._http import SSEReply
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.litellm.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, records, user, via_anthropic, via_openai

litellm = pytest.importorskip("litellm", reason="litellm runs in its own environment: .ci/litellm_env.sh")
pytestmark = pytest.mark.litellm


def texts(chunks: list[Any]) -> list[Any]:
    return [c.choices[0].delta.content if c.choices else None for c in chunks]


def test_stream_keeps_its_type_and_chunks(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    stream = litellm.completion(model=OPENAI_MODEL, messages=user("stream me please"), stream=True, **via_openai(oai))
    assert isinstance(stream, litellm.CustomStreamWrapper)
    chunks = list(stream)
    assert "".join(t for t in texts(chunks) if t) == "Echo: stream me please"
    [record] = records(carrot, 1)
    assert record["name"] == "chat.completions"
    assert record["input"]["stream"] is True
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: stream me please"}}
    assert record["metadata"]["provider"] == "openai"
    assert record["metadata"]["finish_reasons"] == ["stop"]
    assert record["metadata"]["time_to_first_token_ms"] >= 0


def test_stream_chunks_are_the_same_as_without_carrot(oai: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai
    from carrot_ai.instrumentation.litellm._patch import unpatch

    def run() -> list[Any]:
        stream = litellm.completion(model=OPENAI_MODEL, messages=user("same chunks"), stream=True, **via_openai(oai))
        return [(c.choices[0].delta.content, c.choices[0].finish_reason) for c in stream]

    plain = run()
    carrot_ai.patch_litellm()
    try:
        traced = run()
    finally:
        unpatch()
    assert traced == plain
    records(carrot, 1)


def test_stream_usage_when_the_caller_asks_for_it(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    stream = litellm.completion(
        model=OPENAI_MODEL,
        messages=user("count my tokens"),
        stream=True,
        stream_options={"include_usage": True},
        **via_openai(oai),
    )
    list(stream)
    [record] = records(carrot, 1)
    assert record["metadata"]["input_tokens"] == 6
    assert record["metadata"]["output_tokens"] == 4
    assert record["metadata"]["cost_usd"] > 0


def test_anthropic_stream_has_usage_and_tool_calls(way: str, ant: FakeAnthropic, carrot: IngestServer) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
        }
    ]
    stream = litellm.completion(
        model=ANTHROPIC_MODEL,
        messages=user("use tool now"),
        tools=tools,
        max_tokens=50,
        stream=True,
        **via_anthropic(ant),
    )
    list(stream)
    [record] = records(carrot, 1)
    [call] = record["output"]["message"]["tool_calls"]
    assert call["function"]["name"] == "lookup"
    assert call["function"]["arguments"].replace(" ", "") == '{"q":"q-value"}'
    assert record["metadata"]["provider"] == "anthropic"
    assert record["metadata"]["input_tokens"] > 0


def test_async_stream_is_one_record(way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer) -> None:
    async def main() -> list[str]:
        got = []
        for model, options in ((OPENAI_MODEL, via_openai(oai)), (ANTHROPIC_MODEL, via_anthropic(ant))):
            stream = await litellm.acompletion(
                model=model, messages=user("async stream"), stream=True, max_tokens=50, **options
            )
            assert isinstance(stream, litellm.CustomStreamWrapper)
            got.append("".join([c.choices[0].delta.content or "" async for c in stream]))
        return got

    assert asyncio.run(main()) == ["Echo: async stream", "Echo: async stream"]
    got = records(carrot, 2)
    assert {r["name"] for r in got} == {"chat.completions"}
    assert {r["metadata"]["provider"] for r in got} == {"openai", "anthropic"}
    assert all(r["output"]["message"]["content"] == "Echo: async stream" for r in got)


def test_stream_abandoned_early_ends_the_span_once(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    stream = litellm.completion(
        model=OPENAI_MODEL, messages=user("one two three four five six"), stream=True, **via_openai(oai)
    )
    next(iter(stream))
    del stream
    [record] = records(carrot, 1)
    assert record["status"] == "success"


def test_stream_failing_midway_is_an_error_record_with_partial_output(
    way: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    body = {"model": "gpt-4o-mini", "messages": user("break midway please"), "stream": True}
    oai.enqueue(SSEReply(oai.build_chat_chunks(body), reset_after=3))
    stream = litellm.completion(
        model=OPENAI_MODEL, messages=user("break midway please"), stream=True, **via_openai(oai)
    )
    with pytest.raises(Exception):  # noqa: B017  (LiteLLM maps the reset to one of its own errors)
        list(stream)
    [record] = records(carrot, 1)
    assert record["status"] == "error"


def test_a_streams_proxy_has_what_litellms_stream_has(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    """No ``close()`` and no ``with`` where LiteLLM's ``CustomStreamWrapper`` has neither."""
    import carrot_ai
    from carrot_ai.instrumentation.litellm._patch import unpatch

    def shape(stream: Any) -> tuple[bool, str]:
        try:
            with stream:
                pass
            entered = "entered"
        except TypeError as exc:
            entered = str(exc)
        closable = hasattr(stream, "close")
        list(stream)
        return closable, entered

    wrapped = shape(litellm.completion(model=OPENAI_MODEL, messages=user("shape"), stream=True, **via_openai(oai)))
    if way == "patch_litellm":
        unpatch()
        try:
            bare = shape(litellm.completion(model=OPENAI_MODEL, messages=user("bare"), stream=True, **via_openai(oai)))
        finally:
            carrot_ai.patch_litellm()
        assert wrapped == bare
    assert wrapped[0] is False and "context manager" in wrapped[1]
    records(carrot, 1)
