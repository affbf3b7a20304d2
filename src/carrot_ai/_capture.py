"""Manual capture: record LLM calls and tool executions made outside the wrapped SDKs, and backfill old ones.

``capture_llm_call(event)``, ``capture_tool_call(event)`` and ``capture_events(events)`` take the canonical event
shape of the manual-capture docs with Python snake_case keys, validate it *synchronously* (a ``ValueError`` names
the field path and the reason; nothing of an invalid call is sent, not even the valid events of a batch), then
emit one OpenTelemetry span per event with the event's own start and end times. The span is delivered like any
traced call (the same queue, flush and exit guarantees; other exporters on the tracer provider see it too). If
the tracer provider does not record it (a sampler dropped it), the record is queued for the Carrot exporter
directly: a valid event is never lost.

Field mapping (seed camelCase -> here):

==========================================  ===========================================  =========================
seed                                        here                                         notes
==========================================  ===========================================  =========================
``type``                                    ``type``                                     ``"llm"`` or ``"tool"``
``id``                                      ``id``                                       UUID; the record's id
``traceId``                                 ``trace_id``                                 32 hex digits or a UUID
(none)                                      ``parent_id``                                id of the parent record
(none)                                      ``name``, ``tags``                           record name and tags
``startTimeMs`` / ``endTimeMs``             ``start_time_ms`` / ``end_time_ms``          Unix epoch milliseconds
``durationMs``                              ``duration_ms``                              end = start + duration
``status.state``                            ``status.state``                             ``"ok"`` or ``"error"``
``status.error.code/httpStatus/message``    ``status.error.code/http_status/message``
``instrumentation.provider``                ``instrumentation.provider``
``instrumentation.sourceProvider``          ``instrumentation.source_provider``          the model's provider
``instrumentation.sourcePackage``           ``instrumentation.source_package``
``context.userId`` / ``sessionId`` / ...    ``context.user_id`` / ``session_id`` / ...   other keys -> metadata
``additionalProperties``                    ``additional_properties``                    -> metadata
``properties.llm.model``                    ``properties.llm.model``
``properties.llm.input.system/prompt``      ``properties.llm.input.system/prompt``       prompt: text or messages
(none)                                      ``properties.llm.input.messages``            OpenAI-style messages
``properties.llm.input.tools``              ``properties.llm.input.tools``
``properties.llm.output.mode/response``     ``properties.llm.output.mode/response``
``properties.llm.output.toolCalls``         ``properties.llm.output.tool_calls``         ``tool_call_id``,
                                                                                         ``tool_name``, ``input``
``properties.llm.usage.inputTokens``        ``properties.llm.usage.input_tokens``        includes cache tokens
``...usage.inputTokenDetails``              ``...usage.input_token_details``             ``uncached_tokens``,
                                                                                         ``cache_read_tokens``,
                                                                                         ``cache_write_tokens``
``...usage.outputTokens``                   ``...usage.output_tokens``                   includes reasoning
``...usage.outputTokenDetails``             ``...usage.output_token_details``            ``reasoning_tokens``,
                                                                                         ``response_tokens``
``...usage.totalTokens``                    ``...usage.total_tokens``                    input + output
``properties.tool.name/input/output``       ``properties.tool.name/input/output``        input/output: JSON text
                                                                                         or any value
(none)                                      ``properties.tool.call_id``                  the model's tool call id
(none)                                      ``properties.tool.description``              text (content policy)
==========================================  ===========================================  =========================

Required: ``start_time_ms``, ``end_time_ms`` or ``duration_ms``, ``status.state``, and ``properties.llm.model``
or ``properties.tool.name``; ``type`` is required in ``capture_events`` only. Unknown keys are errors (a
camelCase key gets a hint with its snake_case name). Cost is computed by carrot-ai from the usage and model.

Placement in a trace: with ``trace_id`` the event joins that trace (as a root of it, or under ``parent_id``);
without it, inside a ``@trace`` function it is a child of that function, else it starts its own trace.
``carrot_ai.context(...)`` applies (the event's own ``context`` wins), and so does the content policy.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from carrot_ai import _setup, semconv
from carrot_ai._context import scope_attributes
from carrot_ai._core import _content
from carrot_ai._core._guard import report_internal_error
from carrot_ai._core._serialize import dumps
from carrot_ai._core._tracing import SpanCall, get_tracer
from carrot_ai._events import Event, invalid, type_name, validate_event

logger = logging.getLogger("carrot_ai")

_undelivered = 0
_warned_not_initialized = False


# --- emission ---------------------------------------------------------------------------------------------------


def _emit(event: Event) -> None:
    attributes: dict[str, AttributeValue] = {
        semconv.CARROT_KIND: event.kind,
        semconv.CARROT_SOURCE: "manual",
        semconv.CARROT_RECORD_ID: event.id,
    }
    if event.name:
        attributes[semconv.CARROT_NAME] = event.name
    attributes.update(event.attributes)
    scope_attributes(attributes, event.tags, event.metadata)
    if event.user_id is not None:
        attributes[semconv.CARROT_USER_ID] = _content.prepare_text(event.user_id)
    if event.session_id is not None:
        session_id = _content.prepare_text(event.session_id)
        attributes[semconv.CARROT_SESSION_ID] = session_id
        attributes[semconv.GEN_AI_CONVERSATION_ID] = session_id
    if event.parent_id is not None:
        attributes[semconv.CARROT_PARENT_RECORD_ID] = event.parent_id
    if _content.capture_enabled():
        _content_attributes(event, attributes)
    else:
        attributes[semconv.CARROT_CONTENT_CAPTURED] = False
    status: Status | None = None
    if event.error is not None:
        code = event.error.get("code")
        message = event.error.get("message") or code or "error"
        attributes[semconv.ERROR_TYPE] = code or "error"
        attributes[semconv.CARROT_ERROR_MESSAGE] = _content.prepare_text(message)
        if code:
            attributes[semconv.CARROT_ERROR_CODE] = code
        if event.error.get("http_status") is not None:
            attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = event.error["http_status"]
        status = Status(StatusCode.ERROR, _content.prepare_text(message))
    span_name = _span_name(event)
    token = None
    if event.trace_id is not None and trace.get_current_span().get_span_context().trace_id != event.trace_id:
        # Join the named trace: a remote parent that carries its id; the record is a root of it (or names parent_id).
        remote = SpanContext(event.trace_id, _random_span_id(), is_remote=True, trace_flags=TraceFlags(1))
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(remote), otel_context.Context()))
    try:
        call = SpanCall(get_tracer(semconv.SCOPE_MANUAL), span_name, attributes, start_time=event.start_ns)
    finally:
        if token is not None:
            otel_context.detach(token)
    if not call.span.is_recording():
        _enqueue_directly(call, span_name, attributes, status, event)
        return
    if status is not None:
        call.span.set_status(status)
    call.stop(end_time=event.end_ns)


def _content_attributes(event: Event, attributes: dict[str, AttributeValue]) -> None:
    tool = event.kind == "tool"
    record_input = _content.prepare(event.input, mask_secrets=tool)
    record_output = _content.prepare(event.output, mask_secrets=tool)
    if tool:
        arguments = record_input
        record_input = record_input if isinstance(record_input, dict) else {"input": record_input}
        if event.input is not None:
            attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = dumps(arguments)
        if event.output is not None:
            attributes[semconv.GEN_AI_TOOL_CALL_RESULT] = dumps(record_output)
        if event.description is not None:
            attributes[semconv.GEN_AI_TOOL_DESCRIPTION] = _content.prepare_text(event.description)
        record_output = record_output if isinstance(record_output, dict) else {"result": record_output}
    attributes[semconv.CARROT_INPUT] = dumps(record_input)
    attributes[semconv.CARROT_OUTPUT] = dumps(record_output)


def _span_name(event: Event) -> str:
    if event.kind == "tool":
        return f"{semconv.OP_EXECUTE_TOOL} {event.attributes.get(semconv.GEN_AI_TOOL_NAME)}"
    return f"{semconv.OP_CHAT} {event.attributes.get(semconv.GEN_AI_REQUEST_MODEL)}"


def _random_span_id() -> int:
    return secrets.randbits(64) or 1


def _enqueue_directly(
    call: SpanCall, name: str, attributes: dict[str, AttributeValue], status: Status | None, event: Event
) -> None:
    """The tracer provider did not record the span (sampled out, or not an SDK provider): queue it ourselves."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    exporter = _setup.current_exporter()
    if exporter is None:
        _lost()
        return
    context = call.span.get_span_context()
    trace_id = context.trace_id if context.is_valid else (event.trace_id or secrets.randbits(128) or 1)
    span_id = context.span_id if context.is_valid else _random_span_id()
    if semconv.CARROT_PARENT_SPAN_ID not in attributes:
        attributes[semconv.CARROT_PARENT_SPAN_ID] = ""  # the OpenTelemetry parent is not known to the record
    readable = ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1)),
        attributes=attributes,
        status=status or Status(StatusCode.UNSET),
        start_time=event.start_ns,
        end_time=event.end_ns,
        instrumentation_scope=InstrumentationScope(semconv.SCOPE_MANUAL),
    )
    exporter.enqueue(readable)


