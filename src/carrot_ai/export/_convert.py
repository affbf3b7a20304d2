"""Span to trace record: a pure function of one finished span.

Batches arrive out of order (children before parents, one trace across many batches), so nothing here looks
at any other span: the record ``id`` and ``metadata.parent_trace_id`` are both derived from span ids.

Our own spans carry the record's ``input`` / ``output`` as ``carrot.*`` JSON attributes. Spans from other
instrumentations that follow the GenAI conventions (current or older attribute names) are converted from their
``gen_ai.*`` attributes; the conversion keys on ``gen_ai.operation.name``, never on the span name.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from carrot_ai import semconv
from carrot_ai.export._schema import TraceRecord

# Ids are uuid5 in this namespace, of "<trace id hex>:<span id hex>".
RECORD_ID_NAMESPACE = uuid.UUID("6f1c2d8e-5a47-4b0e-9c3f-2b7d1e8a9c40")

_RESOURCE_NAMES = {
    ("openai", semconv.OP_CHAT): "chat.completions",
    ("openai", semconv.OP_TEXT_COMPLETION): "completions",
    ("openai", semconv.OP_EMBEDDINGS): "embeddings",
    ("anthropic", semconv.OP_CHAT): "messages",
}
_TOKEN_FIELDS = (
    ("input_tokens", (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_PROMPT_TOKENS)),
    ("output_tokens", (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_COMPLETION_TOKENS)),
    (
        "cache_read_input_tokens",
        (semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_OLD),
    ),
    (
        "cache_write_input_tokens",
        (
            semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
            semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
            semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_OLD,
        ),
    ),
    (
        "reasoning_tokens",
        (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, semconv.GEN_AI_USAGE_REASONING_TOKENS_OLD),
    ),
)
_REQUEST_PARAMS = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K),
    ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("stop", semconv.GEN_AI_REQUEST_STOP_SEQUENCES),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", semconv.GEN_AI_REQUEST_SEED),
    ("n", semconv.GEN_AI_REQUEST_CHOICE_COUNT),
)


def record_id(trace_id: int, span_id: int) -> str:
    """The record id of a span: a UUID derived from its trace id and span id."""
    return str(uuid.uuid5(RECORD_ID_NAMESPACE, f"{trace_id:032x}:{span_id:016x}"))


def record_kind(span: ReadableSpan) -> str | None:
    """``"llm"``, ``"function"`` or ``"tool"`` for a span that becomes a record; None for one that does not."""
    attributes = span.attributes or {}
    kind = attributes.get(semconv.CARROT_KIND)
    if isinstance(kind, str):
        return kind
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if not isinstance(operation, str):
        return None
    if operation in semconv.MODEL_CALL_OPERATIONS:
        return "llm"
    if operation == semconv.OP_EXECUTE_TOOL:
        return "tool"
    return "function"


def span_to_trace_record(span: ReadableSpan) -> TraceRecord | None:
    """Convert one finished span into a trace record, or return None if carrot does not export it."""
    kind = record_kind(span)
    context = span.context
    if kind is None or context is None:
        return None
    attributes: Mapping[str, Any] = span.attributes or {}
    ours = semconv.CARROT_KIND in attributes
    error = span.status.status_code is StatusCode.ERROR

    metadata: dict[str, Any] = {}
    user_metadata = _json_object(attributes.get(semconv.CARROT_METADATA))
    if user_metadata:
        metadata.update(user_metadata)
    metadata["type"] = kind
    metadata["source"] = _source(attributes, kind, ours)
    if kind == "llm":
        _llm_metadata(attributes, metadata)
    elif kind == "tool":
        _tool_metadata(attributes, metadata)
    start_ns = span.start_time or 0
    end_ns = span.end_time or start_ns
    metadata["latency_ms"] = round(max(end_ns - start_ns, 0) / 1e6, 3)
    metadata["trace_id"] = f"{context.trace_id:032x}"
    parent = _parent_span_id(span, attributes)
    if parent is not None:
        metadata["parent_trace_id"] = record_id(context.trace_id, parent)
    for key, name in (("user_id", semconv.CARROT_USER_ID), ("session_id", semconv.CARROT_SESSION_ID)):
        value = attributes.get(name)
        if isinstance(value, str):
            metadata[key] = value
    if "session_id" not in metadata and isinstance(attributes.get(semconv.GEN_AI_CONVERSATION_ID), str):
        metadata["session_id"] = attributes[semconv.GEN_AI_CONVERSATION_ID]
    service = span.resource.attributes.get(semconv.SERVICE_NAME) if span.resource else None
    if isinstance(service, str) and service and not service.startswith("unknown_service"):
        metadata["service_name"] = service
    for key, name in (
        ("http_status", semconv.HTTP_RESPONSE_STATUS_CODE),
        ("error_code", semconv.CARROT_ERROR_CODE),
        ("request_id", semconv.CARROT_REQUEST_ID),
        ("cancelled", semconv.CARROT_CANCELLED),
    ):
        value = attributes.get(name)
        if value is not None and value != "":
            metadata[key] = value
    if "request_id" not in metadata and isinstance(attributes.get(semconv.ANTHROPIC_REQUEST_ID), str):
        metadata["request_id"] = attributes[semconv.ANTHROPIC_REQUEST_ID]

    record: TraceRecord = {
        "id": record_id(context.trace_id, context.span_id),
        "name": _name(span, attributes, kind),
        "input": _input(attributes, ours),
        "output": _error_output(span, attributes) if error else _output(attributes, ours),
        "metadata": metadata,
        "status": "error" if error else "success",
        "started_at": _iso(attributes.get(semconv.CARROT_STARTED_AT), start_ns),
        "ended_at": _iso(attributes.get(semconv.CARROT_ENDED_AT), end_ns),
    }
    tags = attributes.get(semconv.CARROT_TAGS)
    if tags:
        record["tags"] = [str(t) for t in tags]
    return record


def _source(attributes: Mapping[str, Any], kind: str, ours: bool) -> str:
    source = attributes.get(semconv.CARROT_SOURCE)
    if isinstance(source, str):
        return source
    if ours:
        return "decorator" if kind != "llm" else "sdk"
    return "otel"


def _parent_span_id(span: ReadableSpan, attributes: Mapping[str, Any]) -> int | None:
    explicit = attributes.get(semconv.CARROT_PARENT_SPAN_ID)
    if isinstance(explicit, str):
        try:
            return int(explicit, 16) if explicit else None
        except ValueError:
            return None
    parent = span.parent
    if parent is None or not parent.is_valid:
        return None
    return parent.span_id


def _name(span: ReadableSpan, attributes: Mapping[str, Any], kind: str) -> str:
    name = attributes.get(semconv.CARROT_NAME)
    if isinstance(name, str) and name:
        return name
    if kind == "llm":
        provider = _provider(attributes)
        operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
        resource = _RESOURCE_NAMES.get((provider or "", str(operation)))
        if resource:
            return resource
    if kind == "tool":
        tool_name = attributes.get(semconv.GEN_AI_TOOL_NAME)
        if isinstance(tool_name, str) and tool_name:
            return tool_name
    return span.name or "span"


def _provider(attributes: Mapping[str, Any]) -> str | None:
    provider = attributes.get(semconv.GEN_AI_PROVIDER_NAME) or attributes.get(semconv.GEN_AI_SYSTEM)
    if not isinstance(provider, str):
        return None
    # Older names: "az.ai.openai", "openai"; the provider registry also has e.g. "aws.bedrock", "gcp.vertex_ai".
    return provider


def _llm_metadata(attributes: Mapping[str, Any], metadata: dict[str, Any]) -> None:
    model = attributes.get(semconv.GEN_AI_RESPONSE_MODEL) or attributes.get(semconv.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str) and model:
        metadata["model"] = model
    provider = _provider(attributes)
    if provider:
        metadata["provider"] = provider
    for key, names in _TOKEN_FIELDS:
        for name in names:
            value = attributes.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                metadata[key] = value
                break
    if "input_tokens" in metadata or "output_tokens" in metadata:
        metadata["total_tokens"] = metadata.get("input_tokens", 0) + metadata.get("output_tokens", 0)
    cost = attributes.get(semconv.CARROT_COST_USD)
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        metadata["cost_usd"] = cost
    ttft = attributes.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    if isinstance(ttft, int | float) and not isinstance(ttft, bool) and ttft >= 0:
        metadata["time_to_first_token_ms"] = round(ttft * 1000, 3)
    reasons = attributes.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
    if reasons:
        metadata["finish_reasons"] = [str(r) for r in reasons]
    elif isinstance(attributes.get(semconv.ANTHROPIC_MESSAGE_STOP_REASON), str):
        # anthropic 2.x's own spans name the stop reason this way.
        metadata["finish_reasons"] = [attributes[semconv.ANTHROPIC_MESSAGE_STOP_REASON]]
    response_id = attributes.get(semconv.GEN_AI_RESPONSE_ID)
    if isinstance(response_id, str) and response_id:
        metadata["response_id"] = response_id
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str):
        metadata["operation"] = operation


def _tool_metadata(attributes: Mapping[str, Any], metadata: dict[str, Any]) -> None:
    for key, name in (("tool_name", semconv.GEN_AI_TOOL_NAME), ("tool_call_id", semconv.GEN_AI_TOOL_CALL_ID)):
        value = attributes.get(name)
        if isinstance(value, str) and value:
            metadata[key] = value


def _json_object(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"value": raw}
    return value if isinstance(value, dict) else {"value": value}


def _json_value(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _input(attributes: Mapping[str, Any], ours: bool) -> dict[str, Any]:
    captured = _json_object(attributes.get(semconv.CARROT_INPUT))
    if captured is not None or ours:
        return captured or {}
    return _input_from_semconv(attributes)


def _input_from_semconv(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild request parameters from GenAI attributes (spans of other instrumentations)."""
    data: dict[str, Any] = {}
    model = attributes.get(semconv.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str):
        data["model"] = model
    messages: list[dict[str, Any]] = []
    system = _json_value(attributes.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS))
    if system:
        messages.append({"role": "system", "content": _parts_content(system) if isinstance(system, list) else system})
    raw_messages = _json_value(attributes.get(semconv.GEN_AI_INPUT_MESSAGES))
    if raw_messages is None:
        raw_messages = _json_value(attributes.get(semconv.GEN_AI_PROMPT))
    if isinstance(raw_messages, list):
        messages.extend(_semconv_message(m) for m in raw_messages if isinstance(m, dict))
    elif raw_messages is not None:
        messages.append({"role": "user", "content": raw_messages})
    if messages:
        data["messages"] = messages
    for key, name in _REQUEST_PARAMS:
        value = attributes.get(name)
        if value is not None:
            data[key] = list(value) if isinstance(value, tuple) else value
    tools = _json_value(attributes.get(semconv.GEN_AI_TOOL_DEFINITIONS))
    if tools:
        data["tools"] = tools
    tool_args = attributes.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS)
    if tool_args is not None:
        data["arguments"] = _json_value(tool_args)
    return data


