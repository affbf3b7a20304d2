"""The search query of ``GET /v1/traces`` and ``GET /v1/stats``: parsed from URL parameters, validated."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping, Sequence

from carrot_ai.server._timeutil import parse_timestamp_us

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
_EXACT_FILTERS = ("model", "provider", "status", "name", "user_id", "session_id", "kind")
_STATUSES = ("success", "error")
_KINDS = ("llm", "function", "tool")
ORDERS = ("started", "received")
# cursor=latest (order=received): no records, and a cursor after the newest one, to follow new arrivals only.
LATEST = "latest"
LATEST_POSITION = (-1,)


class QueryError(ValueError):
    """A search parameter is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclasses.dataclass(frozen=True)
class SearchQuery:
    """Filters, ordering and paging of a search. Every filter given must match (AND)."""

    model: str | None = None
    provider: str | None = None
    status: str | None = None
    name: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    kind: str | None = None
    tags: tuple[str, ...] = ()
    since_us: int | None = None
    until_us: int | None = None
    q: str | None = None
    root: bool = False
    limit: int = DEFAULT_LIMIT
    order: str = "started"
    cursor: tuple[int, ...] | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Sequence[str]], *, extra: Sequence[str] = ()) -> SearchQuery:
        """Build a query from parsed URL parameters; raise :class:`QueryError` naming the bad parameter."""
        allowed = {*_EXACT_FILTERS, "tag", "since", "until", "q", "root", "limit", "order", "cursor", *extra}
        for key in params:
            if key not in allowed:
                raise QueryError(key, f"unknown parameter (allowed: {', '.join(sorted(allowed))})")
        values: dict[str, object] = {}
        for key in _EXACT_FILTERS:
            value = _single(params, key)
            if value:
                values[key] = value
        if values.get("status") not in (None, *_STATUSES):
            raise QueryError("status", f"must be one of {', '.join(_STATUSES)}")
        if values.get("kind") not in (None, *_KINDS):
            raise QueryError("kind", f"must be one of {', '.join(_KINDS)}")
        values["tags"] = tuple(t for t in params.get("tag", ()) if t)
        for key in ("since", "until"):
            raw = _single(params, key)
            if raw:
                try:
                    values[f"{key}_us"] = parse_timestamp_us(raw)
                except ValueError as exc:
                    raise QueryError(key, f"not an ISO 8601 time or epoch seconds ({exc})") from None
        q = _single(params, "q")
        if q and q.strip():
            values["q"] = q.strip()
        root = _single(params, "root")
        if root:
            if root.lower() not in ("true", "false", "1", "0"):
                raise QueryError("root", "must be true or false")
            values["root"] = root.lower() in ("true", "1")
        limit = _single(params, "limit")
        if limit:
            try:
                values["limit"] = int(limit)
            except ValueError:
                raise QueryError("limit", "must be an integer") from None
            if not 1 <= int(limit) <= MAX_LIMIT:
                raise QueryError("limit", f"must be between 1 and {MAX_LIMIT}")
        order = _single(params, "order") or "started"
        if order not in ORDERS:
            raise QueryError("order", f"must be one of {', '.join(ORDERS)}")
        values["order"] = order
        cursor = _single(params, "cursor")
        if cursor == LATEST:
            if order != "received":
                raise QueryError("cursor", "cursor=latest needs order=received")
            values["cursor"] = LATEST_POSITION
        elif cursor:
            values["cursor"] = decode_cursor(cursor, order)
        return cls(**values)  # type: ignore[arg-type]


def _single(params: Mapping[str, Sequence[str]], key: str) -> str | None:
    found = params.get(key)
    if not found:
        return None
    if len(found) > 1:
        raise QueryError(key, "given more than once")
    return found[0]


def encode_cursor(order: str, position: tuple[int, ...]) -> str:
    """An opaque cursor for the page after ``position`` (the sort key of the last record returned)."""
    text = order + ":" + ":".join(str(p) for p in position)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, order: str) -> tuple[int, ...]:
    """Decode a cursor made by :func:`encode_cursor` for the same ``order``; raise :class:`QueryError` otherwise."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        kind, *parts = text.split(":")
        position = tuple(int(p) for p in parts)
    except ValueError:
        raise QueryError("cursor", "not a cursor returned by this server") from None
    if any(not -(2**63) <= p < 2**63 for p in position):  # beyond SQLite's integers: never one of ours
        raise QueryError("cursor", "not a cursor returned by this server")
    expected = 2 if order == "started" else 1
    if kind != order or len(position) != expected:
        raise QueryError("cursor", f"this cursor belongs to another ordering than order={order}")
    return position
