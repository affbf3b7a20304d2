"""Streams kept as the bytes their SDK read, decoded on the export worker.

A tapped stream with nothing to divert (an Anthropic ``messages`` stream; an OpenAI chat stream whose caller decided
``include_usage`` itself) keeps each read of its bytes; the export worker decodes them as the SDK's own decoder does
(:func:`carrot_ai._core._stream.sse_events`) and folds in the events of the items the caller was handed. A read may
hold more events than the caller took: a stream left early records what the caller got, however it arrived.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import anthropic._streaming
import openai
import openai._streaming
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import carrot_ai
from carrot_ai._core._stream import sse_events
from tests.anthropic import conftest as anthropic_conftest
from tests.fakes import encode_sse_event
from tests.fakes._http import Reply
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai import conftest as openai_conftest

# --- the decoding, against the SDKs' own decoders --------------------------------------------------------------

LINES = [
    'data: {"a": 1}',
    "data:x",
    "data",
    "data: ",
    "data:  two spaces",
    "data: [DONE]",
    "data: é ü",
    "event: ping",
    "event: message_delta",
    "event:",
    "id: 7",
    "id",
    "id: a\0b",
    "retry: 100",
    "retry: soon",
    ": a comment",
    ":",
    "foo: bar",
    "",
    "",
    "",
]


def sdk_events(decoder: Any, reads: list[bytes]) -> list[tuple[str | None, str]]:
    return [(event.event or None, event.data) for event in decoder.iter_bytes(iter(reads))]


@settings(max_examples=1000, deadline=None)
@given(
    lines=st.lists(st.sampled_from(LINES), max_size=30),
    ends=st.lists(st.sampled_from(["\n", "\r", "\r\n"]), min_size=30, max_size=30),
    tail=st.sampled_from(["", "data: cut", "event: x", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    lf_only=st.booleans(),
)
def test_the_bytes_are_read_as_the_sdks_decoders_read_them(
    lines: list[str], ends: list[str], tail: str, cuts: list[int], lf_only: bool
) -> None:
    """Any mix of fields, comments, blank lines and line ends (LF, CR, CRLF, a CRLF split between two reads), cut
    into reads anywhere: the same events as openai's decoder, in the same order, and as anthropic's given the bytes
    in one read. (Given a CRLF split between two reads, anthropic's reads the LF as one more blank line, which makes
    one more event, with no data, after an ``id`` line: a quirk of its own that no stream of Anthropic's meets.)"""
    if lf_only:  # (as the providers write their streams)
        ends = ["\n"] * len(ends)
    raw = ("".join(line + end for line, end in zip(lines, ends, strict=False)) + tail).encode()
    points = sorted({cut for cut in cuts if cut < len(raw)} | {0, len(raw)})
    reads = [raw[a:b] for a, b in zip(points, points[1:], strict=False)]
    expected = sse_events(raw)
    assert sdk_events(openai._streaming.SSEDecoder(), reads) == expected
    assert sdk_events(anthropic._streaming.SSEDecoder(), [raw]) == expected


def test_the_bytes_of_recorded_streams_are_read_as_the_sdks_read_them() -> None:
    """The cassettes' real streams (OpenAI and Anthropic, with their own line ends and event names)."""
    from tests.fakes.cassettes import cassette_names, load_cassette

    streams = 0
    for interaction in (i for name in cassette_names() for i in load_cassette(name)):
        if not interaction.is_sse:
            continue
        raw = interaction.response_body
        streams += 1
        expected = sse_events(raw)
        assert expected and sdk_events(openai._streaming.SSEDecoder(), [raw]) == expected
        assert sdk_events(anthropic._streaming.SSEDecoder(), [raw]) == expected
    assert streams >= 20


# --- a stream that arrives in one read ------------------------------------------------------------------------


class OneWrite(Reply):
    """An event stream written in one piece: the client reads all of it at once."""

    def __init__(self, events: list[Any]) -> None:
        self.body = b"".join(map(encode_sse_event, events))

    def send(self, conn: Any, request: Any) -> None:
        conn.start_response(200, {"content-type": "text/event-stream"}, chunked=True, length=None)
        conn.write_chunk(self.body)
        conn.end_chunks()


WORDS = [f"w{n} " for n in range(8)]


def openai_events() -> list[Any]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    chunks = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}], "usage": None}]
    chunks += [{**head, "choices": [{"index": 0, "delta": {"content": w}}], "usage": None} for w in WORDS]
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
    usage = {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13}
    return [*chunks, {**head, "choices": [], "usage": usage}, "[DONE]", {**head, "choices": [], "after": "done"}]


def anthropic_events() -> list[Any]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    events: list[Any] = [("message_start", {"type": "message_start", "message": message})]
    events.append(
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
    )
    events.append(("ping", {"type": "ping"}))
    for word in WORDS:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}
        events += [("content_block_delta", delta), ("ping", {"type": "ping"})]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 8}},
        )
    )
    return [*events, ("message_stop", {"type": "message_stop"})]


