"""Keep anthropic 2.x's own span out of the calls we record.

anthropic 2.x starts a ``CLIENT`` span for every API call (scope ``com.anthropic.sdk.python``) whenever its client
has a tracer. How it decides: each client resolves its ``open_telemetry`` option once, at construction (from the
constructor argument, else the ``ANTHROPIC_OPEN_TELEMETRY*`` environment variables; ``copy()`` / ``with_options()``
inherit it), and on first use gets a tracer from the global tracer provider (or the option's ``tracer_provider``)
unless traces are disabled. ``BaseClient._tracer`` is that lazily resolved tracer, read at the start of every
``request()``; ``None`` skips all span work.

While one of our LLM calls is current, the guard installed here makes ``_tracer`` answer for that request only:

* ``None`` (no span work at all) for ``create`` / ``parse``: the wrapper has already put the trace-context headers
  the SDK would have sent (``traceparent``, now naming our call's span) into ``extra_headers``, exactly when the
  SDK would have sent them (:func:`propagation_headers`);
* for ``messages.stream()``, whose request is built before our span starts, a tracer whose spans are the current
  span's context without recording (a ``NonRecordingSpan``) when the client propagates: the SDK still sends
  ``traceparent`` itself but records nothing (its bookkeeping returns at once); ``None`` when it does not.

Nothing the application can see changes: the environment, each client's ``open_telemetry`` option and calls made
outside our instrumentation are left alone. The export side stays correct without the guard too: the span
processor drops a model-call span whose parent is our LLM span, so exactly one record reaches the ingest API.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanKind, Tracer
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util.types import AttributeValue

from carrot_ai._core._fastspan import FastSpan
from carrot_ai._core._guard import report_internal_error
from carrot_ai._core._tracing import current_context, in_llm_call

_lock = threading.Lock()
_installed = False
_original_tracer: Any = None
# Set while a wrapper runs an SDK call whose trace-context headers it has already added.
headers_added: contextvars.ContextVar[bool] = contextvars.ContextVar("carrot_ai.anthropic.headers_added", default=False)


class _CurrentSpanTracer(Tracer):
    """A tracer whose spans are the current span's context, not recorded: propagation without a second span."""

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        return NonRecordingSpan(trace.get_current_span(context).get_span_context())

    @contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[Span]:  # type: ignore[override]
        span = self.start_span(name, kwargs.get("context"))
        with trace.use_span(span, end_on_exit=False):
            yield span


_CURRENT_SPAN_TRACER = _CurrentSpanTracer()


def install_native_span_guard() -> bool:
    """Install the guard on anthropic's ``BaseClient._tracer`` once; False when this SDK version has no spans."""
    global _installed, _original_tracer
    with _lock:
        if _installed:
            return True
        from carrot_ai.instrumentation.anthropic._compat import patch_stream_instancecheck

        patch_stream_instancecheck()
        try:
            from anthropic import _base_client
        except ImportError:
            return False
        base = getattr(_base_client, "BaseClient", None)
        prop = base.__dict__.get("_tracer") if base is not None else None
        if not isinstance(prop, property) or prop.fget is None:
            return False  # anthropic < 2: no native spans
        original = prop.fget

        def _tracer(client: Any) -> Any:
            tracer = original(client)
            if tracer is None or not in_llm_call():
                return tracer
            if headers_added.get():
                return None
            try:
                options = client._open_telemetry
                if observed_elsewhere(options):
                    return tracer  # the application's pipeline gets the SDK's span, as without carrot
                return _CURRENT_SPAN_TRACER if options.get("propagation", True) and _has_provider(options) else None
            except Exception as exc:
                report_internal_error("anthropic native span guard", exc)
                return tracer

        _tracer.__doc__ = original.__doc__
        _tracer._carrot_original = original  # type: ignore[attr-defined]
        base._tracer = property(_tracer, doc=prop.__doc__)  # type: ignore[union-attr]
        _original_tracer = original
        _installed = True
        return True


def native_span_guard_installed() -> bool:
    """Whether :func:`install_native_span_guard` is in force."""
    return _installed


def propagation_headers(client: Any) -> dict[str, str] | None:
    """The trace-context headers the SDK would send for a call on ``client`` now, computed for the current span.

    ``{}`` when the SDK would send none (its spans are off, propagation is off, or no tracer provider is installed,
    so its span would have no valid context); None when this is not known (no guard, anthropic < 2), or when the
    client signs its requests (the SDK then sends them itself, after signing).
    """
    if _original_tracer is None:
        return None
    options = client.__dict__.get("_open_telemetry")
    if not isinstance(options, dict):
        return None
    if _original_tracer(client) is None:
        return {}  # the client's spans are off
    if observed_elsewhere(options):
        return None  # the SDK's span is kept for the application's pipeline: it sends its own headers
    if not options.get("propagation", True) or not _has_provider(options):
        return {}
    if _signs_requests(type(client)):
        # A client that signs its requests (Bedrock, Vertex: ``_prepare_request``) must not sign these headers: the
        # SDK removes them before signing and sets them after. Left to it, through the guard's non-recording span.
        return None
    return current_headers()


