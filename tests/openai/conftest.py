from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import carrot_ai
from carrot_ai.instrumentation.openai import OpenAIInstrumentor
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer

# A recognisable provider key: the secrets test checks it never reaches a record or a log line.
API_KEY = "sk-proj-CANARY-0123456789abcdef0123456789"
MODEL = "gpt-4o-mini"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server
        assert not server.errors, server.errors


def make_client(fake: FakeOpenAI, *, is_async: bool = False, **options: Any) -> Any:
    options.setdefault("max_retries", 0)
    if is_async:
        return openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key=API_KEY, **options)
    return openai.OpenAI(base_url=fake.base_url + "/v1", api_key=API_KEY, **options)


@pytest.fixture
def client(fake: FakeOpenAI, carrot: IngestServer) -> Iterator[openai.OpenAI]:
    c = carrot_ai.wrap(make_client(fake))
    yield c
    c.close()


@pytest.fixture
def instrumentor() -> Iterator[OpenAIInstrumentor]:
    inst = OpenAIInstrumentor()
    inst.instrument()
    yield inst
    inst.uninstrument()


@pytest.fixture(params=["wrap", "instrumentor"])
def way(request: pytest.FixtureRequest, fake: FakeOpenAI, carrot: IngestServer) -> Iterator[str]:
    """Both ways in: `client_for(way, fake)` gives a client instrumented that way."""
    if request.param == "instrumentor":
        inst = OpenAIInstrumentor()
        inst.instrument()
        yield "instrumentor"
        inst.uninstrument()
    else:
        yield "wrap"


def client_for(way: str, fake: FakeOpenAI, *, is_async: bool = False, **options: Any) -> Any:
    c = make_client(fake, is_async=is_async, **options)
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


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
