"""Streams read where the SDK decodes their events (``EventTap``) and folded in on the export worker.

With carrot's processor as the tracer provider's only observer, a chat or messages stream is not looked at chunk by
chunk: the tap keeps each event's data, and the export worker folds them into the record. With any other processor
on the provider, the span must carry its response attributes when it ends, so the same streams are folded in as
the caller reads them. Both paths give the same record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai import semconv
from carrot_ai._core._serialize import to_jsonable
from carrot_ai._core._stream import View, decode_events
from tests.anthropic import conftest as anthropic_conftest
from tests.fakes import encode_sse_event
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai import conftest as openai_conftest


def test_a_view_reads_decoded_json_as_the_sdk_models_do() -> None:
    [view] = decode_events(['{"choices": [{"index": 0, "delta": {"content": "hi"}}, 3], "usage": null}'])
    [choice, number] = view.choices
    assert choice.index == 0 and choice.delta.content == "hi" and number == 3
    assert view.usage is None
    # A key the JSON lacks reads as None, as an optional field the SDK's model was not given.
    assert choice.delta.tool_calls is None and getattr(view, "model", "absent") is None
    assert choice.model_dump() == {"index": 0, "delta": {"content": "hi"}}
    assert type(choice.model_dump()["delta"]) is dict  # plain data all the way down
    assert "View({'content': 'hi'})" == repr(choice.delta)
    assert view.model_dump() == {"choices": [{"index": 0, "delta": {"content": "hi"}}, 3], "usage": None}
    assert to_jsonable(view) == {"choices": [{"index": 0, "delta": {"content": "hi"}}, 3], "usage": None}


def test_decode_events_keeps_the_objects_in_order_and_skips_what_is_not_one() -> None:
    texts = ['{"n": 1}', '{"n": 2, "x": {"y": [1, {"z": 3}]}}', "[DONE]"]
    decoded = decode_events(texts)
    assert [item.n for item in decoded] == [1, 2] and decoded[1].x.y[1].z == 3
    assert all(type(item) is View for item in decoded) and type(decoded[1].x.y[1]) is View
    # One at a time when the joined array does not hold: a text the SDK failed on, [DONE] before the end, a number,
    # data that is not a str, and two broken halves that would make one object if joined.
    assert [item.n for item in decode_events(['{"n": 1}', '{"n": ', '{"n": 3}'])] == [1, 3]
    assert [item.n for item in decode_events(['{"n": 1}', "[DONE]", '{"n": 3}'])] == [1, 3]
    assert [item.n for item in decode_events(["7", ' {"n": 2}', None, '{"n": 4}'])] == [2, 4]
    assert decode_events(['{"a": [1', '{"c": 2}]}']) == []  # joined: one valid object from two texts
    assert decode_events([]) == [] and decode_events(["[DONE]"]) == []


def _openai_stream_record(client: Any, text: str) -> list[Any]:
    return list(
        client.chat.completions.create(
            model=openai_conftest.MODEL, messages=[{"role": "user", "content": text}], stream=True
        )
    )


def test_an_openai_stream_seen_by_another_processor_has_its_attributes_when_it_ends(
    fake_openai: FakeOpenAI, ingest: IngestServer, spans: InMemorySpanExporter
) -> None:
    client = carrot_ai.wrap(openai_conftest.make_client(fake_openai))
    chunks = _openai_stream_record(client, "one two three")
    [span] = spans.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == chunks[0].id
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert json.loads(attributes[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"] == [
        {"type": "text", "content": "Echo: one two three"}
    ]
    [record] = openai_conftest.records(ingest, 1)
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: one two three"}}
    assert record["metadata"]["output_tokens"] == attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]


def test_the_same_openai_stream_gives_the_same_record_on_the_tapped_path(
    fake_openai: FakeOpenAI, carrot: IngestServer
) -> None:
    client = carrot_ai.wrap(openai_conftest.make_client(fake_openai))
    chunks = _openai_stream_record(client, "one two three")
    [record] = openai_conftest.records(carrot, 1)
    assert record["output"] == {"message": {"role": "assistant", "content": "Echo: one two three"}}
    assert record["metadata"]["response_id"] == chunks[0].id
    assert record["metadata"]["finish_reasons"] == ["stop"]
    assert record["metadata"]["output_tokens"] == 4
    assert record["metadata"]["time_to_first_token_ms"] > 0


def test_the_export_queue_counts_the_events_a_tapped_stream_holds(
    fake_openai: FakeOpenAI, ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    # The worker sends only on flush here, so the span waits in the queue with its events not yet folded in.
    carrot_ai.init(
        api_key="ck-test-key",
        base_url=ingest.base_url,
        flush_interval=3600,
        batch_size=1000,
        tracer_provider=tracer_provider,
    )
    try:
        text = " ".join(f"word{i}" for i in range(3000))
        client = carrot_ai.wrap(openai_conftest.make_client(fake_openai))
        _openai_stream_record(client, text)
        queued = carrot_ai.stats()["queued_bytes"]
        # The request holds the text once (the captured input); the events hold it again, ~3,000 of them.
        assert queued > 2 * len(text) + 3000 * 64
        [record] = openai_conftest.records(ingest, 1)
        assert record["output"]["message"]["content"] == f"Echo: {text}"
        assert carrot_ai.stats()["queued_bytes"] == 0
    finally:
        carrot_ai.shutdown()


def _anthropic_stream(client: Any, text: str) -> list[Any]:
    return list(
        client.messages.create(
            model=anthropic_conftest.MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": text}],
            stream=True,
        )
    )


def test_an_anthropic_stream_seen_by_another_processor_has_its_attributes_when_it_ends(
    fake_anthropic: FakeAnthropic, ingest: IngestServer, spans: InMemorySpanExporter
) -> None:
    client = carrot_ai.wrap(anthropic_conftest.make_client(fake_anthropic))
    events = _anthropic_stream(client, "one two three")
    [span] = [s for s in spans.get_finished_spans() if (s.attributes or {}).get(semconv.CARROT_KIND) == "llm"]
    attributes = dict(span.attributes or {})
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == events[0].message.id
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    [record] = anthropic_conftest.records(ingest, 1)
    assert record["output"]["message"]["content"] == "Echo: one two three"
    assert record["metadata"]["finish_reasons"] == ["end_turn"]


def test_the_same_anthropic_stream_gives_the_same_record_on_the_tapped_path(
    fake_anthropic: FakeAnthropic, carrot: IngestServer
) -> None:
    client = carrot_ai.wrap(anthropic_conftest.make_client(fake_anthropic))
    events = _anthropic_stream(client, "one two three")
    [record] = anthropic_conftest.records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: one two three"
    assert record["metadata"]["finish_reasons"] == ["end_turn"]
    assert record["metadata"]["response_id"] == events[0].message.id
    assert record["metadata"]["output_tokens"] > 0
    assert record["metadata"]["time_to_first_token_ms"] > 0


def test_the_tap_reads_the_sdks_events_directly_and_any_other_event_through_its_data() -> None:
    """The SDKs' ``ServerSentEvent`` is read from ``_data`` (no Python call per event); an event of any other class
    (a subclass included) through ``data``: never an attribute it may not have."""
    import anthropic._streaming
    import openai._streaming

    from carrot_ai._core._stream import EventTap, _reader

    class Event:  # a decoder of another kind: only ``data``
        __slots__ = ("data",)

        def __init__(self, data: str) -> None:
            self.data = data

    class Shifted(openai._streaming.ServerSentEvent):  # a subclass that serves something else as its data
        @property
        def data(self) -> str:
            return self._data.upper()

    for sdk in (openai._streaming, anthropic._streaming):
        event = sdk.ServerSentEvent(data='{"a":1}')
        assert _reader(event)(event) == '{"a":1}'
        assert _reader(event) is not _reader(Event("x"))
    assert _reader(Shifted(data="x"))(Shifted(data="y")) == "Y"
    assert _reader(Event("x"))(Event("z")) == "z"

    for make in (Event, openai._streaming.ServerSentEvent):
        events = [make(data=f'{{"n":{n}}}') for n in range(4)]

        class Decoder:
            def __init__(self, events: list[Any]) -> None:
                self.events = events

            def iter_bytes(self, iterator: Any) -> Any:
                yield from self.events

        offered: list[str] = []

        def divert(data: str, seen: list[str] = offered) -> bool:
            seen.append(data)
            return False

        taken = EventTap(Decoder(events), None, divert, ('"n"', "x", "y")).iter_bytes(iter(()))
        assert list(taken) == events and offered == [f'{{"n":{n}}}' for n in range(4)]


_USAGE = '"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}'
_HEAD = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
# The usage-only chunk as servers other than OpenAI's may write it: the caller did not ask for it, so whatever its
# spelling it must not reach the caller (whose ``chunk.choices[0]`` would fail on it).
USAGE_CHUNKS = {
    "compact": _HEAD + '"choices":[],' + _USAGE + "}",
    "spaced": '{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices" : [ ], '
    '"usage" : {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}',
    "no choices": _HEAD + _USAGE + "}",
    "choices null": _HEAD + '"choices":null,' + _USAGE + "}",
}


def _usage_reply(usage_chunk: str, usage_null: str) -> Any:
    """A stream of two content chunks (each with ``usage`` null, spelled ``usage_null``) and, when the request asks
    for it, the usage-only chunk ``usage_chunk``."""
    from tests.fakes import SSEReply

    def reply(request: Any) -> Any:
        asked = ((request.json or {}).get("stream_options") or {}).get("include_usage")
        delta = _HEAD + usage_null + '"choices":'
        events = [
            "data: " + delta + '[{"index":0,"delta":{"role":"assistant","content":"a"},"finish_reason":null}]}',
            "data: " + delta + '[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}',
        ]
        if asked:
            events.append("data: " + usage_chunk)
        return SSEReply([*events, "[DONE]"])

    return reply


@pytest.mark.parametrize("usage_null", ["", '"usage":null,', '"usage": null,'], ids=["absent", "null", "null spaced"])
@pytest.mark.parametrize("spelling", list(USAGE_CHUNKS))
@pytest.mark.parametrize("mode", ["tapped", "observed"])
def test_the_usage_chunk_carrot_asked_for_is_hidden_however_it_is_spelled(
    fake_openai: FakeOpenAI,
    ingest: IngestServer,
    tracer_provider: TracerProvider,
    mode: str,
    spelling: str,
    usage_null: str,
) -> None:
    if mode == "observed":
        tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    carrot_ai.init(
        api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=tracer_provider
    )
    try:
        reply = _usage_reply(USAGE_CHUNKS[spelling], usage_null)
        fake_openai.enqueue(reply, reply)
        bare = _openai_stream_record(openai_conftest.make_client(fake_openai), "hi")
        wrapped = _openai_stream_record(carrot_ai.wrap(openai_conftest.make_client(fake_openai)), "hi")
        assert [c.model_dump() for c in wrapped] == [c.model_dump() for c in bare]
        assert len(wrapped) == 2 and all(c.choices for c in wrapped)
        [record] = openai_conftest.records(ingest, 1)
        assert record["output"] == {"message": {"role": "assistant", "content": "ab"}}
        assert (record["metadata"]["input_tokens"], record["metadata"]["output_tokens"]) == (3, 2)
    finally:
        carrot_ai.shutdown()


def test_a_generator_counts_as_not_started_until_it_runs_on_every_python() -> None:
    """Where a new generator's frame stops differs between Pythons (``f_lasti`` -1 on 3.10, 0 on 3.11 and 3.12, 2 on
    3.13, later still in a closure); the tap goes in only before the SDK's event generator has run."""
    import asyncio

    from carrot_ai._core._stream import _not_started

    def plain() -> Iterator[int]:
        yield 1
        yield 2

    captured = 3

    def closure() -> Iterator[int]:
        yield captured
        yield captured

    async def agen() -> Any:
        yield 1
        yield 2

    for make in (plain, closure):
        generator = make()
        assert _not_started(generator.gi_frame)
        next(generator)
        assert not _not_started(generator.gi_frame)

    async def main() -> None:
        generator = agen()
        assert _not_started(generator.ag_frame)
        await generator.__anext__()
        assert not _not_started(generator.ag_frame)
        await generator.aclose()

    asyncio.run(main())


