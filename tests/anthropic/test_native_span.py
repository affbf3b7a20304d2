"""anthropic 2.x's own span (scope com.anthropic.sdk.python): one record per call, with or without our wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from opentelemetry import baggage, context, propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator, default_getter, default_setter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import carrot_ai
from carrot_ai import semconv
from carrot_ai.export._convert import record_id
from carrot_ai.instrumentation.anthropic._native import current_headers, install_native_span_guard
from tests.anthropic.conftest import MODEL, make_client, no_more_records, records, takes, user
from tests.fakes.anthropic_server import FakeAnthropic, not_found
from tests.ingest_server import IngestServer

pytestmark = pytest.mark.skipif(
    not hasattr(anthropic._base_client.BaseClient, "_tracer"), reason="this anthropic version emits no spans"
)


@pytest.fixture
def spans(tracer_provider: TracerProvider) -> InMemorySpanExporter:
    """Every span that ends on the test's tracer provider (ours and the SDK's)."""
    exporter = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def native_client(fake: FakeAnthropic, tracer_provider: TracerProvider, is_async: bool = False, **otel: Any) -> Any:
    """A client whose own spans go to the test's tracer provider (as they would to a global one)."""
    return make_client(fake, is_async=is_async, open_telemetry={"tracer_provider": tracer_provider, **otel})


def scopes(spans: InMemorySpanExporter) -> list[str]:
    return [s.instrumentation_scope.name for s in spans.get_finished_spans() if s.instrumentation_scope]


def body(text: str) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 50, "messages": user(text)}


