"""Containment: an exception in our processor, converter, redaction or transport never reaches user code, is
counted and logged once, and never stops later exports. These run without CARROT_STRICT, as in production."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags

import carrot_ai
from carrot_ai._core import _guard
from carrot_ai.export import CarrotSpanExporter, CarrotSpanProcessor
from tests.export_helpers import call_traced, shutdown_after, start  # noqa: F401
from tests.ingest_server import Fault, IngestServer


@pytest.fixture(autouse=True)
def production_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Internal errors are swallowed (the test suite's strict mode would re-raise them)."""
    monkeypatch.delenv("CARROT_STRICT")
    yield


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="carrot_ai")
    return caplog


class ExplodingAttributes(dict[str, Any]):
    """Attributes that look fine to the processor but explode when the converter reads the input."""

    def get(self, key: str, default: Any = None) -> Any:
        if key == "carrot.input":
            raise RuntimeError("attribute store is corrupt")
        return super().get(key, default)


def a_span(span_id: int, attributes: dict[str, Any]) -> ReadableSpan:
    context = SpanContext(0xABC, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(name="s", context=context, attributes=attributes, start_time=1, end_time=2)


def our_attributes(name: str) -> dict[str, Any]:
    return {"carrot.kind": "function", "carrot.name": name, "carrot.input": "{}", "carrot.output": "{}"}


def test_failing_redact_fn_never_reaches_user_code_and_exports_continue(
    ingest: IngestServer, tracer_provider: TracerProvider, warnings: pytest.LogCaptureFixture
) -> None:
    def broken_redactor(text: str) -> str:
        raise ValueError("redactor bug")

    start(ingest.base_url, tracer_provider, redact=True, redact_fn=broken_redactor)
    before = _guard.internal_errors

    @carrot_ai.trace
    def greet(name: str) -> dict[str, str]:
        return {"greeting": f"hello {name}"}

    results = [greet("ada"), greet("bob")]
    assert results == [{"greeting": "hello ada"}, {"greeting": "hello bob"}]
    assert carrot_ai.flush(5)
    records = ingest.wait_for(2)
    assert [r["input"] for r in records] == [{"name": "[REDACTION FAILED]"}] * 2
    assert _guard.internal_errors > before
    logged = [r.getMessage() for r in warnings.records if "internal error in redaction" in r.getMessage()]
    assert len(logged) <= 1  # once per process: an earlier test may have used it up


def test_span_that_breaks_conversion_is_counted_and_its_neighbours_delivered(
    ingest: IngestServer, warnings: pytest.LogCaptureFixture
) -> None:
    exporter = CarrotSpanExporter(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05)
    spans = [
        a_span(1, our_attributes("before")),
        a_span(2, ExplodingAttributes(our_attributes("broken"))),
        a_span(3, our_attributes("after")),
    ]
    assert exporter.export(spans).name == "SUCCESS"
    assert exporter.force_flush(5_000) is False  # one record could not be delivered, and flush says so
    assert sorted(r["name"] for r in ingest.wait_for(2)) == ["after", "before"]
    assert exporter.stats.internal_error == 1
    assert exporter.stats.delivered == 2
    exporter.export([a_span(4, our_attributes("later"))])
    assert exporter.force_flush(5_000) is True
    assert ingest.by_name("later")
    assert len([r for r in warnings.records if "internal error in span conversion" in r.getMessage()]) <= 1
    exporter.shutdown()


def test_error_in_the_processor_never_reaches_the_ending_span(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    class AttributesThatCannotBeCounted(dict[str, Any]):
        def values(self) -> Any:
            raise RuntimeError("cannot iterate")

    exporter = CarrotSpanExporter(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05)
    tracer_provider.add_span_processor(CarrotSpanProcessor(exporter))
    tracer = tracer_provider.get_tracer("carrot_ai.test")
    with tracer.start_as_current_span("fine", attributes=our_attributes("fine")) as span:
        # A span whose attributes break our size estimate at on_end: the span still ends normally.
        span._attributes = AttributesThatCannotBeCounted(our_attributes("uncountable"))  # type: ignore[attr-defined]
    with tracer.start_as_current_span("fine", attributes=our_attributes("fine")):
        pass
    assert exporter.force_flush(5_000) is False  # the lost span is reported
    assert [r["name"] for r in ingest.wait_for(1)] == ["fine"]
    assert exporter.stats.internal_error == 1
    exporter.shutdown()


def test_unencodable_values_do_not_poison_the_batch(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    start(ingest.base_url, tracer_provider, flush_interval=30)
    tracer = tracer_provider.get_tracer("some.genai.instrumentation")

    @carrot_ai.trace
    def surrogate() -> str:
        return "half a pair: \ud800"

    surrogate()
    with tracer.start_as_current_span(
        "chat nan-model",
        attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.request.temperature": 1.0},
    ) as span:
        span.set_attribute("gen_ai.request.temperature", float("nan"))
    call_traced(1, name="neighbour")
    assert carrot_ai.flush(5)
    records = ingest.wait_for(3)
    by_name = {r["name"].rsplit(".", 1)[-1]: r for r in records}
    assert by_name["surrogate"]["output"] == {"result": "half a pair: ?"}
    assert by_name["chat nan-model"]["input"]["temperature"] == "nan"
    assert "neighbour" in by_name


def test_broken_transport_configuration_is_counted_and_never_raises(
    ingest: IngestServer, tracer_provider: TracerProvider, warnings: pytest.LogCaptureFixture
) -> None:
    start(ingest.base_url.replace("http:", "https:"), tracer_provider, ca_bundle="/nonexistent/ca.pem")
    call_traced(3)
    assert carrot_ai.flush(5) is False
    assert carrot_ai.stats()["internal_error"] == 3
    messages = [r.getMessage() for r in warnings.records]
    assert len(messages) == 1
    assert "could not send 3 trace record(s)" in messages[0]
    assert "FileNotFoundError" in messages[0]


@pytest.mark.timeout(30)
def test_calls_never_wait_for_a_hanging_ingest_endpoint(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    ingest.fault = Fault.hang()
    start(ingest.base_url, tracer_provider, request_timeout=600, export_deadline=600, exit_timeout=0.1, batch_size=1)
    call_traced(2_000)  # a call that waited on the network would hold the test until its timeout
    assert carrot_ai.stats()["queued"] > 0


def test_export_after_shutdown_is_counted_not_raised(ingest: IngestServer) -> None:
    exporter = CarrotSpanExporter(api_key="ck-test-key", base_url=ingest.base_url)
    exporter.shutdown()
    assert exporter.export([a_span(9, our_attributes("late"))]).name == "FAILURE"
    assert exporter.stats.shutdown == 1
    assert exporter.force_flush(100) is False


def test_records_queued_after_shutdown_are_counted_and_logged_once(
    ingest: IngestServer, warnings: pytest.LogCaptureFixture
) -> None:
    # Carrot's processor hands spans over through enqueue() (not export()): the spans another instrumentation ends on
    # the application's provider after carrot_ai.shutdown(), the records get_client().submit() queues then.
    exporter = CarrotSpanExporter(api_key="ck-test-key", base_url=ingest.base_url)
    exporter.shutdown()
    for span_id in (1, 2):
        exporter.enqueue(a_span(span_id, our_attributes("late")))
    exporter.enqueue_record({"id": "late", "name": "late"})
    assert exporter.stats.shutdown == 3
    logged = ["carrot_ai: spans exported after shutdown() are dropped (counted in carrot_ai.stats())"]
    assert [r.getMessage() for r in warnings.records if r.name == "carrot_ai"] == logged
    assert exporter.export([a_span(3, our_attributes("late"))]).name == "FAILURE"  # (the same loss: not again)
    assert exporter.stats.shutdown == 4
    assert [r.getMessage() for r in warnings.records if r.name == "carrot_ai"] == logged
