"""Encoding of trace records into request bodies: JSON bytes, size limits, gzip. Pure functions, no I/O.

* :func:`encode_record` never fails on a record's content: values JSON cannot carry (nan, a lone surrogate, an
  object a custom record smuggled in) are made safe, and the API key is scrubbed out if anything captured it.
* :func:`split_by_bytes` packs encoded records into request bodies of at most ``limit`` bytes of JSON (so the
  gzip body is smaller still); a record that alone exceeds the limit is :func:`truncate_record`-ed, never
  dropped, and never takes its neighbours down with it.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from typing import Any

from carrot_ai._core._serialize import dumps, to_jsonable

REDACTED = b"[REDACTED]"
PREVIEW_CHARS = 2_000
_ENVELOPE = len(b'{"traces":[]}')
# Metadata kept when even a truncated record is too large: what identifies it and places it in its trace.
_ESSENTIAL_METADATA = ("type", "source", "trace_id", "parent_trace_id", "model", "provider", "latency_ms")


def encode_record(record: Any, secret: bytes | None = None) -> bytes:
    """Encode one record as compact UTF-8 JSON, making unencodable values safe and scrubbing ``secret``."""
    try:
        text = dumps(record)
    except (TypeError, ValueError, RecursionError):
        text = dumps(to_jsonable(record))
    data = text.encode("utf-8", "replace")  # a lone surrogate becomes "?", not a batch the server cannot parse
    if secret and secret in data:
        data = data.replace(secret, REDACTED)
    return data


def body_of(records: Iterable[bytes]) -> bytes:
    """Return the uncompressed request body ``{"traces": [...]}`` for encoded records."""
    return b'{"traces":[' + b",".join(records) + b"]}"


def compress(body: bytes) -> bytes:
    """Gzip a request body."""
    return gzip.compress(body, compresslevel=5, mtime=0)


def truncate_record(encoded: bytes, limit: int) -> bytes:
    """Shrink one encoded record under ``limit`` bytes, replacing its input and output with truncation markers.

    The markers keep the original size and the first characters of what was cut; the record keeps its id,
    name, status, times, tags and metadata (only the essential metadata if even that is too large).
    """
    try:
        record = json.loads(encoded)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return encoded
    original = len(encoded)
    for field in ("input", "output"):
        value = record.get(field)
        text = dumps(value) if value is not None else ""
        marker: dict[str, Any] = {"truncated": True, "original_bytes": original, "preview": text[:PREVIEW_CHARS]}
        if field == "output" and isinstance(value, dict) and "error" in value:
            marker["error"] = str(value["error"])[:PREVIEW_CHARS]
            marker["error_type"] = str(value.get("error_type", "Error"))[:200]
        record[field] = marker
    metadata = record.get("metadata")
    if isinstance(metadata, dict):
        metadata["truncated"] = True
    shrunk = dumps(record).encode("utf-8", "replace")
    if len(shrunk) > limit:
        for field in ("input", "output"):
            record[field].pop("preview", None)
        if isinstance(metadata, dict):
            record["metadata"] = {k: metadata[k] for k in _ESSENTIAL_METADATA if k in metadata}
            record["metadata"]["truncated"] = True
        if isinstance(record.get("name"), str):
            record["name"] = record["name"][:200]
        record.pop("tags", None)
        shrunk = dumps(record).encode("utf-8", "replace")
    return shrunk


def split_by_bytes(records: list[bytes], limit: int) -> list[list[bytes]]:
    """Pack encoded records, in order, into groups whose request body stays within ``limit`` bytes.

    The bound is on the JSON with room for gzip's worst case (incompressible data grows by ~0.03 %), so the
    compressed body is within ``limit`` too.
    """
    room = max(limit - _ENVELOPE - limit // 1024 - 64, 1)
    groups: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if len(record) > room:
            record = truncate_record(record, room)
        extra = len(record) + (1 if current else 0)
        if current and size + extra > room:
            groups.append(current)
            current, size, extra = [], 0, len(record)
        current.append(record)
        size += extra
    if current:
        groups.append(current)
    return groups
