"""Raw stream responses (``with_raw_response.create(stream=True)``) whose ``APIResponse`` does not outlive the stream
it parsed: the caller's code works as without carrot, and the record holds what the caller read. Found in review:
``raw.parse()`` on a temporary raised into the caller's code (carrot's ``parse`` held the response weakly), and a
stream outliving its raw response was recorded empty (the response's collection ended the call)."""

from __future__ import annotations

import gc
from typing import Any

import pytest

import carrot_ai
from tests.anthropic import conftest as anthropic_conftest
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai import conftest as openai_conftest


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_raw_stream_parsed_in_one_expression_works_and_is_recorded(provider: str, carrot: IngestServer) -> None:
    """``with_raw_response.create(stream=True).parse()`` in one expression, as the SDKs' docs write it: the raw
    response is a temporary, dropped while ``parse`` runs. Without carrot it works; with carrot it must too, and the
    record must hold what the caller read."""
    server: Any = FakeOpenAI() if provider == "openai" else FakeAnthropic()
    with server:
        texts = []
        for wrapped in (False, True):
            if provider == "openai":
                client = openai_conftest.make_client(server)
                client = carrot_ai.wrap(client) if wrapped else client
                stream = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "raw chained"}], stream=True
                ).parse()
                texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
            else:
                client = anthropic_conftest.make_client(server)
                client = carrot_ai.wrap(client) if wrapped else client
                stream = client.messages.with_raw_response.create(
                    model="claude-sonnet-4-5",
                    max_tokens=100,
                    messages=[{"role": "user", "content": "raw chained"}],
                    stream=True,
                ).parse()
                texts.append("".join(e.delta.text for e in stream if e.type == "content_block_delta"))
        [record] = (openai_conftest if provider == "openai" else anthropic_conftest).records(carrot, 1)
    assert texts == ["Echo: raw chained"] * 2
    assert record["output"]["message"]["content"] == "Echo: raw chained"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_raw_stream_outliving_its_raw_response_records_what_the_caller_reads(
    provider: str, carrot: IngestServer
) -> None:
    """The raw response is dropped (here: a helper returns ``raw.parse()``) while the stream it parsed lives on and
    is read to its end: the record must hold the whole stream, not end empty when the raw response is collected."""
    server: Any = FakeOpenAI() if provider == "openai" else FakeAnthropic()
    with server:
        if provider == "openai":
            client = carrot_ai.wrap(openai_conftest.make_client(server))

            def open_stream() -> Any:
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "raw helper"}], stream=True
                )
                assert raw.headers["x-request-id"]
                return raw.parse()

            stream = open_stream()
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            [record] = openai_conftest.records(carrot, 1)
        else:
            client = carrot_ai.wrap(anthropic_conftest.make_client(server))

            def open_stream() -> Any:
                raw = client.messages.with_raw_response.create(
                    model="claude-sonnet-4-5",
                    max_tokens=100,
                    messages=[{"role": "user", "content": "raw helper"}],
                    stream=True,
                )
                assert raw.headers["request-id"]
                return raw.parse()

            stream = open_stream()
            text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
            [record] = anthropic_conftest.records(carrot, 1)
    assert text == "Echo: raw helper"
    assert record["output"]["message"]["content"] == text
    assert provider == "openai" or record["metadata"]["output_tokens"] > 0  # (openai's raw stream has no usage)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_raw_response_dropped_unread_still_ends_its_call_at_once(provider: str, carrot: IngestServer) -> None:
    """Nothing of carrot's holds a tracked response: dropped without parse() or close(), it ends its call when its
    last reference goes (no cycle waiting for a collection)."""
    server: Any = FakeOpenAI() if provider == "openai" else FakeAnthropic()
    with server:
        gc.disable()
        try:
            if provider == "openai":
                client = carrot_ai.wrap(openai_conftest.make_client(server))
                raw = client.chat.completions.with_streaming_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "dropped"}]
                ).__enter__()
            else:
                client = carrot_ai.wrap(anthropic_conftest.make_client(server))
                raw = client.messages.with_streaming_response.create(
                    model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "dropped"}]
                ).__enter__()
            assert type(raw).parse is not None and "parse" not in vars(raw)  # the SDK's class, observed
            del raw
            [record] = (openai_conftest if provider == "openai" else anthropic_conftest).records(carrot, 1)
        finally:
            gc.enable()
    assert record["status"] == "success" and record["output"] == {}