def text_of(provider: str, items: list[Any]) -> str:
    if provider == "openai":
        return "".join((item.choices[0].delta.content or "") for item in items if item.choices)
    return "".join(item.delta.text for item in items if item.type == "content_block_delta")


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def stream_of(provider: str, carrot: IngestServer) -> Iterator[Any]:
    """Opens a wrapped stream (sync or async) on a fake server that sends it in one piece."""
    server: Any = FakeOpenAI() if provider == "openai" else FakeAnthropic()
    with server:

        def open_stream(is_async: bool = False) -> Any:
            events = openai_events() if provider == "openai" else anthropic_events()
            server.enqueue(OneWrite(events))
            if provider == "openai":
                client = carrot_ai.wrap(openai_conftest.make_client(server, is_async=is_async))
                return client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                    stream_options={"include_usage": True},  # nothing to divert: the stream keeps its bytes
                )
            client = carrot_ai.wrap(anthropic_conftest.make_client(server, is_async=is_async))
            return client.messages.create(
                model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
            )

        yield open_stream


def read_whole_at_once(stream: Any) -> None:
    """The stream's first read held all of its bytes (what these tests are about)."""
    state = stream._self_state
    assert state.tapped and len(state._texts) == 1 and state._texts[0].endswith(b"\n\n")


def recorded(provider: str, ingest: IngestServer) -> dict[str, Any]:
    [record] = (openai_conftest if provider == "openai" else anthropic_conftest).records(ingest, 1)
    return record


def recorded_text(provider: str, record: dict[str, Any]) -> str:
    return record["output"]["message"]["content"] or "" if record["output"] else ""


@pytest.mark.parametrize("how", ["break", "next", "loop then next", "abandoned"])
def test_a_stream_left_early_records_what_the_caller_was_handed(
    provider: str, stream_of: Any, carrot: IngestServer, how: str
) -> None:
    stream = stream_of()
    handed = []
    if how == "break":
        for item in stream:
            handed.append(item)
            if len(handed) == 4:
                break
    elif how == "next":
        handed += [next(stream) for _ in range(4)]
    elif how == "loop then next":
        for item in stream:
            handed.append(item)
            break
        handed += [next(stream), next(stream)]
        for item in stream:
            handed.append(item)
            break
    if how == "abandoned":
        handed += [next(stream), next(stream), next(stream)]
        read_whole_at_once(stream)
        del stream
        gc.collect()
    else:
        read_whole_at_once(stream)
        stream.close()
    record = recorded(provider, carrot)
    assert record["status"] == "success"
    text = text_of(provider, handed)
    assert text and recorded_text(provider, record) == text
    assert "output_tokens" not in record["metadata"] or provider == "anthropic"  # openai's usage comes last
    assert record["metadata"]["input_tokens" if provider == "anthropic" else "model"]


def test_a_stream_read_to_its_end_records_all_of_it(provider: str, stream_of: Any, carrot: IngestServer) -> None:
    stream = stream_of()
    items = list(stream)
    record = recorded(provider, carrot)
    assert recorded_text(provider, record) == text_of(provider, items) == "".join(WORDS)
    assert (record["metadata"]["input_tokens"], record["metadata"]["output_tokens"]) == (5, 8)
    assert record["metadata"]["finish_reasons"] == ["stop" if provider == "openai" else "end_turn"]
    if provider == "openai":
        assert items[-1].choices == [] and items[-1].usage.total_tokens == 13  # the caller asked for it: theirs


def test_an_async_stream_left_early_records_what_the_caller_was_handed(
    provider: str, stream_of: Any, carrot: IngestServer
) -> None:
    handed: list[Any] = []

    async def main() -> None:
        stream = await stream_of(is_async=True)
        async for item in stream:
            handed.append(item)
            if len(handed) == 3:
                break
        handed.append(await stream.__anext__())
        read_whole_at_once(stream)
        await stream.close()

    asyncio.run(main())
    record = recorded(provider, carrot)
    assert recorded_text(provider, record) == text_of(provider, handed) != ""


def test_the_bytes_are_kept_whole_not_as_events(provider: str, stream_of: Any, carrot: IngestServer) -> None:
    """What the queue holds for a stream read to its end: its bytes, once (the SDK's events are not kept)."""
    stream = stream_of()
    first = next(stream)
    assert first is not None
    read_whole_at_once(stream)
    body = stream._self_state._texts[0]
    events = openai_events() if provider == "openai" else anthropic_events()
    assert body == b"".join(map(encode_sse_event, events))
    list(stream)
    assert stream._self_state._texts == []  # handed to the export worker
    record = recorded(provider, carrot)
    assert json.dumps(record["output"]).count("w7") == 1


# --- openai's usage-only chunk, cut out of the bytes ----------------------------------------------------------

