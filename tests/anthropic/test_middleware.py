"""anthropic 2.x client middleware (``middleware=[...]``): the record is what the caller got.

Middleware may send a request more than once (every response goes through the client's ``_process_response``) or
change the result; carrot then reads the result the caller gets, not a response body on the way.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import anthropic
import pytest

import carrot_ai
from carrot_ai.instrumentation.anthropic import AnthropicInstrumentor
from tests.anthropic.conftest import MODEL, make_client, records, user
from tests.fakes.anthropic_server import FakeAnthropic
from tests.ingest_server import IngestServer

pytestmark = pytest.mark.skipif(
    "middleware" not in inspect.signature(anthropic.Anthropic.__init__).parameters,
    reason="this anthropic version has no client middleware",
)


def _second(request: Any) -> Any:
    body = dict(request.json)
    body["messages"] = user("second attempt")
    return request.copy(body=body)


def retry_twice(request: Any, call_next: Callable[[Any], Any]) -> Any:
    """Send the request, read the answer, then send a changed one: the caller gets the second answer."""
    call_next(request).read()
    return call_next(_second(request))


async def retry_twice_async(request: Any, call_next: Callable[[Any], Any]) -> Any:
    await (await call_next(request)).read()
    return await call_next(_second(request))


def _create(client: Any) -> Any:
    if isinstance(client, anthropic.AsyncAnthropic):
        return asyncio.run(client.messages.create(model=MODEL, max_tokens=50, messages=user("first attempt")))
    return client.messages.create(model=MODEL, max_tokens=50, messages=user("first attempt"))


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("how", ["wrap", "instrumentor"])
def test_a_middleware_that_sends_twice_is_recorded_as_what_the_caller_got(
    fake: FakeAnthropic, carrot: IngestServer, is_async: bool, how: str
) -> None:
    middleware = retry_twice_async if is_async else retry_twice
    instrumentor = AnthropicInstrumentor() if how == "instrumentor" else None
    if instrumentor is not None:
        instrumentor.instrument()
    try:
        client = make_client(fake, is_async=is_async, middleware=[middleware])
        if instrumentor is None:
            client = carrot_ai.wrap(client)
        message = _create(client)
    finally:
        if instrumentor is not None:
            instrumentor.uninstrument()
    assert message.content[0].text == "Echo: second attempt"
    assert len(fake.requests) == 2
    [record] = records(carrot, 1)
    assert record["output"]["message"]["content"] == "Echo: second attempt"
    assert record["metadata"]["response_id"] == message.id
