"""The trace record: the wire format of ``POST {base_url}/v1/traces/ingest``.

The JSON Schema ships inside the package (``trace_record.schema.json``); :func:`trace_record_schema` returns it.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
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


# What a custom-ingestion record may leave out (the docs' curl example sends none of them), and who fills it in.
FILLED_ON_INGEST = ("id", "started_at", "ended_at")


def complete_record(record: dict[str, Any], now: datetime.datetime | None = None) -> dict[str, Any]:
    """Return ``record`` with what a hand-written record may omit filled in, as the ingest API does.

    A missing ``id`` becomes a new random UUID; a missing ``ended_at`` is ``now`` (UTC); a missing ``started_at``
    is ``ended_at`` minus ``metadata.latency_ms`` when that is a non-negative number, else ``ended_at`` (left
    missing when the given ``ended_at`` is not ISO 8601). Fields that are present are never changed (an invalid
    one is rejected by the schema as before) and ``record`` itself is not modified. Everything else the schema
    requires (``name``, ``input``, ``output``, ``metadata``, ``status``) must be given.
    """
    if all(key in record for key in FILLED_ON_INGEST):
        return record
    completed = dict(record)
    if "id" not in completed:
        completed["id"] = str(uuid.uuid4())
    ended: datetime.datetime | None
    if "ended_at" not in completed:
        ended = now or datetime.datetime.now(datetime.timezone.utc)
        completed["ended_at"] = ended.isoformat()
    else:
        ended = _parse_iso(completed["ended_at"])
    if "started_at" not in completed and ended is not None:
        metadata = completed.get("metadata")
        latency = metadata.get("latency_ms") if isinstance(metadata, dict) else None
        started = ended
        if isinstance(latency, int | float) and not isinstance(latency, bool):
            try:
                started = ended - datetime.timedelta(milliseconds=latency) if latency >= 0 else ended
            except (OverflowError, ValueError):  # nan, inf, or longer than datetime holds: the start is unknown
                started = ended
        completed["started_at"] = started.isoformat()
    return completed


def _parse_iso(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.timezone.utc)


@functools.cache
def trace_record_schema() -> dict[str, Any]:
    """Return the JSON Schema of one trace record."""
    text = resources.files(__package__).joinpath("trace_record.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.lru_cache(maxsize=1)
def _metadata_properties() -> dict[str, dict[str, Any]]:
    properties: dict[str, dict[str, Any]] = trace_record_schema()["properties"]["metadata"]["properties"]
    return properties


def fits_reserved_metadata(key: str, value: Any) -> bool:
    """Whether ``value`` may stand under ``key`` in a record's metadata: True for a key the schema does not reserve,
    else whether the value has the type the schema gives that key (enum, const, minimum and pattern included)."""
    rule = _metadata_properties().get(key)
    if rule is None:
        return True
    if "const" in rule:
        return bool(value is rule["const"] or (value == rule["const"] and type(value) is type(rule["const"])))
    if "enum" in rule:
        return isinstance(value, str) and value in rule["enum"]
    kind = rule.get("type")
    if kind == "string":
        if not isinstance(value, str):
            return False
        pattern = rule.get("pattern")
        return pattern is None or re.match(pattern, value) is not None
    if kind in ("integer", "number"):
        types: tuple[type[Any], ...] = (int,) if kind == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, types):
            return False
        return "minimum" not in rule or value >= rule["minimum"]
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return False
