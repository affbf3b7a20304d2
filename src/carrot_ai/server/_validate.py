"""Validate incoming trace records against the package's JSON Schema, naming the offending field."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from carrot_ai.export import trace_record_schema
from carrot_ai.server._timeutil import parse_timestamp_us


@dataclasses.dataclass(frozen=True)
class RecordError:
    """Why one record of a batch was rejected. ``field`` is a dotted path (``metadata.input_tokens``)."""

    index: int
    id: str | None
    field: str
    error: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@functools.cache
def _validator() -> Any:
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - the server extra is missing
        raise ImportError("the carrot-ai local server needs its extra: pip install 'carrot-ai[server]'") from exc
    cls = jsonschema.Draft202012Validator
    return cls(trace_record_schema(), format_checker=cls.FORMAT_CHECKER)


def validate_record(record: Any, index: int = 0) -> RecordError | None:
    """Check one record against the trace record schema; return the first problem, or None if it is valid."""
    record_id = record.get("id") if isinstance(record, dict) and isinstance(record.get("id"), str) else None
    validator = _validator()
    errors = (
        []
        if validator.is_valid(record)
        else sorted(validator.iter_errors(record), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    )
    if errors:
        error = errors[0]
        return RecordError(index, record_id, _field_of(error), _shortened(error.message))
    # The schema's "date-time" format is only checked when optional packages are installed: check it here.
    for key in ("started_at", "ended_at"):
        try:
            parse_timestamp_us(record[key])
        except ValueError as exc:
            return RecordError(
                index, record_id, key, _shortened(f"{record[key]!r} is not an ISO 8601 date-time ({exc})")
            )
    return None


def _shortened(message: str, limit: int = 300) -> str:
    # A message quotes the offending value: a 10 MB string would come back in the answer, once per record.
    if len(message) <= limit:
        return message
    half = (limit - 5) // 2
    return f"{message[:half]} ... {message[-half:]}"


def _field_of(error: Any) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            return f"{path}.{missing[0]}" if path else str(missing[0])
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = [name for name in error.instance if name not in allowed]
        if extra:
            return f"{path}.{extra[0]}" if path else str(extra[0])
    return path or "(record)"
