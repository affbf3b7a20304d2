"""Fixtures for the fakes' own tests: each test gets fresh servers and real SDK clients, all closed after."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI


def _server_threads() -> set[threading.Thread]:
    names = ("process_request_thread", "FakeServer", "FakeOpenAI", "FakeAnthropic", "CassetteServer")
    return {t for t in threading.enumerate() if any(n in t.name for n in names)}


@pytest.fixture(autouse=True)
def _no_server_thread_left_behind() -> Iterator[None]:
    """Every server a test starts, the test stops: no serving or handler thread may outlive it."""
    before = _server_threads()
    yield
    left = _server_threads() - before
    assert not left, f"threads still running after the test: {sorted(t.name for t in left)}"


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def openai_client(openai_server: FakeOpenAI) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=openai_server.base_url + "/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def anthropic_client(anthropic_server: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(base_url=anthropic_server.base_url, api_key="sk-ant-test", max_retries=0)
    yield client
    client.close()