def _has_provider(options: dict[str, Any]) -> bool:
    """Whether a client with ``open_telemetry`` ``options`` has a tracer provider (its own, or a global one). Without
    one its span would have no context of its own, and the SDK sends no trace headers for it."""
    return options.get("tracer_provider") is not None or not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider
    )


def observed_elsewhere(options: dict[str, Any]) -> bool:
    """Whether the span the SDK would make for a call on a client with ``open_telemetry`` ``options`` has an audience
    besides carrot: a span processor of the application's on the tracer provider it goes to (the client's own, else
    the global one). Such a span is left to the SDK, as without carrot (carrot's processor, where it sees it, drops
    it as a duplicate of our call); only a span nobody else would see is skipped, to save its cost."""
    provider = options.get("tracer_provider")
    if provider is None:
        provider = trace.get_tracer_provider()
    processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", None)
    if type(processors) is not tuple:
        return not isinstance(provider, trace.ProxyTracerProvider)  # not the SDK's: its spans may go anywhere
    seen = _AUDIENCES.get(id(provider))
    if seen is not None and seen[0] is processors:
        return seen[1]
    answer = any(not _carrots(processor) for processor in processors)
    if len(_AUDIENCES) > 64:
        _AUDIENCES.clear()
    _AUDIENCES[id(provider)] = (processors, answer, provider)
    return answer


# Per tracer provider (by id; the provider kept so that its id is not reused): its span processors when last seen
# (the SDK replaces the tuple when one is added) and whether one of them is not carrot's.
_AUDIENCES: dict[int, tuple[Any, bool, Any]] = {}


def _carrots(processor: Any) -> bool:
    """Whether a span processor is carrot's: its own processor, or an SDK one exporting to carrot's exporter only."""
    from carrot_ai.export._exporter import CarrotSpanExporter
    from carrot_ai.export._processor import CarrotSpanProcessor

    if isinstance(processor, CarrotSpanProcessor):
        return True
    exporter = getattr(processor, "span_exporter", None) or getattr(processor, "_exporter", None)
    if exporter is None:
        exporter = getattr(getattr(processor, "_batch_processor", None), "_exporter", None)
    return isinstance(exporter, CarrotSpanExporter)


_SIGNING: dict[type, bool] = {}  # per client class: whether it overrides the SDK's _prepare_request


def _signs_requests(kind: type) -> bool:
    """Whether clients of ``kind`` prepare (sign) their requests: a ``_prepare_request`` not the SDK base client's."""
    signs = _SIGNING.get(kind)
    if signs is None:
        owner = next((c for c in kind.__mro__ if "_prepare_request" in vars(c)), None)
        signs = _SIGNING[kind] = owner is not None and owner.__module__ != "anthropic._base_client"
    return signs


def current_headers() -> dict[str, str]:
    """What the global propagator injects for the current context: ``opentelemetry.propagate.inject`` into a new
    dict. With the default propagators (W3C trace context and baggage) and carrot's fast span current, without
    trace state or baggage, that is ``traceparent`` alone, written here in one step."""
    global _propagate
    if _propagate is None:
        # Imported on first use, as the SDK does: importing it loads the propagators OTEL_PROPAGATORS names.
        from opentelemetry import propagate

        _propagate = propagate
    textmap = _propagate.get_global_textmap()
    if textmap is not _textmap_seen:
        _see_textmap(textmap)
    if _textmap_default:
        context = current_context()
        span = context.get(_SPAN_KEY)
        if type(span) is FastSpan and not context.get(_BAGGAGE_KEY):
            traceparent = span.traceparent()
            if traceparent is not None:
                return {"traceparent": traceparent}
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return carrier


_propagate: Any = None
_textmap_seen: Any = None  # the global propagator last seen, and whether it is OpenTelemetry's default
_textmap_default = False


def _see_textmap(textmap: Any) -> None:
    global _textmap_seen, _textmap_default
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
    _textmap_default = type(textmap) is CompositePropagator and kinds == [
        TraceContextTextMapPropagator,
        W3CBaggagePropagator,
    ]
    _textmap_seen = textmap