def _output(attributes: Mapping[str, Any], ours: bool) -> dict[str, Any]:
    captured = _json_object(attributes.get(semconv.CARROT_OUTPUT))
    if captured is not None or ours:
        return captured or {}
    result = attributes.get(semconv.GEN_AI_TOOL_CALL_RESULT)
    if result is not None:
        return {"result": _json_value(result)}
    raw = _json_value(attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES))
    if raw is None:
        raw = _json_value(attributes.get(semconv.GEN_AI_COMPLETION))
    if isinstance(raw, list):
        messages = [_semconv_message(m) for m in raw if isinstance(m, dict)]
        if not messages:
            return {}
        output: dict[str, Any] = {"message": messages[0]}
        if len(messages) > 1:
            output["choices"] = [{"index": i, "message": m} for i, m in enumerate(messages)]
        return output
    if raw is not None:
        return {"message": {"role": "assistant", "content": raw}}
    return {}


def _error_output(span: ReadableSpan, attributes: Mapping[str, Any]) -> dict[str, Any]:
    message = attributes.get(semconv.CARROT_ERROR_MESSAGE) or span.status.description or ""
    error_type = attributes.get(semconv.ERROR_TYPE) or "Error"
    return {"error": str(message), "error_type": str(error_type)}


def _semconv_message(message: dict[str, Any]) -> dict[str, Any]:
    """A GenAI-convention message (role + parts) as an OpenAI-like message (role, content, tool_calls)."""
    out: dict[str, Any] = {"role": str(message.get("role", "assistant"))}
    parts = message.get("parts")
    if not isinstance(parts, list):
        if "content" in message:
            out["content"] = message["content"]
        return out
    tool_calls: list[dict[str, Any]] = []
    other: list[Any] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "tool_call":
            arguments = part.get("arguments")
            tool_calls.append(
                {
                    "id": part.get("id"),
                    "type": "function",
                    "function": {
                        "name": str(part.get("name", "")),
                        "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                    },
                }
            )
        else:
            other.append(part)
    content = _parts_content(other)
    if content is not None:
        out["content"] = content
    if tool_calls:
        out["tool_calls"] = tool_calls
    if message.get("finish_reason"):
        out["finish_reason"] = message["finish_reason"]
    return out


def _parts_content(parts: list[Any]) -> Any:
    """Text parts joined into one string; anything richer kept as the list of parts."""
    if not parts:
        return None
    if all(isinstance(p, dict) and p.get("type") == "text" for p in parts):
        return "".join(str(p.get("content", "")) for p in parts)
    if all(isinstance(p, dict) and p.get("type") == "tool_call_response" for p in parts) and len(parts) == 1:
        return parts[0].get("response")
    return parts


def _iso(explicit: Any, ns: int) -> str:
    if isinstance(explicit, str) and explicit:
        return explicit
    seconds, remainder = divmod(ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.replace(microsecond=remainder // 1000).isoformat()
