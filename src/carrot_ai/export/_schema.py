"""The trace record: the wire format of ``POST {base_url}/v1/traces/ingest``.

The JSON Schema ships inside the package (``trace_record.schema.json``); :func:`trace_record_schema` returns it.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from typing_extensions import NotRequired

INGEST_PATH = "/v1/traces/ingest"


class ToolCallFunction(TypedDict):
    name: str
    arguments: str


class ToolCall(TypedDict):
    id: str | None
    type: str
    function: ToolCallFunction


class TraceRecord(TypedDict):
    """One trace record, as sent in ``{"traces": [...]}``."""

    id: str
    name: str
    input: dict[str, Any]
    output: dict[str, Any]
    metadata: dict[str, Any]
    status: Literal["success", "error"]
    started_at: str
    ended_at: str
    tags: NotRequired[list[str]]


@functools.cache
def trace_record_schema() -> dict[str, Any]:
    """Return the JSON Schema of one trace record."""
    text = resources.files(__package__).joinpath("trace_record.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
