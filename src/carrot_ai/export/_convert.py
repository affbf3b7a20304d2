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
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, StatusCode

from carrot_ai import semconv
from carrot_ai._core import _content
from carrot_ai._core._fastspan import FastSpan
from carrot_ai._core._guard import report_internal_error
from carrot_ai._core._serialize import dumps, encode_string, fast_encode
from carrot_ai._core._server_tools import OPENAI_SERVER_INPUT, OPENAI_SERVER_ITEMS, SERVER_RESULT
from carrot_ai._core._tracing import take_whole, whole_values
from carrot_ai.export import _cost
from carrot_ai.export._schema import TraceRecord, fits_reserved_metadata
from carrot_ai.export._sizing import raw_attributes

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
    # The part of the cache writes with a 1-hour TTL (Anthropic), priced at its own rate.
    ("cache_write_1h_input_tokens", (semconv.ANTHROPIC_USAGE_CACHE_WRITE_1H_INPUT_TOKENS,)),
    # The audio part of the input / output tokens (OpenAI), priced at the model's audio rates; only when non-zero.
    ("input_audio_tokens", (semconv.OPENAI_USAGE_INPUT_AUDIO_TOKENS,)),
    ("output_audio_tokens", (semconv.OPENAI_USAGE_OUTPUT_AUDIO_TOKENS,)),
)
_NONZERO_TOKEN_FIELDS = frozenset(("input_audio_tokens", "output_audio_tokens"))
_NUMBERS = (int, float)
_REASONS = (str, list, tuple)
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


_HIGH_BITS = ~(0xF << 12) & ((1 << 64) - 1)  # the high 64 bits less the version's 4
_LOW_BITS = ~(0x3 << 62) & ((1 << 64) - 1)  # the low 64 bits less the variant's 2
_LOW_48 = (1 << 48) - 1


def record_id(trace_id: int, span_id: int) -> str:
    """The record id of a span: a version-8 UUID derived from its trace id and span id.

    The span id fills the low 64 bits (less the 2 variant bits) and the folded trace id the high 64 bits (less
    the 4 version bits): unique per span, stable across retries, computable by a child for its parent.
    """
    # The two halves apart, in one %-format for the five groups: ~0.09 µs less than a 128-bit value's hex sliced
    # (0.55 against 0.64 µs); the same five groups as f-string fields take 0.87.
    high = (((trace_id >> 64) ^ trace_id) & _HIGH_BITS) | (8 << 12)
    low = (span_id & _LOW_BITS) | (2 << 62)
    groups = (high >> 32, (high >> 16) & 0xFFFF, high & 0xFFFF, low >> 48, low & _LOW_48)
    return "%08x-%04x-%04x-%04x-%012x" % groups  # noqa: UP031


def record_kind(span: ReadableSpan, attributes: Mapping[str, Any] | None = None) -> str | None:
    """``"llm"``, ``"function"`` or ``"tool"`` for a span that becomes a record; None for one that does not."""
    if attributes is None:
        attributes = raw_attributes(span)
    kind = attributes.get(semconv.CARROT_KIND)
    if isinstance(kind, str):
        return kind
    if attributes.get(semconv.CARROT_DUPLICATE) is True:
        return None  # another instrumentation's span of a call we record (marked by the span processor)
    operation = attributes.get(semconv.GEN_AI_OPERATION_NAME)
    if not isinstance(operation, str):
        return None
    if operation in semconv.MODEL_CALL_OPERATIONS:
        return "llm"
    if operation == semconv.OP_EXECUTE_TOOL:
        return "tool"
    return "function"


class _Parts:
    """A record's fields, its ``input`` and ``output`` still as JSON text (they are spliced, not re-encoded)."""

    __slots__ = ("id", "name", "input_json", "output_json", "metadata", "status", "started_at", "ended_at", "tags")

    def __init__(
        self,
        id: str,  # (the record's field)
        name: str,
        input_json: str,
        output_json: str,
        metadata: dict[str, Any],
        status: str,
        started_at: str,
        ended_at: str,
        tags: list[str] | None,
    ) -> None:
        self.id = id
        self.name = name
        self.input_json = input_json
        self.output_json = output_json
        self.metadata = metadata
        self.status = status
        self.started_at = started_at
        self.ended_at = ended_at
        self.tags = tags

    def head(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}

    def tail(self) -> dict[str, Any]:
        tail: dict[str, Any] = {
            "metadata": self.metadata,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }
        if self.tags is not None:
            tail["tags"] = self.tags
        return tail