_HEAD = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
_USAGE = '"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}'
CHUNKS = [
    _HEAD + '"choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}',
    _HEAD + '"choices":[{"index":0,"delta":{"content":"say \\"usage\\": {} "}}],"usage":null}',
    '{"id": "c1", "choices": [{"index": 0, "delta": {"content": "b"}}], "usage": null}',
    _HEAD + '"choices":[{"index":0,"delta":{"content":"c"}}],' + _USAGE + "}",  # usage with choices: the caller's
    _HEAD + '"choices":[],"prompt_filter_results":[]}',  # Azure's: no usage, the caller's
]
USAGE_ONLY = [_HEAD + '"choices":[],' + _USAGE + "}", '{"choices" : [ ], "usage" : {"prompt_tokens": 3}}']


@st.composite
def usage_streams(draw: Any) -> tuple[bytes, list[int]]:
    """An event stream of chat chunks, one usage-only chunk among them, in any of the line ends, with extra fields
    and comments here and there; and where to cut it into reads."""
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    datas = draw(st.lists(st.sampled_from(CHUNKS), max_size=5))
    datas.insert(draw(st.integers(0, len(datas))), draw(st.sampled_from(USAGE_ONLY)))
    datas.append("[DONE]")
    blocks = []
    for data in datas:
        lines = [f"data: {data}"]
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, 1)), draw(st.sampled_from(["id: 4", ": keep-alive", "event: chunk"])))
        blocks.append("".join(line + end for line in lines) + end * draw(st.integers(1, 2)))
    raw = "".join(blocks).encode()
    cuts = draw(st.lists(st.integers(1, len(raw) - 1), max_size=12))
    return raw, sorted(set(cuts))


def datas_before_each_read(decoder_events: Any, reads: list[bytes]) -> tuple[list[list[str]], list[str]]:
    """The data of the events a decoder had yielded each time it asked for the next read, and at the end."""
    got: list[str] = []
    before: list[list[str]] = []

    def source() -> Iterator[bytes]:
        for read in reads:
            before.append(got[:])
            yield read

    got.extend(event.data for event in decoder_events(source()))
    return before, got


@settings(max_examples=1000, deadline=None)
@given(usage_streams())
def test_the_usage_only_chunk_is_cut_out_of_the_bytes_and_nothing_else_changes(stream: tuple[bytes, list[int]]) -> None:
    """Whatever the line ends, extra fields and read boundaries: the SDK's decoder gets every event but the
    usage-only chunk, in order, each as early as without carrot (never held back past a read that completes it); the
    bytes kept for the export worker are the bytes read."""
    from carrot_ai._core._stream import EventTap
    from carrot_ai.instrumentation.openai._accumulate import USAGE_HINTS, is_usage_chunk

    raw, cuts = stream
    reads = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    before, got = datas_before_each_read(openai._streaming.SSEDecoder().iter_bytes, reads)
    kept: list[bytes] = []
    tap = EventTap(openai._streaming.SSEDecoder(), kept, None, is_usage_chunk, USAGE_HINTS)
    tap_before, tap_got = datas_before_each_read(tap.iter_bytes, reads)

    def without_usage(datas: list[str]) -> list[str]:
        return [data for data in datas if data not in USAGE_ONLY]

    assert len([data for data in got if data in USAGE_ONLY]) == 1
    assert tap_got == without_usage(got)
    if hasattr(openai._streaming, "_SSELineDecoder"):
        # openai 3.x's decoder dispatches each event at its blank line, whatever the reads: nothing comes later (or
        # earlier) than without carrot.
        assert tap_before == [without_usage(datas) for datas in before]
    else:
        # openai 2.x's (like anthropic's) keeps a blank line that comes alone until the next blank line, which may be
        # the cut event's: an event with no data (a blank line after an ``id`` line, on which the SDK fails) may then
        # come a read later, or earlier. Every other event comes no later than without carrot.
        for tap_seen, seen in zip(tap_before, before, strict=True):
            expected = [data for data in without_usage(seen) if data]
            assert [data for data in tap_seen if data][: len(expected)] == expected
    assert kept == reads


def test_an_async_stream_has_its_usage_only_chunk_cut_out_too() -> None:
    from carrot_ai._core._stream import EventTap
    from carrot_ai.instrumentation.openai._accumulate import USAGE_HINTS, is_usage_chunk

    raw = "".join(f"data: {data}\n\n" for data in [CHUNKS[0], USAGE_ONLY[0], "[DONE]"]).encode()
    reads = [raw[:7], raw[7:150], raw[150:]]

    async def main() -> list[str]:
        async def source() -> Any:
            for read in reads:
                yield read

        kept: list[bytes] = []
        tap = EventTap(openai._streaming.SSEDecoder(), kept, None, is_usage_chunk, USAGE_HINTS)
        datas = [event.data async for event in tap.aiter_bytes(source())]
        assert kept == reads
        return datas

    assert asyncio.run(main()) == [CHUNKS[0], "[DONE]"]
