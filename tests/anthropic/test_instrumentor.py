"""AnthropicInstrumentor: the BaseInstrumentor contract, the entry point, and one record with wrap() too."""

from __future__ import annotations

from importlib.metadata import entry_points

import anthropic
import anthropic._base_client
import wrapt
from anthropic.resources.messages import AsyncMessages, Messages

import carrot_ai
from carrot_ai.instrumentation.anthropic import AnthropicInstrumentor
from tests.anthropic.conftest import MODEL, make_client, no_more_records, records, user
from tests.fakes.anthropic_server import FakeAnthropic
from tests.ingest_server import IngestServer


def test_entry_point_carrot_anthropic_loads_the_instrumentor() -> None:
    [entry] = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "carrot_anthropic"]
    assert entry.load() is AnthropicInstrumentor


def test_dependencies_name_the_anthropic_requirement() -> None:
    assert [d.split(">=")[0].strip() for d in AnthropicInstrumentor().instrumentation_dependencies()] == ["anthropic"]


def test_uninstrument_restores_the_original_methods() -> None:
    originals = {(cls, name): cls.__dict__[name] for cls in (Messages, AsyncMessages) for name in ("create", "stream")}
    for cls in (anthropic._base_client.SyncAPIClient, anthropic._base_client.AsyncAPIClient):
        originals[cls, "_process_response"] = cls.__dict__["_process_response"]
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument()
    assert all(cls.__dict__[name] is not original for (cls, name), original in originals.items())
    instrumentor.uninstrument()
    assert all(cls.__dict__[name] is original for (cls, name), original in originals.items())


def test_uninstrumented_calls_are_not_recorded(fake: FakeAnthropic, carrot: IngestServer) -> None:
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument()
    instrumentor.uninstrument()
    make_client(fake).messages.create(model=MODEL, max_tokens=10, messages=user("plain"))
    no_more_records(carrot, 0)


def test_wrap_and_instrumentor_together_record_once(
    fake: FakeAnthropic, carrot: IngestServer, instrumentor: AnthropicInstrumentor
) -> None:
    client = carrot_ai.wrap(make_client(fake), name="wrapped")
    client.messages.create(model=MODEL, max_tokens=10, messages=user("both"))
    for _event in client.messages.create(model=MODEL, max_tokens=10, messages=user("both"), stream=True):
        pass
    with client.messages.stream(model=MODEL, max_tokens=10, messages=user("both")) as stream:
        stream.get_final_message()
    got = records(carrot, 3)
    assert [r["name"] for r in got] == ["wrapped"] * 3
    no_more_records(carrot, 3)


def test_client_created_before_instrument_is_recorded(fake: FakeAnthropic, carrot: IngestServer) -> None:
    client = make_client(fake)
    _ = client.messages.with_raw_response  # cached before instrumenting
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument()
    try:
        assert isinstance(
            client.messages.create(model=MODEL, max_tokens=10, messages=user("x")), anthropic.types.Message
        )
    finally:
        instrumentor.uninstrument()
    records(carrot, 1)


def test_uninstrument_under_another_instrumentations_wrapper_stops_recording(
    fake: FakeAnthropic, carrot: IngestServer
) -> None:
    """Ours below another instrumentation's wrapper: uninstrument() switches it off there (calls pass through,
    unrecorded); instrument() again switches it back on, not stacked (one record per call)."""
    original = Messages.__dict__["create"]
    seen: list[str] = []

    def theirs(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
        seen.append("theirs")
        return wrapped(*args, **kwargs)

    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument()
    wrapt.wrap_function_wrapper(Messages, "create", theirs)
    try:
        instrumentor.uninstrument()
        client = make_client(fake)
        reply = client.messages.create(model=MODEL, max_tokens=10, messages=user("after uninstrument"))
        assert isinstance(reply, anthropic.types.Message)
        assert seen == ["theirs"]
        no_more_records(carrot, 0)

        instrumentor.instrument()
        assert Messages.__dict__["create"]._self_wrapper is theirs
        client.messages.create(model=MODEL, max_tokens=10, messages=user("again"))
        records(carrot, 1)
        no_more_records(carrot, 1)
        assert seen == ["theirs", "theirs"]
    finally:
        instrumentor.uninstrument()
        Messages.create = original  # type: ignore[method-assign]
