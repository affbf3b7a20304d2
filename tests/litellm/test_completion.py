"""litellm.completion / acompletion over the fake OpenAI and Anthropic servers: one record each, real provider."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from dirty_equals import IsPositiveFloat, IsStr

from tests.fakes._http import ErrorReply
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI, model_not_found
from tests.ingest_server import IngestServer
from tests.litellm.conftest import ANTHROPIC_MODEL, OPENAI_KEY, OPENAI_MODEL, records, user, via_anthropic, via_openai

litellm = pytest.importorskip("litellm", reason="litellm runs in its own environment: .ci/litellm_env.sh")
pytestmark = pytest.mark.litellm


def test_completion_through_openai_is_one_record_with_the_real_provider(
    way: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    response = litellm.completion(model=OPENAI_MODEL, messages=user("hello there"), temperature=0.2, **via_openai(oai))
    assert type(response) is litellm.ModelResponse
    [record] = records(carrot, 1)
    assert record == {
        "id": IsStr(),
        "name": "chat.completions",  # carrot-ai 0.2.1's name for a litellm completion
        "input": {"model": OPENAI_MODEL, "messages": user("hello there"), "temperature": 0.2},
        "output": {"message": {"role": "assistant", "content": "Echo: hello there"}},
        "metadata": {
            "type": "llm",
            "source": "litellm",
            "operation": "chat",
            "model": "gpt-4o-mini",
            "provider": "openai",
            "input_tokens": 5,
            "output_tokens": 3,
            "total_tokens": 8,
            "finish_reasons": ["stop"],
            "response_id": IsStr(),
            "cost_usd": IsPositiveFloat(),
            "latency_ms": IsPositiveFloat(),
            "trace_id": IsStr(),
        },
        "status": "success",
        "started_at": IsStr(),
        "ended_at": IsStr(),
    }


def test_completion_through_anthropic_records_anthropic(way: str, ant: FakeAnthropic, carrot: IngestServer) -> None:
    response = litellm.completion(
        model=ANTHROPIC_MODEL, messages=user("hi claude"), max_tokens=50, **via_anthropic(ant)
    )
    assert response.choices[0].message.content == "Echo: hi claude"
    [record] = records(carrot, 1)
    assert record["metadata"]["provider"] == "anthropic"
    assert record["metadata"]["model"] == "claude-opus-4-5"
    assert record["metadata"]["input_tokens"] == 5
    assert record["metadata"]["cost_usd"] > 0
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: hi claude"}}


def test_acompletion_is_one_record(way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer) -> None:
    async def main() -> None:
        await litellm.acompletion(model=OPENAI_MODEL, messages=user("async openai"), **via_openai(oai))
        await litellm.acompletion(
            model=ANTHROPIC_MODEL, messages=user("async claude"), max_tokens=50, **via_anthropic(ant)
        )

    asyncio.run(main())
    got = {r["metadata"]["provider"]: r for r in records(carrot, 2)}
    assert got["openai"]["name"] == "chat.completions"
    assert got["openai"]["output"]["message"]["content"] == "Echo: async openai"
    assert got["anthropic"]["output"]["message"]["content"] == "Echo: async claude"


def test_tool_calls_are_recorded(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    litellm.completion(model=OPENAI_MODEL, messages=user("please use tool"), tools=tools, **via_openai(oai))
    [record] = records(carrot, 1)
    [call] = record["output"]["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "city-value"}'}
    assert record["metadata"]["finish_reasons"] == ["tool_calls"]
    assert record["input"]["tools"] == tools


def test_an_error_is_recorded_and_raised_unchanged(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    oai.enqueue(model_not_found("gpt-4o-mini"))
    with pytest.raises(litellm.NotFoundError):
        litellm.completion(model=OPENAI_MODEL, messages=user("missing"), **via_openai(oai))
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error_type"] == "NotFoundError"
    assert record["metadata"]["http_status"] == 404
    assert record["metadata"]["provider"] == "openai"


def test_patch_litellm_name_and_tags(oai: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai
    from carrot_ai.instrumentation.litellm._patch import unpatch

    carrot_ai.patch_litellm(name="support-bot", tags=["prod"])
    try:
        carrot_ai.patch_litellm(name="support-bot-v2", tags=["prod", "v2"])  # again: replaces, never wraps twice
        litellm.completion(model=OPENAI_MODEL, messages=user("tagged"), **via_openai(oai))
    finally:
        unpatch()
    [record] = records(carrot, 1)
    assert record["name"] == "support-bot-v2"
    assert record["tags"] == ["prod", "v2"]
    litellm.completion(model=OPENAI_MODEL, messages=user("after unpatch"), **via_openai(oai))
    records(carrot, 1)


def test_patch_litellm_tags_given_as_one_string_are_one_tag(oai: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai
    from carrot_ai.instrumentation.litellm._patch import unpatch

    carrot_ai.patch_litellm(tags="prod")  # carrot-ai 0.2.1 took it (split into letters); carrot raised TypeError
    try:
        litellm.completion(model=OPENAI_MODEL, messages=user("one tag"), **via_openai(oai))
    finally:
        unpatch()
    [record] = records(carrot, 1)
    assert record["tags"] == ["prod"]


def test_positional_model_and_messages(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    litellm.completion(OPENAI_MODEL, user("positional"), **via_openai(oai))
    [record] = records(carrot, 1)
    assert record["input"]["messages"] == user("positional")
    assert record["metadata"]["provider"] == "openai"


def test_routing_is_asked_of_litellm_once_per_model_and_base(
    way: str, oai: FakeOpenAI, carrot: IngestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carrot_ai.instrumentation.litellm import _calls

    monkeypatch.setattr(_calls, "_routes", {})
    asked: list[str] = []
    route = litellm.get_llm_provider

    def counting(*args: object, **kwargs: object) -> object:
        asked.append(str(kwargs.get("model")))
        return route(*args, **kwargs)

    monkeypatch.setattr(litellm, "get_llm_provider", counting)
    for text in ("one", "two", "three"):
        litellm.completion(model=OPENAI_MODEL, messages=user(text), **via_openai(oai))
    ours = [m for m in asked if m == OPENAI_MODEL]
    got = records(carrot, 3)
    assert all(r["metadata"]["provider"] == "openai" and r["metadata"]["model"] == "gpt-4o-mini" for r in got)
    assert len(_calls._routes) == 1
    assert len(ours) == 1, asked  # carrot asked LiteLLM's router once (LiteLLM's own routing calls it directly)
    key = next(iter(_calls._routes))
    assert key[0] == OPENAI_MODEL and _calls._routes[key][1] == "openai"


def test_a_routers_call_records_the_request_not_the_routers_settings(
    way: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    from litellm import Router

    router = Router(
        model_list=[{"model_name": "primary", "litellm_params": {"model": OPENAI_MODEL, **via_openai(oai)}}]
    )
    router.completion(model="primary", messages=user("routed"))
    asyncio.run(router.acompletion(model="primary", messages=user("routed async")))
    for record in records(carrot, 2):
        assert set(record["input"]) <= {"model", "messages", "stream"}, record["input"]
        assert record["input"]["model"] == "primary"  # the model group the application asked for
        assert record["metadata"]["model"] == "gpt-4o-mini"  # the deployment that answered


def test_a_request_that_got_no_answer_records_no_http_status(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    """LiteLLM gives a connection error status 500 and a timeout 408 of its own: neither was an HTTP answer."""
    from tests.fakes._http import Hang, Reset

    oai.enqueue(Reset())
    with pytest.raises((litellm.APIConnectionError, litellm.InternalServerError)):  # (as litellm 1.105 maps it)
        litellm.completion(model=OPENAI_MODEL, messages=user("reset"), max_retries=0, **via_openai(oai))
    oai.enqueue(Hang())
    with pytest.raises(litellm.Timeout):
        litellm.completion(model=OPENAI_MODEL, messages=user("hang"), timeout=0.5, max_retries=0, **via_openai(oai))
    got = records(carrot, 2)
    assert [r["status"] for r in got] == ["error", "error"]
    assert [r["metadata"].get("http_status") for r in got] == [None, None]


@pytest.mark.parametrize(("status", "raised"), [(529, "InternalServerError"), (413, "BadRequestError")])
def test_the_http_status_is_the_one_the_provider_answered(
    way: str, ant: FakeAnthropic, carrot: IngestServer, status: int, raised: str
) -> None:
    """LiteLLM raises Anthropic's 529 (overloaded) as its InternalServerError with status 500, and a 413 as its
    BadRequestError with 400: the record keeps the status the provider answered, which the error's chain holds."""
    ant.enqueue(ErrorReply(status, message="no"))
    with pytest.raises(getattr(litellm, raised)) as caught:
        litellm.completion(
            model=ANTHROPIC_MODEL, messages=user("hi"), max_tokens=10, max_retries=0, **via_anthropic(ant)
        )
    assert caught.value.status_code != status  # (LiteLLM's own mapping: what the record must not take)
    [record] = records(carrot, 1)
    assert record["output"]["error_type"] == raised
    assert record["metadata"]["http_status"] == status


