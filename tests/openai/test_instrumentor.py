"""OpenAIInstrumentor: the BaseInstrumentor contract, the entry point, and one record with wrap() too."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points

import openai
import openai._base_client
import pytest
import wrapt
from openai.resources.chat.completions import AsyncCompletions, Completions
from openai.resources.embeddings import AsyncEmbeddings, Embeddings
from openai.resources.responses import AsyncResponses, Responses

import carrot_ai
from carrot_ai.instrumentation.openai import OpenAIInstrumentor
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import MODEL, make_client, no_more_records, records, user

PATCHED = [
    (Completions, "create"),
    (Completions, "parse"),
    (AsyncCompletions, "create"),
    (AsyncCompletions, "parse"),
    (Responses, "create"),
    (Responses, "parse"),
    (AsyncResponses, "create"),
    (Embeddings, "create"),
    (AsyncEmbeddings, "create"),
    # where the body of a call's response is kept for the export worker
    (openai._base_client.SyncAPIClient, "_process_response"),
    (openai._base_client.AsyncAPIClient, "_process_response"),
]


def test_entry_point_carrot_openai_loads_the_instrumentor() -> None:
    found = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "carrot_openai"]
    if not found:
        pytest.skip("the package metadata predates the entry point (reinstall with pip install -e)")
    assert found[0].load() is OpenAIInstrumentor


def test_dependencies_name_the_openai_requirement() -> None:
    assert list(OpenAIInstrumentor().instrumentation_dependencies()) == ["openai >= 1.92"]


def test_uninstrument_restores_the_original_methods() -> None:
    originals = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    assert all(cls.__dict__[name] is not original for (cls, name), original in originals.items())
    instrumentor.uninstrument()
    assert all(cls.__dict__[name] is original for (cls, name), original in originals.items())


def test_uninstrumented_calls_are_not_recorded(fake: FakeOpenAI, carrot: IngestServer) -> None:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    instrumentor.uninstrument()
    make_client(fake).chat.completions.create(model=MODEL, messages=user("plain"))
    no_more_records(carrot, 0)


def test_wrap_and_instrumentor_together_record_once(
    fake: FakeOpenAI, carrot: IngestServer, instrumentor: OpenAIInstrumentor
) -> None:
    client = carrot_ai.wrap(make_client(fake), name="wrapped")
    client.chat.completions.create(model=MODEL, messages=user("both"))
    for _chunk in client.chat.completions.create(model=MODEL, messages=user("both"), stream=True):
        pass
    with client.chat.completions.stream(model=MODEL, messages=user("both")) as stream:
        stream.get_final_completion()
    client.responses.create(model=MODEL, input="both")
    client.embeddings.create(model="text-embedding-3-small", input="both")
    client.chat.completions.with_raw_response.create(model=MODEL, messages=user("both")).parse()
    got = records(carrot, 6)
    assert [r["name"] for r in got] == ["wrapped"] * 6
    no_more_records(carrot, 6)


def test_wrapped_before_instrument_records_once(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = carrot_ai.wrap(make_client(fake))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    try:
        client.chat.completions.create(model=MODEL, messages=user("order"))
    finally:
        instrumentor.uninstrument()
    records(carrot, 1)
    no_more_records(carrot, 1)


def test_async_client_with_both(fake: FakeOpenAI, carrot: IngestServer, instrumentor: OpenAIInstrumentor) -> None:
    async def main() -> None:
        async with carrot_ai.wrap(make_client(fake, is_async=True)) as client:
            await client.chat.completions.create(model=MODEL, messages=user("async both"))

    asyncio.run(main())
    records(carrot, 1)
    no_more_records(carrot, 1)


def test_client_created_before_instrument_is_recorded(fake: FakeOpenAI, carrot: IngestServer) -> None:
    client = make_client(fake)
    _ = client.chat.completions.messages  # resources built before instrumenting
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    try:
        completion = client.chat.completions.create(model=MODEL, messages=user("x"))
        assert isinstance(completion, openai.types.chat.ChatCompletion)
        # Built after instrument(): it binds the patched method. (One built before keeps the method it bound.)
        client.chat.completions.with_raw_response.create(model=MODEL, messages=user("raw"))
    finally:
        instrumentor.uninstrument()
    records(carrot, 2)


def test_uninstrument_under_another_instrumentations_wrapper_leaves_it_and_stops_recording(
    fake: FakeOpenAI, carrot: IngestServer
) -> None:
    """Another instrumentation wrapped create() after ours: uninstrument() cannot take ours out of its chain, so
    ours stays there switched off (calls pass through, unrecorded), and instrument() again switches it back on
    rather than stacking a second wrapper (one record per call)."""
    original = Completions.__dict__["create"]
    seen: list[str] = []

    def theirs(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
        seen.append("theirs")
        return wrapped(*args, **kwargs)

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    wrapt.wrap_function_wrapper(Completions, "create", theirs)
    try:
        instrumentor.uninstrument()
        assert Completions.__dict__["create"]._self_wrapper is theirs  # theirs left in place
        client = make_client(fake)
        reply = client.chat.completions.create(model=MODEL, messages=user("after uninstrument"))
        assert reply.choices[0].message.content == "Echo: after uninstrument"
        assert seen == ["theirs"]
        no_more_records(carrot, 0)

        instrumentor.instrument()
        assert Completions.__dict__["create"]._self_wrapper is theirs  # not stacked above theirs
        client.chat.completions.create(model=MODEL, messages=user("again"))
        [record] = records(carrot, 1)
        assert record["output"]["message"]["content"] == "Echo: again"
        no_more_records(carrot, 1)
        assert seen == ["theirs", "theirs"]
    finally:
        instrumentor.uninstrument()
        Completions.create = original  # type: ignore[method-assign]
