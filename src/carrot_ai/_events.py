"""The manual-capture event: validation of the snake_case event shape into a parsed :class:`Event`.

Every check raises ``ValueError("<field path>: <reason>")``. The fields and their camelCase names are documented
in :mod:`carrot_ai._capture`; the parsed event carries the span attributes (GenAI usage, tool and provider names),
the record's input and output before the content policy, and the placement (ids, trace, parent).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core._serialize import DEFAULT_MAX_DEPTH

_MIN_TIME_MS = 946_684_800_000  # 2000-01-01
_MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01
_DURATION_TOLERANCE_MS = 1.0
_STATES = ("ok", "error")
TOP_KEYS = frozenset(
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


def invalid(path: str, reason: str) -> ValueError:
    """Return the error for the field at ``path``: ``"<path>: <reason>"``."""
    return ValueError(f"{path}: {reason}")


def type_name(value: Any) -> str:
    """Return a value's type as error messages name it (``None`` is ``null``, as in JSON)."""
    return "null" if value is None else type(value).__name__


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid(path, f"must be an object (a dict), not {type_name(value)}")
    return value


def _keys(value: Mapping[str, Any], path: str, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    allowed = frozenset(allowed)
    for key in value:
        if key not in allowed:
            if not isinstance(key, str):
                raise invalid(path, f"keys must be strings, not {type_name(key)}")
            snake = _CAMEL.sub(lambda m: "_" + m.group(1).lower(), key)
            hint = f" (use snake_case: {snake!r})" if snake != key and snake in allowed else ""
            raise invalid(f"{path}.{key}", f"unknown field{hint}; expected one of {sorted(allowed)}")
    for key in required:
        if value.get(key) is None:
            raise invalid(f"{path}.{key}", "missing")


def _string(value: Any, path: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise invalid(path, "missing")
        return None
    if not isinstance(value, str):
        raise invalid(path, f"must be a string, not {type_name(value)}")
    if required and not value.strip():
        raise invalid(path, "must not be empty")
    return value


def _tokens(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise invalid(path, f"must be a whole number of tokens, not {value!r}")
    if value < 0:
        raise invalid(path, f"must not be negative, got {value if value > -_MAX_TOKENS else 'a huge negative number'}")
    if value > _MAX_TOKENS:  # an OpenTelemetry attribute is a 64-bit integer
        raise invalid(path, f"is out of range (an integer of {int(value).bit_length()} bits)")
    return int(value)


_MAX_TOKENS = 2**63 - 1


def _millis(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(path, f"must be a number (milliseconds), not {type_name(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float (and maybe beyond the digits str() writes)
        raise invalid(path, f"is out of range (an integer of {int(value).bit_length()} bits)") from None
    if not math.isfinite(number):
        raise invalid(path, f"must be a finite number, not {value!r}")
    return number


def _uuid(value: Any, path: str) -> str | None:
    text = _string(value, path)
    if text is None:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise invalid(path, f"must be a UUID, not {text!r}") from None


def _trace_id(value: Any, path: str) -> int | None:
    text = _string(value, path)
    if text is None:
        return None
    compact = text.replace("-", "") if len(text) == 36 else text
    if not _HEX32.fullmatch(compact) or int(compact, 16) == 0:
        raise invalid(path, f"must be 32 hex digits or a UUID, not {text!r}")
    return int(compact, 16)


class Event:
    """One validated event, ready to emit: placement, times, error, context and the span's GenAI attributes."""

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
        "description",
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
        self.description: str | None = None  # a tool's: text, so it obeys the content policy as input does


def validate_event(event: Any, path: str = "event", expected: str | None = None) -> Event:
    """Check one event and return it parsed; raise ``ValueError("<field path>: <reason>")`` if it is invalid."""
    data = _mapping(event, path)
    for key, why in _NOT_ACCEPTED.items():
        if key in data:
            raise invalid(f"{path}.{key}", f"not accepted: {why}")
    _keys(data, path, TOP_KEYS)
    parsed = Event()
    kind = data.get("type", expected)
    if kind is None:
        raise invalid(f"{path}.type", 'missing ("llm" or "tool")')
    if kind not in ("llm", "tool"):
        raise invalid(f"{path}.type", f'must be "llm" or "tool", not {kind!r}')
    if expected is not None and kind != expected:
        raise invalid(f"{path}.type", f"must be {expected!r} here, not {kind!r}")
    parsed.kind = kind
    parsed.id = _uuid(data.get("id"), f"{path}.id") or str(uuid.uuid4())
    parsed.trace_id = _trace_id(data.get("trace_id"), f"{path}.trace_id")
    parsed.parent_id = _uuid(data.get("parent_id"), f"{path}.parent_id")
    if parsed.parent_id == parsed.id:  # (a record its own parent: a cycle in the trace tree)
        raise invalid(f"{path}.parent_id", "must not be the event's own id")
    parsed.name = _string(data.get("name"), f"{path}.name")
    if parsed.name is not None and not parsed.name.strip():
        raise invalid(f"{path}.name", "must not be empty")
    tags = data.get("tags")
    if tags is not None:
        if isinstance(tags, str) or not isinstance(tags, list | tuple):
            raise invalid(f"{path}.tags", f"must be a list of strings, not {type_name(tags)}")
        parsed.tags = tuple(_string(t, f"{path}.tags[{i}]", required=True) or "" for i, t in enumerate(tags))
    _times(data, path, parsed)
    _status(data.get("status"), f"{path}.status", parsed)
    _context(data, path, parsed)
    if data.get("properties") is None:
        raise invalid(f"{path}.properties", f"missing (properties.{kind} describes the {kind} call)")
    properties = _mapping(data["properties"], f"{path}.properties")
    _keys(properties, f"{path}.properties", (kind,), (kind,))
    if kind == "llm":
        _llm(properties["llm"], f"{path}.properties.llm", parsed)
    else:
        _tool(properties["tool"], f"{path}.properties.tool", parsed)
    return parsed


def _times(data: Mapping[str, Any], path: str, parsed: Event) -> None:
    start = _millis(data.get("start_time_ms"), f"{path}.start_time_ms")
    if start is None:
        raise invalid(f"{path}.start_time_ms", "missing")
    if not _MIN_TIME_MS <= start <= _MAX_TIME_MS:
        raise invalid(
            f"{path}.start_time_ms", f"must be milliseconds since the Unix epoch (years 2000-2100), got {start!r}"
        )
    end = _millis(data.get("end_time_ms"), f"{path}.end_time_ms")
    duration = _millis(data.get("duration_ms"), f"{path}.duration_ms")
    if duration is not None and duration < 0:
        raise invalid(f"{path}.duration_ms", f"must not be negative, got {duration!r}")
    if end is None:
        if duration is None:
            raise invalid(f"{path}.end_time_ms", "missing (give end_time_ms or duration_ms)")
        end = start + duration
        if end > _MAX_TIME_MS:
            raise invalid(f"{path}.duration_ms", f"ends after the year 2100 ({duration!r} ms)")
    elif end < start:
        raise invalid(f"{path}.end_time_ms", f"ends before start_time_ms ({end!r} < {start!r})")
    elif duration is not None and abs((end - start) - duration) > _DURATION_TOLERANCE_MS:
        raise invalid(
            f"{path}.duration_ms", f"{duration!r} disagrees with end_time_ms - start_time_ms ({end - start!r})"
        )
    elif end > _MAX_TIME_MS:
        raise invalid(
            f"{path}.end_time_ms", f"must be milliseconds since the Unix epoch (years 2000-2100), got {end!r}"
        )
    parsed.start_ns = _nanoseconds(start)
    parsed.end_ns = _nanoseconds(end)


def _nanoseconds(millis: float) -> int:
    # Exact for whole milliseconds: ``millis * 1e6`` in floating point is not (1.7e18 is beyond 2**53).
    whole = math.floor(millis)
    return whole * 1_000_000 + round((millis - whole) * 1_000_000)


def _status(value: Any, path: str, parsed: Event) -> None:
    status = _mapping(value, path)
    _keys(status, path, ("state", "error"), ("state",))
    state = status["state"]
    if state not in _STATES:
        raise invalid(f"{path}.state", f'unknown status {state!r}; expected "ok" or "error"')
    error = status.get("error")
    if error is None:
        if state == "error":
            parsed.error = {}
        return
    if state != "error":
        raise invalid(f"{path}.error", 'only allowed when state is "error"')
    error = _mapping(error, f"{path}.error")
    _keys(error, f"{path}.error", ("code", "http_status", "message"))
    http_status = error.get("http_status")
    if http_status is not None and (
        isinstance(http_status, bool) or not isinstance(http_status, int) or not 100 <= http_status <= 599
    ):
        raise invalid(f"{path}.error.http_status", f"must be an HTTP status code (100-599), not {http_status!r}")
    parsed.error = {
        "code": _string(error.get("code"), f"{path}.error.code"),
        "http_status": http_status,
        "message": _string(error.get("message"), f"{path}.error.message"),
    }


def _context(data: Mapping[str, Any], path: str, parsed: Event) -> None:
    context = data.get("context")
    if context is not None:
        context = _mapping(context, f"{path}.context")
        for key, value in context.items():
            where = f"{path}.context.{key}"
            if not isinstance(key, str):
                raise invalid(f"{path}.context", f"keys must be strings, not {type_name(key)}")
            if key in ("user_id", "session_id"):
                if not isinstance(value, str | int) or isinstance(value, bool):
                    raise invalid(where, f"must be a string, not {type_name(value)}")
                try:
                    setattr(parsed, key, str(value))
                except ValueError:  # an int past Python's digit limit for str()
                    raise invalid(where, "is too long a number: give it as a string") from None
            elif value is not None and not isinstance(value, str | int | float | bool):
                raise invalid(where, f"must be a string, number or boolean, not {type_name(value)}")
            elif isinstance(value, float) and not math.isfinite(value):
                raise invalid(where, f"must be a finite number, not {value!r}")
            else:
                hint = _CAMEL.sub(lambda m: "_" + m.group(1).lower(), key)
                if hint != key:
                    raise invalid(where, f"use snake_case: {hint!r}")
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


def _llm(value: Any, path: str, parsed: Event) -> None:
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
                raise invalid(f"{path}.input.tools", f"must be a list, not {type_name(tools)}")
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
        raise invalid(path, f"must be text or a list of messages, not {type_name(value)}")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        message = _mapping(item, f"{path}[{index}]")
        _string(message.get("role"), f"{path}[{index}].role", required=True)
        out.append(dict(message))
    return out


def _tool_calls(value: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list | tuple):
        raise invalid(path, f"must be a list, not {type_name(value)}")
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


_MAX_NESTING = 512  # below where json fails on any supported Python (the limit is the same on all of them)


def _nesting(value: Any, limit: int) -> bool:
    """Whether JSON-like ``value`` nests dicts / lists more than ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return False


def _json_text(value: Any, path: str) -> str:
    if value is None:
        return "{}"
    if _nesting(value, _MAX_NESTING):
        raise invalid(path, f"is nested too deeply (more than {_MAX_NESTING} levels)")
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise invalid(path, "must be JSON text or a JSON-serializable value") from None
    except RecursionError:
        raise invalid(path, "is nested too deeply to encode as JSON") from None


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
            raise invalid(f"{path}.input_tokens", "missing (required with input_token_details)")
        cached = (cache_read or 0) + (cache_write or 0)
        if cached > input_tokens:
            raise invalid(
                where, f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens ({input_tokens})"
            )
        if uncached is not None and uncached + cached != input_tokens:
            raise invalid(
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
            raise invalid(f"{path}.output_tokens", "missing (required with output_token_details)")
        if (reasoning or 0) > output_tokens:
            raise invalid(f"{where}.reasoning_tokens", f"{reasoning} exceed output_tokens ({output_tokens})")
        if response is not None and response + (reasoning or 0) != output_tokens:
            raise invalid(
                f"{where}.response_tokens",
                f"reasoning + response ({response + (reasoning or 0)}) must equal output_tokens ({output_tokens})",
            )
    if total is not None and (input_tokens is None or output_tokens is None or total != input_tokens + output_tokens):
        raise invalid(f"{path}.total_tokens", f"{total} must equal input_tokens + output_tokens")
    for name, count in (
        (semconv.GEN_AI_USAGE_INPUT_TOKENS, input_tokens),
        (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens),
        (semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cache_read),
        (semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, cache_write),
        (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, reasoning),
    ):
        if count is not None:
            attributes[name] = count


def _tool(value: Any, path: str, parsed: Event) -> None:
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
    parsed.description = _string(tool.get("description"), f"{path}.description") or None
    if parsed.name is None:
        parsed.name = name
    parsed.input = _decoded(tool.get("input"))
    parsed.output = _decoded(tool.get("output"))


def _decoded(value: Any) -> Any:
    """Tool input/output given as JSON text become the value it encodes; other text stays text."""
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to decode: kept as the text it is
            return value
        # Deeper than a record keeps (the rest would be cut): the text, whole, whichever Python decoded it.
        return value if _nesting(decoded, DEFAULT_MAX_DEPTH - 2) else decoded
    return value