def test_a_pydantic_response_format_is_recorded_as_the_json_schema_sent(
    way: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    """``response_format=Model`` (structured output): LiteLLM sends the model's JSON Schema; the record's input has
    that schema, not the class's repr (which says nothing of what the model was asked for)."""
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        celsius: float

    response = litellm.completion(
        model=OPENAI_MODEL, messages=user("weather?"), response_format=Weather, **via_openai(oai)
    )
    Weather.model_validate_json(response.choices[0].message.content)
    sent = oai.last_request.json["response_format"]
    assert sent["json_schema"]["schema"]["properties"].keys() == {"city", "celsius"}
    [record] = records(carrot, 1)
    assert record["input"]["response_format"] == sent


def test_the_models_thinking_is_recorded_as_reasoning(way: str, ant: FakeAnthropic, carrot: IngestServer) -> None:
    """LiteLLM hands Anthropic's thinking over as ``reasoning_content``; the record keeps it as ``reasoning``, as
    carrot's own Anthropic instrumentation does."""
    call = {
        "model": ANTHROPIC_MODEL,
        "messages": user("think hard"),
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        **via_anthropic(ant),
    }
    response = litellm.completion(**call)
    thinking = response.choices[0].message.reasoning_content
    assert isinstance(thinking, str) and thinking
    chunks = list(litellm.completion(stream=True, **call))
    streamed = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert streamed
    got = records(carrot, 2)
    assert [r["output"]["message"].get("reasoning") for r in got] == [thinking, streamed]


def test_an_http_error_raised_while_handling_a_timeout_keeps_its_status(
    way: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    """A fallback call made in an ``except litellm.Timeout:`` block: its real 429 is recorded as such (the timeout the
    application was handling is further down the exception's chain, and says nothing about this call)."""
    from tests.fakes._http import Hang
    from tests.fakes.openai_server import rate_limit

    oai.enqueue(Hang(), rate_limit())
    try:
        litellm.completion(model=OPENAI_MODEL, messages=user("slow"), timeout=0.5, max_retries=0, **via_openai(oai))
    except litellm.Timeout:
        with pytest.raises(litellm.RateLimitError):
            litellm.completion(model=OPENAI_MODEL, messages=user("fallback"), max_retries=0, **via_openai(oai))
    got = records(carrot, 2)
    assert {r["input"]["messages"][-1]["content"]: r["metadata"].get("http_status") for r in got} == {
        "slow": None,
        "fallback": 429,
    }


def test_a_completion_answered_by_a_fallback_records_the_fallbacks_model_and_provider(
    way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer
) -> None:
    """``completion(fallbacks=[...])``: LiteLLM tries each model in turn (through ``litellm.acompletion``); the record
    is the one call, with the model, provider and cost of the one that answered."""
    fallbacks = [{"model": ANTHROPIC_MODEL, "max_tokens": 40, **via_anthropic(ant)}]
    oai.enqueue(ErrorReply(500, message="primary down"))
    response = litellm.completion(
        model=OPENAI_MODEL, messages=user("fall back"), fallbacks=fallbacks, max_retries=0, **via_openai(oai)
    )
    oai.enqueue(ErrorReply(500, message="primary down"))
    asyncio.run(
        litellm.acompletion(
            model=OPENAI_MODEL, messages=user("fall back"), fallbacks=fallbacks, max_retries=0, **via_openai(oai)
        )
    )
    assert response.model == "claude-opus-4-5"
    for record in records(carrot, 2):
        assert record["status"] == "success"
        assert record["metadata"]["provider"] == "anthropic"
        assert record["metadata"]["model"] == "claude-opus-4-5"
        assert record["metadata"]["cost_usd"] == pytest.approx(response._hidden_params["response_cost"])


def test_a_stream_answered_by_a_fallback_is_recorded_when_it_ends(
    way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer
) -> None:
    fallbacks = [{"model": ANTHROPIC_MODEL, "max_tokens": 40, **via_anthropic(ant)}]
    oai.enqueue(ErrorReply(500, message="primary down"))

    async def main() -> list[Any]:
        stream = await litellm.acompletion(
            model=OPENAI_MODEL,
            messages=user("stream fall back"),
            fallbacks=fallbacks,
            stream=True,
            max_retries=0,
            **via_openai(oai),
        )
        assert isinstance(stream, litellm.CustomStreamWrapper)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    [record] = records(carrot, 1)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: stream fall back"
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: stream fall back"}}
    assert record["metadata"]["provider"] == "anthropic"
    assert record["metadata"]["output_tokens"] == 4


def test_arguments_litellm_rejects_are_recorded_with_its_error(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    """An ``api_base`` or ``custom_llm_provider`` that is no string: LiteLLM's own error, and a record of it."""
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(model=OPENAI_MODEL, messages=user("base"), api_base=5, api_key=OPENAI_KEY)
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(
            model=OPENAI_MODEL, messages=user("provider"), custom_llm_provider=["openai"], **via_openai(oai)
        )
    got = records(carrot, 2)
    assert [r["status"] for r in got] == ["error", "error"]
    assert [r["output"]["error_type"] for r in got] == ["BadRequestError", "BadRequestError"]


def test_a_sync_stream_with_fallbacks_is_recorded_as_its_caller_read_it(
    way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer
) -> None:
    """LiteLLM makes a sync completion's tries through ``litellm.acompletion``: the stream it hands back is an async
    call's (litellm 1.105 then fails reading it as a sync one); the record is what the caller got, either way."""
    fallbacks = [{"model": ANTHROPIC_MODEL, "max_tokens": 40, **via_anthropic(ant)}]
    stream = litellm.completion(
        model=OPENAI_MODEL, messages=user("sync stream"), fallbacks=fallbacks, stream=True, **via_openai(oai)
    )
    error = None
    try:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    except Exception as exc:
        error = type(exc).__name__
    [record] = records(carrot, 1)
    if error is None:
        assert record["output"] == {"message": {"role": "assistant", "content": text}}
    else:
        assert (record["status"], record["output"]["error_type"]) == ("error", error)


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_audio_tokens_are_recorded_and_priced_at_the_audio_rates(
    way: str, oai: FakeOpenAI, carrot: IngestServer, stream: bool
) -> None:
    """LiteLLM's usage keeps OpenAI's audio token details: the record carries them and genai-prices' audio price."""
    import base64
    import datetime

    import genai_prices

    audio = base64.b64encode(bytes(3200)).decode("ascii")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what does this say"},
                {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
            ],
        }
    ]
    speak: dict[str, Any] = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "pcm16"}}
    if stream:
        speak["stream_options"] = {"include_usage": True}
    response = litellm.completion(
        model="openai/gpt-audio", messages=messages, stream=stream, **speak, **via_openai(oai)
    )
    usage = [chunk for chunk in response if getattr(chunk, "usage", None)][-1].usage if stream else response.usage
    [record] = records(carrot, 1)
    metadata = record["metadata"]
    assert metadata["input_audio_tokens"] == usage.prompt_tokens_details.audio_tokens > 0
    assert metadata["output_audio_tokens"] == usage.completion_tokens_details.audio_tokens > 0
    when = datetime.datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cache_read_tokens=metadata.get("cache_read_input_tokens", 0),
            input_audio_tokens=usage.prompt_tokens_details.audio_tokens,
            output_audio_tokens=usage.completion_tokens_details.audio_tokens,
        ),
        "gpt-audio",
        provider_id="openai",
        genai_request_timestamp=when,
    ).total_price
    assert metadata["cost_usd"] == float(expected)
