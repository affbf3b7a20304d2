"""The lifecycle of one model call, independent of the provider.

A provider adapter (``carrot_ai.instrumentation.<provider>``) turns request kwargs, responses and stream chunks
into attributes with pure functions; this module owns the span: it starts it with the request attributes,
keeps it current while the SDK call runs (so a nested instrumented call of the same request is recognised and
skipped, and other instrumentations' spans nest under it), and ends it exactly once with the response.

Call sites read::

    call = LLMCall.start(...)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        LLMCall.fail_quietly(call, exc)
        raise
    finally:
        LLMCall.leave(call)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core import _content, _fastspan
from carrot_ai._core._fastspan import FastSpan
from carrot_ai._core._guard import guard, report_internal_error
from carrot_ai._core._serialize import RequestBody, dumps, loads
from carrot_ai._core._snapshot import snapshot_kwargs
from carrot_ai._core._tracing import EXPORTED_PARENT_KEY, LLM_CALL_KEY, SpanCall, current_context, running_here

# What a deferred result gives: the response attributes and the record's output.
Result = Callable[[], "tuple[dict[str, AttributeValue], Mapping[str, Any] | None]"]
# What a response extractor gives for a response (the SDK's model, or its decoded JSON), asked whether content is
# captured and whether to add the GenAI content attributes.
Extract = Callable[[Any, bool, bool], "tuple[dict[str, AttributeValue], Mapping[str, Any] | None]"]
# A fast span's ``response_body`` while it waits for the SDK's hook (:func:`keep_body`) to hand it the body.
_BODY_WANTED = object()
# What a kept body holds beyond its bytes (the bytes object, the deferred call), in the export queue's budget.
BODY_OVERHEAD_BYTES = 200
# What a request extractor gives for a call's arguments, asked whether to add the GenAI content attributes (then
# given the adapter's ``request_args``): the request attributes and the record's input.
Request = Callable[..., "tuple[dict[str, AttributeValue], Mapping[str, Any] | None]"]


class LLMCall:
    """One model call's span; :meth:`stop` or :meth:`fail` ends it exactly once."""

    __slots__ = ("span", "capture", "fast", "content_attributes", "start_ns", "first_chunk_ns")

    def __init__(self, span: SpanCall, capture: bool) -> None:
        self.span = span
        self.capture = capture
        #: Whether the span is a fast span: carrot's processor is its only observer, so what the call leaves to the
        #: export worker (:meth:`stop_later`, :meth:`stop_with_body`) is seen by nobody before then.
        self.fast = fast = type(span.span) is FastSpan
        # GenAI content attributes (gen_ai.input.messages, gen_ai.output.messages, ...) are worth extracting only when
        # someone else sees the span: on a fast span the record's input and output come from carrot.input /
        # carrot.output.
        self.content_attributes = capture and not fast
        self.start_ns = time.perf_counter_ns()
        self.first_chunk_ns: int | None = None

    @classmethod
    def start(
        cls,
        scope: str,
        span_name: str,
        attributes: dict[str, AttributeValue],
        *,
        record_name: str,
        record_input: Mapping[str, Any] | None,
        tags: Sequence[str] = (),
        metadata_only: bool = False,
        source: str = "sdk",
        capture: bool | None = None,
        request: Request | None = None,
        arguments: Mapping[str, Any] | None = None,
        request_args: tuple[Any, ...] = (),
        stream: bool = False,
        request_body: RequestBody | None = None,
    ) -> LLMCall | None:
        """Start the span for a call, or return None (tracing off, or already inside this call). Never raises.

        ``attributes`` are the GenAI request attributes the adapter extracted (content attributes included only
        when :meth:`capture_content` said so). ``record_input`` is the record's ``input`` (the request parameters);
        it is captured only when content capture is on for this call. ``capture``: what :meth:`capture_content`
        said for this call, when the adapter already asked.

        ``request`` with ``arguments`` (instead of request attributes in ``attributes`` and ``record_input``): the
        adapter's extraction of both from the call's keyword arguments, called as ``request(arguments,
        content_attributes, *request_args)`` (a module-level function and a tuple: a closure made per call would be
        held in the export queue until the worker runs it). On a fast span (nobody else reads it before
        it is exported) it runs on the export worker, from a snapshot of the arguments taken now (see
        :mod:`._snapshot`), while the export queue has room; otherwise it runs now, before the span starts.
        ``attributes`` then holds what must be known at once (the operation name). ``stream``: the call returns a
        stream, whose events are its response, so the response's body is not kept for the worker (an in-process
        transport hands the SDK a stream's whole body at once, which the queued record then held until export).
        ``request_body``: how the provider's SDK writes the pydantic models among the parameters into the request
        (an earlier response's message passed back), so that the record's input holds them as they were sent.
        """
        try:
            if not _ensure_started():
                return None
            context = current_context()
            if (outer := context.get(LLM_CALL_KEY)) is not None and running_here(outer):
                return None  # already inside this call
            if context.get(_SUPPRESS_INSTRUMENTATION_KEY):
                return None  # OpenTelemetry's suppress_instrumentation(): no telemetry for this work
            if capture is None:
                capture = _content.capture_enabled()
            capture = capture and not metadata_only
            attributes[semconv.CARROT_KIND] = "llm"
            attributes[semconv.CARROT_NAME] = record_name
            attributes[semconv.CARROT_SOURCE] = source
            _scope_attributes(attributes, tags)
            attributes[semconv.CARROT_CONTENT_CAPTURED] = capture
            if request is None:
                _set_input(attributes, record_input, capture, request_body)
                span = SpanCall(scope, span_name, attributes, kind=SpanKind.CLIENT, llm=True)
            elif (
                started := _start_deferred(
                    context,
                    scope,
                    span_name,
                    attributes,
                    request,
                    request_args,
                    arguments,
                    capture,
                    stream,
                    request_body,
                )
            ) is not None:
                return cls(started, capture)
            else:
                arguments = arguments if arguments is not None else {}
                now = functools.partial(_complete_request, request, request_args, arguments, capture, request_body)
                span = SpanCall(scope, span_name, attributes, kind=SpanKind.CLIENT, llm=True, complete=now)
                fast = span.span
                if type(fast) is FastSpan:
                    own = cast("dict[str, AttributeValue]", fast._attributes)  # a fast span's own dict
                    if fast._fast.roomy():
                        snapshot, size = snapshot_kwargs(arguments)
                        fast.defer(_Pending(request, request_args, snapshot, capture, own, request_body), size)
                        if not stream:
                            fast.response_body = _BODY_WANTED
                    else:
                        now(own, False)
            span.activate()
            return cls(span, capture)
        except Exception as exc:
            report_internal_error("LLM call start", exc)
            return None

    @staticmethod
    def capture_content() -> bool:
        """Whether this call may record content (ask before extracting content attributes)."""
        return _content.capture_enabled()

    @staticmethod
    def leave(call: LLMCall | None) -> None:
        """The SDK call returned or raised: the span stops being current (a stream's span stays open)."""
        if call is not None:
            call.span.deactivate()

    def mark_first_chunk(self) -> None:
        """Record the time to the first chunk of a stream (once; :class:`StreamState` calls it for the first only)."""
        if self.first_chunk_ns is None:
            now = self.first_chunk_ns = time.perf_counter_ns()
            call = self.span
            if not call._ended:
                call.span.set_attribute(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, (now - self.start_ns) / 1e9)

    def stop(self, attributes: dict[str, AttributeValue], output: Mapping[str, Any] | None) -> None:
        """End the span as a success with the response ``attributes`` and the record's ``output``."""
        if output is not None and self.capture:
            attributes[semconv.CARROT_OUTPUT] = _content.prepare_json(output)
        self.span.stop(attributes)

    def take_body(self) -> bytes | None:
        """The HTTP body of the response the SDK decoded during this call (kept by :func:`keep_body`), once; None
        when it was not kept (not a fast span, a backlogged queue, a stream, no hook on the client)."""
        span = self.span.span
        if type(span) is not FastSpan:
            return None
        body = span.response_body
        span.response_body = None
        return body if type(body) is bytes else None

    def stop_with_body(self, body: bytes, extract: Extract, request_id: Any) -> None:
        """:meth:`stop` with what ``extract`` reads of ``body`` (the response's JSON, as the SDK received it), on the
        export worker when the span is deferrable (:meth:`_open_fast_span`). The bytes cannot change after the call,
        unlike the SDK's response object, which the caller owns. ``request_id``: what the SDK put in the response's
        ``_request_id``."""
        size = len(body) + BODY_OVERHEAD_BYTES
        # The common case: the call's request is pending on the worker; one object then reads both.
        if (pending := self._free_pending()) is not None:
            pending.extract = extract
            pending.body = body
            pending.request_id = request_id
            self._end_pending(size)
            return
        if not self._stop_fast(functools.partial(_settle_body, extract, body, request_id, self.capture), size):
            self.stop(*_body_result(extract, body, request_id, self.capture))

    def _free_pending(self) -> _Pending | None:
        """The :class:`_Pending` object the call's deferrable span (:meth:`_open_fast_span`) leaves to the worker, when
        nothing of the response has been added to it yet (the common case); else None."""
        span = self._open_fast_span()
        if span is None or type(pending := span._later) is not _Pending:
            return None
        if pending.extract is None and pending.result is None:
            return pending
        return None

    def _end_pending(self, extra_size: int) -> None:
        """End the span whose :meth:`_free_pending` object was just given the response, which holds ``extra_size``
        more bytes until the worker reads it."""
        span = cast(FastSpan, self.span.span)
        span.extra_size += extra_size
        self.span._ended = True
        span.end()

    def stop_later(self, result: Result, extra_size: int) -> None:
        """:meth:`stop`, with ``result()`` (the response attributes and the record's output) run on the export worker
        when the span is deferrable (:meth:`_open_fast_span`), else now. ``extra_size``: the memory ``result`` holds
        until then."""
        if (pending := self._free_pending()) is not None:  # the common case, as in stop_with_body
            pending.result = result
            self._end_pending(extra_size)
            return
        if not self._stop_fast(functools.partial(_settle_result, result, self.capture), extra_size):
            self.stop(*result())

    def _stop_fast(self, settle: Callable[[dict[str, AttributeValue]], None], extra_size: int) -> bool:
        """End the span now, leaving ``settle(attributes)`` to the export worker, when it is deferrable
        (:meth:`_open_fast_span`); False, doing nothing, otherwise. Every call on a fast span ends here or in
        :meth:`stop_with_body`."""
        span = self._open_fast_span()
        if span is None:
            return False
        self.span._ended = True
        span.defer(functools.partial(settle, span._attributes), extra_size)  # type: ignore[arg-type]  # its own dict
        span.end()
        return True

    def _open_fast_span(self) -> FastSpan | None:
        """The call's span when what is left of the call may go to the export worker (the span is *deferrable*): a
        fast span, still open, while the export queue has room (:meth:`FastPath.roomy`); else None."""
        call = self.span
        span = call.span
        if type(span) is not FastSpan or call._ended or span._end_time is not None or not span._fast.roomy():
            return None
        return span

    def fail_later(
        self, exc: BaseException, result: Result, extra_size: int, attributes: dict[str, AttributeValue]
    ) -> None:
        """:meth:`fail` the same way: ``attributes`` (what is known of the error now) win over ``result()``'s."""
        if self._defer(result, extra_size):
            self.fail(exc, attributes)
            return
        result_attributes, output = result()
        result_attributes.update(attributes)
        self.fail(exc, result_attributes, output)

    def _defer(self, result: Result, extra_size: int) -> bool:
        span = self.span.span
        if type(span) is not FastSpan or self.span.ended or not span._fast.roomy():
            return False
        target = cast("dict[str, AttributeValue]", span._attributes)  # a fast span's own dict
        span.defer(functools.partial(_settle_result, result, self.capture, target), extra_size)
        return True

    def fail(
        self,
        exc: BaseException,
        attributes: dict[str, AttributeValue] | None = None,
        partial_output: Mapping[str, Any] | None = None,
    ) -> None:
        """End the span as an error; ``partial_output`` keeps what a stream delivered before it failed."""
        attributes = dict(attributes or {})
        if partial_output is not None and self.capture:
            attributes[semconv.CARROT_OUTPUT] = _content.prepare_json(partial_output)
        if _is_cancellation(exc):
            attributes[semconv.CARROT_CANCELLED] = True
        self.span.fail(exc, attributes)

    @staticmethod
    def stop_quietly(
        call: LLMCall | None, attributes: dict[str, AttributeValue], output: Mapping[str, Any] | None
    ) -> None:
        """:meth:`stop` under the guard (no-op for None)."""
        if call is not None:
            with guard("LLM call stop"):
                call.stop(attributes, output)

    @staticmethod
    def fail_quietly(
        call: LLMCall | None, exc: BaseException, attributes: dict[str, AttributeValue] | None = None
    ) -> None:
        """:meth:`fail` under the guard (no-op for None)."""
        if call is not None:
            with guard("LLM call fail"):
                call.fail(exc, attributes)


