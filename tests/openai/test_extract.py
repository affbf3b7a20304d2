"""Pure extractors (dicts and SDK models alike) and the GenAI attributes on the span."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import carrot_ai
from carrot_ai import semconv
from carrot_ai.instrumentation.openai import _extract
from carrot_ai.instrumentation.openai._accumulate import ChatStreamAccumulator
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai.conftest import MODEL, make_client, records, user
from tests.openai.test_chat import WEATHER_TOOL


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"role": "user", "content": "hi"}, {"role": "user", "parts": [{"type": "text", "content": "hi"}]}),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
            {"role": "user", "parts": [{"type": "uri", "modality": "image", "uri": "https://x/cat.png"}]},
        ),
        (
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny"}]},
        ),
        (
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
            },
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}}]},
        ),
    ],
)
def test_chat_message_parts(message: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _extract.chat_message(message) == expected


def test_usage_of_dicts_and_models() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 16},
    }
    attributes: dict[str, Any] = {}
    _extract.usage_attributes(usage, attributes)
    model_attributes: dict[str, Any] = {}
    _extract.usage_attributes(
        openai.types.CompletionUsage.model_validate({**usage, "total_tokens": 140}), model_attributes
    )
    assert (
        attributes
        == model_attributes
        == {
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 40,
            semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 64,
            semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 16,
        }
    )


def test_malformed_results_are_recorded_as_far_as_known() -> None:
    attributes, output = _extract.chat_result({"id": "x", "choices": None, "usage": None}, True)
    assert attributes == {semconv.GEN_AI_RESPONSE_ID: "x", semconv.GEN_AI_OUTPUT_MESSAGES: "[]"}
    assert output == {"message": {"role": "assistant", "content": None}}
    attributes, output = _extract.responses_result({"output": [{"type": "brand_new"}]}, True)
    assert output == {"message": {"role": "assistant", "content": None}}


def test_materialize_iterables_copies_only_when_needed() -> None:
    kwargs = {"messages": [{"role": "user", "content": "x"}], "model": MODEL}
    assert _extract.materialize_iterables(kwargs) is kwargs
    generated = {"messages": (m for m in user("gen")), "model": MODEL}
    assert _extract.materialize_iterables(generated)["messages"] == user("gen")


def test_generator_messages_reach_the_sdk_whole(client: openai.OpenAI, carrot: IngestServer) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=(m for m in user("from a generator")))
    assert completion.choices[0].message.content == "Echo: from a generator"
    [record] = records(carrot, 1)
    assert record["input"]["messages"] == user("from a generator")


def test_error_attributes_of_status_and_connection_errors() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(429, headers={"x-request-id": "req_1"}, request=request)
    body = {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded", "param": None}
    status_error = openai.RateLimitError("slow down", response=response, body=body)
    assert _extract.error_attributes(status_error) == {
        semconv.HTTP_RESPONSE_STATUS_CODE: 429,
        semconv.CARROT_ERROR_CODE: "rate_limit_exceeded",
        semconv.CARROT_REQUEST_ID: "req_1",
    }
    assert _extract.error_attributes(openai.APIConnectionError(request=request)) == {}


def test_usage_chunk_is_hidden_only_when_we_asked_for_it() -> None:
    usage_chunk = openai.types.chat.ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": MODEL,
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )
    filter_chunk = usage_chunk.model_copy(update={"usage": None})  # Azure's prompt-filter chunk: choices == []
    assert ChatStreamAccumulator(True, hide_usage=True).process(usage_chunk) is False
    assert ChatStreamAccumulator(True, hide_usage=True).process(filter_chunk) is True
    assert ChatStreamAccumulator(True, hide_usage=False).process(usage_chunk) is True


@pytest.mark.parametrize(
    "data",
    [
        '{"choices":[],"usage":{"prompt_tokens":1}}',
        '{"choices": [], "usage": {"prompt_tokens": 1}}\r\n ',  # trailing JSON whitespace
        ' \t{"choices":[],"usage":{"prompt_tokens":1}}',  # leading whitespace
        '{"choices":[],"usage":{"prompt_tokens":1}}\x0b',  # not JSON whitespace: json.loads refuses it
        '{"choices":[],"usage":{"prompt_tokens":1}}{"choices":[]}',  # two values
        '{"choices":[],"usage":{"prompt_tokens":1}} x',
        '{"choices":[{"index":0}],"usage":{"prompt_tokens":1}}',
        '{"choices":[],"usage":null}',
        '{"usage":{"prompt_tokens":1}}',  # no choices at all: still the usage-only chunk
        '{"choices":[],"usage":{"prompt_tokens":1}',  # cut short
        '["choices","usage"]',
        "[DONE]",
        "",
        "{",
    ],
)
def test_the_usage_chunk_is_recognised_as_json_loads_would_read_it(data: str) -> None:
    from carrot_ai.instrumentation.openai._accumulate import is_usage_chunk, usage_chunk

    try:
        decoded = json.loads(data)
    except ValueError:
        decoded = None
    usage = isinstance(decoded, dict) and not decoded.get("choices") and isinstance(decoded.get("usage"), dict)
    assert usage_chunk(data) == (decoded if usage else None)
    assert is_usage_chunk(data) is usage


def test_span_carries_genai_attributes(fake: FakeOpenAI, ingest: IngestServer) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=provider)
    try:
        messages = [{"role": "system", "content": "Be brief."}, *user("hi")]
        carrot_ai.wrap(make_client(fake)).chat.completions.create(
            model=MODEL, messages=messages, tools=[WEATHER_TOOL], max_tokens=20, stop="END", temperature=0.5, seed=7
        )
        carrot_ai.wrap(make_client(fake)).responses.create(model=MODEL, instructions="Be brief.", input="hi")
    finally:
        carrot_ai.shutdown()
        provider.shutdown()
    chat, responses = spans.get_finished_spans()
    attributes = dict(chat.attributes or {})
    assert chat.name == f"chat {MODEL}"
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 20
    assert attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert attributes[semconv.GEN_AI_REQUEST_SEED] == 7
    assert attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert json.loads(attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
    ]
    function = WEATHER_TOOL["function"]
    assert json.loads(attributes[semconv.GEN_AI_TOOL_DEFINITIONS]) == [{"type": "function", **function}]
    assert json.loads(attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Echo: hi"}], "finish_reason": "stop"}
    ]
    response_attributes = dict(responses.attributes or {})
    assert json.loads(response_attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(response_attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]


def test_content_capture_off_keeps_metadata_only(fake: FakeOpenAI, carrot: IngestServer) -> None:
    carrot_ai.init(api_key="ck-test-key", base_url=carrot.base_url, flush_interval=0.05, capture_content=False)
    client = carrot_ai.wrap(make_client(fake))
    client.chat.completions.create(model=MODEL, messages=user("private"))
    for _chunk in client.chat.completions.create(model=MODEL, messages=user("private stream"), stream=True):
        pass
    got = records(carrot, 2)
    assert "private" not in json.dumps(got)
    assert all(r["metadata"]["input_tokens"] > 0 and r["metadata"]["output_tokens"] > 0 for r in got)


def test_the_event_tap_takes_only_the_usage_only_event_and_keeps_the_bytes() -> None:
    from openai._streaming import ServerSentEvent, SSEDecoder

    from carrot_ai._core._stream import EventTap, decode_events, sse_events
    from carrot_ai.instrumentation.openai._accumulate import USAGE_HINTS, is_usage_chunk
    from carrot_ai.instrumentation.openai._calls import OpenAIStreamState

    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    data = [
        '{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"a"}}]}',
        '{"id":"c1","choices":[],"prompt_filter_results":[]}',  # Azure: no usage, passes
        '{"choices":[], "usage": not json',  # malformed: left to the SDK
        json.dumps({"id": "c1", "model": "m", "choices": [], "usage": usage}),
        "[DONE]",
    ]
    raw = "".join(f"data: {text}\n\n" for text in data).encode()
    reads = [raw[:50], raw[50:120], raw[120:]]
    accumulator = ChatStreamAccumulator(True, hide_usage=True)
    kept: list[bytes] = []
    tap = EventTap(SSEDecoder(), kept, is_usage_chunk, USAGE_HINTS)
    passed = list(tap.iter_bytes(iter(reads)))
    assert [event.data for event in passed] == [data[0], data[1], data[2], data[4]] and tap.diverted == 1
    # The bytes are kept as read, the diverted event's too: the accumulator folds it in (and hides it) later, on the
    # export worker; nothing decoded is held until then.
    assert kept == reads
    for chunk in decode_events(OpenAIStreamState.sdk_texts(sse_events(b"".join(kept))), ChatStreamAccumulator.view):
        accumulator.process(chunk)
    attributes, _ = accumulator.result()
    assert attributes["gen_ai.usage.input_tokens"] == 3 and attributes["gen_ai.usage.output_tokens"] == 2
    assert attributes["gen_ai.response.id"] == "c1"
    # A stream whose chunks are folded in as the caller reads them: its divert folds the usage chunk in at once.
    events = [ServerSentEvent(data=text) for text in data]

    class Decoder:
        def iter_bytes(self, iterator: Any) -> Any:
            yield from events

    accumulator = ChatStreamAccumulator(True, hide_usage=True)
    passed = list(EventTap(Decoder(), None, accumulator.divert, USAGE_HINTS).iter_bytes(iter(())))
    assert passed == [events[0], events[1], events[2], events[4]]
    attributes, _ = accumulator.result()
    assert attributes["gen_ai.usage.input_tokens"] == 3 and attributes["gen_ai.usage.output_tokens"] == 2
    assert attributes["gen_ai.response.id"] == "c1"
    # Without a divert, the SDK's own decoder reads the bytes, which are kept as read; nothing is decoded.
    reads = [b'data: {"n":1}\n', b"\ndata: [DO", b"NE]\n\n"]
    kept.clear()
    passed = list(EventTap(SSEDecoder(), kept, None, USAGE_HINTS).iter_bytes(iter(reads)))
    assert [event.data for event in passed] == ['{"n":1}', "[DONE]"] and kept == reads


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "folded as read"])
def test_the_event_tap_takes_only_the_usage_chunk_and_reads_no_event_before_the_sdk_asks(keep: bool) -> None:
    """Chunks with choices, a chunk without (Azure's filter results), chunks written by Python's ``json`` (spaced) and
    chunks after the usage chunk all reach the SDK; only the usage-only chunk is taken. The tap reads an event only
    when the SDK asks for the next one (a stream's next event may not have arrived yet)."""
    from openai._streaming import SSEDecoder

    from carrot_ai._core._stream import EventTap
    from carrot_ai.instrumentation.openai._accumulate import USAGE_HINTS, is_usage_chunk

    def content(text: str) -> str:
        return '{"id":"c1","choices":[{"index":0,"delta":{"content":"' + text + '"}}],"usage":null}'

    usage = '{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    data = [
        content("a"),
        content("b"),
        '{"id": "c1", "choices": [{"index": 0, "delta": {"content": "c"}}]}',  # spaced, as Python's json writes
        '{"id":"c1","choices":[],"prompt_filter_results":[{"prompt_index":0}]}',  # no choice, no usage: passed on
        content("d"),
        usage,  # the usage-only chunk: taken
        content("e"),  # (a chunk after it, as no server sends: still passed on)
        "[DONE]",
    ]
    reads = [f"data: {text}\n\n".encode() for text in data]  # an event a read, as a model's tokens come
    pulled: list[int] = []

    def network() -> Any:
        for number, read in enumerate(reads):
            pulled.append(number)
            yield read

    kept: list[bytes] | None = [] if keep else None
    divert = is_usage_chunk if keep else ChatStreamAccumulator(True, hide_usage=True).divert
    passed = []
    for event in EventTap(SSEDecoder(), kept, divert, USAGE_HINTS).iter_bytes(network()):
        passed.append(event.data)
        # Read so far: the events handed on, and the one taken away if it came before the last of them.
        assert len(pulled) == len(passed) + (data.index(event.data) > data.index(usage))
    assert passed == [text for text in data if text is not usage]
    assert pulled == list(range(len(data)))
    if kept is not None:
        assert kept == reads  # every read, in order, the usage chunk's too


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"max_tokens": 64}, 64),
        ({"max_completion_tokens": 32, "max_tokens": 64}, 32),
        # An explicit None sets no limit of its own (sent as null): the max_tokens sent beside it is the limit.
        ({"max_completion_tokens": None, "max_tokens": 64}, 64),
        ({"max_completion_tokens": None}, None),
    ],
)
def test_the_request_max_tokens_is_the_limit_sent(params: dict[str, Any], expected: int | None) -> None:
    attributes = _extract.chat_request({"model": MODEL, "messages": [], **params}, False, None, False)
    assert attributes.get(semconv.GEN_AI_REQUEST_MAX_TOKENS) == expected


