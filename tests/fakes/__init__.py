"""Fake OpenAI / Anthropic servers on 127.0.0.1 and VCR cassette replay, for the end-to-end tests.

Nothing here imports `carrot_ai`. See README.md beside this file.
"""

from __future__ import annotations

from ._http import (
    BytesReply,
    ErrorReply,
    FakeServer,
    Hang,
    JSONReply,
    RecordedRequest,
    Reply,
    ReplyFactory,
    Reset,
    Slow,
    SSEEvent,
    SSEReply,
    encode_sse_event,
)
from .anthropic_server import FakeAnthropic
from .cassettes import (
    CASSETTE_DIR,
    CassetteServer,
    Interaction,
    ReplayResult,
    cassette_names,
    load_cassette,
    replay_through_sdk,
    replay_through_sdk_async,
)
from .openai_server import FakeOpenAI

__all__ = [
    "CASSETTE_DIR",
    "BytesReply",
    "CassetteServer",
    "ErrorReply",
    "FakeAnthropic",
    "FakeOpenAI",
    "FakeServer",
    "Hang",
    "Interaction",
    "JSONReply",
    "RecordedRequest",
    "ReplayResult",
    "Reply",
    "ReplyFactory",
    "Reset",
    "SSEEvent",
    "SSEReply",
    "Slow",
    "cassette_names",
    "encode_sse_event",
    "load_cassette",
    "replay_through_sdk",
    "replay_through_sdk_async",
]