def _lost() -> None:
    global _undelivered, _warned_not_initialized
    _undelivered += 1
    if not _warned_not_initialized:
        _warned_not_initialized = True
        logger.warning(
            "carrot_ai: manual capture before carrot_ai.init() (and no CARROT_API_KEY) or after carrot_ai.shutdown(): "
            "event not delivered (further ones are counted, not logged)"
        )


def undelivered() -> int:
    """How many valid events could not be queued because carrot-ai was not initialized (or was shut down)."""
    return _undelivered


# --- public API -------------------------------------------------------------------------------------------------


def _capture(events: list[Event]) -> None:
    if not _setup.ensure_started():
        return  # OTEL_SDK_DISABLED: everything is a no-op
    if _setup.current_exporter() is None:
        for _ in events:
            _lost()
        return
    for event in events:
        try:
            _emit(event)
        except Exception as exc:
            report_internal_error("manual capture", exc)


def capture_llm_call(event: Mapping[str, Any]) -> str:
    """Record one LLM call made outside the wrapped SDKs (a custom inference stack, a backfill).

    ``event`` is the manual-capture event shape with snake_case keys (see :mod:`carrot_ai._capture` for every field
    and its camelCase name). Returns the record id (the event's ``id``, or a new UUID). Raises ``ValueError``
    naming the field path and the reason when the event is invalid; nothing is sent then.

    >>> carrot_ai.capture_llm_call({
    ...     "start_time_ms": start_ms, "end_time_ms": end_ms, "status": {"state": "ok"},
    ...     "instrumentation": {"source_provider": "openai"},
    ...     "properties": {"llm": {"model": "gpt-4o-mini", "input": {"prompt": prompt},
    ...                            "output": {"response": text},
    ...                            "usage": {"input_tokens": 12, "output_tokens": 30}}},
    ... })
    """
    parsed = validate_event(event, "event", "llm")
    _capture([parsed])
    return parsed.id


def capture_tool_call(event: Mapping[str, Any]) -> str:
    """Record one tool execution; give ``trace_id`` (and ``parent_id``) to attach it to an existing trace.

    Same rules as :func:`capture_llm_call`; the tool is ``properties.tool`` (``name``, ``input``, ``output``,
    ``call_id``). Returns the record id.
    """
    parsed = validate_event(event, "event", "tool")
    _capture([parsed])
    return parsed.id


def capture_events(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Record a batch of LLM and tool events (each names its ``type``); all are validated before any is sent.

    Raises ``ValueError`` naming ``events[i].<field path>`` for the first invalid event (then none is sent).
    Returns the record ids, in order.
    """
    if isinstance(events, Mapping | str | bytes) or not isinstance(events, Iterable):
        raise ValueError(f"events: must be a list of events, not {type_name(events)}")
    parsed: list[Event] = []
    seen: dict[str, int] = {}
    for index, event in enumerate(events):
        item = validate_event(event, f"events[{index}]")
        if "id" in event and item.id in seen:
            raise invalid(f"events[{index}].id", f"duplicate of events[{seen[item.id]}].id")
        seen[item.id] = index
        parsed.append(item)
    _capture(parsed)
    return [item.id for item in parsed]