def span_to_trace_record(span: ReadableSpan) -> TraceRecord | None:
    """Convert one finished span into a trace record, or return None if carrot does not export it."""
    parts = _convert(span)
    if parts is None:
        return None
    record: dict[str, Any] = {
        **parts.head(),
        "input": json.loads(parts.input_json),
        "output": json.loads(parts.output_json),
        **parts.tail(),
    }
    return record  # type: ignore[return-value]


def encode_span(span: ReadableSpan) -> bytes | None:
    """The JSON bytes of :func:`span_to_trace_record` for ``span`` (None if not exported), without decoding and
    re-encoding the captured input and output."""
    parts = _convert(span)
    if parts is None:
        return None
    return _record_text(parts).encode("utf-8", "replace")  # a lone surrogate: "?", not a batch the server refuses


def _record_text(parts: _Parts) -> str:
    """The record's JSON text: the text ``dumps`` writes for the record's dict, written field by field (the strings
    by the encoder's own string function, the metadata and tags by the encoder), without a dict for its head and
    its tail."""
    name = parts.name
    if isinstance(name, str):  # (a span's name of another type is written as dumps writes it)
        try:
            metadata = fast_encode(parts.metadata)
            tags = "" if parts.tags is None else f',"tags":{fast_encode(parts.tags)}'
        except (TypeError, ValueError, RecursionError):
            pass  # (dumps makes such values safe, the whole tail at once)
        else:
            return (
                f'{{"id":{_string(parts.id)},"name":{_string(name)},"input":{parts.input_json},'
                f'"output":{parts.output_json},"metadata":{metadata},"status":"{parts.status}",'
                f'"started_at":{_string(parts.started_at)},"ended_at":{_string(parts.ended_at)}{tags}}}'
            )
    head = _dumps(parts.head())
    tail = _dumps(parts.tail())
    return f'{head[:-1]},"input":{parts.input_json},"output":{parts.output_json},{tail[1:]}'


def settle_spans(items: Iterable[object]) -> None:
    """Do what the fast spans among ``items`` left to the export worker (reading a call's request and response, a
    stream's events), all of them before any is converted.

    :func:`encode_span` would do it span by span; a batch settled first runs the same work for one span after
    another, then the conversion for one span after another, each phase's code still in the CPU's caches from the
    span before (~4 µs less an Anthropic record than alternating them: benchmarks/README.md, eighteenth pass). Each
    span's work touches that span only, so the order changes nothing in the records."""
    for item in items:
        if type(item) is FastSpan and item._later is not None:
            _settle(item)


def _settle(span: FastSpan) -> None:
    """Do what the span left to the export worker (a stream's result); a failure costs that part only."""
    try:
        span.settle()
    except Exception as exc:
        report_internal_error("span settle", exc)


