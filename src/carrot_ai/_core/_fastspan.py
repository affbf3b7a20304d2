"""A lighter span for carrot's own operations when nobody but carrot observes the tracer provider.

The SDK's ``Tracer.start_span`` serves every possible pipeline (any sampler, limits, many processors, tracer
metrics) and costs ~12 µs per span here; the processor calls and attribute validation add more. When the
provider's only span processor is carrot's, its sampler is the default (parent-based, always on), and no span
limits are configured, none of that generality is observable, so our spans take this path: the same ids, the
same parenting and sampling decision; the span is itself an SDK ``ReadableSpan``, handed as is to our processor at
``end()``. Any other configuration (an application processor on the same provider, a custom sampler, attribute limits)
uses the SDK unchanged. :func:`fast_path` decides, per span, in a few attribute reads.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes, AttributeValue

from carrot_ai._version import __version__

_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_DEFAULT_SAMPLERS = (sampling.DEFAULT_ON, sampling.ALWAYS_ON)
_UNSET = Status(StatusCode.UNSET)
_getrandbits = random.getrandbits
_new_context = tuple.__new__
_DEFAULT_STATE = trace.DEFAULT_TRACE_STATE


class FastPath:
    """What a fast span needs from the provider it stands in for."""

    __slots__ = ("provider", "resource", "processor", "processors", "scopes", "_exporter")

    def __init__(self, provider: TracerProvider, processor: Any) -> None:
        self.provider = provider
        self.resource = provider.resource  # set once, when the provider is made
        self.processor = processor
        self.processors = _processors(provider)
        self.scopes: dict[str, InstrumentationScope] = {}
        self._exporter = getattr(processor, "exporter", None)

    def roomy(self) -> bool:
        """Whether work may be left to the export worker (:meth:`FastSpan.defer`): while its queue is under a quarter
        of its byte budget. What a deferred call holds (its arguments, the response object) is larger than the
        record it becomes, so a backlog (ingest down, a burst) falls back to extracting on the calling thread and
        the queue keeps its capacity in records."""
        exporter = self._exporter
        return exporter is None or exporter._queued_bytes * 4 < exporter._max_queue_bytes

    def valid(self) -> bool:
        """Whether the provider still has carrot's processor as its only observer."""
        return _processors(self.provider) is self.processors

    def scope(self, name: str) -> InstrumentationScope:
        scope = self.scopes.get(name)
        if scope is None:
            scope = self.scopes[name] = InstrumentationScope(name, __version__)
        return scope


_fast: FastPath | None = None


def _processors(provider: TracerProvider) -> Any:
    multi = getattr(provider, "_active_span_processor", None)
    return getattr(multi, "_span_processors", None)


def enable(provider: TracerProvider, processor: Any) -> None:
    """Use fast spans on ``provider`` while ``processor`` is its only span processor (``init()`` calls this)."""
    global _fast
    _fast = None
    processors = _processors(provider)
    limits = getattr(provider, "_span_limits", None)
    if (
        isinstance(processors, tuple)
        and processors == (processor,)
        and getattr(provider, "sampler", None) in _DEFAULT_SAMPLERS
        and limits is not None
        and limits.max_attribute_length is None
        and (limits.max_span_attributes or 0) >= 64
        and type(getattr(provider, "id_generator", None)).__name__ == "RandomIdGenerator"
        and not getattr(provider, "_disabled", False)
    ):
        _fast = FastPath(provider, processor)


def disable() -> None:
    global _fast
    _fast = None


def fast_path() -> FastPath | None:
    """The fast path if it applies right now, else None."""
    fast = _fast
    if fast is not None and fast.valid():
        return fast
    return None


