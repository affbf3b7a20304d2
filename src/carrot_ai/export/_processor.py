"""``CarrotSpanProcessor``: the span processor ``init()`` adds to the tracer provider.

``on_end`` hands exportable spans to the exporter's queue (a few hundred nanoseconds; no conversion, no I/O on
the application's thread). ``on_start`` keeps one record per model call when two instrumentations see the same
call (ours and, say, the official OpenAI instrumentation or anthropic's native spans): the span that is not
ours is left out of the export. It also gives another instrumentation's GenAI span the nearest exported
ancestor as its parent when its OpenTelemetry parent is a span carrot does not export.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from carrot_ai import semconv
from carrot_ai._context import current_scope
from carrot_ai._core._fastspan import FastSpan
from carrot_ai._core._guard import report_internal_error
from carrot_ai._core._tracing import LLM_CALL_KEY, is_foreign_model_call, litellm_calls, parent_attribute, running_here
from carrot_ai.export import _duplicates
from carrot_ai.export._exporter import CarrotSpanExporter, raw_attributes
from carrot_ai.export._sizing import FAST_SPAN_OVERHEAD_BYTES

_MISSING: Any = object()
_KIND = semconv.CARROT_KIND
_OPERATION = semconv.GEN_AI_OPERATION_NAME

_MAX_TRACKED = 100_000


def _is_foreign(span: object) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    return scope is not None and not scope.name.startswith(semconv.SCOPE_PREFIX)


def _is_our_llm_span(span: object) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    if scope is None or not scope.name.startswith(semconv.SCOPE_PREFIX):
        return False
    attributes = getattr(span, "attributes", None) or {}
    return attributes.get(semconv.CARROT_KIND) == "llm"


class CarrotSpanProcessor(SpanProcessor):
    """Feeds a :class:`CarrotSpanExporter`, keeping one record per model call.

    ``deliver=False``: the exporter is fed by another processor (the SDK's ``BatchSpanProcessor`` under
    ``OTEL_TRACES_EXPORTER=carrot``); this one only marks spans when they start (duplicates, parents, content).
    """

    def __init__(self, exporter: CarrotSpanExporter, *, deliver: bool = True) -> None:
        self.exporter = exporter
        self.deliver = deliver
        if deliver:
            exporter._carrot_processor = self  # type: ignore[attr-defined]
        self._duplicates: set[int] = set()
        self._lock = threading.Lock()
        _instances.add(self)  # its lock is made anew in a forked child (_reset_after_fork)

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        try:
            scope = span.instrumentation_scope
            if scope is not None and scope.name.startswith(semconv.SCOPE_PREFIX):
                if _is_our_llm_span(span):
                    parent = trace.get_current_span(parent_context)
                    if is_foreign_model_call(parent):
                        self._mark_duplicate(parent)
                    elif _is_foreign(parent):
                        # Maybe a model-call span that names its operation later, below another one: decided when
                        # they end.
                        _duplicates.remember(parent.get_span_context().span_id, _duplicates.ABOVE)
                return
            attributes = span.attributes or {}
            # Inside one of our LLM calls (at any depth: other instrumentations nest in each other), another
            # instrumentation's model-call span is the same call.
            in_our_call = running_here(otel_context.get_value(LLM_CALL_KEY, parent_context))
            if semconv.GEN_AI_OPERATION_NAME not in attributes:
                if in_our_call:
                    _duplicates.remember(span.get_span_context().span_id)  # decided when it ends
                return
            if in_our_call and is_foreign_model_call(span):
                self._mark_duplicate(span)
                return
            exported_parent = parent_attribute(parent_context or otel_context.get_current())
            if exported_parent is not None:
                span.set_attribute(semconv.CARROT_PARENT_SPAN_ID, exported_parent)
            if current_scope().metadata_only:  # carrot_ai.context(metadata_only=True): its content is dropped
                span.set_attribute(semconv.CARROT_CONTENT_CAPTURED, False)
        except Exception as exc:
            report_internal_error("processor.on_start", exc)

    def _mark_duplicate(self, span: trace.Span) -> None:
        # The attribute keeps the span out of the records whichever processor hands it to the exporter.
        span.set_attribute(semconv.CARROT_DUPLICATE, True)
        if not self.deliver:
            return
        span_id = span.get_span_context().span_id
        with self._lock:
            if len(self._duplicates) >= _MAX_TRACKED:
                self._duplicates.clear()
            self._duplicates.add(span_id)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            # raw_attributes(), inlined: this runs for every span the application ends.
            attributes = getattr(span, "_attributes", _MISSING)
            if attributes is _MISSING:
                attributes = raw_attributes(span)
            elif attributes is None:
                return
            else:
                attributes = getattr(attributes, "_dict", attributes)
            suspects = _duplicates._suspects  # empty unless another instrumentation shares our calls
            if not self.deliver:
                if suspects:
                    _duplicates.settle_for_exporter(span, attributes)
                return
            if suspects and _duplicates.settle(span, attributes):
                return
            if _KIND not in attributes and _OPERATION not in attributes:
                return
            if litellm_calls and _duplicates.is_litellm_duplicate(attributes):
                return
            if self._duplicates:
                context = span.context
                if context is not None and context.span_id in self._duplicates:
                    with self._lock:
                        self._duplicates.discard(context.span_id)
                    return
            self.exporter.enqueue(span, attributes)
        except Exception as exc:
            try:
                self.exporter.count_internal_loss()
            except Exception:
                pass
            report_internal_error("processor.on_end", exc)

    def on_end_own(self, span: FastSpan) -> None:
        """``on_end`` for a fast span carrot made itself (exportable, never a duplicate): straight to the queue."""
        try:
            if _duplicates._suspects:
                _duplicates.forget(span)
            self.exporter.enqueue(span, span._attributes, FAST_SPAN_OVERHEAD_BYTES + span.extra_size)
        except Exception as exc:
            report_internal_error("processor.on_end", exc)

    def shutdown(self) -> None:
        """Shut the exporter down (bounded by its ``exit_timeout``)."""
        if self.deliver:
            self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver what is queued; True only if all of it arrived within the timeout."""
        return self.exporter.force_flush(timeout_millis) if self.deliver else True


# Every processor made (weakly), for one fork hook for all: a hook per processor (what ``os.register_at_fork`` takes
# can never be removed) kept ~270 bytes for each processor ever made, for the life of the process.
_instances: weakref.WeakSet[CarrotSpanProcessor] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for processor in list(_instances):
        # A lock held by another thread at fork time would stay held forever in the child.
        processor._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