def test_without_our_instrumentation_the_sdk_records_its_span(
    fake: FakeAnthropic, tracer_provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    client = native_client(fake, tracer_provider)
    client.messages.create(**body("native"))
    assert scopes(spans) == [semconv.SCOPE_ANTHROPIC_SDK]  # the premise: the SDK does emit its span


def test_with_an_application_processor_the_sdks_span_is_kept_for_it_under_ours_and_one_record_is_sent(
    fake: FakeAnthropic, tracer_provider: TracerProvider, spans: InMemorySpanExporter, carrot: IngestServer
) -> None:
    # The application's pipeline gets the spans it got without carrot (the SDK's, now a child of carrot's call);
    # carrot's processor drops the SDK's span as a duplicate of the call it records.
    client = carrot_ai.wrap(native_client(fake, tracer_provider))
    client.messages.create(**body("one record"))
    for _event in client.messages.create(**body("stream"), stream=True):
        pass
    with client.messages.stream(**body("helper")) as stream:
        stream.get_final_text()
    finished = spans.get_finished_spans()
    sdk = [s for s in finished if s.instrumentation_scope.name == semconv.SCOPE_ANTHROPIC_SDK]
    ours = [s for s in finished if s.instrumentation_scope.name == semconv.SCOPE_ANTHROPIC]
    assert len(sdk) == len(ours) == 3
    for native, call, request in zip(sdk, ours, fake.requests, strict=True):
        assert native.parent is not None and native.parent.span_id == call.context.span_id
        # traceparent goes to the API as the SDK sends it: naming its own span.
        _, span_id, _ = traceparent_ids(request.headers["traceparent"])
        assert span_id == native.context.span_id
    got = records(carrot, 3)
    assert got[0]["output"]["message"]["content"] == "Echo: one record"
    no_more_records(carrot, 3)


def test_a_client_whose_spans_go_to_the_applications_own_provider_keeps_them(
    fake: FakeAnthropic, carrot: IngestServer
) -> None:
    # open_telemetry={"tracer_provider": the app's}: carrot records on its own provider; the app's keeps the SDK's span.
    app = TracerProvider(shutdown_on_exit=False)
    app_spans = InMemorySpanExporter()
    app.add_span_processor(SimpleSpanProcessor(app_spans))
    try:
        client = carrot_ai.wrap(native_client(fake, app))
        client.messages.create(**body("app provider"))
        assert scopes(app_spans) == [semconv.SCOPE_ANTHROPIC_SDK]
        [record] = records(carrot, 1)
        assert record["output"]["message"]["content"] == "Echo: app provider"
    finally:
        app.shutdown()


def test_no_traceparent_when_the_sdk_would_send_none(fake: FakeAnthropic, carrot: IngestServer) -> None:
    # No tracer provider is installed globally here (the test's provider is carrot's own), so the bare SDK sends none.
    make_client(fake).messages.create(**body("bare"))
    assert "traceparent" not in fake.last_request.headers
    carrot_ai.wrap(make_client(fake)).messages.create(**body("wrapped"))
    assert "traceparent" not in fake.last_request.headers
    with carrot_ai.wrap(make_client(fake)).messages.stream(**body("helper")) as stream:  # the guard's path
        stream.get_final_text()
    assert "traceparent" not in fake.last_request.headers


def test_wrap_changes_no_setting_the_application_can_see(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer
) -> None:
    client = native_client(fake, tracer_provider)
    before = client.open_telemetry
    carrot_ai.wrap(client)
    assert client.open_telemetry == before
    assert client.with_options(timeout=5).open_telemetry == before


def assert_named_calls(fake: FakeAnthropic, got: list[dict[str, Any]]) -> None:
    """The SDK made no span of its own: each request's ``traceparent`` names the span of a call carrot recorded (an
    SDK span would have an id of its own, which no record has)."""
    sent = [traceparent_ids(r.headers["traceparent"]) for r in fake.requests]
    assert sorted(record_id(trace_id, span_id) for trace_id, span_id, _ in sent) == sorted(r["id"] for r in got)


def test_with_only_carrot_on_the_provider_the_sdk_makes_no_span_for_any_call_shape(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer
) -> None:
    # Nobody but carrot would see the SDK's span: skipped (its cost saved), the same headers sent, naming our call.
    client = carrot_ai.wrap(native_client(fake, tracer_provider))
    client.messages.create(**body("create"))
    for _event in client.messages.create(**body("stream"), stream=True):
        pass
    with client.messages.stream(**body("helper")) as stream:
        stream.get_final_message()

    async def main() -> None:
        async with carrot_ai.wrap(native_client(fake, tracer_provider, is_async=True)) as aclient:
            await aclient.messages.create(**body("async"))

    asyncio.run(main())
    got = records(carrot, 4)
    assert_named_calls(fake, got)
    assert all(r["metadata"]["source"] == "sdk" for r in got)


def test_the_instrumentor_skips_the_sdks_span_too(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer, instrumentor: Any
) -> None:
    native_client(fake, tracer_provider).messages.create(**body("instrumented"))
    assert_named_calls(fake, records(carrot, 1))


def test_propagation_off_means_no_span_work_and_no_traceparent(
    fake: FakeAnthropic, tracer_provider: TracerProvider, spans: InMemorySpanExporter, carrot: IngestServer
) -> None:
    client = carrot_ai.wrap(native_client(fake, tracer_provider, propagation=False))
    client.messages.create(**body("no propagation"))
    assert "traceparent" not in fake.last_request.headers
    # The application's processor gets the SDK's span (propagation is about headers, not spans), as without carrot.
    assert sorted(scopes(spans)) == sorted([semconv.SCOPE_ANTHROPIC, semconv.SCOPE_ANTHROPIC_SDK])
    records(carrot, 1)


# --- the headers written in one step on carrot's fast span ---------------------------------------------------


def traceparent_ids(header: str) -> tuple[int, int, str]:
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00"
    return int(trace_id, 16), int(span_id, 16), flags


def test_on_the_fast_path_traceparent_names_the_recorded_call(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer
) -> None:
    # No other processor on the provider: the call's span is carrot's fast span, and traceparent is written directly.
    client = carrot_ai.wrap(native_client(fake, tracer_provider))

    @carrot_ai.trace
    def pipeline() -> None:
        client.messages.create(**body("nested"))

    client.messages.create(**body("root"))
    pipeline()
    sent = [traceparent_ids(r.headers["traceparent"]) for r in fake.requests]
    got = records(carrot, 3)
    by_input = {r["input"]["messages"][0]["content"] if r["name"] == "messages" else "pipeline": r for r in got}
    for (trace_id, span_id, flags), text in zip(sent, ["root", "nested"], strict=True):
        record = by_input[text]
        assert record["id"] == record_id(trace_id, span_id)
        assert record["metadata"]["trace_id"] == f"{trace_id:032x}"
        assert int(flags, 16) & 1  # sampled
    assert by_input["nested"]["metadata"]["parent_trace_id"] == by_input["pipeline"]["id"]
    assert all("baggage" not in r.headers and "tracestate" not in r.headers for r in fake.requests)


class _Signing:
    """What Bedrock and Vertex clients do in ``_prepare_request``: sign the request's headers (recorded here)."""

    signed: list[dict[str, str]]

    def _sign(self, request: Any) -> None:
        self.signed.append(dict(request.headers))
        request.headers["x-signature"] = str(hash(tuple(sorted(request.headers.items()))))


class SigningAnthropic(_Signing, anthropic.Anthropic):
    def _prepare_request(self, request: Any) -> None:
        self._sign(request)


class AsyncSigningAnthropic(_Signing, anthropic.AsyncAnthropic):
    async def _prepare_request(self, request: Any) -> None:
        self._sign(request)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_signing_clients_traceparent_is_set_after_signing_as_the_sdk_does(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer, is_async: bool
) -> None:
    """anthropic removes its trace headers before ``_prepare_request`` (where AWS clients sign the request) and sets
    them after; carrot must not put ``traceparent`` where the signature covers it."""
    kind = AsyncSigningAnthropic if is_async else SigningAnthropic
    client = kind(
        base_url=fake.base_url,
        api_key="sk-ant-test",
        max_retries=0,
        open_telemetry={"tracer_provider": tracer_provider},
    )
    client.signed = []
    wrapped = carrot_ai.wrap(client)
    if is_async:
        asyncio.run(wrapped.messages.create(**body("signed")))
    else:
        wrapped.messages.create(**body("signed"))
    assert len(client.signed) == 1 and "traceparent" not in client.signed[0]
    assert "x-signature" in fake.last_request.headers
    # Set by the SDK, after signing, through the guard's non-recording span: naming the recorded call.
    assert_named_calls(fake, records(carrot, 1))


def test_on_the_fast_path_headers_are_what_the_propagator_injects(carrot: IngestServer) -> None:
    seen: list[tuple[dict[str, str], dict[str, str]]] = []

    def both() -> None:
        injected: dict[str, str] = {}
        propagate.inject(injected)
        seen.append((current_headers(), injected))

    traced = carrot_ai.trace(both)  # the fast span current, as during a wrapped call
    traced()
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        traced()
    finally:
        context.detach(token)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    try:
        traced()
    finally:
        propagate.set_global_textmap(previous)
    assert [ours for ours, _ in seen] == [injected for _, injected in seen]
    assert "baggage" not in seen[0][0] and seen[1][0]["baggage"] == "tenant=acme"
    assert all("traceparent" in ours for ours, _ in seen)


def test_with_baggage_or_another_propagator_the_call_sends_what_it_injects(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer
) -> None:
    client = carrot_ai.wrap(native_client(fake, tracer_provider))
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        client.messages.create(**body("with baggage"))
    finally:
        context.detach(token)
    assert fake.last_request.headers["baggage"] == "tenant=acme"
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), _TenantPropagator()]))
    try:
        client.messages.create(**body("custom propagator"))
    finally:
        propagate.set_global_textmap(previous)
    assert fake.last_request.headers["x-tenant"] == "acme"
    assert "traceparent" in fake.last_request.headers
    records(carrot, 2)