def _convert(span: ReadableSpan) -> _Parts | None:
    if type(span) is FastSpan:
        if span._later is not None:
            _settle(span)
        # (its fields read without the ReadableSpan properties: ~0.05 µs each, some ten a record)
        attributes: Mapping[str, Any] = span._attributes  # type: ignore[assignment]  # always our dict
        context: SpanContext | None = span._context
        status, start_time, end_time, parent_context = span._status, span._start_time, span._end_time, span._parent
        resource = span._resource
    else:
        # The plain dict under the SDK's BoundedAttributes: its Mapping methods are Python code that raises KeyError
        # for every absent key, and a record reads some forty keys, most of them absent.
        attributes = raw_attributes(span)
        context = span.context
        status, start_time, end_time, parent_context = span.status, span.start_time, span.end_time, span.parent
        resource = span.resource
    kind = record_kind(span, attributes)
    if kind is None or context is None:
        return None
    trace_id, span_id = context.trace_id, context.span_id
    if whole_values:
        whole = take_whole(span_id)
        if whole is not None:  # what the application's attribute length limit cut of the span's content
            attributes = {**attributes, **whole}
    ours = semconv.CARROT_KIND in attributes
    error = status.status_code is StatusCode.ERROR
    content_withheld = attributes.get(semconv.CARROT_CONTENT_CAPTURED) is False

    metadata: dict[str, Any] = {}
    user_metadata = _json_object(attributes.get(semconv.CARROT_METADATA))
    if user_metadata:
        for key, value in user_metadata.items():
            # A value that cannot stand under one of the record's own metadata keys is kept beside it.
            metadata[key if fits_reserved_metadata(key, value) else f"user.{key}"] = value
    metadata["type"] = kind
    metadata["source"] = _source(attributes, kind, ours)
    start_ns = start_time or 0
    if kind == "llm":
        _llm_metadata(attributes, metadata)
        _add_cost(attributes, metadata, start_ns)
    elif kind == "tool":
        _tool_metadata(attributes, metadata)
    end_ns = end_time or start_ns
    metadata["latency_ms"] = latency_ms(end_ns - start_ns)
    metadata["trace_id"] = "%032x" % trace_id  # noqa: UP031  (~0.06 µs less than the f-string)
    parent = _parent_span_id(parent_context, attributes)
    explicit_parent = attributes.get(semconv.CARROT_PARENT_RECORD_ID)
    if isinstance(explicit_parent, str) and explicit_parent:
        metadata["parent_trace_id"] = explicit_parent
    elif parent is not None:
        metadata["parent_trace_id"] = record_id(trace_id, parent)
    _optional_metadata(attributes, metadata)
    if content_withheld:
        metadata["content_captured"] = False
    service = _service_name(resource)
    if service:
        metadata["service_name"] = service
    if user_metadata:
        for key, value in user_metadata.items():
            if key in metadata and metadata[key] != value:  # replaced by the record's own field: kept beside it
                metadata.setdefault(f"user.{key}", value)

    explicit_id = attributes.get(semconv.CARROT_RECORD_ID)
    input_json = _own_json(attributes.get(semconv.CARROT_INPUT)) if ours else None
    if input_json is None:
        input_json = _dumps(_input(attributes, ours, content_withheld))
    if error:
        output_json = _dumps(_error_output(span, attributes, ours))
    else:
        output_json = (_own_json(attributes.get(semconv.CARROT_OUTPUT)) if ours else None) or _dumps(
            _output(attributes, ours, content_withheld)
        )
    tags = attributes.get(semconv.CARROT_TAGS)
    return _Parts(
        explicit_id if isinstance(explicit_id, str) and explicit_id else record_id(trace_id, span_id),
        _name(span, attributes, kind),
        input_json,
        output_json,
        metadata,
        "error" if error else "success",
        _iso(attributes.get(semconv.CARROT_STARTED_AT), start_ns),
        _iso(attributes.get(semconv.CARROT_ENDED_AT), end_ns),
        [str(t) for t in tags] if tags else None,
    )


def _service_name(resource: Resource | None) -> str | None:
    global _last_service
    if resource is None:
        return None
    last, name = _last_service  # one tuple: read and replaced atomically
    if resource is last:  # (every span of a provider has its resource, whose attributes cannot change)
        return name
    service = resource.attributes.get(semconv.SERVICE_NAME)
    name = service if isinstance(service, str) and service and not service.startswith("unknown_service") else None
    _last_service = (resource, name)
    return name


_last_service: tuple[Any, str | None] = (None, None)


def _own_json(raw: Any) -> str | None:
    """A ``carrot.input`` / ``carrot.output`` value we wrote: a JSON object's text, used as is."""
    if isinstance(raw, str) and len(raw) >= 2 and raw[0] == "{" and raw[-1] == "}":
        return raw
    return None


_TEXT_FIELDS = (("user_id", semconv.CARROT_USER_ID), ("session_id", semconv.CARROT_SESSION_ID))
_CALL_FIELDS = (
    ("http_status", semconv.HTTP_RESPONSE_STATUS_CODE),
    ("error_code", semconv.CARROT_ERROR_CODE),
    ("request_id", semconv.CARROT_REQUEST_ID),
    ("cancelled", semconv.CARROT_CANCELLED),
)


