"""Zero-code: ``opentelemetry-instrument python app.py`` with no carrot_ai import in the app.

Each test runs the real ``opentelemetry-instrument`` in a subprocess: the app calls the real anthropic SDK against
the fake provider, and the records reach the real local ingest server. The dev environment has
``opentelemetry-distro`` installed as well (as an application with an existing OpenTelemetry setup would), so the
tests name the distro they mean with ``OTEL_PYTHON_DISTRO``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

from carrot_ai._auto import prepare_environment
from tests.fakes.anthropic_server import FakeAnthropic
from tests.ingest_server import IngestServer
from tests.otlp_receiver import OTLPReceiver

pytest.importorskip("anthropic")

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"

APP = """
import os
import anthropic

client = anthropic.Anthropic(base_url=os.environ["FAKE_ANTHROPIC_URL"], api_key="sk-ant-test", max_retries=0)
for index in range(int(os.environ.get("APP_CALLS", "1"))):
    if os.environ.get("APP_INIT") and index == 1:
        import carrot_ai  # a code-level init() in the same process, after the first call

        carrot_ai.init()
    client.messages.create(
        model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": f"hello {index}"}]
    )
print("app done")
"""


@pytest.fixture
def fake(fake_anthropic: FakeAnthropic) -> FakeAnthropic:
    return fake_anthropic


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def run_instrumented(
    app: Path, fake: FakeAnthropic, ingest: IngestServer | None, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CARROT_", "OTEL_"))}
    base.update({"FAKE_ANTHROPIC_URL": fake.base_url, "CARROT_FLUSH_INTERVAL": "0.05"})
    if ingest is not None:
        base.update({"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url})
    base.update(env)
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(app)], env=base, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result


def settled(ingest: IngestServer, count: int) -> list[dict[str, Any]]:
    """The records, after waiting for ``count`` and a little longer for any extra one."""
    ingest.wait_for(count)
    time.sleep(0.2)
    return list(ingest.records)


def test_carrot_distro_needs_no_otel_setting(app: Path, fake: FakeAnthropic, ingest: IngestServer) -> None:
    result = run_instrumented(app, fake, ingest, OTEL_PYTHON_DISTRO="carrot")
    [record] = settled(ingest, 1)
    assert record["name"] == "messages"
    assert record["metadata"]["source"] == "sdk"
    assert record["metadata"]["provider"] == "anthropic"
    assert record["input"]["messages"] == [{"role": "user", "content": "hello 0"}]
    assert result.stderr == ""  # the stock distro's otlp defaults, not installed here, are left out quietly


@pytest.mark.parametrize("exporters", ["carrot", "otlp,carrot", "carrot,carrot"])
def test_traces_exporter_carrot_without_metrics_or_logs_settings(
    app: Path, fake: FakeAnthropic, ingest: IngestServer, exporters: str
) -> None:
    # No OTLP exporter for grpc is installed, and metrics / logs are left at the stock distro's "otlp" default.
    result = run_instrumented(app, fake, ingest, OTEL_PYTHON_DISTRO="carrot", OTEL_TRACES_EXPORTER=exporters)
    [record] = settled(ingest, 1)
    assert record["name"] == "messages"
    if "otlp" in exporters:
        assert "OTEL_TRACES_EXPORTER names the exporter 'otlp', which no installed package provides" in result.stderr
        assert "pip install opentelemetry-exporter-otlp" in result.stderr


def test_otlp_and_carrot_both_receive_the_call(app: Path, fake: FakeAnthropic, ingest: IngestServer) -> None:
    with OTLPReceiver() as receiver:
        run_instrumented(
            app,
            fake,
            ingest,
            OTEL_PYTHON_DISTRO="carrot",
            OTEL_TRACES_EXPORTER="otlp_proto_http,carrot",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
            OTEL_SERVICE_NAME="zero-code-app",
        )
        spans = receiver.wait_for(1)
    [record] = settled(ingest, 1)
    [span] = [s for s in spans if s.scope == "carrot_ai.anthropic"]
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.resource["service.name"] == "zero-code-app"
    assert record["metadata"]["service_name"] == "zero-code-app"


@pytest.mark.parametrize("distro", ["carrot", "distro"])
def test_init_in_an_app_whose_pipeline_only_exports_otlp(
    app: Path, fake: FakeAnthropic, ingest: IngestServer, distro: str
) -> None:
    # opentelemetry-instrument built the app's pipeline (OTLP only); init() in code adds carrot to it.
    with OTLPReceiver() as receiver:
        run_instrumented(
            app,
            fake,
            ingest,
            APP_CALLS="2",
            APP_INIT="1",
            OTEL_PYTHON_DISTRO=distro,
            OTEL_TRACES_EXPORTER="otlp_proto_http",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.endpoint,
        )
        spans = receiver.wait_for(2)
    records = settled(ingest, 2)
    assert sorted(r["input"]["messages"][0]["content"] for r in records) == ["hello 0", "hello 1"]
    assert len([s for s in spans if s.scope == "carrot_ai.anthropic"]) == 2


def test_stock_distro_with_the_documented_settings(app: Path, fake: FakeAnthropic, ingest: IngestServer) -> None:
    run_instrumented(
        app,
        fake,
        ingest,
        OTEL_PYTHON_DISTRO="distro",
        OTEL_TRACES_EXPORTER="carrot",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    [record] = settled(ingest, 1)
    assert record["metadata"]["source"] == "sdk"


@pytest.mark.parametrize("distro", ["carrot", "distro"])
def test_exporter_plus_code_level_init_deliver_each_record_once(
    app: Path, fake: FakeAnthropic, ingest: IngestServer, distro: str
) -> None:
    run_instrumented(
        app,
        fake,
        ingest,
        APP_CALLS="3",
        APP_INIT="1",
        OTEL_PYTHON_DISTRO=distro,
        OTEL_TRACES_EXPORTER="carrot",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    records = settled(ingest, 3)
    assert sorted(r["input"]["messages"][0]["content"] for r in records) == ["hello 0", "hello 1", "hello 2"]


def test_disabling_another_instrumentation_leaves_ours_on(app: Path, fake: FakeAnthropic, ingest: IngestServer) -> None:
    run_instrumented(
        app, fake, ingest, OTEL_PYTHON_DISTRO="carrot", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="carrot_openai,openai"
    )
    [record] = settled(ingest, 1)
    assert record["metadata"]["source"] == "sdk"


def test_disabling_carrot_anthropic_disables_only_ours(app: Path, fake: FakeAnthropic, ingest: IngestServer) -> None:
    run_instrumented(
        app, fake, ingest, OTEL_PYTHON_DISTRO="carrot", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="carrot_anthropic"
    )
    time.sleep(0.5)
    # anthropic 2.x still makes its own span, which carrot converts like any GenAI span; ours made none.
    assert all(r["metadata"]["source"] != "sdk" for r in ingest.records), ingest.records


FOREIGN_SPAN_APP = """
import os