def test_audio_and_document_inputs_are_media_parts_with_their_type_and_size(
    fake: FakeOpenAI, ingest: IngestServer
) -> None:
    import base64

    provider = TracerProvider(shutdown_on_exit=False)
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=provider)
    audio = base64.b64encode(b"RIFF" + bytes(2044)).decode()
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4" + bytes(1016)).decode()
    try:
        carrot_ai.wrap(make_client(fake)).chat.completions.create(
            model=MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                        {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf}},
                    ],
                }
            ],
        )
    finally:
        carrot_ai.shutdown()
        provider.shutdown()
    (span,) = spans.get_finished_spans()
    assert json.loads(dict(span.attributes or {})[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {
            "role": "user",
            "parts": [
                {
                    "type": "blob",
                    "modality": "audio",
                    "mime_type": "audio/wav",
                    "content": "<media: audio/wav, 2048 bytes>",
                },
                {
                    "type": "blob",
                    "modality": "document",
                    "mime_type": "application/pdf",
                    "content": "<media: application/pdf, 1024 bytes>",
                },
            ],
        }
    ]


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ({"type": "web_search"}, {"type": "web_search", "name": "web_search"}),
        (
            {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.example/mcp"},
            {"type": "mcp", "name": "mcp", "server_label": "deepwiki"},
        ),
        ({"type": "file_search", "vector_store_ids": ["vs_1"]}, {"type": "file_search", "name": "file_search"}),
    ],
)
def test_a_built_in_tool_definition_is_named_by_its_type(tool: dict[str, Any], expected: dict[str, Any]) -> None:
    # It was {"type": ..., "name": null}: a definition no reader of gen_ai.tool.definitions can name.
    assert _extract.tool_definition(tool) == expected
