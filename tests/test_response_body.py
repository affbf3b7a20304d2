"""The response of a non-streaming OpenAI or Anthropic call is read from the bytes the SDK received.

On carrot's fast span, the body of the response (kept by the hook on the client's ``_process_response``) is parsed
on the export worker; with any other span processor on the provider, the response object is read at once. Every
recorded exchange of ``tests/cassettes`` gives the same record both ways, and the body is read where it should be.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

import carrot_ai
from carrot_ai.instrumentation.anthropic import AnthropicInstrumentor
from carrot_ai.instrumentation.openai import OpenAIInstrumentor
from tests.fakes.cassettes import CassetteServer, cassette_names, default_client, load_cassette, replay_through_sdk
from tests.ingest_server import IngestServer

# The exchanges that end in a response body (not a stream, not an error).
BODIES = [name for name in cassette_names() if all(i.status < 400 and not i.is_sse for i in load_cassette(name))]
# What differs between two calls of the same exchange.
_VOLATILE = {"id", "started_at", "ended_at"}
_VOLATILE_METADATA = {"latency_ms", "trace_id", "span_id", "parent_span_id"}


def _stable(record: dict[str, Any]) -> dict[str, Any]:
    stable = {k: v for k, v in record.items() if k not in _VOLATILE}
    stable["metadata"] = {k: v for k, v in record.get("metadata", {}).items() if k not in _VOLATILE_METADATA}
    return stable


def _replay(name: str, ingest: IngestServer, seen: int) -> list[dict[str, Any]]:
    interactions = load_cassette(name)
    with CassetteServer(interactions) as server:
        for interaction in interactions:
            replay_through_sdk(
                interaction, server.base_url, client_factory=lambda p, url, a: carrot_ai.wrap(default_client(p, url, a))
            )
        assert server.all_used and not server.mismatches and not server.errors
    assert carrot_ai.flush(5)
    got = ingest.wait_for(seen + len(interactions))
    assert len(got) == seen + len(interactions)
    return sorted(got[seen:], key=lambda r: str(r["started_at"]))


class _AppProcessor(SpanProcessor):
    """An application's span processor: carrot's spans are then the SDK's, and read at once."""


def test_the_cassettes_with_a_response_body_are_most_of_them() -> None:
    assert len(BODIES) >= 25


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"msg_1","content":[{"type":"text","text":"h\\u00e9 \\ud83d\\ude00"}],"usage":{"input_tokens":3}}',
        '{"text":"h\u00e9 \u6f22"}'.encode(),
        b'{"a":1}\r\n \t',  # trailing JSON whitespace
        b'{"a":1}\x0b',  # not JSON whitespace
        b'{"a":1}{"b":2}',  # two values
        b'{"a":1} x',
        b'{"a":',  # cut short
        b"{",
        b'{"a":1,}',
        b'{"lone":"\\ud800"}',
        b'{"a":"\xff"}',  # not UTF-8
        '{"a":1}'.encode("utf-16-le"),
        '{"a":1}'.encode("utf-16"),  # with its byte order mark
        '{"a":1}'.encode("utf-32-le"),
        b'\xef\xbb\xbf{"a":1}',  # a UTF-8 byte order mark
        b' {"a":1}',
        b'["a",1]',
        b"null",
        b"",
    ],
)
def test_a_response_body_is_decoded_as_json_loads_decodes_it(body: bytes) -> None:
    import json

    from carrot_ai._core._serialize import loads

    try:
        expected: Any = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        with pytest.raises(type(exc)):
            loads(body)
        return
    assert loads(body) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"choices":[],"usage":{"prompt_tokens":3}}',
        '{"text":"h\u00e9 \ud83d\ude00 \u6f22"}',
        '{"a":1}\r\n \t',
        '{"a":1}\x0b',
        '{"a":1}{"b":2}',
        '{"a":1} x',
        '{"a":',
        "{",
        '{"a":1,}',
        '{"lone":"\\ud800"}',
        '\ufeff{"a":1}',
        ' {"a":1}',
        '["a",1]',
        "null",
        "",
    ],
)
def test_an_events_data_is_decoded_as_json_loads_decodes_it(text: str) -> None:
    import json

    from carrot_ai._core._serialize import loads_text

    try:
        expected: Any = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            loads_text(text)
        return
    assert loads_text(text) == expected


@pytest.mark.parametrize("name", BODIES)
def test_a_response_read_from_its_bytes_on_the_worker_is_recorded_as_when_read_at_once(
    name: str, carrot: IngestServer, tracer_provider: TracerProvider
) -> None:
    on_worker = _replay(name, carrot, 0)
    tracer_provider.add_span_processor(_AppProcessor())
    at_once = _replay(name, carrot, len(on_worker))
    assert [_stable(r) for r in on_worker] == [_stable(r) for r in at_once]
    assert all(r["output"] for r in on_worker)


def _read_where(carrot: IngestServer, tracer_provider: TracerProvider, client_factory: Any, name: str) -> set[str]:
    """Replay ``name`` (one call) through ``client_factory``'s clients; the threads where the record's output text
    was read (the redaction function sees every captured string)."""
    interactions = load_cassette(name)
    threads: dict[str, set[str]] = {}

    def redact(text: str) -> str:
        threads.setdefault(text, set()).add(threading.current_thread().name)
        return text

    carrot_ai.init(api_key="ck-test-key", base_url=carrot.base_url, redact_fn=redact, tracer_provider=tracer_provider)
    try:
        with CassetteServer(interactions) as server:
            for interaction in interactions:
                replay_through_sdk(interaction, server.base_url, client_factory=client_factory)
        assert carrot_ai.flush(5)
        [record] = carrot.wait_for(1)
    finally:
        carrot_ai.shutdown()
    return threads[record["output"]["message"]["content"]]


CALLS = [
    "openai/contrib_chat_completion_with_content",
    "openai/contrib_async_chat_completion_with_content",
    "anthropic/contrib_sync_messages_create_basic",
]


@pytest.mark.parametrize("name", CALLS)
def test_a_wrapped_clients_response_is_read_on_the_export_worker(
    name: str, ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    def wrapped(provider: str, url: str, is_async: bool) -> Any:
        return carrot_ai.wrap(default_client(provider, url, is_async))

    assert _read_where(ingest, tracer_provider, wrapped, name) == {"carrot-ai-exporter"}


@pytest.mark.parametrize("name", CALLS)
def test_an_instrumented_clients_response_is_read_on_the_export_worker(
    name: str, ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    instrumentor = OpenAIInstrumentor() if name.startswith("openai") else AnthropicInstrumentor()
    instrumentor.instrument()
    try:
        assert _read_where(ingest, tracer_provider, default_client, name) == {"carrot-ai-exporter"}
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize("name", CALLS)
def test_with_an_app_processor_the_response_is_read_on_the_calling_thread(
    name: str, ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    def wrapped(provider: str, url: str, is_async: bool) -> Any:
        return carrot_ai.wrap(default_client(provider, url, is_async))

    tracer_provider.add_span_processor(_AppProcessor())
    assert _read_where(ingest, tracer_provider, wrapped, name) == {threading.current_thread().name}
