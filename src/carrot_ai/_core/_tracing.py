"""Spans: where our tracers come from, which exported span is the parent, and the span lifecycle object.

Parents. A record names the *nearest exported ancestor* as its parent, not merely the OpenTelemetry parent: a
span in between that carrot does not export (an HTTP server span, a database span) is elided. Every span we
start puts its span id into the OpenTelemetry context under :data:`EXPORTED_PARENT_KEY`; when the span we start
next has an OpenTelemetry parent that is not that span, we write the exported ancestor's id into the
``carrot.parent_span_id`` attribute ("" when there is none), so the exporter's conversion stays a pure function
of one span.
"""

from __future__ import annotations

import contextvars
import gc
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core import _content, _fastspan
from carrot_ai._core._fastspan import FastSpan
from carrot_ai._core._guard import report_internal_error
from carrot_ai._version import __version__

EXPORTED_PARENT_KEY = otel_context.create_key("carrot_ai.exported_parent")
LLM_CALL_KEY = otel_context.create_key("carrot_ai.llm_call")

_tracer_provider: trace.TracerProvider | None = None
_tracers: dict[str, Tracer] = {}

# OpenTelemetry's default runtime context keeps the current Context in one ContextVar; reading and setting that
# variable directly saves two Python calls per operation. Any other runtime context goes through the public API.
_runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
_context_var: Any = getattr(_runtime, "_current_context", None)
if type(_runtime).__name__ != "ContextVarsRuntimeContext" or not isinstance(_context_var, contextvars.ContextVar):
    _context_var = None


# CPython 3.10 / 3.11 (python/cpython#148891): the garbage collector, run by an allocation inside a ContextVar.set(),
# runs finalizers there; a set() they make on the same thread frees the context's variables under the first one. A
# span started while the collector runs on this thread (a @trace function called from ``__del__``) is recorded
# without being made current.
_collecting_on: int | None = None  # the thread the garbage collector runs on, while it runs


def _note_collection(phase: str, info: dict[str, int]) -> None:
    global _collecting_on
    _collecting_on = threading.get_ident() if phase == "start" else None


if sys.version_info < (3, 12):  # (3.12 runs the collector between bytecodes, never inside set())
    gc.callbacks.append(_note_collection)

# The LiteLLM call ids (``litellm_call_id``) of the streams carrot records, oldest first, bounded: LiteLLM's own
# OpenTelemetry callback makes its span of a stream after the stream has ended, outside carrot's call, and names the
# call (``litellm.call_id``): the span processor leaves such a span out of the records (the same call).
litellm_calls: dict[str, None] = {}
_LITELLM_CALLS_MAX = 10_000
_tables_lock = threading.Lock()


def remember_litellm_call(call_id: Any) -> None:
    """A LiteLLM call carrot records (see :data:`litellm_calls`). Never raises."""
    if type(call_id) is str and call_id:
        with _tables_lock:
            if len(litellm_calls) >= _LITELLM_CALLS_MAX:
                del litellm_calls[next(iter(litellm_calls))]
            litellm_calls[call_id] = None


# The whole text of carrot's own content attributes (the record's input and output) of SDK spans whose attribute
# values the application limits (``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``, ``SpanLimits``): the span keeps the cut value
# the application asked for, and the record is made from this, by span id (taken by the converter). Bounded: a span
# that never reaches carrot's exporter gives way, oldest first.
whole_values: dict[int, dict[str, str]] = {}
_WHOLE_KEYS = (semconv.CARROT_INPUT, semconv.CARROT_OUTPUT)
_WHOLE_MAX = 2_000  # spans
_WHOLE_MAX_CHARS = 16 * 1024 * 1024  # of text, all spans together
_whole_chars = [0]


def keep_whole(span: Any, attributes: Mapping[str, Any]) -> None:
    """Keep what the SDK span's attribute length limit would cut of ``attributes``' content (:data:`whole_values`).
    Nothing to do, and one attribute read, when the application sets no limit. Never raises."""
    try:
        limit = getattr(getattr(span, "_attributes", None), "max_value_len", None)
        if limit is None:
            return
        for key in _WHOLE_KEYS:
            value = attributes.get(key)
            if type(value) is str and len(value) > limit:
                span_id = span.get_span_context().span_id
                with _tables_lock:
                    kept = whole_values.get(span_id)
                    if kept is None:
                        kept = whole_values[span_id] = {}
                    _whole_chars[0] += len(value) - len(kept.get(key, ""))
                    kept[key] = value
                    while whole_values and (len(whole_values) > _WHOLE_MAX or _whole_chars[0] > _WHOLE_MAX_CHARS):
                        oldest = whole_values.pop(next(iter(whole_values)))
                        _whole_chars[0] -= sum(map(len, oldest.values()))
    except Exception as exc:
        report_internal_error("keep whole attribute", exc)