class _TenantPropagator(TextMapPropagator):
    def inject(self, carrier: Any, context: Any = None, setter: Any = default_setter) -> None:
        setter.set(carrier, "x-tenant", "acme")

    def extract(self, carrier: Any, context: Any = None, getter: Any = default_getter) -> Any:
        return context

    @property
    def fields(self) -> set[str]:
        return {"x-tenant"}


@pytest.fixture
def unguarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SDK's own `_tracer`, as if the guard were not installed."""
    install_native_span_guard()
    base = anthropic._base_client.BaseClient
    monkeypatch.setattr(base, "_tracer", property(base.__dict__["_tracer"].fget._carrot_original))
    yield


def test_without_the_guard_the_processor_still_keeps_one_record(
    fake: FakeAnthropic,
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    carrot: IngestServer,
    unguarded: None,
) -> None:
    client = carrot_ai.wrap(native_client(fake, tracer_provider))
    client.messages.create(**body("backstop"))
    assert sorted(scopes(spans)) == sorted([semconv.SCOPE_ANTHROPIC, semconv.SCOPE_ANTHROPIC_SDK])
    [record] = records(carrot, 1)
    assert record["metadata"]["source"] == "sdk"
    no_more_records(carrot, 1)


def test_without_the_guard_the_sdks_span_still_sees_every_streamed_event(
    fake: FakeAnthropic,
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    carrot: IngestServer,
    unguarded: None,
) -> None:
    """anthropic 2.x's ``Stream.__next__`` hands each event to its span's observer: our proxy must not read past it
    (it reads the SDK's generator directly only when the stream has no observer)."""

    def sdk_span_attributes(client: Any) -> dict[str, Any]:
        spans.clear()
        for _event in client.messages.create(**body("observed stream"), stream=True):
            pass
        finished = spans.get_finished_spans()
        [native] = [s for s in finished if s.instrumentation_scope.name == semconv.SCOPE_ANTHROPIC_SDK]
        return dict(native.attributes or {})

    bare = sdk_span_attributes(native_client(fake, tracer_provider))
    assert bare[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0  # the premise: the observer records the streamed message
    wrapped = sdk_span_attributes(carrot_ai.wrap(native_client(fake, tracer_provider)))
    varying = {"anthropic.request.id", semconv.GEN_AI_RESPONSE_ID, semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK}
    wrapped.pop("carrot.duplicate")  # what our processor marks it with (it keeps our record, not this span)
    assert {k: v for k, v in wrapped.items() if k not in varying} == {k: v for k, v in bare.items() if k not in varying}
    assert len(records(carrot, 2)) == 2  # the bare client's span (converted) and our call's: one each


# --- exporter only: the SDK's span is converted like any GenAI span ------------------------------------------


def test_exporter_only_converts_the_native_span(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer
) -> None:
    client = native_client(fake, tracer_provider)
    system = [{"type": "text", "text": "context " * 30, "cache_control": {"type": "ephemeral"}}]
    client.messages.create(**body("warm"), system=system)
    message = client.messages.create(**body("warm"), system=system)
    record = records(carrot, 2)[1]
    usage = message.usage
    assert record["name"] == "messages"
    assert record["status"] == "success"
    assert record["input"] == {"model": MODEL, "max_tokens": 50}  # the SDK records no content by default
    meta = record["metadata"]
    assert meta["source"] == "otel"
    assert meta["provider"] == "anthropic"
    assert meta["model"] == MODEL
    assert (
        meta["input_tokens"] == usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    )
    assert meta["cache_read_input_tokens"] == usage.cache_read_input_tokens > 0
    assert meta["output_tokens"] == usage.output_tokens
    assert meta["finish_reasons"] == ["end_turn"]
    assert meta["response_id"] == message.id
    assert meta["request_id"] == message._request_id


def test_exporter_only_with_sdk_content_mode_converts_messages(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer
) -> None:
    client = native_client(fake, tracer_provider, traces={"content_mode": "content"})
    client.messages.create(**body("with content"), system="Be kind.")
    [record] = records(carrot, 1)
    assert record["input"]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "with content"},
    ]
    assert record["output"]["message"] == {"role": "assistant", "content": "Echo: with content"}


def test_exporter_only_native_error_span(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer
) -> None:
    fake.enqueue(not_found(MODEL))
    with pytest.raises(anthropic.NotFoundError):
        native_client(fake, tracer_provider).messages.create(**body("missing"))
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error_type"] == "not_found_error"
    assert record["metadata"]["http_status"] == 404
    assert record["metadata"]["request_id"].startswith("req_fake_")


@pytest.mark.skipif(not takes(anthropic.resources.messages.Messages.create, "thinking"), reason="SDK without thinking")
def test_exporter_only_native_span_thinking_is_the_records_reasoning(
    fake: FakeAnthropic, tracer_provider: TracerProvider, carrot: IngestServer
) -> None:
    # As in the records of our own instrumentation: the text is the content, the thinking its reasoning.
    client = native_client(fake, tracer_provider, traces={"content_mode": "content"})
    message = client.messages.create(**body("think"), thinking={"type": "enabled", "budget_tokens": 20})
    [record] = records(carrot, 1)
    thinking, text = message.content
    assert record["output"]["message"] == {"role": "assistant", "content": text.text, "reasoning": thinking.thinking}
