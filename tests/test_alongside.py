"""Alongside an existing OpenTelemetry pipeline: the app's own TracerProvider exports over OTLP/HTTP to its collector
(a local receiver here), then ``carrot_ai.init()`` attaches to it.

The app's exporter keeps receiving every span; Carrot receives only LLM and ``@trace`` records: its own, and other
instrumentations' GenAI spans (current and older attribute names, anthropic's own spans), never HTTP / database
spans. A record's parent is the nearest exported ancestor, and the resource's ``service.name`` reaches its metadata.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

import carrot_ai
from carrot_ai.export import record_id
from tests.ingest_server import IngestServer
from tests.otlp_receiver import OTLPReceiver, ReceivedSpan

anthropic = pytest.importorskip("anthropic")
from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402

HTTP = {"http.request.method": "POST", "url.path": "/chat", "http.route": "/chat"}
DB = {"db.system.name": "sqlite", "db.query.text": "SELECT 1"}
CURRENT_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.output_tokens": 4,
    "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi there"}]}]),
    "gen_ai.output.messages": json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "hello"}], "finish_reason": "stop"}]
    ),
}
OLDER_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.prompt_tokens": 7,
    "gen_ai.usage.completion_tokens": 3,
    "gen_ai.usage.cache_read_input_tokens": 2,
}


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as server:
        yield server


@pytest.fixture
def app_provider(receiver: OTLPReceiver) -> Iterator[TracerProvider]:
    """The application's own pipeline: a resource with a service name, OTLP/HTTP to its collector."""
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-api"}), shutdown_on_exit=False)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint), schedule_delay_millis=50)
    )
    yield provider
    provider.shutdown()


@pytest.fixture
def carrot(ingest: IngestServer, app_provider: TracerProvider) -> Iterator[IngestServer]:
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=app_provider)
    yield ingest
    carrot_ai.shutdown()


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server
        assert not server.errors, server.errors


def anthropic_client(fake: FakeAnthropic, **options: Any) -> Any:
    return anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0, **options)


def delivered(provider: TracerProvider, ingest: IngestServer, receiver: OTLPReceiver, records: int, spans: int) -> None:
    assert provider.force_flush()
    assert carrot_ai.flush(5)
    ingest.wait_for(records)
    receiver.wait_for(spans)
    time.sleep(0.2)
    assert carrot_ai.flush(5)
    assert len(ingest.records) == records, [r["name"] for r in ingest.records]
    assert len(receiver.spans) == spans, [s.name for s in receiver.spans]


def span_named(receiver: OTLPReceiver, name: str) -> ReceivedSpan:
    [span] = [s for s in receiver.spans if s.name == name]
    return span


def record_of(span: ReceivedSpan) -> str:
    return record_id(int(span.trace_id, 16), int(span.span_id, 16))


