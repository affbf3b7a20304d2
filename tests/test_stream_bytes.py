"""Streams kept as the bytes their SDK read, decoded on the export worker.

A tapped stream (an Anthropic ``messages`` stream; an OpenAI chat stream, whether its caller decided
``include_usage`` or carrot asked for it and takes the usage-only event away from the SDK) keeps each read of its
bytes; the export worker decodes them as the SDK's own decoder does (:func:`carrot_ai._core._stream.sse_events`) and
folds in the events of the items the caller was handed. A read may hold more events than the caller took: a stream
left early records what the caller got, however it arrived.
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
from carrot_ai._core._stream import EventTap, sse_events
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


# Event blocks as the providers write them ("data: ..." and a blank line: read at C speed), and some that are not.
BLOCKS = ['data: {"a": 1}', "data: [DONE]", "data: ", "data: é ü", 'data: {"b":"x\\ny"}']
ODD_BLOCKS = ["data:x", "data:  two spaces", "data", ": a comment", "event: ping\ndata: {}", "data: a\ndata: b", ""]


@settings(max_examples=1000, deadline=None)
@given(
    blocks=st.lists(st.sampled_from(BLOCKS * 6 + ODD_BLOCKS), max_size=20),
    end=st.sampled_from(["\n\n", "\n\n", "\n", "", "\n\n\n", "\n\ndata: cut"]),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=4),
)
def test_the_usual_streams_bytes_are_read_as_the_sdks_decoders_read_them(
    blocks: list[str], end: str, cuts: list[int]
) -> None:
    """Blocks of one ``data: `` line each, separated by blank lines (how OpenAI and Anthropic write their streams, which
    ``sse_events`` reads at C speed), mixed with blocks that are not, and ends that are not one blank line."""
    raw = ("\n\n".join(blocks) + (end if blocks else "")).encode()
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
    if provider != "anthropic":
        return "".join((item.choices[0].delta.content or "") for item in items if item.choices)
    return "".join(item.delta.text for item in items if item.type == "content_block_delta")


# "openai (usage asked)": the caller left ``include_usage`` unsaid, so carrot asks for it and its tap takes the
# usage-only event away from the SDK (the bytes keep it).
@pytest.fixture(params=["openai", "openai (usage asked)", "anthropic"])
def provider(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def stream_of(provider: str, carrot: IngestServer) -> Iterator[Any]:
    """Opens a wrapped stream (sync or async) on a fake server that sends it in one piece."""
    server: Any = FakeAnthropic() if provider == "anthropic" else FakeOpenAI()
    with server:

        def open_stream(is_async: bool = False) -> Any:
            events = anthropic_events() if provider == "anthropic" else openai_events()
            server.enqueue(OneWrite(events))
            if provider != "anthropic":
                client = carrot_ai.wrap(openai_conftest.make_client(server, is_async=is_async))
                # The caller's own include_usage: nothing to divert.
                options = {"stream_options": {"include_usage": True}} if provider == "openai" else {}
                return client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, **options
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
    [record] = (anthropic_conftest if provider == "anthropic" else openai_conftest).records(ingest, 1)
    return record


def recorded_text(record: dict[str, Any]) -> str:
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
    assert text and recorded_text(record) == text
    assert "output_tokens" not in record["metadata"] or provider == "anthropic"  # openai's usage comes last
    assert record["metadata"]["input_tokens" if provider == "anthropic" else "model"]


def test_a_stream_read_to_its_end_records_all_of_it(provider: str, stream_of: Any, carrot: IngestServer) -> None:
    stream = stream_of()
    items = list(stream)
    record = recorded(provider, carrot)
    assert recorded_text(record) == text_of(provider, items) == "".join(WORDS)
    assert (record["metadata"]["input_tokens"], record["metadata"]["output_tokens"]) == (5, 8)
    assert record["metadata"]["finish_reasons"] == ["end_turn" if provider == "anthropic" else "stop"]
    if provider == "openai":
        assert items[-1].choices == [] and items[-1].usage.total_tokens == 13  # the caller asked for it: theirs
    elif provider != "anthropic":
        assert all(item.choices for item in items)  # carrot asked for it: taken away


def test_a_stream_left_early_after_the_usage_event_carrot_took_records_what_the_caller_was_handed(
    carrot: IngestServer,
) -> None:
    """The usage-only event carrot asked for is taken away from the SDK, and kept in the bytes: when a server sends it
    before the end (OpenAI's never does), a stream left early after it still records every item the caller was handed
    (the events folded in are those items' and the one taken), and the usage."""
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}

    def content(text: str) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": {"content": text}}]}

    usage = {"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13}
    events = [content("a "), {**head, "choices": [], "usage": usage}, content("b "), content("c "), content("d ")]
    with FakeOpenAI() as server:
        server.enqueue(OneWrite([*events, "[DONE]"]))
        client = carrot_ai.wrap(openai_conftest.make_client(server))
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        handed = [next(stream) for _ in range(3)]
        read_whole_at_once(stream)
        stream.close()
    record = recorded("openai", carrot)
    assert text_of("openai", handed) == "a b c " == recorded_text(record)
    assert (record["metadata"]["input_tokens"], record["metadata"]["output_tokens"]) == (5, 8)


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
    assert recorded_text(record) == text_of(provider, handed) != ""


def test_the_bytes_are_kept_whole_not_as_events(provider: str, stream_of: Any, carrot: IngestServer) -> None:
    """What the queue holds for a stream read to its end: its bytes, once (the SDK's events are not kept)."""
    stream = stream_of()
    first = next(stream)
    assert first is not None
    read_whole_at_once(stream)
    body = stream._self_state._texts[0]
    events = anthropic_events() if provider == "anthropic" else openai_events()
    assert body == b"".join(map(encode_sse_event, events))
    list(stream)
    assert stream._self_state._texts == []  # handed to the export worker
    record = recorded(provider, carrot)
    assert json.dumps(record["output"]).count("w7") == 1


@pytest.mark.parametrize("usage", ["asked by the caller", "asked by carrot"])
def test_a_stream_whose_decoder_is_not_the_sdks_own_is_folded_in_as_read(
    fake_openai: FakeOpenAI, carrot: IngestServer, usage: str
) -> None:
    """Bytes are kept only for a decoder that ``sse_events`` reads like (the SDKs' own ``SSEDecoder``): a client that
    makes another one has its stream's chunks folded in as the caller reads them, and recorded whole; the usage
    chunk carrot asked for is still taken away from the SDK (event by event) and recorded."""

    class OwnDecoder(openai._streaming.SSEDecoder):
        pass

    client = openai_conftest.make_client(fake_openai)
    client._make_sse_decoder = OwnDecoder  # type: ignore[method-assign]
    options = {"stream_options": {"include_usage": True}} if usage == "asked by the caller" else {}
    stream = carrot_ai.wrap(client).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a b c"}], stream=True, **options
    )
    assert not stream._self_state.tapped
    chunks = list(stream)
    assert isinstance(stream._decoder, OwnDecoder if usage == "asked by the caller" else EventTap)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert all(chunk.choices for chunk in chunks) == (usage == "asked by carrot")
    [record] = openai_conftest.records(carrot, 1)
    assert text and record["output"]["message"]["content"] == text
    assert record["metadata"]["output_tokens"] > 0


# --- time to first chunk -----------------------------------------------------------------------------------------

WAIT = 0.3


class CommentFirst(Reply):
    """A keep-alive comment at once (as OpenRouter and other proxies send while the model works), the events WAIT
    seconds later: the first read holds no event."""

    def __init__(self, events: list[Any]) -> None:
        self.body = b"".join(map(encode_sse_event, events))

    def send(self, conn: Any, request: Any) -> None:
        conn.start_response(200, {"content-type": "text/event-stream"}, chunked=True, length=None)
        conn.write_chunk(b": keep-alive\n\n")
        conn.wait(WAIT)
        conn.write_chunk(self.body)
        conn.end_chunks()


@pytest.mark.parametrize("how", ["loop", "next", "async loop", "async next", "carrot asks for usage"])
def test_time_to_first_chunk_is_when_the_first_item_comes_not_the_first_bytes(
    provider: str, carrot: IngestServer, how: str
) -> None:
    """Found in review: a stream kept as bytes marked its first chunk at the first read, which may be a comment."""
    if how == "carrot asks for usage" and provider != "openai":
        pytest.skip("only openai's streams have a usage chunk carrot asks for (and the provider asks for it)")
    is_async = how.startswith("async")
    server: Any = FakeAnthropic() if provider == "anthropic" else FakeOpenAI()
    with server:
        if provider != "anthropic":
            server.enqueue(CommentFirst(openai_events()))
            client: Any = carrot_ai.wrap(openai_conftest.make_client(server, is_async=is_async))
            asked = how == "carrot asks for usage" or provider != "openai"
            usage = {} if asked else {"stream_options": {"include_usage": True}}
            opened = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, **usage
            )
        else:
            server.enqueue(CommentFirst(anthropic_events()))
            client = carrot_ai.wrap(anthropic_conftest.make_client(server, is_async=is_async))
            opened = client.messages.create(
                model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
            )

        async def read_async() -> list[Any]:
            stream = await opened
            if how == "async next":
                return [await stream.__anext__()] + [item async for item in stream]
            return [item async for item in stream]

        if is_async:
            items = asyncio.run(read_async())
        elif how == "next":
            items = [next(opened)] + list(opened)
        else:
            items = list(opened)
        assert text_of(provider, items) == "".join(WORDS)
        record = recorded(provider, carrot)
    assert record["metadata"]["time_to_first_token_ms"] >= WAIT * 1000 * 0.9
    assert record["metadata"]["time_to_first_token_ms"] <= record["metadata"]["latency_ms"]


def test_a_chunk_the_accumulator_fails_on_costs_that_chunk_only_when_folded_in_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: folding a tapped stream's events in (on the export worker, or at its end on the calling
    thread when the queue is backlogged) let one chunk's error fail the whole result, where the stream folded in as
    read skips that chunk (and the calling thread's end of the stream then never ended the span)."""
    from carrot_ai._core._stream import _Fold

    monkeypatch.delenv("CARROT_STRICT")  # as in production: the error is reported, not raised

    class Words:
        def __init__(self) -> None:
            self.words: list[str] = []

        def process(self, chunk: Any) -> bool:
            if chunk.word == "bad":
                raise KeyError("an odd chunk")
            self.words.append(chunk.word)
            return True

        def result(self) -> tuple[dict[str, Any], dict[str, Any]]:
            return {"n": len(self.words)}, {"text": " ".join(self.words)}

    body = b"".join(b'data: {"word": "%s"}\n\n' % word.encode() for word in ("a", "bad", "c"))
    assert _Fold(Words(), body, lambda events: [data for _, data in events])() == ({"n": 2}, {"text": "a c"})