def _optional_metadata(attributes: Mapping[str, Any], metadata: dict[str, Any]) -> None:
    for key, name in _TEXT_FIELDS:
        value = attributes.get(name)
        if isinstance(value, str):
            metadata[key] = value
    if "session_id" not in metadata and isinstance(attributes.get(semconv.GEN_AI_CONVERSATION_ID), str):
        metadata["session_id"] = _content.prepare_text(attributes[semconv.GEN_AI_CONVERSATION_ID])
    for key, name in _CALL_FIELDS:
        value = attributes.get(name)
        if value is not None and value != "":
            metadata[key] = value
    if "request_id" not in metadata and isinstance(attributes.get(semconv.ANTHROPIC_REQUEST_ID), str):
        metadata["request_id"] = attributes[semconv.ANTHROPIC_REQUEST_ID]


def _source(attributes: Mapping[str, Any], kind: str, ours: bool) -> str:
    source = attributes.get(semconv.CARROT_SOURCE)
    if isinstance(source, str):
        return source
    if ours:
        return "decorator" if kind != "llm" else "sdk"
    return "otel"


def _parent_span_id(parent: SpanContext | None, attributes: Mapping[str, Any]) -> int | None:
    explicit = attributes.get(semconv.CARROT_PARENT_SPAN_ID)
    if isinstance(explicit, str):
        try:
            return int(explicit, 16) if explicit else None
        except ValueError:
            return None
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
    get = attributes.get
    model = get(semconv.GEN_AI_RESPONSE_MODEL) or get(semconv.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str) and model:
        metadata["model"] = model
    provider = _provider(attributes)
    if provider:
        metadata["provider"] = provider
    for key, names in _TOKEN_FIELDS:  # (each key's first name with a count: most names are absent)
        for name in names:
            value = get(name)
            if value is None:
                continue
            if (type(value) is int or isinstance(value, int) and not isinstance(value, bool)) and value >= 0:
                if value or key not in _NONZERO_TOKEN_FIELDS:
                    metadata[key] = value
                break
    operation = get(semconv.GEN_AI_OPERATION_NAME)
    if operation == semconv.OP_EMBEDDINGS and "input_tokens" in metadata:
        metadata.setdefault("output_tokens", 0)  # an embedding has none (carrot-ai 0.2.1's records said 0)
    if "input_tokens" in metadata or "output_tokens" in metadata:
        metadata["total_tokens"] = metadata.get("input_tokens", 0) + metadata.get("output_tokens", 0)
    cost = get(semconv.CARROT_COST_USD)
    if cost is not None and isinstance(cost, _NUMBERS) and not isinstance(cost, bool) and cost >= 0:
        metadata["cost_usd"] = cost
    ttft = get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    if ttft is not None and isinstance(ttft, _NUMBERS) and not isinstance(ttft, bool) and ttft >= 0:
        metadata["time_to_first_token_ms"] = round(ttft * 1000, 3)
    reasons = get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
    if reasons:
        metadata["finish_reasons"] = _finish_reasons(reasons)
    elif isinstance(get(semconv.ANTHROPIC_MESSAGE_STOP_REASON), str):
        # anthropic 2.x's own spans name the stop reason this way.
        metadata["finish_reasons"] = [attributes[semconv.ANTHROPIC_MESSAGE_STOP_REASON]]
    response_id = get(semconv.GEN_AI_RESPONSE_ID)
    if isinstance(response_id, str) and response_id:
        metadata["response_id"] = response_id
    if isinstance(operation, str):
        metadata["operation"] = operation


def _finish_reasons(reasons: Any) -> list[str]:
    """The finish reasons of a span: a sequence as the conventions have them, or one string (litellm's own spans
    write the list as JSON text: ``'["stop"]'``), never split into characters; any other single value (a number
    some emitter set) is one reason, not a TypeError that loses the record."""
    if type(reasons) is tuple:  # (as span attributes hold a sequence)
        return list(map(str, reasons))
    if not isinstance(reasons, _REASONS):
        return [str(reasons)]
    if isinstance(reasons, str):
        if reasons.startswith("["):
            try:
                decoded = json.loads(reasons)
            except ValueError:
                decoded = None
            if isinstance(decoded, list):
                return [str(r) for r in decoded]
        return [reasons]
    return [str(r) for r in reasons]