def _set_input(
    attributes: dict[str, AttributeValue],
    record_input: Mapping[str, Any] | None,
    capture: bool,
    request_body: RequestBody | None = None,
) -> None:
    """``carrot.input``: the request parameters when content is captured (as ``request_body`` says the SDK writes
    them), else the model alone."""
    if record_input is None:
        return
    if capture:
        attributes[semconv.CARROT_INPUT] = _content.prepare_json(record_input, request_body=request_body)
        return
    model = record_input.get("model")
    if isinstance(model, str):
        attributes[semconv.CARROT_INPUT] = dumps({"model": model})


def keep_body(response: Any) -> None:
    """Keep the body of ``response`` (the SDK's ``httpx``/``httpx2`` response, read) on the current LLM call's fast
    span when it asked for it. The SDK clients' response processing calls this (see
    ``carrot_ai.instrumentation._common.hook_process_response``). Never raises."""
    try:
        span = current_context().get(_SPAN_KEY)
        if type(span) is FastSpan and span.response_body is _BODY_WANTED:
            content = getattr(response, "_content", None)  # set once the body was read; a stream's is not
            if type(content) is bytes:
                span.response_body = content
    except Exception as exc:
        report_internal_error("keep response body", exc)


class _Pending:
    """What a model call on a fast span leaves to the export worker, in one object: its request (``request`` run on
    a snapshot of the arguments) and, once the call has returned, its response: the body to read (``extract``), or
    a stream's ``result``. Holding these in one object rather than a chain of partials keeps a queued call's memory,
    allocations and objects for the garbage collector to track down."""

    __slots__ = (
        "request",
        "request_args",
        "arguments",
        "capture",
        "target",
        "request_body",
        "extract",
        "body",
        "request_id",
        "result",
    )

    def __init__(
        self,
        request: Request,
        request_args: tuple[Any, ...],
        arguments: Mapping[str, Any],
        capture: bool,
        target: dict[str, AttributeValue],
        request_body: RequestBody | None = None,
    ) -> None:
        self.request = request
        self.request_args = request_args
        self.arguments = arguments
        self.capture = capture
        self.target = target  # the fast span's own attribute dict
        self.request_body = request_body
        self.extract: Extract | None = None
        self.body = b""
        self.request_id: Any = None
        self.result: Result | None = None

    def __call__(self) -> None:
        try:
            _complete_request(
                self.request, self.request_args, self.arguments, self.capture, self.request_body, self.target, False
            )
        finally:
            if self.extract is not None:
                _settle_body(self.extract, self.body, self.request_id, self.capture, self.target)
            elif self.result is not None:
                _settle_result(self.result, self.capture, self.target)


