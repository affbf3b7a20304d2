"""OTLP/HTTP traces (protobuf or JSON) into trace records, with the exporter's own converter.

Each decoded span becomes an SDK ``ReadableSpan`` and goes through :func:`carrot_ai.export.span_to_trace_record`,
exactly as spans do in the application's process; spans that converter does not export (HTTP, database, ...) are
elided. A record's ``parent_trace_id`` then names its nearest exported ancestor among the request's spans, as the
exporter's records do (there, carrot's span processor sees every span start); an elided ancestor that is not in the
request cannot be told from an exported one and is named as it is. JSON follows the OTLP/JSON rules: ids are hex
strings, enums are integers, 64-bit integers may be strings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from carrot_ai.export import TraceRecord, span_to_trace_record
from carrot_ai.export._convert import record_id

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class OtlpError(ValueError):
    """The body is not an OTLP ``ExportTraceServiceRequest``."""


def _messages() -> tuple[Any, Any]:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError as exc:  # pragma: no cover - the server extra is missing
        raise ImportError("OTLP ingest needs the server extra: pip install 'carrot-ai[server]'") from exc
    return trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse


def decode_request(body: bytes, content_type: str) -> Any:
    """Decode an ``ExportTraceServiceRequest`` from protobuf or OTLP/JSON; raise :class:`OtlpError` if it is not one."""
    request_type, _ = _messages()
    request = request_type()
    if content_type == PROTOBUF:
        from google.protobuf.message import DecodeError

        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpError(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}") from None
        return request
    from google.protobuf import json_format

    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise OtlpError(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise OtlpError("body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise OtlpError("body must be a JSON object with resourceSpans")
    for span in _json_spans(payload):
        for key in _ID_FIELDS:
            span[key] = _hex_to_base64(span.get(key), key)
        for link in span.get("links") or ():
            if isinstance(link, dict):
                for key in ("traceId", "spanId"):
                    link[key] = _hex_to_base64(link.get(key), f"links.{key}")
    try:
        json_format.ParseDict(payload, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpError(f"not an OTLP/JSON ExportTraceServiceRequest: {exc}") from None
    return request


def encode_response(rejected: int, message: str, content_type: str) -> bytes:
    """An ``ExportTraceServiceResponse`` (with ``partial_success`` when spans were rejected) in the request's format."""
    _, response_type = _messages()
    response = response_type()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if content_type == PROTOBUF:
        data: bytes = response.SerializeToString()
        return data
    if not rejected:
        return b"{}"
    return json.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}).encode()


def _json_spans(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource_spans in payload.get("resourceSpans") or ():
        if not isinstance(resource_spans, dict):
            continue
        for scope_spans in resource_spans.get("scopeSpans") or ():
            if not isinstance(scope_spans, dict):
                continue
            for span in scope_spans.get("spans") or ():
                if isinstance(span, dict):
                    yield span


def _hex_to_base64(value: Any, field: str) -> Any:
    # OTLP/JSON carries ids as hex; the protobuf JSON mapping expects base64 for bytes fields.
    if value is None or value == "":
        return value
    if not isinstance(value, str):
        raise OtlpError(f"{field} must be a hex string")
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        raise OtlpError(f"{field} is not hex: {value!r}") from None


def request_spans(request: Any) -> Iterator[ReadableSpan]:
    """Every span of the request as an SDK ``ReadableSpan`` with its resource and scope."""
    for resource_spans in request.resource_spans:
        resource = Resource(_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            scope = InstrumentationScope(scope_spans.scope.name, scope_spans.scope.version or None)
            for span in scope_spans.spans:
                yield _readable_span(span, resource, scope)


def _readable_span(span: Any, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    trace_id = int.from_bytes(span.trace_id, "big")
    span_id = int.from_bytes(span.span_id, "big")
    flags = TraceFlags(span.flags & 0xFF)
    parent = None
    if span.parent_span_id:
        parent = SpanContext(trace_id, int.from_bytes(span.parent_span_id, "big"), is_remote=False, trace_flags=flags)
    kinds = list(SpanKind)
    return ReadableSpan(
        name=span.name,
        context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags),
        parent=parent,
        resource=resource,
        attributes=_attributes(span.attributes),
        kind=kinds[span.kind - 1] if 1 <= span.kind <= len(kinds) else SpanKind.INTERNAL,
        status=Status(
            StatusCode(span.status.code) if span.status.code in (0, 1, 2) else StatusCode.UNSET,
            span.status.message or None,
        ),
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano or span.start_time_unix_nano,
        instrumentation_scope=scope,
    )


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in key_values}


def _value(any_value: Any) -> Any:
    which = any_value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        items = [_value(v) for v in any_value.array_value.values]
        if all(isinstance(i, str) for i in items) or all(isinstance(i, bool) for i in items):
            return tuple(items)
        if all(isinstance(i, int | float) and not isinstance(i, bool) for i in items):
            return tuple(items)
        return json.dumps(items, default=str)  # mixed or nested arrays: OTel SDK attributes cannot hold them
    if which == "kvlist_value":
        return json.dumps({kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}, default=str)
    if which == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode("ascii")
    return getattr(any_value, which)


def spans_to_records(request: Any) -> tuple[list[TraceRecord], int]:
    """Convert every span the exporter would export; return the records and how many spans were elided."""
    converted: list[tuple[ReadableSpan, TraceRecord]] = []
    # (trace id, span id) of each elided span of the request -> its parent's span id (None at a root).
    elided: dict[tuple[int, int], int | None] = {}
    for span in request_spans(request):
        record = span_to_trace_record(span)
        if record is not None:
            converted.append((span, record))
        elif span.context is not None:
            parent = span.parent
            elided[(span.context.trace_id, span.context.span_id)] = parent.span_id if parent is not None else None
    if elided:
        for span, record in converted:
            _skip_elided_parents(span, record, elided)
    return [record for _, record in converted], len(elided)


def _skip_elided_parents(span: ReadableSpan, record: TraceRecord, elided: Mapping[tuple[int, int], int | None]) -> None:
    """Make ``record`` name its nearest exported ancestor, past the request's elided spans (an HTTP server span
    above an LLM call): a parent id naming no record would keep the call out of the top-level records for good."""
    parent, context = span.parent, span.context
    if parent is None or context is None or (context.trace_id, parent.span_id) not in elided:
        return
    metadata: dict[str, Any] = record["metadata"]
    if metadata.get("parent_trace_id") != record_id(context.trace_id, parent.span_id):
        return  # a parent the span named itself (carrot's attributes), not its raw parent
    ancestor: int | None = parent.span_id
    for _ in range(len(elided)):  # (bounded: ids that loop in a malformed request end the walk)
        if ancestor is None or (context.trace_id, ancestor) not in elided:
            break
        ancestor = elided[(context.trace_id, ancestor)]
    if ancestor is None or (context.trace_id, ancestor) in elided:
        metadata.pop("parent_trace_id", None)
    else:
        metadata["parent_trace_id"] = record_id(context.trace_id, ancestor)
