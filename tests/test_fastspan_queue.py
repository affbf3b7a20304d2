"""Finished fast spans wait in the export queue packed as plain tuples (`_fastspan.pack`): the export worker turns them
back into the same span, and the garbage collector stops tracking them."""

from __future__ import annotations

import gc
import time
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from carrot_ai._core._fastspan import FastPath, FastSpan, pack, unpack
from carrot_ai.export._convert import encode_span

ATTRIBUTES: dict[str, Any] = {
    "carrot.kind": "llm",
    "carrot.name": "chat.completions",
    "carrot.input": '{"model":"m","messages":[{"role":"user","content":"hi"}]}',
    "carrot.output": '{"message":{"role":"assistant","content":"hello"}}',
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "m",
    "gen_ai.request.temperature": 0.5,
    "gen_ai.usage.input_tokens": 3,
    "gen_ai.request.stream": True,
    "gen_ai.response.finish_reasons": ("stop", "length"),
    "carrot.tags": ("a", "b"),
}


def finished(parent: SpanContext | None = None, status: Status | None = None) -> FastSpan:
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    span = FastSpan(
        FastPath(provider, None), "carrot_ai.test", "chat m", parent, SpanKind.CLIENT, dict(ATTRIBUTES), None
    )
    if status is not None:
        span.set_status(status)
    span.add_event("note", {"k": "v"})
    span._end_time = time.time_ns() + 1_000
    return span


def same_span(a: FastSpan, b: FastSpan) -> None:
    assert b.name == a.name and b.kind is a.kind
    assert b.context == a.context and b.context.trace_state == a.context.trace_state
    assert b.parent == a.parent
    assert dict(b.attributes) == dict(a.attributes)
    assert (b.status.status_code, b.status.description) == (a.status.status_code, a.status.description)
    assert (b.start_time, b.end_time) == (a.start_time, a.end_time)
    assert b.resource is a.resource
    assert b.instrumentation_scope == a.instrumentation_scope
    assert [(e.name, dict(e.attributes or {})) for e in b.events] == [
        (e.name, dict(e.attributes or {})) for e in a.events
    ]
    assert encode_span(b) == encode_span(a)


def test_a_root_span_comes_back_the_same() -> None:
    span = finished()
    same_span(span, unpack(pack(span)))


def test_a_child_of_a_remote_parent_keeps_parent_and_trace_state() -> None:
    state = TraceState([("vendor", "value")])
    parent = SpanContext(0x1234, 0x5678, True, TraceFlags(TraceFlags.SAMPLED), state)
    span = finished(parent)
    back = unpack(pack(span))
    same_span(span, back)
    assert back.parent is not None and back.parent.is_remote and back.context.trace_state.get("vendor") == "value"
    assert back.context.trace_id == 0x1234


def test_an_error_status_comes_back() -> None:
    span = finished(status=Status(StatusCode.ERROR, "boom"))
    back = unpack(pack(span))
    same_span(span, back)
    assert back.status.status_code is StatusCode.ERROR and back.status.description == "boom"


def test_the_packed_span_is_not_tracked_by_the_garbage_collector() -> None:
    span = finished()
    span._events = ()  # events are objects; a span with one stays tracked (rare: errors recorded as events)
    packed = pack(span)
    del span
    # Untracked by the young generations' collections, so it never reaches the oldest one (whose collections walk
    # every tracked object). The first collection leaves the outer tuple tracked (its inner tuples are examined
    # after it); the next one, of its new generation, untracks it.
    gc.collect(0)
    assert not any(gc.is_tracked(value) for value in packed)
    gc.collect(1)
    assert not gc.is_tracked(packed)