def _settle_result(result: Result, capture: bool, target: dict[str, AttributeValue]) -> None:
    """On the export worker: add what ``result()`` gives to a fast span's attributes ``target``."""
    _settle(target, capture, *result())


def _settle_body(
    extract: Extract, body: bytes, request_id: Any, capture: bool, target: dict[str, AttributeValue]
) -> None:
    """On the export worker: add what ``extract`` reads of a response's ``body`` to a fast span's attributes."""
    _settle(target, capture, *_body_result(extract, body, request_id, capture))


def _settle(
    target: dict[str, AttributeValue],
    capture: bool,
    attributes: dict[str, AttributeValue],
    output: Mapping[str, Any] | None,
) -> None:
    for key, value in attributes.items():
        target.setdefault(key, value)  # what the call recorded itself (an error) stays
    if output is not None and capture:
        target[semconv.CARROT_OUTPUT] = _content.prepare_json(output)


def _start_deferred(
    context: Context,
    scope: str,
    span_name: str,
    attributes: dict[str, AttributeValue],
    request: Request,
    request_args: tuple[Any, ...],
    arguments: Mapping[str, Any] | None,
    capture: bool,
    stream: bool,
    request_body: RequestBody | None,
) -> SpanCall | None:
    """The common case of :meth:`LLMCall.start`, in one step: a fast span (carrot's processor is the provider's only
    one, the queue has room) at the root or directly under another span of ours, its request left to the export
    worker, made current. None: any other case, which :class:`SpanCall` handles in general."""
    fast = _fastspan._fast
    if fast is None or not fast.valid() or not fast.roomy():
        return None
    parent_span = context.get(_SPAN_KEY)
    if parent_span is None:
        parent = None
    elif type(parent_span) is FastSpan and context.get(EXPORTED_PARENT_KEY) == parent_span.span_id:
        parent = parent_span._context  # always sampled; its record is this one's parent (no carrot.parent_span_id)
    else:
        return None
    span = FastSpan(fast, scope, span_name, parent, SpanKind.CLIENT, attributes, None)
    snapshot, size = snapshot_kwargs(arguments if arguments is not None else {})
    span.defer(_Pending(request, request_args, snapshot, capture, attributes, request_body), size)
    if not stream:
        span.response_body = _BODY_WANTED
    return SpanCall.started_llm(span, context)


