"""Other instrumentations' GenAI spans as records (pure conversion: spans made by a real SDK tracer provider)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from carrot_ai.export import span_to_trace_record


def record_of(attributes: dict[str, Any]) -> dict[str, Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("some.genai.instrumentation").start_as_current_span("chat m", attributes=attributes):
        pass
    provider.shutdown()
    [span] = memory.get_finished_spans()
    record = span_to_trace_record(span)
    assert record is not None
    return dict(record)


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (("stop",), ["stop"]),
        (("stop", "length"), ["stop", "length"]),
        ('["stop"]', ["stop"]),  # litellm's own spans write the list as JSON text
        ("stop", ["stop"]),
        ("[not json", ["[not json"]),
        # Malformed values another emitter may set: one reason, never a record lost to a TypeError.
        (5, ["5"]),
        (True, ["True"]),
        ('{"a": 1}', ['{"a": 1}']),
    ],
)
def test_finish_reasons_are_a_list_of_reasons_never_of_characters(reasons: Any, expected: list[str]) -> None:
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.response.finish_reasons": reasons}
    assert record_of(chat)["metadata"]["finish_reasons"] == expected


def test_an_embeddings_record_has_no_output_tokens_as_zero() -> None:
    embeddings = {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e", "gen_ai.usage.input_tokens": 8}
    metadata = record_of(embeddings)["metadata"]
    assert (metadata["input_tokens"], metadata["output_tokens"], metadata["total_tokens"]) == (8, 0, 8)
    chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 8}
    assert "output_tokens" not in record_of(chat)["metadata"]  # unknown, not zero


def _chat_with_output(provider: str, parts: list[dict[str, Any]], reason: str) -> dict[str, Any]:
    output = [{"role": "assistant", "parts": parts, "finish_reason": reason}]
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": "m",
        "gen_ai.output.messages": json.dumps(output),
    }


def test_openai_server_tool_parts_become_the_records_server_tool_calls_as_carrot_records_them() -> None:
    # The parts carrot's own instrumentation puts on its span, converted as another instrumentation's span.
    from tests.openai.test_server_tools import EXPECTED_PARTS, SERVER_TOOL_CALLS

    message = record_of(_chat_with_output("openai", EXPECTED_PARTS, "tool_calls"))["output"]["message"]
    assert message["server_tool_calls"] == SERVER_TOOL_CALLS
    assert message["content"] == "Refunds within 30 days; 6 * 7 = 42."
    assert [call["id"] for call in message["tool_calls"]] == ["call_cu1"]


def test_anthropic_server_tool_parts_become_the_records_server_tool_calls_as_carrot_records_them() -> None:
    from tests.anthropic.test_server_tools import EXPECTED_MESSAGE, EXPECTED_PARTS

    message = record_of(_chat_with_output("anthropic", EXPECTED_PARTS, "tool_use"))["output"]["message"]
    assert message["server_tool_calls"] == EXPECTED_MESSAGE["server_tool_calls"]
    assert message["content"] == EXPECTED_MESSAGE["content"]


def test_a_server_tool_call_part_holding_the_whole_item_keeps_its_result() -> None:
    # As the official OpenAI instrumentation writes a file search: the item's fields, results included, in the call.
    part = {
        "type": "server_tool_call",
        "id": "fs_1",
        "name": "file_search",
        "server_tool_call": {
            "type": "file_search",
            "queries": ["q"],
            "results": [{"text": "t"}],
            "status": "completed",
        },
    }
    [call] = record_of(_chat_with_output("openai", [part], "stop"))["output"]["message"]["server_tool_calls"]
    assert call == {
        "id": "fs_1",
        "type": "file_search_call",
        "name": "file_search",
        "input": ["q"],
        "status": "completed",
        "result": [{"text": "t"}],
    }


def test_server_tool_parts_of_an_unknown_provider_keep_their_payload() -> None:
    parts = [
        {"type": "server_tool_call", "id": "s1", "name": "search", "server_tool_call": {"type": "search", "q": "x"}},
        {"type": "server_tool_call_response", "id": "s1", "server_tool_call_response": {"type": "search", "hits": 2}},
    ]
    message = record_of(_chat_with_output("some.provider", parts, "stop"))["output"]["message"]
    assert message["server_tool_calls"] == [
        {"id": "s1", "type": "server_tool_call", "name": "search", "input": {"q": "x"}, "result": 2}
    ]
    assert "content" not in message


def test_latency_is_the_float_round_gives_for_any_duration() -> None:
    """``metadata.latency_ms`` is ``round(ns / 1e6, 3)`` exactly, worked out in integers but for exact ties and
    durations past 11 days, which take ``round`` itself (the float error of ``ns / 1e6`` decides a tie)."""
    import random

    from carrot_ai.export._convert import latency_ms

    rng = random.Random(9)
    durations = [0, -5, 1, 499, 500, 501, 999, 1_500, 2_500, 10**15 - 1, 10**15, 10**15 + 501, 2**53 + 1, 2**63]
    for _ in range(20_000):
        base = rng.randrange(10 ** rng.randrange(1, 16)) // 1000 * 1000
        durations += [base, base + rng.choice((1, 499, 500, 501, 999)), rng.randrange(10**16)]
    for ns in durations:
        assert repr(latency_ms(ns)) == repr(round(max(ns, 0) / 1e6, 3)), ns


def test_timestamps_are_written_as_datetime_isoformat_writes_them() -> None:
    """``started_at`` / ``ended_at`` of a span's nanoseconds: ``datetime.isoformat()`` of the UTC time to the
    microsecond (no fraction on a whole second), the cached second's prefix reused and replaced; a text the span
    carries (a manual event's) is kept as it is, an empty or non-text one is not."""
    import datetime
    import random

    from carrot_ai.export._convert import _iso

    def expected(ns: int) -> str:
        seconds, rest = divmod(ns, 10**9)
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
        return moment.replace(microsecond=rest // 1000).isoformat()

    rng = random.Random(5)
    times = [0, 999, 1_000, 10**9, 10**9 + 999, 10**9 + 1_000, 1_765_000_000 * 10**9 + 999_999_999]
    for _ in range(5_000):
        second = rng.randrange(4 * 10**9) * 10**9
        times += [second + rng.randrange(10**9), second, second + rng.randrange(1_000)]
    for ns in times:
        assert _iso(None, ns) == expected(ns), ns
    assert _iso("2026-01-02T03:04:05+00:00", 0) == "2026-01-02T03:04:05+00:00"
    assert _iso("", 10**9) == _iso(12, 10**9) == "1970-01-01T00:00:01+00:00"


def test_record_id_is_the_uuid_of_the_folded_trace_id_and_the_span_id() -> None:
    """The id written from the two 64-bit halves is the one a 128-bit value's hex, sliced, gave (and a version-8
    UUID), for ids at the bounds of their bits and random ones, wider ones included (only their bits count)."""
    import random
    import uuid

    from carrot_ai.export._convert import record_id

    def sliced(trace_id: int, span_id: int) -> str:
        mask64 = (1 << 64) - 1
        value = ((((trace_id >> 64) ^ trace_id) & mask64) << 64) | (span_id & mask64)
        value = (value & ~(0xF << 76) & ~(0x3 << 62) & ((1 << 128) - 1)) | (8 << 76) | (2 << 62)
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    rng = random.Random(8)
    edges = [0, 1, 2**16 - 1, 2**32, 2**48 - 1, 2**48, 2**62, 2**63, 2**64 - 1, 2**64, 2**127, 2**128 - 1]
    pairs = [(t, s) for t in edges for s in edges]
    pairs += [
        (rng.getrandbits(rng.choice((64, 128, 140))), rng.getrandbits(rng.choice((16, 64, 70)))) for _ in range(20_000)
    ]
    for trace_id, span_id in pairs:
        text = record_id(trace_id, span_id)
        assert text == sliced(trace_id, span_id), (trace_id, span_id)
        assert uuid.UUID(text).version == 8 and uuid.UUID(text).variant == uuid.RFC_4122
