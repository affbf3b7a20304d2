from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

# Internal errors in our telemetry code fail the tests instead of being swallowed.
os.environ["CARROT_STRICT"] = "1"
for _name in [n for n in os.environ if n.startswith("CARROT_") and n != "CARROT_STRICT"]:
    del os.environ[_name]

import carrot_ai  # noqa: E402
from carrot_ai import _setup  # noqa: E402
from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402
from tests.ingest_server import IngestServer  # noqa: E402


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
