from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

import carrot_ai
from carrot_ai.instrumentation.anthropic import AnthropicInstrumentor
from tests.fakes.anthropic_server import FakeAnthropic
from tests.ingest_server import IngestServer

# A recognisable provider key: the secrets test checks it never reaches a record or a log line.
API_KEY = "sk-ant-api03-CANARY-0123456789abcdef"
MODEL = "claude-opus-4-5"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server
        assert not server.errors, server.errors


def make_client(fake: FakeAnthropic, *, is_async: bool = False, **options: Any) -> Any:
    options.setdefault("max_retries", 0)
    if is_async:
        return anthropic.AsyncAnthropic(
            base_url=fake.base_url,
            api_key=API_KEY,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=False),
            **options,
        )
    return anthropic.Anthropic(
        base_url=fake.base_url, api_key=API_KEY, http_client=anthropic.DefaultHttpxClient(verify=False), **options
    )


@pytest.fixture
def client(fake: FakeAnthropic, carrot: IngestServer) -> Iterator[anthropic.Anthropic]:
    c = carrot_ai.wrap(make_client(fake))
    yield c
    c.close()


@pytest.fixture
def aclient(fake: FakeAnthropic, carrot: IngestServer) -> Iterator[anthropic.AsyncAnthropic]:
    # Closed by the event loop of each test (asyncio.run); nothing to close here.
    yield carrot_ai.wrap(make_client(fake, is_async=True))


@pytest.fixture
def instrumentor() -> Iterator[AnthropicInstrumentor]:
    inst = AnthropicInstrumentor()
    inst.instrument()
    yield inst
    inst.uninstrument()


@pytest.fixture(params=["wrap", "instrumentor"])
def way(request: pytest.FixtureRequest, fake: FakeAnthropic, carrot: IngestServer) -> Iterator[str]:
    """Both ways in: `client_for(way, fake)` gives a client instrumented that way."""
    if request.param == "instrumentor":
        inst = AnthropicInstrumentor()
        inst.instrument()
        yield "instrumentor"
        inst.uninstrument()
    else:
        yield "wrap"


def client_for(way: str, fake: FakeAnthropic, *, is_async: bool = False) -> Any:
    c = make_client(fake, is_async=is_async)
    return carrot_ai.wrap(c) if way == "wrap" else c


def records(ingest: IngestServer, count: int) -> list[dict[str, Any]]:
    """Flush, wait for ``count`` records, and check that no more than that arrive."""
    assert carrot_ai.flush(5)
    got = ingest.wait_for(count)
    assert len(got) == count, [r["name"] for r in got]
    return got


def no_more_records(ingest: IngestServer, count: int) -> None:
    gc.collect()
    assert carrot_ai.flush(5)
    time.sleep(0.1)
    assert carrot_ai.flush(5)
    assert len(ingest.records) == count, ingest.records


def takes(method: Any, parameter: str) -> bool:
    """Whether this anthropic version's ``method`` has ``parameter`` (older SDKs lack newer API features)."""
    import inspect

    return parameter in inspect.signature(inspect.unwrap(method)).parameters


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