def test_app_exporter_gets_every_span_and_carrot_only_the_llm_and_trace_records(
    app_provider: TracerProvider, carrot: IngestServer, receiver: OTLPReceiver, fake: FakeAnthropic
) -> None:
    tracer = app_provider.get_tracer("opentelemetry.instrumentation.flask")
    genai = app_provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    client = carrot_ai.wrap(anthropic_client(fake))

    @carrot_ai.trace(name="handle")
    def handle(question: str) -> str:
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT, attributes=DB):
            with genai.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=CURRENT_CHAT):
                pass
            message = client.messages.create(
                model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": question}]
            )
        return str(message.content[0].text)

    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes=HTTP):
        handle("where is my order?")
        with genai.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=OLDER_CHAT):
            pass

    delivered(app_provider, carrot, receiver, records=4, spans=6)
    # The app's collector: every span, the HTTP and database spans exactly as the app made them.
    assert sorted(s.name for s in receiver.spans) == sorted(
        ["POST /chat", "handle", "SELECT orders", "chat gpt-4o-mini", "chat claude-opus-4-5", "chat gpt-4o-mini"]
    )
    assert span_named(receiver, "POST /chat").attributes == HTTP
    assert span_named(receiver, "SELECT orders").attributes == DB
    assert all(s.resource["service.name"] == "shop-api" for s in receiver.spans)

    # Carrot: the @trace function, our LLM call, and the two foreign GenAI spans; never HTTP or database spans.
    by_source: dict[str, list[dict[str, Any]]] = {}
    for record in carrot.records:
        by_source.setdefault(record["metadata"]["source"], []).append(record)
        assert record["metadata"]["service_name"] == "shop-api"
    [function] = by_source["decorator"]
    [ours] = by_source["sdk"]
    foreign_current, foreign_older = sorted(by_source["otel"], key=lambda r: "parent_trace_id" not in r["metadata"])
    assert function["name"] == "handle"
    assert function["id"] == record_of(span_named(receiver, "handle"))
    assert "parent_trace_id" not in function["metadata"]  # its parent is the HTTP server span: not exported
    # Below the database span, both LLM calls name the nearest exported ancestor: the @trace function.
    assert ours["metadata"]["parent_trace_id"] == function["id"]
    assert foreign_current["metadata"]["parent_trace_id"] == function["id"]
    assert foreign_current["name"] == "chat.completions"
    assert foreign_current["input"]["messages"] == [{"role": "user", "content": "hi there"}]
    assert foreign_current["output"]["message"]["content"] == "hello"
    assert foreign_current["metadata"]["input_tokens"] == 12
    # Older attribute names convert too; directly below the HTTP server span it has no parent record.
    assert "parent_trace_id" not in foreign_older["metadata"]
    assert foreign_older["metadata"]["provider"] == "openai"
    assert foreign_older["metadata"]["input_tokens"] == 7
    assert foreign_older["metadata"]["output_tokens"] == 3
    assert foreign_older["metadata"]["cache_read_input_tokens"] == 2


def test_anthropic_native_span_below_an_http_span_becomes_one_record(
    app_provider: TracerProvider, carrot: IngestServer, receiver: OTLPReceiver, fake: FakeAnthropic
) -> None:
    if not hasattr(anthropic._base_client.BaseClient, "_tracer"):
        pytest.skip("this anthropic version emits no spans")
    tracer = app_provider.get_tracer("opentelemetry.instrumentation.flask")
    client = anthropic_client(fake, open_telemetry={"tracer_provider": app_provider})  # not wrapped: its own span

    @carrot_ai.trace(name="handle")
    def handle() -> None:
        with tracer.start_as_current_span("SELECT orders", attributes=DB):
            client.messages.create(model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}])

    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes=HTTP):
        handle()

    delivered(app_provider, carrot, receiver, records=2, spans=4)
    [native] = [r for r in carrot.records if r["metadata"]["source"] == "otel"]
    function = carrot.by_name("handle")
    assert native["metadata"]["provider"] == "anthropic"
    assert native["metadata"]["parent_trace_id"] == function["id"]


def test_foreign_genai_span_in_a_metadata_only_context_keeps_no_content(
    app_provider: TracerProvider, carrot: IngestServer, receiver: OTLPReceiver
) -> None:
    genai = app_provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with carrot_ai.context(metadata_only=True):
        with genai.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=CURRENT_CHAT):
            pass
    with genai.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=CURRENT_CHAT):
        pass
    delivered(app_provider, carrot, receiver, records=2, spans=2)
    withheld, full = sorted(carrot.records, key=lambda r: "content_captured" not in r["metadata"])
    assert withheld["metadata"]["content_captured"] is False
    assert "messages" not in withheld["input"]
    assert withheld["output"] == {}
    assert withheld["metadata"]["input_tokens"] == 12  # metadata, tokens and cost stay
    assert full["input"]["messages"] == [{"role": "user", "content": "hi there"}]


APP = """
import os

import anthropic
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "billing"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=os.environ["COLLECTOR"])))
trace.set_tracer_provider(provider)

import carrot_ai

carrot_ai.init()  # CARROT_API_KEY / CARROT_BASE_URL from the environment; attaches to the global provider

tracer = trace.get_tracer("app")
client = carrot_ai.wrap(anthropic.Anthropic(base_url=os.environ["FAKE_ANTHROPIC_URL"], api_key="sk-ant-test"))
with tracer.start_as_current_span("POST /invoice", kind=trace.SpanKind.SERVER):
    client.messages.create(model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": "total?"}])
print("app done")
"""