class FastSpan(trace.Span, ReadableSpan):
    """An OpenTelemetry span recorded straight into carrot's processor (see the module docstring).

    It is its own finished ``ReadableSpan``: ``end()`` hands the span itself to the processor (nothing is copied),
    and every mutator is a no-op once it has ended, as on an SDK span.
    """

    __slots__ = (
        "_fast",
        "_name",
        "_context",
        "_parent",
        "_kind",
        "_instrumentation_scope",
        "_instrumentation_info",
        "_resource",
        "_attributes",
        "_events",
        "_links",
        "_status",
        "_start_time",
        "_end_time",
        "_later",
        "extra_size",
        "response_body",
        "span_id",
    )

    def __init__(
        self,
        fast: FastPath,
        scope: str,
        name: str,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        start_time: int | None,
    ) -> None:
        self.span_id = span_id = _getrandbits(64)  # also in the context: read here without a property call
        # SpanContext(...) without its Python-level __new__ (which only defaults and validates): the ids are ours.
        if parent is None:
            trace_id = _getrandbits(128)
            self._context = _new_context(
                SpanContext, (trace_id, span_id, False, _SAMPLED_RANDOM, _DEFAULT_STATE, trace_id != 0 != span_id)
            )
        else:
            flags = _SAMPLED_RANDOM if parent.trace_flags & _SAMPLED_RANDOM == _SAMPLED_RANDOM else _SAMPLED
            self._context = _new_context(
                SpanContext, (parent.trace_id, span_id, False, flags, parent.trace_state, span_id != 0)
            )
        self._fast = fast
        self._name = name
        self._parent = parent
        self._kind = kind
        scope_object = fast.scopes.get(scope)
        self._instrumentation_scope = scope_object if scope_object is not None else fast.scope(scope)
        self._instrumentation_info = None
        self._resource = fast.resource
        self._attributes = attributes
        self._events: tuple[Event, ...] = ()
        self._links: tuple[Link, ...] = ()
        self._status = _UNSET
        self._start_time = start_time if start_time is not None else time.time_ns()
        self._end_time: int | None = None
        # Work left to the export worker (see settle()), and the bytes it holds beyond the attributes.
        self._later: Callable[[], None] | None = None
        self.extra_size = 0
        # The HTTP body of the response, kept for the export worker to read (see carrot_ai._core._llm.keep_body).
        self.response_body: Any = None

    # --- what our processor and tracing helpers read of a live span (the dict itself, not a read-only copy) -------
    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        return self._attributes  # type: ignore[return-value]  # always our dict

    # --- the OpenTelemetry Span API -------------------------------------------------------------------------------
    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # always set

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._end_time is None:
            self._attributes.update(attributes)  # type: ignore[union-attr]  # always our dict

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end_time is None:
            self._attributes[key] = value  # type: ignore[index]  # always our dict

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self._end_time is None:
            self._events = (*self._events, Event(name, attributes, timestamp))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._end_time is None:
            self._links = (*self._links, Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None:
            return
        if isinstance(status, Status):
            self._status = status
        else:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        event_attributes: dict[str, AttributeValue] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time.time_ns()
        self._fast.processor.on_end_own(self)

    def defer(self, later: Callable[[], None], extra_size: int) -> None:
        """Leave ``later`` to the export worker, which runs it (:meth:`settle`) before it reads the attributes; call
        before :meth:`end`. ``later`` completes the attributes (writing ``_attributes`` directly: the span has ended
        by then); ``extra_size`` is the memory it holds until then, counted in the export queue's byte budget. Work
        deferred twice (a call's request, then its response) runs in that order."""
        if self._end_time is None:
            first = self._later
            self._later = later if first is None else functools.partial(_both, first, later)
            self.extra_size += extra_size

    def settle(self) -> None:
        """Run the work :meth:`defer` left, once (the export worker calls it before converting the span)."""
        later = self._later
        if later is not None:
            self._later = None
            self.extra_size = 0
            later()

    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` header naming this span, as OpenTelemetry's trace-context propagator writes it;
        None when the span has a trace state (the propagator then writes ``tracestate`` too)."""
        # The context is a tuple: (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid).
        trace_id, span_id, _, flags, state = self._context[:5]  # type: ignore[index]  # always set
        if state is not _DEFAULT_STATE and state:  # (the identity check spares TraceState's Python __len__)
            return None
        return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"

    def __repr__(self) -> str:
        return f'FastSpan(name="{self._name}", context={self._context})'


def _both(first: Callable[[], None], second: Callable[[], None]) -> None:
    try:
        first()
    finally:
        second()


def start_fast_span(
    fast: FastPath,
    scope: str,
    name: str,
    parent_span: trace.Span,
    kind: SpanKind,
    attributes: dict[str, AttributeValue],
    start_time: int | None,
    links: Sequence[Link] = (),
) -> trace.Span | None:
    """Start a fast span under ``parent_span``; None when the SDK must decide (an unsampled parent)."""
    parent = parent_span.get_span_context()
    if parent.is_valid:
        if not parent.trace_flags.sampled:
            return None
        return FastSpan(fast, scope, name, parent, kind, attributes, start_time)
    return FastSpan(fast, scope, name, None, kind, attributes, start_time)
