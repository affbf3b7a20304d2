"""The hot path's helpers: reading a span's attributes and sizing it, in a few hundred nanoseconds.

These run on the application's thread for every span that ends, so they read the SDK span's private attribute
dict directly (the public property wraps it in a new read-only proxy on every access) and fall back to the
public API for any other span class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from carrot_ai import semconv
from carrot_ai._core._fastspan import FastSpan

SPAN_OVERHEAD_BYTES = 2800  # a finished SDK span: the objects around its attributes (measured with tracemalloc)
# One of our own fast spans is its own ReadableSpan (slots, no copies): ~1,060 bytes measured for a @trace span with
# five attributes and 230 characters of text, which this constant plus the per-attribute and text terms overstate
# slightly (~1,270), so the byte budget stays an upper bound.
FAST_SPAN_OVERHEAD_BYTES = 600
ATTRIBUTE_OVERHEAD_BYTES = 80
_MISSING: Any = object()
_EMPTY: Mapping[str, Any] = {}
_KIND = semconv.CARROT_KIND
_OPERATION = semconv.GEN_AI_OPERATION_NAME


def raw_attributes(span: Any) -> Mapping[str, Any]:
    """The span's attributes without the read-only proxy the public property builds on every access."""
    raw = getattr(span, "_attributes", _MISSING)
    if raw is _MISSING:  # not the SDK's span class
        return span.attributes or _EMPTY
    if raw is None:
        return _EMPTY
    inner = getattr(raw, "_dict", None)  # BoundedAttributes keeps a plain dict
    return inner if type(inner) is dict else raw


def is_exportable(span: Any) -> bool:
    """Whether carrot may turn this span into a record: our own spans and GenAI spans."""
    attributes = raw_attributes(span)
    return _KIND in attributes or _OPERATION in attributes


def span_size(span: Any, attributes: Mapping[str, Any] | None = None) -> int:
    """Estimate the memory a queued span holds: a fixed part (measured: ~3 KB for an SDK span with a few small
    attributes, less for our fast spans) plus its string attributes and events. Non-ASCII text counts 3 bytes a
    character."""
    if attributes is None:
        attributes = raw_attributes(span)
    # A fast span may hold more than its attributes until the export worker settles it (a stream's events).
    overhead = FAST_SPAN_OVERHEAD_BYTES + span.extra_size if type(span) is FastSpan else SPAN_OVERHEAD_BYTES
    size = overhead + ATTRIBUTE_OVERHEAD_BYTES * len(attributes)
    for value in attributes.values():
        if type(value) is str:
            n = len(value)
            size += n if n < 512 or value.isascii() else 3 * n  # isascii() is O(1)
        elif type(value) is tuple:
            size += sequence_size(value)
    events = getattr(span, "_events", None)
    if events is not None and getattr(events, "_dq", events):  # the SDK's BoundedList: its deque's truth is C-fast
        size += events_size(events)
    return size


def sequence_size(values: tuple[Any, ...]) -> int:
    return 16 + sum(len(v) + 8 if type(v) is str else 16 for v in values)


def events_size(events: Iterable[Any]) -> int:
    size = 0
    for event in events:
        size += 100
        for value in (getattr(event, "attributes", None) or _EMPTY).values():
            size += len(value) if type(value) is str else 16
    return size
