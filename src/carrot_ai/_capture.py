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
==========================================  ===========================================  =========================

Required: ``start_time_ms``, ``end_time_ms`` or ``duration_ms``, ``status.state``, and ``properties.llm.model``
or ``properties.tool.name``; ``type`` is required in ``capture_events`` only. Unknown keys are errors (a
camelCase key gets a hint with its snake_case name). Cost is computed by carrot-ai from the usage and model.

Placement in a trace: with ``trace_id`` the event joins that trace (as a root of it, or under ``parent_id``);
without it, inside a ``@trace`` function it is a child of that function, else it starts its own trace.
``carrot_ai.context(...)`` applies (the event's own ``context`` wins), and so does the content policy.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import uuid
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

logger = logging.getLogger("carrot_ai")

_MIN_TIME_MS = 946_684_800_000  # 2000-01-01
_MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01
_DURATION_TOLERANCE_MS = 1.0
_STATES = ("ok", "error")
_TOP_KEYS = frozenset(
    {
        "type",
        "id",
        "trace_id",
        "parent_id",
        "name",
        "tags",
        "start_time_ms",
        "end_time_ms",
        "duration_ms",
        "status",
        "instrumentation",
        "context",
        "additional_properties",
        "properties",
    }
)
# Fields of the seed's event that carrot-ai sets itself.
_NOT_ACCEPTED = {
    "space_id": "the ingest API sets the space from your API key",
    "cost": "carrot-ai computes cost_usd from the model and usage (override prices with init(prices=...))",
}
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")

_undelivered = 0
_warned_not_initialized = False


# --- validation -------------------------------------------------------------------------------------------------


def _invalid(path: str, reason: str) -> ValueError:
    return ValueError(f"{path}: {reason}")


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(path, f"must be an object (a dict), not {_type_name(value)}")
    return value


def _keys(value: Mapping[str, Any], path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    allowed = frozenset(allowed)
    for key in value:
        if key not in allowed:
            if not isinstance(key, str):
                raise _invalid(path, f"keys must be strings, not {_type_name(key)}")
            snake = _CAMEL.sub(lambda m: "_" + m.group(1).lower(), key)
            hint = f" (use snake_case: {snake!r})" if snake != key and snake in allowed else ""
            raise _invalid(f"{path}.{key}", f"unknown field{hint}; expected one of {sorted(allowed)}")
    for key in required:
        if value.get(key) is None:
            raise _invalid(f"{path}.{key}", "missing")


def _string(value: Any, path: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise _invalid(path, "missing")
        return None
    if not isinstance(value, str):
        raise _invalid(path, f"must be a string, not {_type_name(value)}")
    if required and not value.strip():
        raise _invalid(path, "must not be empty")
    return value


def _tokens(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _invalid(path, f"must be a whole number of tokens, not {value!r}")
    if value < 0:
        raise _invalid(path, f"must not be negative, got {value}")
    return int(value)


def _millis(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(path, f"must be a number (milliseconds), not {_type_name(value)}")
    if not math.isfinite(value):
        raise _invalid(path, f"must be a finite number, not {value!r}")
    return float(value)


def _uuid(value: Any, path: str) -> str | None:
    text = _string(value, path)
    if text is None:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise _invalid(path, f"must be a UUID, not {text!r}") from None


def _trace_id(value: Any, path: str) -> int | None:
    text = _string(value, path)
    if text is None:
        return None
    compact = text.replace("-", "") if len(text) == 36 else text
    if not _HEX32.fullmatch(compact) or int(compact, 16) == 0:
        raise _invalid(path, f"must be 32 hex digits or a UUID, not {text!r}")
    return int(compact, 16)


class _Event:
    """One validated event, ready to emit."""

    __slots__ = (
        "kind",
        "id",
        "trace_id",
        "parent_id",
        "name",
        "tags",
        "start_ns",
        "end_ns",
        "error",
        "user_id",
        "session_id",
        "metadata",
        "attributes",
        "input",
        "output",
    )

    def __init__(self) -> None:
        self.kind = "llm"
        self.id = ""
        self.trace_id: int | None = None
        self.parent_id: str | None = None
        self.name: str | None = None
        self.tags: tuple[str, ...] = ()
        self.start_ns = 0
        self.end_ns = 0
        self.error: dict[str, Any] | None = None
        self.user_id: str | None = None
        self.session_id: str | None = None
        self.metadata: dict[str, Any] = {}
        self.attributes: dict[str, AttributeValue] = {}
        self.input: Any = None
        self.output: Any = None


def validate_event(event: Any, path: str = "event", expected: str | None = None) -> _Event:
    """Check one event and return it parsed; raise ``ValueError("<field path>: <reason>")`` if it is invalid."""
    data = _mapping(event, path)
    for key, why in _NOT_ACCEPTED.items():
        if key in data:
            raise _invalid(f"{path}.{key}", f"not accepted: {why}")
    _keys(data, path, _TOP_KEYS)
    parsed = _Event()
    kind = data.get("type", expected)
    if kind is None:
        raise _invalid(f"{path}.type", 'missing ("llm" or "tool")')
    if kind not in ("llm", "tool"):
        raise _invalid(f"{path}.type", f'must be "llm" or "tool", not {kind!r}')
    if expected is not None and kind != expected:
        raise _invalid(f"{path}.type", f"must be {expected!r} here, not {kind!r}")
    parsed.kind = kind
    parsed.id = _uuid(data.get("id"), f"{path}.id") or str(uuid.uuid4())
    parsed.trace_id = _trace_id(data.get("trace_id"), f"{path}.trace_id")
    parsed.parent_id = _uuid(data.get("parent_id"), f"{path}.parent_id")
    parsed.name = _string(data.get("name"), f"{path}.name")
    if parsed.name is not None and not parsed.name.strip():
        raise _invalid(f"{path}.name", "must not be empty")
    tags = data.get("tags")
    if tags is not None:
        if isinstance(tags, str) or not isinstance(tags, list | tuple):
            raise _invalid(f"{path}.tags", f"must be a list of strings, not {_type_name(tags)}")
        parsed.tags = tuple(_string(t, f"{path}.tags[{i}]", required=True) or "" for i, t in enumerate(tags))
    _times(data, path, parsed)
    _status(data.get("status"), f"{path}.status", parsed)
    _context(data, path, parsed)
    if data.get("properties") is None:
        raise _invalid(f"{path}.properties", f"missing (properties.{kind} describes the {kind} call)")
    properties = _mapping(data["properties"], f"{path}.properties")
    _keys(properties, f"{path}.properties", (kind,), (kind,))
    if kind == "llm":
        _llm(properties["llm"], f"{path}.properties.llm", parsed)
    else:
        _tool(properties["tool"], f"{path}.properties.tool", parsed)
    return parsed


def _times(data: Mapping[str, Any], path: str, parsed: _Event) -> None:
    start = _millis(data.get("start_time_ms"), f"{path}.start_time_ms")
    if start is None:
        raise _invalid(f"{path}.start_time_ms", "missing")
    if not _MIN_TIME_MS <= start <= _MAX_TIME_MS:
        raise _invalid(
            f"{path}.start_time_ms", f"must be milliseconds since the Unix epoch (years 2000-2100), got {start!r}"
        )
    end = _millis(data.get("end_time_ms"), f"{path}.end_time_ms")
    duration = _millis(data.get("duration_ms"), f"{path}.duration_ms")
    if duration is not None and duration < 0:
        raise _invalid(f"{path}.duration_ms", f"must not be negative, got {duration!r}")
    if end is None:
        if duration is None:
            raise _invalid(f"{path}.end_time_ms", "missing (give end_time_ms or duration_ms)")
        end = start + duration
    elif end < start:
        raise _invalid(f"{path}.end_time_ms", f"ends before start_time_ms ({end!r} < {start!r})")
    elif duration is not None and abs((end - start) - duration) > _DURATION_TOLERANCE_MS:
        raise _invalid(
            f"{path}.duration_ms", f"{duration!r} disagrees with end_time_ms - start_time_ms ({end - start!r})"
        )
    parsed.start_ns = _nanoseconds(start)
    parsed.end_ns = _nanoseconds(end)


def _nanoseconds(millis: float) -> int:
    # Exact for whole milliseconds: ``millis * 1e6`` in floating point is not (1.7e18 is beyond 2**53).
    whole = math.floor(millis)
    return whole * 1_000_000 + round((millis - whole) * 1_000_000)


def _status(value: Any, path: str, parsed: _Event) -> None:
    status = _mapping(value, path)
    _keys(status, path, ("state", "error"), ("state",))
    state = status["state"]
    if state not in _STATES:
        raise _invalid(f"{path}.state", f'unknown status {state!r}; expected "ok" or "error"')
    error = status.get("error")
    if error is None:
        if state == "error":
            parsed.error = {}
        return
    if state != "error":
        raise _invalid(f"{path}.error", 'only allowed when state is "error"')
    error = _mapping(error, f"{path}.error")
    _keys(error, f"{path}.error", ("code", "http_status", "message"))
    http_status = error.get("http_status")
    if http_status is not None and (
        isinstance(http_status, bool) or not isinstance(http_status, int) or not 100 <= http_status <= 599
    ):
        raise _invalid(f"{path}.error.http_status", f"must be an HTTP status code (100-599), not {http_status!r}")
    parsed.error = {
        "code": _string(error.get("code"), f"{path}.error.code"),
        "http_status": http_status,
        "message": _string(error.get("message"), f"{path}.error.message"),
    }


def _context(data: Mapping[str, Any], path: str, parsed: _Event) -> None:
    context = data.get("context")
    if context is not None:
        context = _mapping(context, f"{path}.context")
        for key, value in context.items():
            where = f"{path}.context.{key}"
            if not isinstance(key, str):
                raise _invalid(f"{path}.context", f"keys must be strings, not {_type_name(key)}")
            if key in ("user_id", "session_id"):
                if not isinstance(value, str | int) or isinstance(value, bool):
                    raise _invalid(where, f"must be a string, not {_type_name(value)}")
                setattr(parsed, key, str(value))
            elif value is not None and not isinstance(value, str | int | float | bool):
                raise _invalid(where, f"must be a string, number or boolean, not {_type_name(value)}")
            else:
                hint = _CAMEL.sub(lambda m: "_" + m.group(1).lower(), key)
                if hint != key:
                    raise _invalid(where, f"use snake_case: {hint!r}")
                parsed.metadata[key] = value
    extra = data.get("additional_properties")
    if extra is not None:
        parsed.metadata.update(_mapping(extra, f"{path}.additional_properties"))
    instrumentation = data.get("instrumentation")
    if instrumentation is not None:
        instrumentation = _mapping(instrumentation, f"{path}.instrumentation")
        where = f"{path}.instrumentation"
        _keys(instrumentation, where, ("provider", "source_provider", "source_package"))
        for key in ("provider", "source_provider", "source_package"):
            value = _string(instrumentation.get(key), f"{where}.{key}")
            if value and key != "provider":
                parsed.metadata[key] = value
        source = instrumentation.get("source_provider")
        if source:
            parsed.attributes[semconv.GEN_AI_PROVIDER_NAME] = source


def _llm(value: Any, path: str, parsed: _Event) -> None:
    llm = _mapping(value, path)
    _keys(llm, path, ("model", "input", "output", "usage"), ("model",))
    model = _string(llm["model"], f"{path}.model", required=True) or ""
    attributes = parsed.attributes
    attributes[semconv.GEN_AI_OPERATION_NAME] = semconv.OP_CHAT
    attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    record_input: dict[str, Any] = {"model": model}
    messages: list[Any] = []
    if llm.get("input") is not None:
        given = _mapping(llm["input"], f"{path}.input")
        _keys(given, f"{path}.input", ("system", "prompt", "messages", "tools"))
        system = given.get("system")
        if system is not None:
            messages.append({"role": "system", "content": _string(system, f"{path}.input.system")})
        prompt = given.get("prompt")
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        elif prompt is not None:
            messages.extend(_messages(prompt, f"{path}.input.prompt"))
        if given.get("messages") is not None:
            messages.extend(_messages(given["messages"], f"{path}.input.messages"))
        tools = given.get("tools")
        if tools is not None:
            if not isinstance(tools, list | tuple):
                raise _invalid(f"{path}.input.tools", f"must be a list, not {_type_name(tools)}")
            if tools:
                record_input["tools"] = list(tools)
    if messages:
        record_input["messages"] = messages
    parsed.input = record_input
    message: dict[str, Any] = {"role": "assistant"}
    if llm.get("output") is not None:
        output = _mapping(llm["output"], f"{path}.output")
        _keys(output, f"{path}.output", ("mode", "response", "tool_calls"))
        _string(output.get("mode"), f"{path}.output.mode")
        response = _string(output.get("response"), f"{path}.output.response")
        if response is not None:
            message["content"] = response
        calls = output.get("tool_calls")
        if calls is not None:
            converted = _tool_calls(calls, f"{path}.output.tool_calls")
            if converted:
                message["tool_calls"] = converted
    parsed.output = {"message": message}
    if llm.get("usage") is not None:
        _usage(llm["usage"], f"{path}.usage", attributes)


def _messages(value: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list | tuple):
        raise _invalid(path, f"must be text or a list of messages, not {_type_name(value)}")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        message = _mapping(item, f"{path}[{index}]")
        _string(message.get("role"), f"{path}[{index}].role", required=True)
        out.append(dict(message))
    return out


def _tool_calls(value: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list | tuple):
        raise _invalid(path, f"must be a list, not {_type_name(value)}")
    calls: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        call = _mapping(item, where)
        _keys(call, where, ("tool_call_id", "tool_name", "input"), ("tool_name",))
        name = _string(call["tool_name"], f"{where}.tool_name", required=True)
        arguments = call.get("input")
        calls.append(
            {
                "id": _string(call.get("tool_call_id"), f"{where}.tool_call_id"),
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments if isinstance(arguments, str) else _json_text(arguments, f"{where}.input"),
                },
            }
        )
    return calls


def _json_text(value: Any, path: str) -> str:
    if value is None:
        return "{}"
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise _invalid(path, "must be JSON text or a JSON-serializable value") from None


def _usage(value: Any, path: str, attributes: dict[str, AttributeValue]) -> None:
    usage = _mapping(value, path)
    _keys(usage, path, ("input_tokens", "input_token_details", "output_tokens", "output_token_details", "total_tokens"))
    input_tokens = _tokens(usage.get("input_tokens"), f"{path}.input_tokens")
    output_tokens = _tokens(usage.get("output_tokens"), f"{path}.output_tokens")
    total = _tokens(usage.get("total_tokens"), f"{path}.total_tokens")
    cache_read = cache_write = reasoning = None
    details = usage.get("input_token_details")
    if details is not None:
        where = f"{path}.input_token_details"
        details = _mapping(details, where)
        _keys(details, where, ("uncached_tokens", "cache_read_tokens", "cache_write_tokens"))
        uncached = _tokens(details.get("uncached_tokens"), f"{where}.uncached_tokens")
        cache_read = _tokens(details.get("cache_read_tokens"), f"{where}.cache_read_tokens")
        cache_write = _tokens(details.get("cache_write_tokens"), f"{where}.cache_write_tokens")
        if input_tokens is None:
            raise _invalid(f"{path}.input_tokens", "missing (required with input_token_details)")
        cached = (cache_read or 0) + (cache_write or 0)
        if cached > input_tokens:
            raise _invalid(
                where, f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens ({input_tokens})"
            )
        if uncached is not None and uncached + cached != input_tokens:
            raise _invalid(
                f"{where}.uncached_tokens",
                f"uncached + cache read + cache write ({uncached + cached}) must equal input_tokens ({input_tokens})",
            )
    details = usage.get("output_token_details")
    if details is not None:
        where = f"{path}.output_token_details"
        details = _mapping(details, where)
        _keys(details, where, ("reasoning_tokens", "response_tokens"))
        reasoning = _tokens(details.get("reasoning_tokens"), f"{where}.reasoning_tokens")
        response = _tokens(details.get("response_tokens"), f"{where}.response_tokens")
        if output_tokens is None:
            raise _invalid(f"{path}.output_tokens", "missing (required with output_token_details)")
        if (reasoning or 0) > output_tokens:
            raise _invalid(f"{where}.reasoning_tokens", f"{reasoning} exceed output_tokens ({output_tokens})")
        if response is not None and response + (reasoning or 0) != output_tokens:
            raise _invalid(
                f"{where}.response_tokens",
                f"reasoning + response ({response + (reasoning or 0)}) must equal output_tokens ({output_tokens})",
            )
    if total is not None and (input_tokens is None or output_tokens is None or total != input_tokens + output_tokens):
        raise _invalid(f"{path}.total_tokens", f"{total} must equal input_tokens + output_tokens")
    for name, count in (
        (semconv.GEN_AI_USAGE_INPUT_TOKENS, input_tokens),
        (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens),
        (semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cache_read),
        (semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, cache_write),
        (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, reasoning),
    ):
        if count is not None:
            attributes[name] = count


def _tool(value: Any, path: str, parsed: _Event) -> None:
    tool = _mapping(value, path)
    _keys(tool, path, ("name", "input", "output", "call_id", "description"), ("name",))
    name = _string(tool["name"], f"{path}.name", required=True) or ""
    attributes = parsed.attributes
    attributes[semconv.GEN_AI_OPERATION_NAME] = semconv.OP_EXECUTE_TOOL
    attributes[semconv.GEN_AI_TOOL_NAME] = name
    attributes[semconv.GEN_AI_TOOL_TYPE] = "function"
    call_id = _string(tool.get("call_id"), f"{path}.call_id")
    if call_id:
        attributes[semconv.GEN_AI_TOOL_CALL_ID] = call_id
    description = _string(tool.get("description"), f"{path}.description")
    if description:
        attributes[semconv.GEN_AI_TOOL_DESCRIPTION] = description
    if parsed.name is None:
        parsed.name = name
    parsed.input = _decoded(tool.get("input"))
    parsed.output = _decoded(tool.get("output"))


def _decoded(value: Any) -> Any:
    """Tool input/output given as JSON text become the value it encodes; other text stays text."""
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- emission ---------------------------------------------------------------------------------------------------


def _emit(event: _Event) -> None:
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


def _content_attributes(event: _Event, attributes: dict[str, AttributeValue]) -> None:
    record_input = _content.prepare(event.input)
    record_output = _content.prepare(event.output)
    if event.kind == "tool":
        arguments = record_input
        record_input = record_input if isinstance(record_input, dict) else {"input": record_input}
        if event.input is not None:
            attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = dumps(arguments)
        if event.output is not None:
            attributes[semconv.GEN_AI_TOOL_CALL_RESULT] = dumps(record_output)
        record_output = record_output if isinstance(record_output, dict) else {"result": record_output}
    attributes[semconv.CARROT_INPUT] = dumps(record_input)
    attributes[semconv.CARROT_OUTPUT] = dumps(record_output)


def _span_name(event: _Event) -> str:
    if event.kind == "tool":
        return f"{semconv.OP_EXECUTE_TOOL} {event.attributes.get(semconv.GEN_AI_TOOL_NAME)}"
    return f"{semconv.OP_CHAT} {event.attributes.get(semconv.GEN_AI_REQUEST_MODEL)}"


def _random_span_id() -> int:
    return secrets.randbits(64) or 1


def _enqueue_directly(
    call: SpanCall, name: str, attributes: dict[str, AttributeValue], status: Status | None, event: _Event
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
            "carrot_ai: manual capture before carrot_ai.init() (and no CARROT_API_KEY): event not delivered "
            "(further ones are counted, not logged)"
        )


def undelivered() -> int:
    """How many valid events could not be queued because carrot-ai was not initialized."""
    return _undelivered


# --- public API -------------------------------------------------------------------------------------------------


def _capture(events: list[_Event]) -> None:
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
        raise ValueError(f"events: must be a list of events, not {_type_name(events)}")
    parsed: list[_Event] = []
    seen: dict[str, int] = {}
    for index, event in enumerate(events):
        item = validate_event(event, f"events[{index}]")
        if "id" in event and item.id in seen:
            raise _invalid(f"events[{index}].id", f"duplicate of events[{seen[item.id]}].id")
        seen[item.id] = index
        parsed.append(item)
    _capture(parsed)
    return [item.id for item in parsed]