def _add_cost(attributes: Mapping[str, Any], metadata: dict[str, Any], start_ns: int) -> None:
    """``metadata.cost_usd`` from the usage, provider and model, unless the span already carries a cost."""
    if "cost_usd" in metadata or ("input_tokens" not in metadata and "output_tokens" not in metadata):
        return
    response_model = attributes.get(semconv.GEN_AI_RESPONSE_MODEL)
    request_model = attributes.get(semconv.GEN_AI_REQUEST_MODEL)
    if not (isinstance(request_model, str) and request_model):
        request_model = None
    if isinstance(response_model, str) and response_model:
        models: tuple[str, ...] = (
            (response_model, request_model)
            if request_model is not None and request_model != response_model
            else (response_model,)
        )
    elif request_model is not None:
        models = (request_model,)
    else:
        return
    get = metadata.get
    input_tokens = get("input_tokens", 0)
    output_tokens = get("output_tokens", 0)
    cache_read = get("cache_read_input_tokens", 0)
    cache_write = get("cache_write_input_tokens", 0)
    reasoning = get("reasoning_tokens", 0)
    provider = get("provider")
    # The host an OpenAI / Anthropic SDK call went to decides whose prices apply (none for a local server). Not for
    # LiteLLM's calls: its model route names the provider, and the record's cost is the one LiteLLM gives.
    server = attributes.get(semconv.SERVER_ADDRESS) if get("source") != "litellm" else None
    if not isinstance(server, str):
        server = None
    try:
        cost: float | None | _cost.Miss = _cost.MISS
        if (  # (three lookups: ~0.08 µs less than a set operation)
            "cache_write_1h_input_tokens" not in metadata
            and "input_audio_tokens" not in metadata
            and "output_audio_tokens" not in metadata
        ):
            cost = _cost.quick_cost(
                provider, models, server, input_tokens, output_tokens, cache_read, cache_write, reasoning
            )
        if cost is _cost.MISS:
            usage = _cost.TokenUsage(
                input_tokens,
                output_tokens,
                cache_read,
                cache_write,
                reasoning,
                get("cache_write_1h_input_tokens", 0),
                get("input_audio_tokens", 0),
                get("output_audio_tokens", 0),
            )
            cost = _cost.cost_usd(provider, models, usage, start_ns, server)
    except Exception as exc:  # a price-table problem must never cost the record
        report_internal_error("cost", exc)
        return
    if cost is not None:
        metadata["cost_usd"] = cost


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


def _input(attributes: Mapping[str, Any], ours: bool, withheld: bool) -> dict[str, Any]:
    captured = _json_object(attributes.get(semconv.CARROT_INPUT))
    if captured is not None or ours:
        return captured or {}
    # Another instrumentation's span: its content never went through our content policy, so apply it here.
    data = _input_from_semconv(attributes, _foreign_content_allowed(withheld))
    return _content.policy().clean(data)  # type: ignore[no-any-return]


def _foreign_content_allowed(withheld: bool) -> bool:
    return not withheld and _content.policy().capture


def _input_from_semconv(attributes: Mapping[str, Any], with_content: bool = True) -> dict[str, Any]:
    """Rebuild request parameters from GenAI attributes (spans of other instrumentations)."""
    data: dict[str, Any] = {}
    model = attributes.get(semconv.GEN_AI_REQUEST_MODEL)
    if isinstance(model, str):
        data["model"] = model
    for key, name in _REQUEST_PARAMS:
        value = attributes.get(name)
        if value is not None:
            data[key] = list(value) if isinstance(value, tuple) else value
    if not with_content:
        return data
    messages: list[dict[str, Any]] = []
    system = _json_value(attributes.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS))
    if system:
        messages.append({"role": "system", "content": _parts_content(system) if isinstance(system, list) else system})
    raw_messages = _json_value(attributes.get(semconv.GEN_AI_INPUT_MESSAGES))
    if raw_messages is None:
        raw_messages = _json_value(attributes.get(semconv.GEN_AI_PROMPT))
    if isinstance(raw_messages, list):
        provider = _provider(attributes)
        messages.extend(_semconv_message(m, provider) for m in raw_messages if isinstance(m, dict))
    elif raw_messages is not None:
        messages.append({"role": "user", "content": raw_messages})
    if messages:
        data["messages"] = messages
    tools = _json_value(attributes.get(semconv.GEN_AI_TOOL_DEFINITIONS))
    if tools:
        data["tools"] = tools
    tool_args = attributes.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS)
    if tool_args is not None:
        data["arguments"] = _json_value(tool_args)
    return data


