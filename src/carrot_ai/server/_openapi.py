"""The OpenAPI 3.1 document of the local server, served at ``/openapi.json``."""

from __future__ import annotations

import functools
from typing import Any

from carrot_ai._version import __version__
from carrot_ai.export import trace_record_schema
from carrot_ai.server._query import DEFAULT_LIMIT, MAX_LIMIT


def _param(name: str, description: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
        **extra,
    }


_FILTERS = [
    _param("model", "Exact model name (`metadata.model`), e.g. `gpt-4o-mini`."),
    _param("provider", "Exact provider (`metadata.provider`), e.g. `openai`."),
    _param("status", "`success` or `error`.", {"enum": ["success", "error"]}),
    _param("kind", "Record type (`metadata.type`).", {"enum": ["llm", "function", "tool"]}),
    _param("name", "Exact record name, e.g. `answer_question` or `chat.completions`."),
    _param("user_id", "Exact `metadata.user_id`."),
    _param("session_id", "Exact `metadata.session_id`."),
    _param(
        "tag",
        "A tag the record carries; repeat for several (all must match).",
        {"type": "array", "items": {"type": "string"}},
        style="form",
        explode=True,
    ),
    _param("since", "Records that started at or after this time: ISO 8601 (UTC if no offset) or epoch seconds."),
    _param("until", "Records that started before this time: ISO 8601 or epoch seconds."),
    _param(
        "q",
        "Full-text search over input and output: every word must occur (a word's beginning matches). "
        "SQLite FTS5 when available, else a substring match.",
    ),
    _param("root", "`true`: only top-level records (no `metadata.parent_trace_id`).", {"type": "boolean"}),
]
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string", "description": "The parameter or body field at fault."},
    },
}
_INGEST_RESULT = {
    "type": "object",
    "required": ["accepted", "stored", "duplicates", "rejected"],
    "properties": {
        "accepted": {"type": "integer", "description": "Valid records (stored now or already stored)."},
        "stored": {"type": "integer", "description": "Records stored by this request."},
        "duplicates": {"type": "integer", "description": "Valid records whose id was already stored (ignored)."},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "id", "field", "error"],
                "properties": {
                    "index": {"type": "integer", "description": "Position in `traces`."},
                    "id": {"type": ["string", "null"]},
                    "field": {"type": "string", "description": "Dotted path, e.g. `metadata.input_tokens`."},
                    "error": {"type": "string"},
                },
            },
        },
        "error": {"type": "string", "description": "Present with HTTP 422: a summary of the first rejection."},
    },
}
_NODE = {
    "allOf": [
        {"$ref": "#/components/schemas/TraceRecord"},
        {
            "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#/components/schemas/TraceNode"}}},
        },
    ]
}
_TREE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The record asked for."},
        "root_id": {"type": "string", "description": "Its highest ancestor received so far."},
        "parent_missing": {
            "type": ["string", "null"],
            "description": "The root's parent id when that parent has not been received (yet).",
        },
        "record_count": {"type": "integer"},
        "truncated": {"type": "boolean"},
        "totals": {
            "type": "object",
            "properties": {
                "cost_usd": {"type": "number"},
                "input_tokens": {"type": "integer"},
                "output_tokens": {"type": "integer"},
                "total_tokens": {"type": "integer"},
                "errors": {"type": "integer"},
            },
        },
        "tree": {"$ref": "#/components/schemas/TraceNode"},
    },
}
_AUTH_401 = {
    "description": "An API key is configured and the request does not carry it.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_BAD_400 = {
    "description": "A parameter is invalid; `field` names it.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document."""
    record_schema = {k: v for k, v in trace_record_schema().items() if not k.startswith("$")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "carrot-ai local server",
            "version": __version__,
            "description": "Ingest, store (SQLite) and search carrot-ai trace records; started by `carrot-ai serve`. "
            "When the server has an API key (`--api-key` / `CARROT_SERVER_API_KEY`), every `/v1/` route needs "
            "`Authorization: Bearer <key>`.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"TraceRecord": record_schema, "TraceNode": _NODE, "Error": _ERROR},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/traces/ingest": {
                "post": {
                    "summary": "Ingest trace records (the carrot-ai exporter's wire format)",
                    "description": 'Body `{"traces": [record, ...]}`, plain or `Content-Encoding: gzip`. Every record '
                    "is validated against the trace record JSON Schema, after what a hand-written record may omit "
                    "is filled in: a missing `id` (a new UUID), `ended_at` (the time of receipt) and `started_at` "
                    "(`ended_at` less `metadata.latency_ms`). Valid records are stored even when others in "
                    "the same batch are rejected. Idempotent on `id`: a record already stored is counted in "
                    "`duplicates` and left as it was (the first delivery wins).",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["traces"],
                                    "properties": {
                                        "traces": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/TraceRecord"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Every record was valid.",
                            "content": {"application/json": {"schema": _INGEST_RESULT}},
                        },
                        "422": {
                            "description": "Some records were invalid and are listed in `rejected`; the valid ones "
                            "were stored.",
                            "content": {"application/json": {"schema": _INGEST_RESULT}},
                        },
                        "400": {
                            "description": 'The body is not JSON or not `{"traces": [...]}`.',
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        },
                        "401": _AUTH_401,
                        "413": {"description": "The body (after decompression) is too large."},
                        "415": {"description": "Unsupported Content-Encoding."},
                    },
                }
            },
            "/v1/traces": {
                "post": {
                    "summary": "OTLP/HTTP traces (protobuf or JSON)",
                    "description": "An OpenTelemetry `ExportTraceServiceRequest` as `application/x-protobuf` or "
                    "`application/json` (OTLP/JSON: hex ids). Spans are converted with the carrot-ai exporter's "
                    "converter: GenAI-convention spans and carrot spans become records, other spans are elided.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/x-protobuf": {}, "application/json": {}},
                    },
                    "responses": {
                        "200": {
                            "description": "An `ExportTraceServiceResponse` in the request's format; "
                            "`partialSuccess.rejectedSpans` counts spans whose record was invalid."
                        },
                        "400": {"description": "Not an OTLP request."},
                        "401": _AUTH_401,
                        "415": {"description": "Content-Type is neither protobuf nor JSON."},
                    },
                },
                "get": {
                    "summary": "Search trace records",
                    "description": "Every filter given must match. `order=started` (default): newest first; "
                    "`next_cursor` is null on the last page. `order=received`: oldest first by arrival, and "
                    "`next_cursor` is always set, so a poller (`carrot-ai tail`) resumes from it.",
                    "parameters": [
                        *_FILTERS,
                        _param("limit", f"Page size, 1..{MAX_LIMIT}.", {"type": "integer", "default": DEFAULT_LIMIT}),
                        _param("order", "Sort order.", {"enum": ["started", "received"], "default": "started"}),
                        _param(
                            "cursor",
                            "`next_cursor` of the previous page (same filters and order). With `order=received`, "
                            "`latest` returns no records and a cursor after the newest one (follow new arrivals).",
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "A page of records.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["traces", "next_cursor"],
                                        "properties": {
                                            "traces": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/TraceRecord"},
                                            },
                                            "next_cursor": {"type": ["string", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _BAD_400,
                        "401": _AUTH_401,
                    },
                },
            },
            "/v1/traces/{id}": {
                "get": {
                    "summary": "One trace as a tree",
                    "description": "The record's root ancestor and all its descendants, each record with a "
                    "`children` list (by `started_at`). Assembled when read, so records may have arrived in any order.",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "The tree.", "content": {"application/json": {"schema": _TREE}}},
                        "404": {"description": "No record with this id."},
                        "401": _AUTH_401,
                    },
                }
            },
            "/v1/stats": {
                "get": {
                    "summary": "Cost, latency, tokens and errors over time",
                    "description": "The records matching the same filters as the search, grouped into `buckets` "
                    "equal time intervals between `since` and `until` (default: the first and last match).",
                    "parameters": [
                        *_FILTERS,
                        _param("buckets", "Number of intervals, 1..1000.", {"type": "integer", "default": 60}),
                    ],
                    "responses": {
                        "200": {
                            "description": "Buckets in time order; empty buckets are left out.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "bucket_seconds": {"type": "number"},
                                            "total": {"type": "integer"},
                                            "buckets": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "properties": {
                                                        "start_us": {"type": "integer"},
                                                        "count": {"type": "integer"},
                                                        "errors": {"type": "integer"},
                                                        "cost_usd": {"type": "number"},
                                                        "avg_latency_ms": {"type": ["number", "null"]},
                                                        "max_latency_ms": {"type": ["number", "null"]},
                                                        "total_tokens": {"type": "integer"},
                                                    },
                                                },
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "400": _BAD_400,
                        "401": _AUTH_401,
                    },
                }
            },
        },
    }