def _body_result(
    extract: Extract, body: bytes, request_id: Any, capture: bool
) -> tuple[dict[str, AttributeValue], Mapping[str, Any] | None]:
    data = loads(body)
    attributes, output = extract(data if type(data) is dict else {}, capture, False)
    if isinstance(request_id, str) and request_id:
        attributes.setdefault(semconv.CARROT_REQUEST_ID, request_id)
    return attributes, output


def _complete_request(
    request: Request,
    request_args: tuple[Any, ...],
    arguments: Mapping[str, Any],
    capture: bool,
    request_body: RequestBody | None,
    attributes: dict[str, AttributeValue],
    content_attributes: bool = True,
) -> None:
    """Add what ``request`` extracts from ``arguments`` to ``attributes``; what the span already has (an error's
    attributes) stays."""
    request_attributes, record_input = request(arguments, capture and content_attributes, *request_args)
    for key, value in request_attributes.items():
        attributes.setdefault(key, value)
    if semconv.CARROT_INPUT not in attributes:
        _set_input(attributes, record_input, capture, request_body)


def _ensure_started() -> bool:
    global _ensure_started
    from carrot_ai._setup import ensure_started  # imported on first use: carrot_ai._setup imports the core

    _ensure_started = ensure_started  # later calls go straight there
    return ensure_started()


def _scope_attributes(attributes: dict[str, AttributeValue], tags: Sequence[str]) -> None:
    global _scope_attributes
    from carrot_ai._context import scope_attributes  # imported on first use: carrot_ai._context imports the core

    _scope_attributes = scope_attributes  # later calls go straight there
    scope_attributes(attributes, tags)


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` cancels what it interrupts (asyncio's or ``concurrent.futures``' ``CancelledError``)."""
    import asyncio
    import concurrent.futures

    return isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError)


def _is_cancellation(exc: BaseException) -> bool:
    """:func:`is_cancellation`, or a generator closed while the call ran in it."""
    return isinstance(exc, GeneratorExit) or is_cancellation(exc)
