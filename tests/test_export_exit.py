"""Normal interpreter exit: bounded by ``exit_timeout`` whatever the endpoint does, and honest on stderr.

Each test runs a real program in a subprocess. The endpoint's own timeouts are set to minutes, so a process that
waited for them instead of its exit timeout would overrun the subprocess timeout and fail the test.
"""

from __future__ import annotations

import pytest

from tests.export_helpers import run_python
from tests.ingest_server import Fault, IngestServer, refused_url

DECORATED_PROGRAM = """
import carrot_ai

@carrot_ai.trace
def step(index):
    return index

for index in range(25):
    step(index)
"""

SDK_PROGRAM = """
from opentelemetry import trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

_OTelSDKConfigurator().configure()  # what opentelemetry-instrument does: OTEL_TRACES_EXPORTER=carrot
tracer = trace.get_tracer("some.genai.instrumentation")
attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
for index in range(25):
    with tracer.start_as_current_span("chat m", attributes=attributes):
        pass
"""

PATIENT_ENDPOINT = {"CARROT_REQUEST_TIMEOUT": "300", "CARROT_EXPORT_DEADLINE": "600"}
HEALTHY_EXIT = {"CARROT_EXIT_TIMEOUT": "15"}
SDK_ENV = {"OTEL_TRACES_EXPORTER": "carrot", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}


def env_for(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "CARROT_API_KEY": "ck-test-key",
        "CARROT_BASE_URL": base_url,
        "CARROT_EXIT_TIMEOUT": "0.5",
        "CARROT_FLUSH_INTERVAL": "0.05",
        **PATIENT_ENDPOINT,
        **extra,
    }


def test_exit_with_the_endpoint_hanging_is_bounded_and_reports_the_loss(ingest: IngestServer) -> None:
    ingest.fault = Fault.hang()
    result = run_python(DECORATED_PROGRAM, env_for(ingest.base_url), timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"25 trace record(s) were not delivered to {ingest.base_url} (shutdown: 25); 0 delivered" in result.stderr


def test_exit_with_the_endpoint_down_is_bounded_and_reports_the_loss() -> None:
    url = refused_url()
    result = run_python(DECORATED_PROGRAM, env_for(url), timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"25 trace record(s) were not delivered to {url} (shutdown: 25); 0 delivered" in result.stderr


def test_exit_delivers_what_is_queued_to_a_healthy_endpoint(ingest: IngestServer) -> None:
    # (A healthy endpoint's exit takes what delivery takes: the generous bound only keeps a loaded machine from
    # failing the test; the bound itself is what the hang / down cases check.)
    result = run_python(
        DECORATED_PROGRAM, env_for(ingest.base_url, CARROT_FLUSH_INTERVAL="600", **HEALTHY_EXIT), timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert len(ingest.records) == 25
    assert "not delivered" not in result.stderr


@pytest.mark.parametrize("fault", ["hang", "down"])
def test_exit_under_the_sdk_batch_processor_is_bounded_and_reports_the_loss(ingest: IngestServer, fault: str) -> None:
    url = ingest.base_url
    if fault == "hang":
        ingest.fault = Fault.hang()
    else:
        url = refused_url()
    result = run_python(SDK_PROGRAM, {**env_for(url), **SDK_ENV}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"25 trace record(s) were not delivered to {url} (shutdown: 25); 0 delivered" in result.stderr


def test_exit_under_the_sdk_batch_processor_delivers_to_a_healthy_endpoint(ingest: IngestServer) -> None:
    result = run_python(SDK_PROGRAM, {**env_for(ingest.base_url, **HEALTHY_EXIT), **SDK_ENV}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(r["name"] for r in ingest.records) == ["chat m"] * 25
    assert "not delivered" not in result.stderr


def test_exit_report_never_shows_credentials_in_the_url(ingest: IngestServer) -> None:
    ingest.fault = Fault.hang()
    host = ingest.base_url.removeprefix("http://")
    result = run_python(DECORATED_PROGRAM, env_for(f"http://user:hunter2pass@{host}/?key=qwertyuiop123"), timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"not delivered to http://***@{host}/?key=***" in result.stderr
    assert "hunter2pass" not in result.stderr
    assert "qwertyuiop123" not in result.stderr