import anthropic
from opentelemetry import trace


def another_instrumentation(request):
    # Another GenAI instrumentation of the same call (as the official one would be): a span inside ours.
    tracer = trace.get_tracer("opentelemetry.instrumentation.anthropic")
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic"}
    with tracer.start_as_current_span("chat claude-opus-4-5", attributes=attributes):
        pass


client = anthropic.Anthropic(
    base_url=os.environ["FAKE_ANTHROPIC_URL"],
    api_key="sk-ant-test",
    http_client=anthropic.DefaultHttpxClient(event_hooks={"request": [another_instrumentation]}),
)
client.messages.create(model="claude-opus-4-5", max_tokens=50, messages=[{"role": "user", "content": "hello 0"}])
print("app done")
"""


@pytest.mark.parametrize(
    "settings",
    [
        # OTEL_PYTHON_CONFIGURATOR names no installed configurator: carrot's distro builds the SDK, with carrot's
        # span processor for the carrot exporter (what `carrot-ai[auto]` without opentelemetry-distro gets).
        {"OTEL_PYTHON_DISTRO": "carrot", "OTEL_PYTHON_CONFIGURATOR": "carrot"},
        # opentelemetry-distro builds it: the SDK's BatchSpanProcessor feeds carrot's exporter.
        {
            "OTEL_PYTHON_DISTRO": "distro",
            "OTEL_TRACES_EXPORTER": "carrot",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        },
    ],
    ids=["carrot-built-sdk", "stock-configurator"],
)
def test_one_record_per_call_with_another_genai_instrumentation(
    tmp_path: Path, fake: FakeAnthropic, ingest: IngestServer, settings: dict[str, str]
) -> None:
    app = tmp_path / "app.py"
    app.write_text(FOREIGN_SPAN_APP)
    run_instrumented(app, fake, ingest, **settings)
    [record] = settled(ingest, 1)
    assert record["metadata"]["source"] == "sdk"


def test_without_a_carrot_api_key_nothing_is_sent_and_the_app_runs(app: Path, fake: FakeAnthropic) -> None:
    result = run_instrumented(app, fake, None, OTEL_PYTHON_DISTRO="carrot")
    assert "app done" in result.stdout


def test_missing_provider_libraries_are_skipped_quietly() -> None:
    # carrot-ai declares no `instruments` extra: the loader's per-distribution check must never find a conflict,
    # or one missing provider SDK would disable every carrot instrumentor.
    assert get_dist_dependency_conflicts(distribution("carrot-ai")) is None
    names = {e.name for e in entry_points(group="opentelemetry_instrumentor") if e.value.startswith("carrot_ai.")}
    assert {"carrot_anthropic", "carrot_litellm"} <= names
    [distro] = [e for e in entry_points(group="opentelemetry_distro") if e.name == "carrot"]
    [exporter] = [e for e in entry_points(group="opentelemetry_traces_exporter") if e.name == "carrot"]
    assert distro.load().__name__ == "CarrotDistro"
    assert exporter.load().__name__ == "CarrotSpanExporter"


def test_a_missing_provider_library_says_nothing(app: Path, fake: FakeAnthropic, ingest: IngestServer) -> None:
    pytest.importorskip("opentelemetry.distro")
    try:
        import litellm  # noqa: F401

        pytest.skip("litellm is installed here")
    except ImportError:
        pass
    for distro in ("carrot", "distro"):
        result = run_instrumented(
            app,
            fake,
            ingest,
            OTEL_PYTHON_DISTRO=distro,
            OTEL_TRACES_EXPORTER="carrot",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
        )
        assert "litellm" not in result.stderr.lower()
    settled(ingest, 2)
    assert len(ingest.records) == 2


KEY = {"CARROT_API_KEY": "ck-test-key"}
UNSET = {"OTEL_TRACES_EXPORTER": "carrot", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}


@pytest.mark.parametrize(
    ("given", "stock", "expected"),
    [
        (KEY, False, UNSET),
        # opentelemetry-distro's own defaults are kept where they can work (no grpc OTLP exporter installed here)
        (KEY, True, {**UNSET, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}),
        ({}, False, {**UNSET, "OTEL_TRACES_EXPORTER": "none"}),  # no key: nothing to send to
        ({**KEY, "OTEL_TRACES_EXPORTER": "otlp, carrot,carrot"}, False, UNSET),
        (
            {**KEY, "OTEL_TRACES_EXPORTER": "otlp,carrot", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
            False,
            {**UNSET, "OTEL_TRACES_EXPORTER": "otlp,carrot", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        ),
        (
            {**KEY, "OTEL_METRICS_EXPORTER": "otlp_proto_http"},
            False,
            {**UNSET, "OTEL_METRICS_EXPORTER": "otlp_proto_http"},
        ),
        ({**KEY, "OTEL_LOGS_EXPORTER": "console,nonesuch"}, False, {**UNSET, "OTEL_LOGS_EXPORTER": "console"}),
        ({**KEY, "OTEL_TRACES_EXPORTER": "None"}, False, {**UNSET, "OTEL_TRACES_EXPORTER": "none"}),
    ],
)
def test_prepare_environment(given: dict[str, str], stock: bool, expected: dict[str, str]) -> None:
    environ = dict(given)
    prepare_environment(environ, stock=stock)
    assert {k: v for k, v in environ.items() if k.startswith("OTEL_")} == expected


OPENAI_APP = """
import os
import openai

