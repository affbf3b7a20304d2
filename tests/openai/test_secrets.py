"""The provider key never reaches a record, a request to the ingest API, or one of our log lines."""

from __future__ import annotations

import asyncio
import logging

import openai
import pytest

import carrot_ai
from tests.fakes.openai_server import FakeOpenAI, rate_limit
from tests.ingest_server import IngestServer
from tests.openai.conftest import API_KEY, MODEL, make_client, records, user


def test_api_key_never_appears_in_ingest_bodies_or_logs(
    fake: FakeOpenAI, carrot: IngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = carrot_ai.wrap(make_client(fake, default_headers={"X-Custom-Auth": API_KEY}))
    client.chat.completions.create(
        model=MODEL, messages=user("hi"), extra_headers={"Authorization": f"Bearer {API_KEY}"}
    )
    for _chunk in client.chat.completions.create(model=MODEL, messages=user("stream"), stream=True):
        pass
    client.responses.create(model=MODEL, input="resp", extra_headers={"api-key": API_KEY})
    client.chat.completions.with_raw_response.create(model=MODEL, messages=user("raw")).parse()
    fake.enqueue(rate_limit())
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=user("error"))

    async def main() -> None:
        async with carrot_ai.wrap(make_client(fake, is_async=True)) as aclient:
            await aclient.embeddings.create(model="text-embedding-3-small", input="async")

    asyncio.run(main())
    got = records(carrot, 6)
    assert all(API_KEY in str(r.headers) for r in fake.requests)  # the premise: the key was in play
    for request in carrot.requests:
        assert API_KEY not in request.body.decode()
        assert "CANARY" not in request.body.decode()
    assert all("api_key" not in r["input"] and "extra_headers" not in r["input"] for r in got)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("carrot_ai")]
    assert all(API_KEY not in line for line in ours)
