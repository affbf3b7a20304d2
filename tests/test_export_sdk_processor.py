"""The same guarantees when the SDK's own ``BatchSpanProcessor`` wraps our exporter (``OTEL_TRACES_EXPORTER=carrot``).

The configurator path itself runs in subprocesses (test_export_exit.py, test_export_fork.py); here the processor
is built by hand on a provider of the test's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import carrot_ai
from carrot_ai.export import CarrotSpanExporter
from tests.ingest_server import Fault, IngestServer

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-x"}


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    yield provider
    provider.shutdown()


def attach(provider: TracerProvider, ingest: IngestServer, **options: Any) -> CarrotSpanExporter:
    exporter = CarrotSpanExporter(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, **options)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    return exporter


def chat_spans(provider: TracerProvider, count: int, payload: str = "") -> None:
    tracer = provider.get_tracer("some.genai.instrumentation")
    for index in range(count):
        attributes = {
            **CHAT,
            "gen_ai.input.messages": f'[{{"role":"user","parts":[{{"type":"text","content":"{index}{payload}"}}]}}]',
        }
        with tracer.start_as_current_span("chat gpt-x", attributes=attributes):
            pass


def test_records_are_delivered_through_the_sdk_batch_processor(ingest: IngestServer, provider: TracerProvider) -> None:
    exporter = attach(provider, ingest)
    chat_spans(provider, 30)
    assert provider.force_flush()
    assert carrot_ai.flush(5)
    records = ingest.wait_for(30)
    assert {r["name"] for r in records} == {"chat.completions"}
    assert exporter.stats.delivered == 30


def test_carrot_flush_is_honest_where_the_sdk_flush_is_not(ingest: IngestServer, provider: TracerProvider) -> None:
    ingest.fault = Fault.answer(503)
    exporter = attach(provider, ingest, export_deadline=0.3)
    chat_spans(provider, 5)
    assert provider.force_flush() is True  # the SDK only hands the spans over
    assert carrot_ai.flush(5) is False  # carrot says they did not arrive
    assert exporter.stats.network == 5


def test_byte_bound_holds_behind_the_sdk_batch_processor(ingest: IngestServer, provider: TracerProvider) -> None:
    ingest.fault = Fault.hang()
    exporter = attach(provider, ingest, max_queue_bytes=500_000, request_timeout=60, exit_timeout=0.1)
    chat_spans(provider, 300, "x" * 10_000)
    provider.force_flush()
    stats = exporter.snapshot()
    assert stats["queue_peak_bytes"] <= 500_000
    assert stats["queue_full"] > 200


def test_shutdown_through_the_sdk_processor_is_bounded_and_reports(
    ingest: IngestServer, provider: TracerProvider, capfd: pytest.CaptureFixture[str]
) -> None:
    ingest.fault = Fault.hang()
    exporter = attach(provider, ingest, request_timeout=300, export_deadline=600, exit_timeout=0.2)
    chat_spans(provider, 12)
    provider.shutdown()  # hands the last spans over, then shuts our exporter down within its exit timeout
    assert exporter.closed
    assert exporter.stats.shutdown == 12
    assert "12 trace record(s) were not delivered" in capfd.readouterr().err


def test_failing_conversion_behind_the_sdk_processor_is_contained(
    ingest: IngestServer, provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARROT_STRICT")

    class Exploding(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            if key == "gen_ai.input.messages":
                raise RuntimeError("corrupt")
            return super().get(key, default)

    exporter = attach(provider, ingest)
    tracer = provider.get_tracer("some.genai.instrumentation")
    with tracer.start_as_current_span("chat gpt-x", attributes=CHAT) as span:
        span._attributes = Exploding(CHAT)  # type: ignore[attr-defined]
    chat_spans(provider, 2)
    provider.force_flush()
    assert carrot_ai.flush(5) is False
    assert len(ingest.wait_for(2)) == 2
    assert (exporter.stats.delivered, exporter.stats.internal_error) == (2, 1)
    chat_spans(provider, 1)
    provider.force_flush()
    assert carrot_ai.flush(5) is True


def test_litellms_own_span_of_a_call_carrot_records_is_left_out(ingest: IngestServer, provider: TracerProvider) -> None:
    """LiteLLM's OpenTelemetry callback names its call (``litellm.call_id``); when carrot's LiteLLM instrumentation
    recorded that call (a stream: LiteLLM's span comes after it ended), the exporter leaves LiteLLM's span out
    here too. Its other calls' spans are records as usual."""
    from carrot_ai._core._tracing import remember_litellm_call

    exporter = attach(provider, ingest)
    remember_litellm_call("call-recorded-by-carrot")
    tracer = provider.get_tracer("litellm")
    for call_id in ("call-recorded-by-carrot", "call-carrot-did-not-see"):
        with tracer.start_as_current_span("litellm_request", attributes={**CHAT, "litellm.call_id": call_id}):
            pass
    assert provider.force_flush()
    assert carrot_ai.flush(5)
    [record] = ingest.wait_for(1)
    assert exporter.stats.delivered == 1
    assert record["metadata"]["source"] == "otel"


def test_carrot_flush_delivers_what_the_sdk_batch_processor_still_holds(
    ingest: IngestServer, provider: TracerProvider
) -> None:
    # OTEL_TRACES_EXPORTER=carrot behind the SDK's processor (whose own schedule is 5 s by default), then init() in
    # code: flush(), a serverless handler's last line before the process is frozen, hands those spans over too.
    exporter = CarrotSpanExporter(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=60)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, tracer_provider=provider)
    try:
        chat_spans(provider, 3)
        assert carrot_ai.flush(5) is True
        assert len(ingest.records) == 3
        assert carrot_ai.stats()["delivered"] == 3
    finally:
        carrot_ai.shutdown()


def test_carrot_shutdown_does_not_wait_for_the_application_exporter(ingest: IngestServer) -> None:
    # OTEL_TRACES_EXPORTER=otlp,carrot behind the SDK's processors, and an application collector that does not answer:
    # carrot_ai.shutdown() hands over and delivers carrot's spans within exit_timeout, and leaves the application's
    # processor alone (the SDK's force_flush ignores its timeout: it exports there and then).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    with IngestServer() as collector:
        collector.fault = Fault.hang()
        provider = TracerProvider(shutdown_on_exit=False)
        otlp = OTLPSpanExporter(endpoint=collector.base_url + "/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(otlp, schedule_delay_millis=60_000))
        exporter = CarrotSpanExporter(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=60)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
        carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, exit_timeout=1.0, tracer_provider=provider)
        try:
            chat_spans(provider, 2)
            started = time.monotonic()
            carrot_ai.shutdown()
            elapsed = time.monotonic() - started
            assert elapsed < 1.5, elapsed
            assert len(ingest.records) == 2
        finally:
            carrot_ai.shutdown()
            collector.fault = Fault.ok()
            collector.release_hangs()
            provider.shutdown()