client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI_URL"] + "/v1", api_key="sk-test", max_retries=0)
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello openai"}])
for _chunk in client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hello stream"}], stream=True
):
    pass
print("app done")
"""


def test_openai_calls_arrive_once_next_to_every_installed_openai_instrumentation(
    tmp_path: Path, ingest: IngestServer
) -> None:
    """The dev environment also has the official, OpenInference and OpenLLMetry OpenAI instrumentations installed:
    ``opentelemetry-instrument`` turns on every one it finds, and each call still becomes one record."""
    pytest.importorskip("openai")
    from tests.fakes.openai_server import FakeOpenAI

    app = tmp_path / "openai_app.py"
    app.write_text(OPENAI_APP)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CARROT_", "OTEL_"))}
    with FakeOpenAI() as fake:
        base.update(
            {
                "FAKE_OPENAI_URL": fake.base_url,
                "CARROT_FLUSH_INTERVAL": "0.05",
                "CARROT_API_KEY": "ck-test-key",
                "CARROT_BASE_URL": ingest.base_url,
                "OTEL_PYTHON_DISTRO": "carrot",
            }
        )
        result = subprocess.run(
            [str(INSTRUMENT), sys.executable, str(app)], env=base, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "app done" in result.stdout
        assert not fake.errors, fake.errors
    records = settled(ingest, 2)
    assert [r["name"] for r in records] == ["chat.completions", "chat.completions"]
    assert [r["output"]["message"]["content"] for r in records] == ["Echo: hello openai", "Echo: hello stream"]
    assert all(r["metadata"]["provider"] == "openai" and r["metadata"]["input_tokens"] > 0 for r in records)
    assert all("parent_trace_id" not in r["metadata"] for r in records)