def _reset_tables_after_fork() -> None:
    """In a forked child: the parent's calls and spans are not the child's, and the lock may have been held."""
    global _tables_lock
    _tables_lock = threading.Lock()
    litellm_calls.clear()
    whole_values.clear()
    _whole_chars[0] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_tables_after_fork)


def take_whole(span_id: int) -> dict[str, str] | None:
    """The whole content values kept for a span (see :data:`whole_values`), once."""
    with _tables_lock:
        kept = whole_values.pop(span_id, None)
        if kept is not None:
            _whole_chars[0] -= sum(map(len, kept.values()))
        return kept


def current_context() -> Context:
    """``opentelemetry.context.get_current()``."""
    if _context_var is not None and otel_context._RUNTIME_CONTEXT is _runtime:
        return _context_var.get()  # type: ignore[no-any-return]
    return otel_context.get_current()


def _attach(context: Context) -> object:
    if _context_var is not None and otel_context._RUNTIME_CONTEXT is _runtime:
        return _context_var.set(context)
    return otel_context.attach(context)


# CPython 3.10 / 3.11: resetting a variable to "never set" leaves its lookup cache pointing at the value it held
# when the garbage collector, run by that reset, had a finalizer read it (``__del__`` calling a @trace function,
# or any code reading the OpenTelemetry context); the next read returns freed memory and the interpreter crashes.
# Our outermost span therefore ends by setting the empty context that an unset variable reads as.
_RESET_TO_UNSET = sys.version_info >= (3, 12)
_UNSET = contextvars.Token.MISSING
_EMPTY_CONTEXT = Context()


def _detach(token: Any) -> None:
    if type(token) is contextvars.Token and token.var is _context_var:
        try:
            if _RESET_TO_UNSET or token.old_value is not _UNSET:
                _context_var.reset(token)
            else:
                _context_var.set(_EMPTY_CONTEXT)
            return
        except Exception:
            pass  # e.g. a token of another Context: OpenTelemetry's detach logs it, as it always did
    otel_context.detach(token)


def _span_in(context: Context) -> Span:
    """``trace.get_current_span(context)``."""
    span = context.get(_SPAN_KEY)
    return span if span is not None and isinstance(span, Span) else INVALID_SPAN


def set_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Use ``provider`` for our spans (``None``: the global one)."""
    global _tracer_provider
    _tracer_provider = provider
    _tracers.clear()


def get_tracer(scope: str) -> Tracer:
    """Return the tracer for one of our instrumentation scopes."""
    tracer = _tracers.get(scope)
    if tracer is None:
        provider = _tracer_provider or trace.get_tracer_provider()
        tracer = provider.get_tracer(scope, __version__)
        # A ProxyTracer (no provider yet) must not be cached past init(): it resolves itself later anyway.
        _tracers[scope] = tracer
    return tracer


def in_llm_call() -> bool:
    """Whether one of our LLM calls is running here (a nested instrumented call is then the same call)."""
    call = current_context().get(LLM_CALL_KEY)
    return call is not None and running_here(call)  # (None, nearly always: without a call)


def running_here(call: Any) -> bool:
    """Whether ``call`` (what a context holds under ``LLM_CALL_KEY``) is a model call that has not ended, on this
    thread. Work the call started elsewhere inherits its context but is not part of it: a callback run on another
    thread (litellm's success callbacks), or anything that runs after the call ended, is a call of its own."""
    return call is not None and not call._ended and call._thread == threading.get_ident()


def _exported_operation(span: Span) -> str | None:
    """The kind of record a live span will become ("" for ours without an operation), or None if not exported."""
    attributes = getattr(span, "attributes", None)
    if not attributes:
        return None
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str):
        return operation
    return "" if semconv.CARROT_KIND in attributes else None


def is_foreign_model_call(span: Span) -> bool:
    """Whether ``span`` is another instrumentation's span for one call to a model."""
    scope = getattr(span, "instrumentation_scope", None)
    if scope is not None and scope.name.startswith(semconv.SCOPE_PREFIX):
        return False
    return _exported_operation(span) in semconv.MODEL_CALL_OPERATIONS


def parent_attribute(parent_context: otel_context.Context, *, llm: bool = False) -> str | None:
    """Return the ``carrot.parent_span_id`` a span started in ``parent_context`` needs, or None if it needs none.

    None means "the OpenTelemetry parent is the exported parent" (or there is no parent at all).
    """
    return _parent_attribute(parent_context, trace.get_current_span(parent_context), llm)


def _parent_attribute(parent_context: Context, parent_span: Span, llm: bool) -> str | None:
    otel_parent = parent_span.get_span_context()
    if not otel_parent.is_valid:
        return None
    exported: int | None = parent_context.get(EXPORTED_PARENT_KEY)  # type: ignore[assignment]
    if otel_parent.span_id == exported:
        return None
    if _exported_operation(parent_span) is not None and not (llm and is_foreign_model_call(parent_span)):
        return None  # another instrumentation's exported span (an agent, a workflow) is a real parent
    return "" if exported is None else format(exported, "016x")


