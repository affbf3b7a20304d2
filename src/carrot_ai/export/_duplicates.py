"""Another instrumentation's span of a call carrot records, recognised only when it ends.

The span processor marks a foreign GenAI span as a duplicate when it starts directly under one of carrot's LLM
spans. Some instrumentations (OpenLLMetry, for one) name the GenAI operation only after the span has started, so at
``on_start`` it is not yet known to be a model call: the processor remembers such a span here, and whichever path
hands the finished span to the exporter (our processor, or the SDK's ``BatchSpanProcessor`` under
``OTEL_TRACES_EXPORTER=carrot``) asks :func:`is_late_duplicate` before queueing it. Bounded: the oldest entries
go first (spans that are never exported, such as HTTP client spans, are remembered until then).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from carrot_ai import semconv

_MAX = 10_000
_suspects: dict[int, None] = {}  # span ids, oldest first
_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _lock
    _suspects.clear()  # the parent's spans: never the child's
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def remember(span_id: int) -> None:
    """A foreign span, of an operation not known yet, started directly under one of our LLM spans."""
    with _lock:
        if len(_suspects) >= _MAX:
            del _suspects[next(iter(_suspects))]
        _suspects[span_id] = None


def is_late_duplicate(span: Any, attributes: Any) -> bool:
    """Whether the finished ``span`` is a remembered one that turned out to be a model call (then forget it)."""
    if not _suspects:
        return False
    context = getattr(span, "context", None)
    if context is None:
        return False
    with _lock:
        if _suspects.pop(context.span_id, 0) is not None:
            return False
    return attributes.get(semconv.GEN_AI_OPERATION_NAME) in semconv.MODEL_CALL_OPERATIONS