def _output(attributes: Mapping[str, Any], ours: bool, withheld: bool) -> dict[str, Any]:
    captured = _json_object(attributes.get(semconv.CARROT_OUTPUT))
    if captured is not None or ours:
        return captured or {}
    if not _foreign_content_allowed(withheld):
        return {}
    return _content.policy().clean(_output_from_semconv(attributes))  # type: ignore[no-any-return]


def _output_from_semconv(attributes: Mapping[str, Any]) -> dict[str, Any]:
    result = attributes.get(semconv.GEN_AI_TOOL_CALL_RESULT)
    if result is not None:
        return {"result": _json_value(result)}
    raw = _json_value(attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES))
    if raw is None:
        raw = _json_value(attributes.get(semconv.GEN_AI_COMPLETION))
    if isinstance(raw, list):
        provider = _provider(attributes)
        messages = [_semconv_message(m, provider) for m in raw if isinstance(m, dict)]
        if not messages:
            return {}
        output: dict[str, Any] = {"message": messages[0]}
        if len(messages) > 1:
            output["choices"] = [{"index": i, "message": m} for i, m in enumerate(messages)]
        return output
    if raw is not None:
        return {"message": {"role": "assistant", "content": raw}}
    return {}


def _error_output(span: ReadableSpan, attributes: Mapping[str, Any], ours: bool = False) -> dict[str, Any]:
    message = attributes.get(semconv.CARROT_ERROR_MESSAGE) or span.status.description or ""
    error_type = attributes.get(semconv.ERROR_TYPE) or "Error"
    # Error messages often quote the input: they are masked like any captured string.
    output: dict[str, Any] = {"error": _content.prepare_text(str(message)), "error_type": str(error_type)}
    partial = _own_json(attributes.get(semconv.CARROT_OUTPUT)) if ours else None
    if partial is not None:
        # What a stream delivered before it failed or was cancelled, beside the error.
        try:
            delivered = json.loads(partial)
        except ValueError:
            delivered = None
        if isinstance(delivered, dict):
            for key in ("message", "choices"):
                if key in delivered:
                    output[key] = delivered[key]
    return output


def _semconv_message(message: dict[str, Any], provider: str | None = None) -> dict[str, Any]:
    """A GenAI-convention message (role + parts) as an OpenAI-like message (role, content, tool_calls,
    server_tool_calls, reasoning)."""
    out: dict[str, Any] = {"role": str(message.get("role", "assistant"))}
    parts = message.get("parts")
    if not isinstance(parts, list):
        if "content" in message:
            out["content"] = message["content"]
        return out
    tool_calls: list[dict[str, Any]] = []
    server_calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    other: list[Any] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "server_tool_call":
            server_calls.append(_server_call(part, provider))
            continue
        if part.get("type") == "server_tool_call_response":
            _server_result(server_calls, part)
            continue
        if part.get("type") == "reasoning" and isinstance(part.get("content"), str):
            # The message's `reasoning`, as our own records have it, not a part of its content.
            reasoning.append(part["content"])
        elif part.get("type") == "tool_call":
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
    if server_calls:
        out["server_tool_calls"] = server_calls
    if reasoning:
        out["reasoning"] = "".join(reasoning)
    if message.get("finish_reason"):
        out["finish_reason"] = message["finish_reason"]
    return out