def test_the_tap_stays_out_of_a_stream_the_sdk_has_started_reading(fake_openai: FakeOpenAI) -> None:
    """An openai ``Stream`` whose event generator has run is read by the SDK from the decoder it already holds: a tap
    put in then would miss events, so none is."""
    from carrot_ai._core._stream import EventTap, install_tap

    client = openai_conftest.make_client(fake_openai)
    request: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a b"}], "stream": True}
    fresh = client.chat.completions.create(**request)
    assert isinstance(install_tap(fresh, []), EventTap)
    chunks = list(fresh)
    started = client.chat.completions.create(**request)
    first = next(started)
    assert install_tap(started, []) is None

    def text(stream: list[Any]) -> list[Any]:
        return [chunk.choices[0].delta.content for chunk in stream]

    assert text([first, *started]) == text(chunks) and len(chunks) > 2  # every event still reaches the caller


class _Numbers:
    """An accumulator that keeps the ``n`` of every chunk folded in."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def process(self, chunk: Any) -> bool:
        self.seen.append(chunk.n)
        return True

    def result(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return {}, {"n": self.seen}


@pytest.mark.parametrize(
    ("reads", "ended", "folded"),
    [
        ([b'data: {"n":1}\n\ndata: {"n":2}\n\ndata: [DONE]\n\n'], True, [1, 2]),
        ([b'data: {"n":1}\n', b'\ndata: {"n":2}\n\n'], True, [1, 2]),  # an event split between two reads
        ([b'data: {"n":1}\n\ndata: {"n":2}\n\n'], False, [1]),  # left after one item: the rest was not handed
        ([], True, []),
    ],
)
def test_a_tapped_streams_reads_are_queued_as_one_bytes(reads: list[bytes], ended: bool, folded: list[int]) -> None:
    from carrot_ai._core._stream import TEXT_BYTES, StreamState

    state = StreamState(None, _Numbers())  # type: ignore[arg-type]  # _later reads the bytes and the accumulator only
    state._texts.extend(reads)
    state.ended = ended
    state.pulled = 1
    result, size = state._later()
    assert state._texts == []  # bytes read after the end are not this call's
    assert result() == ({}, {"n": folded})
    assert size == TEXT_BYTES + sum(map(len, reads))


def test_an_accumulators_view_reads_its_often_absent_fields_as_none_and_present_ones_from_the_json() -> None:
    from carrot_ai.instrumentation.openai._accumulate import ChatStreamAccumulator, ChunkView

    assert ChatStreamAccumulator.view is ChunkView
    [chunk, usage_only] = decode_events(
        [
            '{"id":"c1","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}',
            '{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}',
        ],
        ChunkView,
    )
    assert type(chunk) is ChunkView and type(chunk.choices[0].delta) is ChunkView
    delta = chunk.choices[0].delta
    assert delta.content == "hi" and delta.tool_calls is None and delta.refusal is None and chunk.usage is None
    assert usage_only.usage.prompt_tokens == 3  # the JSON's value, not the class's None
    assert usage_only.model_dump()["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    accumulator = ChatStreamAccumulator(True, hide_usage=True)
    assert [accumulator.process(item) for item in (chunk, usage_only)] == [True, False]
    attributes, output = accumulator.result()
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 3 and output is not None
    assert output["message"]["content"] == "hi"


_SSE_BODIES = {
    "openai": b"".join(
        map(
            encode_sse_event,
            [
                *(
                    {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
                    for choice in (
                        {"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None},
                        {"index": 0, "delta": {}, "finish_reason": "stop"},
                    )
                ),
                "[DONE]",
            ],
        )
    ),
    "anthropic": b"".join(
        encode_sse_event((event["type"], event))
        for event in (
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
                    "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 0},
                },
            },
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
            {"type": "message_stop"},
        )
    ),
}  # fmt: skip


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_queued_stream_does_not_keep_the_response_body(
    provider: str, ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    """A stream's response is its events (their data is kept for the worker): the HTTP body is not kept besides.
    Over a network the SDK returns a stream before its body is read; an in-process transport (here, and in the
    benchmarks) hands the whole body over at once, and the queued record used to hold it until export."""
    import anthropic
    import httpx2
    import openai

    from carrot_ai import _setup

    body = _SSE_BODIES[provider]

    def reply(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    carrot_ai.init(
        api_key="ck-test-key", base_url=ingest.base_url, flush_interval=3600, batch_size=1000,
        tracer_provider=tracer_provider,
    )  # fmt: skip
    try:
        http = httpx2.Client(transport=httpx2.MockTransport(reply))
        messages = [{"role": "user", "content": "hello"}]
        if provider == "openai":
            client: Any = openai.OpenAI(api_key="sk-test", base_url="http://fake.invalid/v1", http_client=http)
            chunks = carrot_ai.wrap(client).chat.completions.create(model="m", messages=messages, stream=True)
        else:
            client = anthropic.Anthropic(api_key="sk-ant-test", base_url="http://fake.invalid", http_client=http)
            chunks = carrot_ai.wrap(client).messages.create(model="m", max_tokens=10, messages=messages, stream=True)
        assert len(list(chunks)) == (2 if provider == "openai" else 6)
        exporter = _setup.current_exporter()
        assert exporter is not None
        [(span, _size)] = list(exporter._queue)
        assert span.response_body is None
        [record] = (openai_conftest if provider == "openai" else anthropic_conftest).records(ingest, 1)
        assert record["output"]["message"]["content"] == "hi"
    finally:
        carrot_ai.shutdown()


_CHUNK_HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
# Chat chunks of every shape the accumulator reads: the text deltas the export worker folds in from plain JSON, and
# all it must leave to the view path (the role chunk, a finish, refusals, tool calls, audio, other choices, usage,
# odd or missing fields, values of the wrong type).
_CHUNKS: list[Any] = [
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "b "}}], "usage": None},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": None}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "c", "refusal": None, "tool_calls": None}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"refusal": "no"}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "d"}, "finish_reason": "stop"}]},
    {**_CHUNK_HEAD, "choices": [{"index": 1, "delta": {"content": "other"}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0.0, "delta": {"content": "float index"}}]},
    {**_CHUNK_HEAD, "choices": [{"delta": {"content": "no index"}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": "not an object"}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": 7}}]},
    {**_CHUNK_HEAD, "choices": ["not an object"]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "e"}}, {"index": 1, "delta": {"content": "f"}}]},
    {
        **_CHUNK_HEAD,
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{"}}
                    ]
                },
            }
        ],
    },
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"function_call": {"name": "g", "arguments": "{}"}}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"audio": {"transcript": "t"}}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "j", "refusal": "r"}}]},
    {
        **_CHUNK_HEAD,
        "choices": [{"index": 0, "delta": {"content": "k", "function_call": {"name": "h", "arguments": ""}}}],
    },
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "l", "tool_calls": [{"index": 1, "id": "call_2"}]}}]},
    {**_CHUNK_HEAD, "choices": [{"index": 0, "delta": {"content": "g"}}], "usage": {"prompt_tokens": 1}},
    {**_CHUNK_HEAD, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
    {**_CHUNK_HEAD, "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}},
    {**_CHUNK_HEAD, "choices": None},
    {"id": "", "choices": [{"index": 0, "delta": {"content": "h"}}]},
    {"choices": [{"index": 0, "delta": {"content": "i"}}]},
]


@settings(max_examples=500, deadline=None)
@given(
    picks=st.lists(st.integers(min_value=0, max_value=len(_CHUNKS) - 1), max_size=14),
    capture=st.booleans(),
    hide_usage=st.booleans(),
)
def test_a_chat_stream_folded_from_plain_json_gives_the_result_views_give(
    picks: list[int], capture: bool, hide_usage: bool
) -> None:
    """The export worker folds a chat stream's text deltas in from plain decoded JSON (``process_plain``) and the rest
    as views: the same response attributes and output as every chunk decoded into a view and processed."""
    from carrot_ai._core._stream import _Fold, decode_events
    from carrot_ai.instrumentation.openai._accumulate import ChatStreamAccumulator
    from carrot_ai.instrumentation.openai._calls import OpenAIStreamState

    texts = [json.dumps(_CHUNKS[pick]) for pick in picks] + ["[DONE]"]
    raw = "".join(f"data: {text}\n\n" for text in texts).encode()

    def viewed() -> Any:  # (an odd chunk's error ends the fold here as it does there: the tests run strict)
        accumulator = ChatStreamAccumulator(capture, "req_1", hide_usage, False)
        try:
            for chunk in decode_events(texts, ChatStreamAccumulator.view):
                accumulator.process(chunk)
            return accumulator.result()
        except Exception as exc:
            return type(exc)

    def folded() -> Any:
        accumulator = ChatStreamAccumulator(capture, "req_1", hide_usage, False)
        try:
            return _Fold(accumulator, raw, OpenAIStreamState.sdk_texts)()
        except Exception as exc:
            return type(exc)

    assert folded() == viewed()


_MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": []}
# Anthropic stream events of every shape the accumulator reads: the text deltas the export worker folds in from plain
# JSON, and what it leaves to the view path (block starts, other deltas, a delta of a block never started, odd types).
_EVENTS: list[Any] = [
    {"type": "message_start", "message": {**_MESSAGE, "usage": {"input_tokens": 5, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "thinking", "thinking": "t"}},
    {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "tu", "name": "f"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "b"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 7}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "thinking_delta", "thinking": "more"}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
    {"type": "content_block_delta", "index": 9, "delta": {"type": "text_delta", "text": "no block"}},
    {"type": "content_block_delta", "index": [0], "delta": {"type": "text_delta", "text": "odd index"}},
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "no index"}},
    {"type": "content_block_delta", "index": 0, "delta": "not an object"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "other_delta", "text": "not text"}},
    {"type": "content_block_delta", "index": 0},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
    {"type": "message_stop"},
    {"index": 0, "delta": {"type": "text_delta", "text": "no type"}},
    {"type": "message_delta", "index": 0, "delta": {"type": "text_delta", "text": "not a block delta"}},
]


@settings(max_examples=500, deadline=None)
@given(
    picks=st.lists(st.integers(min_value=0, max_value=len(_EVENTS) - 1), max_size=14),
    capture=st.booleans(),
)
def test_an_anthropic_stream_folded_from_plain_json_gives_the_result_views_give(
    picks: list[int], capture: bool
) -> None:
    """As for chat streams: text deltas folded in from plain decoded JSON, the rest as views, the same result as
    every event decoded into a view and processed."""
    from carrot_ai._core._stream import View, _Fold, decode_events
    from carrot_ai.instrumentation.anthropic._accumulate import MessageStreamAccumulator
    from carrot_ai.instrumentation.anthropic._calls import AnthropicStreamState

    events = [_EVENTS[pick] for pick in picks]
    raw = "".join(f"event: {event.get('type') or 'x'}\ndata: {json.dumps(event)}\n\n" for event in events).encode()

    def viewed() -> Any:  # (an odd event's error ends the fold here as it does there: the tests run strict)
        accumulator = MessageStreamAccumulator(capture, "req_1", False)
        try:
            for chunk in decode_events([json.dumps(event) for event in events], View):
                accumulator.process(chunk)
            return accumulator.result()
        except Exception as exc:
            return type(exc)

    def folded() -> Any:
        accumulator = MessageStreamAccumulator(capture, "req_1", False)
        try:
            return _Fold(accumulator, raw, AnthropicStreamState.sdk_texts)()
        except Exception as exc:
            return type(exc)

    assert folded() == viewed()
