"""A ``litellm.Router`` call is one record, however many attempts its retries and fallbacks make: its latency covers
them all, and its model and provider are those of the attempt that answered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.fakes._http import ErrorReply
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.litellm.conftest import ANTHROPIC_MODEL, OPENAI_MODEL, records, user, via_anthropic, via_openai

litellm = pytest.importorskip("litellm", reason="litellm runs in its own environment: .ci/litellm_env.sh")
pytestmark = pytest.mark.litellm

EMBEDDING_MODEL = "openai/text-embedding-3-small"


def fallback_router(oai: FakeOpenAI, ant: FakeAnthropic) -> Any:
    """``primary`` (OpenAI) falls back to ``backup`` (Anthropic); no retries."""
    return litellm.Router(
        model_list=[
            {"model_name": "primary", "litellm_params": {"model": OPENAI_MODEL, **via_openai(oai)}},
            {
                "model_name": "backup",
                "litellm_params": {"model": ANTHROPIC_MODEL, "max_tokens": 50, **via_anthropic(ant)},
            },
        ],
        fallbacks=[{"primary": ["backup"]}],
        num_retries=0,
    )


def retry_router(oai: FakeOpenAI) -> Any:
    return litellm.Router(
        model_list=[
            {"model_name": "primary", "litellm_params": {"model": OPENAI_MODEL, **via_openai(oai)}},
            {"model_name": "vectors", "litellm_params": {"model": EMBEDDING_MODEL, **via_openai(oai)}},
        ],
        num_retries=1,
        retry_after=0,
    )


def texts(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_fallback_is_one_record_of_the_call_with_the_model_that_answered(
    way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer
) -> None:
    router = fallback_router(oai, ant)
    oai.enqueue(ErrorReply(500, message="primary down"))
    response = router.completion(model="primary", messages=user("fall back"))
    assert len(oai.requests) == 1 and len(ant.requests) == 1
    [record] = records(carrot, 1)
    assert record["name"] == "litellm.Router.completion"
    assert record["status"] == "success"
    assert record["input"] == {"model": "primary", "messages": user("fall back")}
    assert record["output"]["message"]["content"] == response.choices[0].message.content
    assert record["metadata"]["provider"] == "anthropic"
    assert record["metadata"]["model"] == response.model
    assert record["metadata"]["output_tokens"] > 0


def test_retries_are_one_record_whose_latency_covers_every_attempt(
    way: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    router = retry_router(oai)
    oai.enqueue(ErrorReply(500, message="transient"))
    started = time.perf_counter()
    router.completion(model="primary", messages=user("retry"))
    took_ms = (time.perf_counter() - started) * 1000
    assert len(oai.requests) == 2
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["metadata"]["provider"] == "openai"
    assert record["metadata"]["model"] == "gpt-4o-mini"
    assert record["metadata"]["latency_ms"] >= 0.9 * took_ms  # (the Router waits before it retries)


def test_an_async_fallback_is_one_record(way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer) -> None:
    router = fallback_router(oai, ant)
    oai.enqueue(ErrorReply(500, message="primary down"))
    asyncio.run(router.acompletion(model="primary", messages=user("fall back async")))
    [record] = records(carrot, 1)
    assert record["name"] == "litellm.Router.acompletion"
    assert record["status"] == "success"
    assert record["input"]["model"] == "primary"
    assert record["metadata"]["provider"] == "anthropic"


def test_a_call_whose_every_attempt_failed_is_one_error_record(
    way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer
) -> None:
    router = fallback_router(oai, ant)
    oai.enqueue(ErrorReply(500, message="primary down"))
    ant.enqueue(ErrorReply(500, message="backup down"))
    with pytest.raises(litellm.InternalServerError):
        router.completion(model="primary", messages=user("nobody answers"))
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["metadata"]["provider"] == "anthropic"  # the last attempt's
    assert record["metadata"]["http_status"] == 500


def test_a_router_stream_keeps_the_routers_type_and_chunks(
    way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer
) -> None:
    router = fallback_router(oai, ant)
    oai.enqueue(ErrorReply(500, message="primary down"))
    stream = router.completion(model="primary", messages=user("stream after a fallback"), stream=True)
    assert type(stream).__name__ == "SyncFallbackStreamWrapper"
    streamed = texts(list(stream))

    async def main() -> tuple[str, str]:
        astream = await router.acompletion(model="primary", messages=user("async stream"), stream=True)
        return type(astream).__name__, texts([chunk async for chunk in astream])

    kind, astreamed = asyncio.run(main())
    assert kind == "FallbackStreamWrapper"
    assert astreamed == "Echo: async stream"
    sync, async_ = records(carrot, 2)
    assert (sync["name"], async_["name"]) == ("litellm.Router.completion", "litellm.Router.acompletion")
    assert sync["output"]["message"]["content"] == streamed
    assert sync["metadata"]["provider"] == "anthropic"
    assert async_["output"]["message"]["content"] == astreamed
    assert async_["metadata"]["provider"] == "openai"
    assert [r["status"] for r in (sync, async_)] == ["success", "success"]


def test_router_embeddings_are_one_record(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    router = retry_router(oai)
    oai.enqueue(ErrorReply(500, message="transient"))
    router.embedding(model="vectors", input=["a b", "c"])
    asyncio.run(router.aembedding(model="vectors", input="d e"))
    sync, async_ = records(carrot, 2)
    assert (sync["name"], async_["name"]) == ("litellm.Router.embedding", "litellm.Router.aembedding")
    assert sync["input"] == {"model": "vectors", "input": ["a b", "c"]}
    assert sync["output"]["embeddings_count"] == 2
    assert [r["status"] for r in (sync, async_)] == ["success", "success"]
    assert {r["metadata"]["model"] for r in (sync, async_)} == {"text-embedding-3-small"}


@pytest.mark.parametrize("how", ["instrumentor", "patch_litellm"])
def test_uninstrumenting_restores_the_router_exactly(how: str, carrot: IngestServer) -> None:
    import carrot_ai
    from carrot_ai.instrumentation.litellm import LiteLLMInstrumentor
    from carrot_ai.instrumentation.litellm._patch import unpatch

    methods = ("completion", "acompletion", "embedding", "aembedding")
    before = {name: vars(litellm.Router)[name] for name in methods}
    instrumentor = LiteLLMInstrumentor()
    if how == "instrumentor":
        instrumentor.instrument()
    else:
        carrot_ai.patch_litellm()
        carrot_ai.patch_litellm(name="again")  # new options, not a second wrapper
    try:
        patched = {name: vars(litellm.Router)[name] for name in methods}
        assert all(patched[name] is not before[name] for name in methods)
        assert all(patched[name].__wrapped__ is before[name] for name in methods)
    finally:
        instrumentor.uninstrument() if how == "instrumentor" else unpatch()
    assert {name: vars(litellm.Router)[name] for name in methods} == before


@pytest.mark.parametrize("how", ["instrumentor", "patch_litellm"])
def test_unpatched_below_another_instrumentations_wrapper_carrot_records_nothing(
    how: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    # Another instrumentation wrapped litellm.completion on top of carrot's: unpatching cannot take carrot's wrapper
    # out of that chain without breaking the other's, so it stays there, passing calls through.
    import functools

    import carrot_ai
    from carrot_ai.instrumentation.litellm import LiteLLMInstrumentor
    from carrot_ai.instrumentation.litellm._patch import unpatch

    original = litellm.completion
    instrumentor = LiteLLMInstrumentor()
    if how == "instrumentor":
        instrumentor.instrument()
    else:
        carrot_ai.patch_litellm()
    ours = litellm.completion

    @functools.wraps(ours)
    def theirs(*args: Any, **kwargs: Any) -> Any:
        return ours(*args, **kwargs)

    litellm.completion = theirs
    try:
        instrumentor.uninstrument() if how == "instrumentor" else unpatch()
        response = litellm.completion(model=OPENAI_MODEL, messages=user("after unpatch"), **via_openai(oai))
        assert response.choices[0].message.content == "Echo: after unpatch"
        records(carrot, 0)
        carrot_ai.patch_litellm()  # on again: the wrapper in the chain, not a second one on top
        assert litellm.completion is theirs
        litellm.completion(model=OPENAI_MODEL, messages=user("patched again"), **via_openai(oai))
        [record] = records(carrot, 1)
        assert record["output"]["message"]["content"] == "Echo: patched again"
    finally:
        unpatch()
        litellm.completion = original