def test_global_provider_app_with_init_and_exit(
    tmp_path: Path, ingest: IngestServer, receiver: OTLPReceiver, fake: FakeAnthropic
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARROT_", "OTEL_"))}
    env.update(
        COLLECTOR=receiver.endpoint,
        FAKE_ANTHROPIC_URL=fake.base_url,
        CARROT_API_KEY="ck-test-key",
        CARROT_BASE_URL=ingest.base_url,
    )
    result = subprocess.run([sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    [record] = ingest.wait_for(1)
    spans = receiver.wait_for(3)
    # The application's collector keeps the SDK's own span (its pipeline gets what it got without carrot), a child of
    # carrot's; one record reaches the ingest API.
    assert sorted(s.name for s in spans) == ["POST /invoice", "anthropic.messages.create", "chat claude-opus-4-5"]
    assert record["name"] == "messages"
    assert record["metadata"]["service_name"] == "billing"
    assert "parent_trace_id" not in record["metadata"]
    [llm_span] = [s for s in spans if s.name == "chat claude-opus-4-5"]
    [sdk_span] = [s for s in spans if s.name == "anthropic.messages.create"]
    assert record["id"] == record_of(llm_span)
    assert sdk_span.parent_span_id == llm_span.span_id


class _StartedSpans(SpanProcessor):
    """An application processor that keeps the attributes each span had when it started."""

    def __init__(self) -> None:
        self.at_start: dict[str, dict[str, Any]] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.at_start[span.name] = dict(span.attributes or {})


def test_with_an_app_processor_the_request_attributes_are_on_the_span_when_it_starts(
    app_provider: TracerProvider, carrot: IngestServer, receiver: OTLPReceiver, fake: FakeAnthropic
) -> None:
    # Carrot's own fast spans leave the request to the export worker; a span others observe carries it from the start.
    started = _StartedSpans()
    app_provider.add_span_processor(started)
    client = carrot_ai.wrap(anthropic_client(fake))
    messages = [{"role": "user", "content": "hi there"}]
    client.messages.create(model="claude-opus-4-5", max_tokens=50, messages=messages)

    delivered(app_provider, carrot, receiver, records=1, spans=1)
    attributes = started.at_start["chat claude-opus-4-5"]
    assert attributes["gen_ai.request.model"] == "claude-opus-4-5"
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert json.loads(str(attributes["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi there"}]}
    ]
    assert json.loads(str(attributes["carrot.input"])) == {
        "model": "claude-opus-4-5",
        "max_tokens": 50,
        "messages": messages,
    }
    [record] = carrot.records
    assert record["input"]["messages"] == messages


FIRST_USE_APP = """
import json
import os

import carrot_ai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


@carrot_ai.trace
def warm_up() -> str:
    return "ok"


CHAT = json.loads(os.environ["CHAT"])
warm_up()  # at import: carrot sets itself up on first use, on a provider of its own

provider = TracerProvider(resource=Resource.create({"service.name": "billing"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=os.environ["COLLECTOR"])))
trace.set_tracer_provider(provider)
carrot_ai.init()  # then the application sets up its pipeline and asks carrot to join it

genai = trace.get_tracer("opentelemetry.instrumentation.openai_v2")
with trace.get_tracer("app").start_as_current_span("POST /invoice", kind=trace.SpanKind.SERVER):
    warm_up()
    with genai.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT, attributes=CHAT):
        pass
print("app done")
"""


def test_init_after_set_up_on_first_use_joins_the_application_pipeline(
    tmp_path: Path, ingest: IngestServer, receiver: OTLPReceiver
) -> None:
    app = tmp_path / "app.py"
    app.write_text(FIRST_USE_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARROT_", "OTEL_"))}
    env.update(
        COLLECTOR=receiver.endpoint,
        CARROT_API_KEY="ck-test-key",
        CARROT_BASE_URL=ingest.base_url,
        CHAT=json.dumps(CURRENT_CHAT),
    )
    result = subprocess.run([sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    records = ingest.wait_for(3)
    spans = receiver.wait_for(3)
    time.sleep(0.2)
    # The application's collector gets carrot's span made after init(), nested under its own.
    assert sorted(s.name for s in receiver.spans) == ["POST /invoice", "chat gpt-4o-mini", "warm_up"]
    http = span_named(receiver, "POST /invoice")
    assert span_named(receiver, "warm_up").parent_span_id == http.span_id
    # Carrot gets both warm-ups and the other instrumentation's GenAI span of the application's provider.
    assert sorted(r["metadata"]["source"] for r in records) == ["decorator", "decorator", "otel"]
    assert len(ingest.records) == 3
    [foreign] = [r for r in records if r["metadata"]["source"] == "otel"]
    assert foreign["metadata"]["service_name"] == "billing"
    assert len(spans) == 3


def test_init_beside_a_carrot_client_of_its_own_delivers_to_the_application_provider(
    app_provider: TracerProvider, ingest: IngestServer, receiver: OTLPReceiver
) -> None:
    # A 0.2-style client with its own exporter (manual records to another project) is not the exporter of the
    # application's provider: init() must still give that provider a delivery path.
    audit = carrot_ai.CarrotClient(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05)
    try:
        carrot_ai.init(
            api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=app_provider
        )

        @carrot_ai.trace(name="step")
        def step() -> str:
            return "ok"

        step()
        delivered(app_provider, ingest, receiver, records=1, spans=1)
        assert ingest.records[0]["name"] == "step"
    finally:
        carrot_ai.shutdown()
        audit.shutdown()


def test_model_calls_under_suppress_instrumentation_make_no_span_and_no_record(
    app_provider: TracerProvider, carrot: IngestServer, receiver: OTLPReceiver, fake: FakeAnthropic
) -> None:
    # OpenTelemetry's switch for "no telemetry for this work" (an exporter's own calls, a health check): every
    # instrumentation honours it, as the SDK's processors do for their export.
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    client = carrot_ai.wrap(anthropic_client(fake))
    with suppress_instrumentation():
        message = client.messages.create(
            model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": "not traced"}]
        )
        with client.messages.stream(
            model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": "not traced either"}]
        ) as stream:
            text = stream.get_final_text()
    assert message.content[0].text == "Echo: not traced"
    assert text == "Echo: not traced either"
    client.messages.create(model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": "traced"}])

    delivered(app_provider, carrot, receiver, records=1, spans=1)
    [record] = carrot.records
    assert record["input"]["messages"] == [{"role": "user", "content": "traced"}]


def test_the_applications_attribute_length_limit_does_not_cut_carrots_records(
    ingest: IngestServer, receiver: OTLPReceiver, fake: FakeAnthropic
) -> None:
    """An application that limits attribute values (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, ``SpanLimits``: some
    vendors' distributions do by default) gets its spans cut to that length; carrot's records keep the whole input
    and output (a prompt cut in the middle is worthless for training), also of a call that fails."""
    from opentelemetry.sdk.trace import SpanLimits

    provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=120), shutdown_on_exit=False)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint), schedule_delay_millis=50)
    )
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=provider)
    try:
        client = carrot_ai.wrap(anthropic_client(fake, open_telemetry=False))
        question = "a long question " * 30

        @carrot_ai.trace(name="answer")
        def answer(text: str) -> dict[str, str]:
            reply = client.messages.create(
                model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": text}]
            )
            return {"answer": reply.content[0].text, "padding": "x" * 300}

        @carrot_ai.trace(name="fails")
        def fails(text: str) -> None:
            raise ValueError("no " + "y" * 300)

        answer(question)
        with pytest.raises(ValueError):
            fails(question)
        delivered(provider, ingest, receiver, records=3, spans=3)
    finally:
        carrot_ai.shutdown()
        provider.shutdown()
    assert all(len(v) <= 120 for s in receiver.spans for v in s.attributes.values() if isinstance(v, str))
    function = ingest.by_name("answer")
    assert function["input"] == {"text": question}
    assert function["output"]["padding"] == "x" * 300
    [llm] = [r for r in ingest.records if r["metadata"]["type"] == "llm"]
    assert llm["input"]["messages"] == [{"role": "user", "content": question}]
    assert ingest.by_name("fails")["input"] == {"text": question}
