"""The provider key never reaches a record, a request to the ingest API, or one of our log lines.

(The anthropic SDK itself logs request options, headers included, at DEBUG: that is its own logger.)
"""

from __future__ import annotations

import asyncio
import logging

import anthropic
import pytest

import carrot_ai
from tests.anthropic.conftest import API_KEY, MODEL, make_client, records, user
from tests.fakes.anthropic_server import FakeAnthropic, not_found
from tests.ingest_server import IngestServer


def test_api_key_never_appears_in_ingest_bodies_or_logs(
    fake: FakeAnthropic, carrot: IngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = carrot_ai.wrap(make_client(fake, default_headers={"X-Custom-Auth": API_KEY}))
    client.messages.create(
        model=MODEL, max_tokens=10, messages=user("hi"), extra_headers={"Authorization": f"Bearer {API_KEY}"}
    )
    for _event in client.messages.create(model=MODEL, max_tokens=10, messages=user("stream"), stream=True):
        pass
    fake.enqueue(not_found(MODEL))
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model=MODEL, max_tokens=10, messages=user("error"))

    async def main() -> None:
        async with carrot_ai.wrap(make_client(fake, is_async=True)) as aclient:
            await aclient.messages.create(model=MODEL, max_tokens=10, messages=user("async"))

    asyncio.run(main())
    records(carrot, 4)
    assert all(API_KEY in str(r.headers) for r in fake.requests)  # the premise: the key was in play
    for request in carrot.requests:
        assert API_KEY not in request.body.decode()
        assert "sk-ant-api03" not in request.body.decode()
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("carrot_ai")]
    assert all(API_KEY not in line for line in ours)
