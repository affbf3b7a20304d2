"""Another instrumentation's span of a call carrot records, recognised only when it ends.

The span processor marks a foreign GenAI span as a duplicate when it starts directly under one of carrot's LLM
spans. Some instrumentations (OpenLLMetry, for one) name the GenAI operation only after the span has started, so at
``on_start`` it is not yet known to be a model call: the processor remembers such a span here, and whichever path
hands the finished span to the exporter (our processor, or the SDK's ``BatchSpanProcessor`` under
``OTEL_TRACES_EXPORTER=carrot``) asks :func:`is_late_duplicate` before queueing it. Bounded: the oldest entries
go first (spans that are never exported, such as HTTP client spans, are remembered until then).

The other direction: when our LLM span starts below another instrumentation's span (theirs installed on top of
ours), that parent is remembered as ``ABOVE``; when it ends, it is a duplicate if it is a model call, and its own
parent is remembered in turn, so a stack of several instrumentations above ours is recognised too.

LiteLLM's own OpenTelemetry callback (``litellm.callbacks = ["otel"]``) makes its ``litellm_request`` span of a
stream after the stream has ended, outside carrot's call: carrot's LiteLLM instrumentation remembers the LiteLLM
call id of each stream it records (``_tracing.remember_litellm_call``), and a foreign span naming one of them
(``litellm.call_id``) is that call again (:func:`is_litellm_duplicate`).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from carrot_ai import semconv
from carrot_ai._core._tracing import litellm_calls

_MAX = 10_000
INSIDE = 1  # started inside one of our LLM calls
ABOVE = 2  # one of our LLM calls started below it (it may be the same call, seen by an outer instrumentation)

_suspects: dict[int, int] = {}  # span id -> INSIDE / ABOVE, oldest first
_dropped: dict[int, None] = {}  # settled duplicates not yet seen by the exporter (the SDK's processor feeds it)
_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _lock
    _suspects.clear()  # the parent's spans: never the child's
    _dropped.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _put(table: dict[int, Any], span_id: int, value: Any) -> None:
    if len(table) >= _MAX:
        del table[next(iter(table))]
    table[span_id] = value


def remember(span_id: int, how: int = INSIDE) -> None:
    """A foreign span whose fate is decided when it ends (see the module docstring)."""
    with _lock:
        _put(_suspects, span_id, how)


def settle(span: Any, attributes: Any) -> bool:
    """At the end of a foreign span: whether it is a remembered one that turned out to be a model call, i.e. a
    duplicate of a call carrot records. A span with one of our calls below it passes that on to its parent, so every
    instrumentation stacked above ours is recognised, whichever order they were installed in."""
    if not _suspects:
        return False
    context = getattr(span, "context", None)
    if context is None:
        return False
    with _lock:
        how = _suspects.pop(context.span_id, None)
    if how is None:
        return False
    if how == ABOVE:
        parent = getattr(span, "parent", None)
        if parent is not None and parent.is_valid:
            remember(parent.span_id, ABOVE)
    if semconv.CARROT_KIND in attributes:
        return False
    return attributes.get(semconv.GEN_AI_OPERATION_NAME) in semconv.MODEL_CALL_OPERATIONS


def forget(span: Any) -> None:
    """One of our own spans ended: it is never a duplicate (an ``ABOVE`` passed up to it stops here)."""
    context = getattr(span, "context", None)
    if context is not None:
        with _lock:
            _suspects.pop(context.span_id, None)


def settle_for_exporter(span: Any, attributes: Any) -> None:
    """:func:`settle`, for a span the SDK's own processor hands to the exporter: remembered until it does."""
    if settle(span, attributes):
        with _lock:
            _put(_dropped, span.context.span_id, None)


def is_litellm_duplicate(attributes: Any) -> bool:
    """Whether a span with these attributes is LiteLLM's own span of a call carrot records (never one of ours)."""
    call_id = attributes.get(semconv.LITELLM_CALL_ID)
    return type(call_id) is str and call_id in litellm_calls and semconv.CARROT_KIND not in attributes


def is_late_duplicate(span: Any) -> bool:
    """Whether the exporter should leave out ``span``, settled as a duplicate (then forget it)."""
    if litellm_calls:
        attributes = getattr(span, "attributes", None)
        if attributes is not None and is_litellm_duplicate(attributes):
            return True
    if not _dropped:
        return False
    context = getattr(span, "context", None)
    if context is None:
        return False
    with _lock:
        return _dropped.pop(context.span_id, 0) is None
