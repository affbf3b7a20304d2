"""with_raw_response / with_streaming_response, and failed calls: the SDK's objects and exceptions, unchanged."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anthropic
import pytest

import carrot_ai
from tests.anthropic.conftest import MODEL, client_for, make_client, records, user
from tests.fakes import Hang, Reset
from tests.fakes.anthropic_server import FakeAnthropic, not_found, overloaded, rate_limit
from tests.ingest_server import IngestServer


def body(text: str) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 50, "messages": user(text)}


def test_with_raw_response_records_the_parsed_body(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    raw = client.messages.with_raw_response.create(**body("raw"))
    assert type(raw).__name__ in ("APIResponse", "LegacyAPIResponse")  # anthropic < 1 returns the legacy one
    assert raw.headers["request-id"].startswith("req_fake_")
    message = raw.parse()
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == message.content[0].text == "Echo: raw"
    assert record["metadata"]["request_id"] == raw.headers["request-id"]
    assert record["metadata"]["output_tokens"] == message.usage.output_tokens


def test_with_raw_response_stream_parses_to_the_proxied_stream(
    client: anthropic.Anthropic, carrot: IngestServer
) -> None:
    raw = client.messages.with_raw_response.create(**body("raw stream"), stream=True)
    stream = raw.parse()
    assert isinstance(stream, anthropic.Stream)
    assert raw.parse() is stream
    assert [e.type for e in stream][-1] == "message_stop"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: raw stream"


def test_abandoned_raw_stream_response_is_recorded_when_collected(
    client: anthropic.Anthropic, carrot: IngestServer
) -> None:
    raw = client.messages.with_raw_response.create(**body("never parsed"), stream=True)
    assert raw.status_code == 200
    del raw
    gc.collect()
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["input"]["messages"] == user("never parsed")


def test_with_streaming_response_parse(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    client = client_for(way, fake)
    with client.messages.with_streaming_response.create(**body("streamed response")) as response:
        message = response.parse()
    assert message.content[0].text == "Echo: streamed response"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: streamed response"


def test_with_streaming_response_read_as_json_is_recorded_on_close(
    client: anthropic.Anthropic, carrot: IngestServer
) -> None:
    with client.messages.with_streaming_response.create(**body("json body")) as response:
        data = response.json()
    assert data["content"][0]["text"] == "Echo: json body"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: json body"
    assert record["metadata"]["response_id"] == data["id"]


def test_with_streaming_response_sse_lines_end_the_span_on_close(
    client: anthropic.Anthropic, carrot: IngestServer
) -> None:
    with client.messages.with_streaming_response.create(**body("lines"), stream=True) as response:
        lines = list(response.iter_lines())
    assert any(line.startswith("event: message_stop") for line in lines)
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["output"] == {}  # bytes read by the caller are not parsed again
    assert record["metadata"]["request_id"].startswith("req_fake_")


def test_async_with_streaming_response_stream(aclient: anthropic.AsyncAnthropic, carrot: IngestServer) -> None:
    async def main() -> list[str]:
        async with aclient.messages.with_streaming_response.create(**body("async raw"), stream=True) as response:
            stream = await response.parse()
            kinds = [event.type async for event in stream]
        await aclient.close()
        return kinds

    assert asyncio.run(main())[-1] == "message_stop"
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: async raw"


# --- errors --------------------------------------------------------------------------------------------------


def test_http_error_propagates_unchanged_and_is_recorded(way: str, fake: FakeAnthropic, carrot: IngestServer) -> None:
    fake.enqueue(not_found(MODEL))
    client = client_for(way, fake)
    with pytest.raises(anthropic.NotFoundError) as raised:
        client.messages.create(**body("missing model"))
    assert raised.value.status_code == 404
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"] == {"error": str(raised.value), "error_type": "NotFoundError"}
    assert record["input"] == body("missing model")
    meta = record["metadata"]
    assert meta["http_status"] == 404
    assert meta["error_code"] == "not_found_error"
    assert meta["request_id"] == raised.value.request_id


def test_async_http_error_is_recorded(
    aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    fake.enqueue(not_found(MODEL))

    async def main() -> None:
        with pytest.raises(anthropic.NotFoundError):
            await aclient.messages.create(**body("async missing"))
        await aclient.close()

    asyncio.run(main())
    [record] = records(carrot, 1)
    assert record["metadata"]["http_status"] == 404


def test_retried_call_is_one_record_covering_the_retries(fake: FakeAnthropic, carrot: IngestServer) -> None:
    fake.enqueue(rate_limit(0.05), overloaded(0.05))
    client = carrot_ai.wrap(make_client(fake, max_retries=2))
    message = client.messages.create(**body("after retries"))
    assert message.content[0].text == "Echo: after retries"
    assert len(fake.requests) == 3
    [record] = records(carrot, 1)
    assert record["status"] == "success"
    assert record["metadata"]["latency_ms"] >= 100  # both retry-after waits are inside the call


def test_retries_exhausted_records_the_last_error(fake: FakeAnthropic, carrot: IngestServer) -> None:
    fake.enqueue(overloaded(0.01), overloaded(0.01))
    client = carrot_ai.wrap(make_client(fake, max_retries=1))
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(**body("overloaded"))
    [record] = records(carrot, 1)
    assert record["metadata"]["http_status"] == raised.value.status_code == 529
    assert record["metadata"]["error_code"] == "overloaded_error"


def test_connection_error_is_recorded(client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer) -> None:
    fake.enqueue(Reset())
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(**body("reset"))
    [record] = records(carrot, 1)
    assert record["status"] == "error"
    assert record["output"]["error_type"] == "APIConnectionError"
    assert "http_status" not in record["metadata"]


def test_timeout_is_recorded(client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer) -> None:
    fake.enqueue(Hang())
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(**body("slow"), timeout=0.2)
    [record] = records(carrot, 1)
    assert record["output"]["error_type"] == "APITimeoutError"
    fake.stop()


def test_sdk_argument_error_propagates_and_is_recorded(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    with pytest.raises(TypeError) as raised:
        client.messages.create(model=MODEL, messages=user("no max_tokens"))  # type: ignore[call-overload]
    assert fake.requests == []
    [record] = records(carrot, 1)
    assert record["output"] == {"error": str(raised.value), "error_type": "TypeError"}


def test_failing_message_iterator_propagates_its_own_error(
    client: anthropic.Anthropic, fake: FakeAnthropic, carrot: IngestServer
) -> None:
    def broken() -> Any:
        yield {"role": "user", "content": "first"}
        raise KeyError("from the user's generator")

    with pytest.raises(KeyError, match="from the user's generator"):
        client.messages.create(model=MODEL, max_tokens=10, messages=broken())
    assert fake.requests == []
