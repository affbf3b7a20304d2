"""One record per call: LiteLLM calls the OpenAI SDK (and others) underneath; with our provider instrumentation or
another GenAI instrumentation active too, the inner call adds no second record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.litellm.conftest import ANTHROPIC_MODEL, OPENAI_KEY, OPENAI_MODEL, records, user, via_anthropic, via_openai

litellm = pytest.importorskip("litellm", reason="litellm runs in its own environment: .ci/litellm_env.sh")
pytestmark = pytest.mark.litellm


def openai_adapter() -> Any:
    return pytest.importorskip(
        "carrot_ai.instrumentation.openai",
        reason="the OpenAI adapter (carrot_ai.instrumentation.openai) is not in this tree yet",
    )


@pytest.fixture
def openai_instrumentor() -> Iterator[None]:
    inst = openai_adapter().OpenAIInstrumentor()
    inst.instrument()
    yield
    inst.uninstrument()


def test_with_our_openai_instrumentation_too(
    way: str, openai_instrumentor: None, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    litellm.completion(model=OPENAI_MODEL, messages=user("once"), **via_openai(oai))
    list(litellm.completion(model=OPENAI_MODEL, messages=user("once streamed"), stream=True, **via_openai(oai)))
    litellm.embedding(model="openai/text-embedding-3-small", input="once embedded", **via_openai(oai))

    async def main() -> None:
        await litellm.acompletion(model=OPENAI_MODEL, messages=user("once async"), **via_openai(oai))

    asyncio.run(main())
    got = records(carrot, 4)
    assert {r["metadata"]["source"] for r in got} == {"litellm"}


def test_with_a_wrapped_openai_client_given_to_litellm(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    openai_adapter()
    import openai

    client = carrot_ai.wrap(openai.OpenAI(base_url=oai.base_url + "/v1", api_key=OPENAI_KEY, max_retries=0))
    litellm.completion(model=OPENAI_MODEL, messages=user("my client"), client=client)
    [record] = records(carrot, 1)
    assert record["metadata"]["source"] == "litellm"


def test_with_our_anthropic_instrumentation_too(way: str, ant: FakeAnthropic, carrot: IngestServer) -> None:
    from carrot_ai.instrumentation.anthropic import AnthropicInstrumentor

    inst = AnthropicInstrumentor()
    inst.instrument()
    try:
        litellm.completion(model=ANTHROPIC_MODEL, messages=user("once"), max_tokens=50, **via_anthropic(ant))
    finally:
        inst.uninstrument()
    [record] = records(carrot, 1)
    assert record["metadata"]["source"] == "litellm"
    assert record["metadata"]["provider"] == "anthropic"


def test_another_genai_instrumentation_inside_the_call_adds_no_record(
    way: str, oai: FakeOpenAI, carrot: IngestServer, tracer_provider: TracerProvider
) -> None:
    from litellm.integrations.custom_logger import CustomLogger

    tracer = tracer_provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    started: list[int] = []

    class ForeignInstrumentation(CustomLogger):  # type: ignore[misc]
        """Starts a GenAI span around the provider request, as an SDK-level instrumentation would."""

        def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
            attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes=attributes) as span:
                started.append(span.get_span_context().trace_id)

    foreign = ForeignInstrumentation()
    litellm.callbacks = [foreign]
    try:
        litellm.completion(model=OPENAI_MODEL, messages=user("seen twice"), **via_openai(oai))
    finally:
        litellm.callbacks = []
    [record] = records(carrot, 1)
    assert record["metadata"]["source"] == "litellm"
    assert started == [int(record["metadata"]["trace_id"], 16)]  # it ran, inside our call's trace


def test_inside_a_trace_the_call_names_its_parent(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    @carrot_ai.trace(name="answer")
    def answer(question: str) -> str:
        response = litellm.completion(model=OPENAI_MODEL, messages=user(question), **via_openai(oai))
        return str(response.choices[0].message.content)

    with carrot_ai.context(user_id="u-1", tags=["ctx"]):
        answer("with a parent")
    records(carrot, 2)
    parent = carrot.by_name("answer")
    child = carrot.by_name("chat.completions")
    assert child["metadata"]["parent_trace_id"] == parent["id"]
    assert child["metadata"]["user_id"] == "u-1"
    assert child["tags"] == ["ctx"]


def test_a_call_made_from_a_litellm_callback_is_a_call_of_its_own(
    way: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    """litellm runs its success callbacks in the context of the call (in a thread, or a task, it starts during it):
    an LLM call a callback makes (a judge) is not part of the finished call, and gets its own record."""
    from litellm.integrations.custom_logger import CustomLogger

    judged: list[str] = []

    class Judge(CustomLogger):  # type: ignore[misc]
        active = True  # litellm keeps copies of its callbacks lists: a judge left there after the test does nothing

        def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            if self.active and "main sync" in str(kwargs.get("messages")):  # (litellm may call both handlers)
                litellm.completion(model=OPENAI_MODEL, messages=user("judge sync"), **via_openai(oai))
                judged.append("sync")

        async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            if self.active and "main async" in str(kwargs.get("messages")):
                await litellm.acompletion(model=OPENAI_MODEL, messages=user("judge async"), **via_openai(oai))
                judged.append("async")

    callbacks = litellm.callbacks
    judge = Judge()
    litellm.callbacks = [judge]
    try:

        async def main() -> None:
            await litellm.acompletion(model=OPENAI_MODEL, messages=user("main async"), **via_openai(oai))
            for _ in range(200):
                if "async" in judged:
                    break
                await asyncio.sleep(0.01)

        asyncio.run(main())
        litellm.completion(model=OPENAI_MODEL, messages=user("main sync"), **via_openai(oai))
        for _ in range(200):
            if "sync" in judged:
                break
            time.sleep(0.01)
    finally:
        judge.active = False
        litellm.callbacks = callbacks
        for name in ("success_callback", "_async_success_callback", "failure_callback", "_async_failure_callback"):
            listed = getattr(litellm, name, None)
            if isinstance(listed, list) and judge in listed:
                listed.remove(judge)
    assert sorted(judged) == ["async", "sync"]
    got = records(carrot, 4)
    assert sorted(r["input"]["messages"][-1]["content"] for r in got) == [
        "judge async",
        "judge sync",
        "main async",
        "main sync",
    ]