# What a server tool call becomes in the record, as carrot's own instrumentation records it (``server_tool_calls``
# entries: {"id", "type", "name", "input"?, "status"?, "result"?}). A part says the tool's type; the record's ``type``
# is the provider's item or block type: OpenAI's output item of that tool, Anthropic's ``server_tool_use``, else
# ``server_tool_call`` (the OpenAI tables: carrot_ai._core._server_tools, shared with the instrumentation).
def _server_call(part: dict[str, Any], provider: str | None) -> dict[str, Any]:
    """A GenAI ``server_tool_call`` part as a record's server tool call."""
    payload = part.get("server_tool_call")
    payload = dict(payload) if isinstance(payload, dict) else {} if payload is None else {"input": payload}
    tool = payload.pop("type", None)
    name = part.get("name")
    entry: dict[str, Any] = {"id": part.get("id")}
    openai = provider is not None and "openai" in provider and isinstance(tool, str)
    if openai:
        entry["type"] = OPENAI_SERVER_ITEMS.get(tool, tool)
        if isinstance(name, str) and name != tool and "name" not in payload:
            payload["name"] = name  # an MCP tool's own name: the part names it, the record's name is the tool type
        name = tool
    elif provider == "anthropic":
        entry["type"] = "mcp_tool_use" if tool == "mcp" else "server_tool_use"
    else:
        entry["type"] = "server_tool_call"
    entry["name"] = str(name if name is not None else tool or "")
    status = payload.pop("status", None)
    error = payload.pop("error", None)
    result_key = next((key for key in SERVER_RESULT if key in payload), None)
    result = payload.pop(result_key) if result_key is not None else None
    server = payload.pop("server_name", None) if entry["type"] == "mcp_tool_use" else None
    primary = OPENAI_SERVER_INPUT.get(tool) if openai else None
    if primary is not None and primary in payload:
        entry["input"] = payload[primary]
    elif payload:
        entry["input"] = payload
    if status is not None:
        entry["status"] = status
    if result_key is not None:
        entry["result"] = result
    if error is not None:
        entry["error"] = error
    if server is not None:
        entry["server_name"] = server
    return entry


def _server_result(server_calls: list[dict[str, Any]], part: dict[str, Any]) -> None:
    """Put a GenAI ``server_tool_call_response`` part on the call of its id (a result alone is an entry of its own):
    its payload without the type, or the one field it has (Anthropic's ``content``, an OpenAI item's result)."""
    payload = part.get("server_tool_call_response")
    payload = dict(payload) if isinstance(payload, dict) else {"content": payload}
    kind = payload.pop("type", None)
    error = payload.pop("error", None)
    failed = payload.pop("is_error", None)  # an Anthropic MCP tool's failure
    result: Any = next(iter(payload.values())) if len(payload) == 1 else payload or None
    call_id = part.get("id")
    entry = next((e for e in reversed(server_calls) if e["id"] == call_id and "result" not in e), None)
    if entry is None:
        entry = {"id": call_id, "type": kind if isinstance(kind, str) else "server_tool_call_response"}
        server_calls.append(entry)
    if result is not None:
        entry["result"] = result
    if error is not None:
        entry["error"] = error
    if failed is True:
        entry["is_error"] = True


def _parts_content(parts: list[Any]) -> Any:
    """Text parts joined into one string; anything richer kept as the list of parts."""
    if not parts:
        return None
    if all(isinstance(p, dict) and p.get("type") == "text" for p in parts):
        return "".join(str(p.get("content", "")) for p in parts)
    if all(isinstance(p, dict) and p.get("type") == "tool_call_response" for p in parts) and len(parts) == 1:
        return parts[0].get("response")
    return parts


def latency_ms(ns: int) -> float:
    """``round(max(ns, 0) / 1e6, 3)``, the same float, in integer steps: ``round`` with digits writes the float out in
    decimal and reads it back (~0.3 µs). Below 10**15 ns (11 days) the float error of ``ns / 1e6`` is far smaller
    than a thousandth of a µs, so only an exact tie (``ns`` ending in 500), which that error decides, needs it."""
    if 0 <= ns < 10**15:
        micros, rest = divmod(ns, 1000)
        if rest != 500:
            return (micros + (rest > 500)) / 1000  # (int / int: correctly rounded, as round's result is)
    return round(max(ns, 0) / 1e6, 3)


_last_second: tuple[int, str] = (-1, "")


def _iso(explicit: Any, ns: int) -> str:
    if explicit is not None and isinstance(explicit, str) and explicit:
        return explicit
    seconds, remainder = divmod(ns, 1_000_000_000)
    global _last_second
    cached_seconds, prefix = _last_second  # one tuple: read and replaced atomically
    if cached_seconds != seconds:  # spans that end in the same second share the formatted prefix
        prefix = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second = (seconds, prefix)
    micros = remainder // 1000
    # As datetime.isoformat() writes it (%-format: ~0.1 µs less than the f-string with a format spec).
    return "%s.%06d+00:00" % (prefix, micros) if micros else prefix + "+00:00"  # noqa: UP031


_dumps = dumps
_string = encode_string
