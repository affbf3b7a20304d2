from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# Internal errors in our telemetry code fail the tests instead of being swallowed.
os.environ["CARROT_STRICT"] = "1"
for _name in [n for n in os.environ if n.startswith("CARROT_") and n != "CARROT_STRICT"]:
    del os.environ[_name]

import carrot_ai  # noqa: E402
from carrot_ai import _setup  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
from tests.ingest_server import IngestServer  # noqa: E402


@pytest.fixture(autouse=True)
def _no_ended_stream_is_kept_open() -> Iterator[None]:
    """Every test: a stream whose call has ended is no longer in the open-stream registry (a subclass ending its call
    its own way once left it there: kept alive, with its call and output, for the life of the process)."""
    yield
    import sys

    streams = sys.modules.get("carrot_ai._core._stream")
    if streams is not None:
        kept = [state for state in streams._OPEN.values() if state.done]
        streams._OPEN.clear()  # (the next test starts without this one's open streams)
        assert not kept, kept


@pytest.fixture
def ingest() -> Iterator[IngestServer]:
    with IngestServer() as server:
        yield server
        assert not server.invalid, f"records that fail the JSON Schema: {server.invalid}"


@pytest.fixture
def tracer_provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    yield provider
    provider.shutdown()


@pytest.fixture
def carrot(ingest: IngestServer, tracer_provider: TracerProvider) -> Iterator[IngestServer]:
    """carrot_ai set up against the local ingest server, on a tracer provider of this test's own."""
    carrot_ai.init(
        api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=tracer_provider
    )
    yield ingest
    carrot_ai.shutdown()
    assert _setup._state is None


@pytest.fixture
def spans(ingest: IngestServer) -> Iterator[InMemorySpanExporter]:
    """carrot_ai set up against the ingest server, on a tracer provider whose finished spans are kept here (a second
    processor: a response is then read from the SDK's objects, not from the body on the export worker)."""
    provider = TracerProvider(shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=provider)
    yield exporter
    carrot_ai.shutdown()
    provider.shutdown()


# The export queue of the ``backlogged`` fixture: a call or two fill a quarter of it, past which calls are read on the
# calling thread rather than on the export worker.
BACKLOG_QUEUE_BYTES = 6_000


@pytest.fixture
def backlogged(ingest: IngestServer, tracer_provider: TracerProvider) -> Iterator[dict[str, str]]:
    """carrot_ai set up with a small export queue (``BACKLOG_QUEUE_BYTES``) that is sent only on flush; yields where
    each captured text was read: the name of the thread that ran the redaction function on it."""
    read_on: dict[str, str] = {}

    def redact(text: str) -> str:
        read_on.setdefault(text, threading.current_thread().name)
        return text

    carrot_ai.init(
        api_key="ck-test-key",
        base_url=ingest.base_url,
        flush_interval=60,
        max_queue_bytes=BACKLOG_QUEUE_BYTES,
        redact_fn=redact,
        tracer_provider=tracer_provider,
    )
    yield read_on
    carrot_ai.shutdown()


def check_backlogged_streams(got: list[dict[str, Any]], read_on: dict[str, str], finish_reason: str) -> None:
    """The records of two streams made on the ``backlogged`` fixture, asking "first question" then "second question"
    of a fake that echoes: both recorded whole; the first folded in on the export worker (the queue was empty), the
    second at its end on the calling thread (the queue was past a quarter of its budget)."""
    got = sorted(got, key=lambda r: str(r["input"]["messages"][0]["content"]))
    assert [r["output"]["message"]["content"] for r in got] == ["Echo: first question", "Echo: second question"]
    assert all(r["metadata"]["output_tokens"] > 0 and r["metadata"]["finish_reasons"] == [finish_reason] for r in got)
    main = threading.current_thread().name
    assert read_on["Echo: first question"] != main
    assert read_on["Echo: second question"] == main


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A local stand-in for the OpenAI API (its wire protocol, SSE streams included) on 127.0.0.1."""
    with FakeOpenAI() as server:
        yield server
        assert not server.errors, server.errors


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A local stand-in for the Anthropic API on 127.0.0.1."""
    with FakeAnthropic() as server:
        yield server
        assert not server.errors, server.errors