class SpanCall:
    """One traced operation: a span that :meth:`stop` or :meth:`fail` ends exactly once.

    ``activate()`` makes the span current (and the exported parent of what starts inside it) until
    ``deactivate()``; streams deactivate when the call returns and end the span later.
    """

    __slots__ = ("span", "_token", "_ended", "_llm", "_thread")

    def __init__(
        self,
        tracer: Tracer | str,
        name: str,
        attributes: dict[str, AttributeValue],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        llm: bool = False,
        start_time: int | None = None,
        complete: Callable[[dict[str, AttributeValue]], None] | None = None,
    ) -> None:
        """``complete``: adds the attributes a fast span may leave to the export worker, called here (before the span
        starts) only when the span is the SDK's."""
        parent_context = current_context()
        parent_span = _span_in(parent_context)
        parent = _parent_attribute(parent_context, parent_span, llm)
        if parent is not None:
            attributes[semconv.CARROT_PARENT_SPAN_ID] = parent
        span: Span | None = None
        if isinstance(tracer, str):
            fast = _fastspan.fast_path()
            if fast is not None:
                span = _fastspan.start_fast_span(fast, tracer, name, parent_span, kind, attributes, start_time)
                # The processor's on_start only looks for another instrumentation's span around our model call.
                if span is not None and llm and parent_span is not INVALID_SPAN and type(parent_span) is not FastSpan:
                    fast.processor.on_start(span, parent_context)
            if span is None:
                tracer = get_tracer(tracer)
        if span is None:
            assert not isinstance(tracer, str)
            if complete is not None:
                complete(attributes)
            span = tracer.start_span(
                name, context=parent_context, kind=kind, attributes=attributes, start_time=start_time
            )
            keep_whole(span, attributes)
        self.span = span
        self._token: object | None = None
        self._ended = False
        self._llm = llm

    @classmethod
    def started_llm(cls, span: FastSpan, parent_context: Context) -> SpanCall:
        """A model call's fast span its caller started in ``parent_context`` (the current context, with no
        ``carrot.parent_span_id`` needed), made current: what ``__init__`` then :meth:`activate` do, in one step."""
        call = cls.__new__(cls)
        call.span = span
        call._ended = False
        call._llm = True
        call._activate_in(parent_context, span.span_id)
        return call

    def activate(self) -> None:
        """Make the span current for what runs next on this thread or task."""
        self._activate_in(current_context(), self.span.get_span_context().span_id)

    def _activate_in(self, context: Context, span_id: int) -> None:
        # One new Context with all three keys (set_span_in_context + set_value would copy it three times).
        values: dict[str, object] = {**context, _SPAN_KEY: self.span, EXPORTED_PARENT_KEY: span_id}
        if self._llm:
            values[LLM_CALL_KEY] = self
            self._thread = threading.get_ident()
        if _collecting_on is not None and _collecting_on == threading.get_ident():
            self._token = None  # in a finalizer the garbage collector runs: see _note_collection
            return
        self._token = _attach(Context(values))

    def deactivate(self) -> None:
        """Undo :meth:`activate`; harmless if it was not active."""
        token, self._token = self._token, None
        if token is not None:
            try:
                _detach(token)
            except Exception as exc:
                report_internal_error("context detach", exc)

    @property
    def ended(self) -> bool:
        return self._ended

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Add attributes to the span while it is still open."""
        if attributes and not self._ended:
            if type(self.span) is not FastSpan:
                keep_whole(self.span, attributes)
            self.span.set_attributes(attributes)

    def stop(self, attributes: Mapping[str, AttributeValue] | None = None, end_time: int | None = None) -> None:
        """End the span as a success (its status stays unset, as the conventions ask)."""
        if self._ended:
            return
        self._ended = True
        try:
            if attributes:
                if type(self.span) is not FastSpan:
                    keep_whole(self.span, attributes)
                self.span.set_attributes(attributes)
        finally:
            self.span.end(end_time=end_time)

    def fail(
        self,
        exc: BaseException,
        attributes: Mapping[str, AttributeValue] | None = None,
        end_time: int | None = None,
    ) -> None:
        """End the span as an error caused by ``exc``."""
        if self._ended:
            return
        self._ended = True
        try:
            # Error messages often quote the input: they get the content policy's masking like any captured string.
            message = _content.prepare_text(_exception_message(exc))
            error: dict[str, AttributeValue] = {
                semconv.ERROR_TYPE: type(exc).__name__,
                semconv.CARROT_ERROR_MESSAGE: message,
            }
            if attributes:
                error.update(attributes)
            if type(self.span) is not FastSpan:
                keep_whole(self.span, error)
            self.span.set_attributes(error)
            self.span.set_status(Status(StatusCode.ERROR, message))
        finally:
            self.span.end(end_time=end_time)


def _exception_message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text[:10_000] if text else type(exc).__name__
