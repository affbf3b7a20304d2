"""``carrot_ai.context(...)``: user, session, metadata and tags for every record created inside a block.

The scope lives in a ``contextvars.ContextVar``: asyncio tasks inherit it, and so do threads once thread
propagation is installed (``init()`` installs it). Nested scopes merge, the inner one winning.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core._serialize import dumps, to_jsonable


class Scope:
    """What a ``context()`` block adds to records: immutable, merged from the outside in."""

    __slots__ = ("user_id", "session_id", "metadata", "tags", "metadata_only")

    def __init__(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        metadata_only: bool = False,
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.metadata: Mapping[str, Any] = metadata or {}
        self.tags: tuple[str, ...] = tuple(tags)
        self.metadata_only = metadata_only

    def merged(
        self,
        user_id: str | None,
        session_id: str | None,
        metadata: Mapping[str, Any] | None,
        tags: Sequence[str] | None,
        metadata_only: bool | None,
    ) -> Scope:
        merged_tags = self.tags + tuple(t for t in (tags or ()) if t not in self.tags)
        return Scope(
            user_id if user_id is not None else self.user_id,
            session_id if session_id is not None else self.session_id,
            {**self.metadata, **metadata} if metadata else self.metadata,
            merged_tags,
            self.metadata_only if metadata_only is None else metadata_only,
        )


_EMPTY = Scope()
_scope: contextvars.ContextVar[Scope] = contextvars.ContextVar("carrot_ai.scope", default=_EMPTY)


def current_scope() -> Scope:
    """Return the scope in force here."""
    return _scope.get()


@contextlib.contextmanager
def context(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    metadata_only: bool | None = None,
) -> Iterator[None]:
    """Attach user, session, metadata and tags to every record created inside the block.

    ``metadata_only=True`` records metadata, token counts and cost only (no prompt or response text) for the
    calls made inside the block.
    """
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise ValueError("tags must be a list of strings")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError("metadata must be a mapping")
    token = _scope.set(_scope.get().merged(user_id, session_id, metadata, tags, metadata_only))
    try:
        yield
    finally:
        _scope.reset(token)


def scope_attributes(
    attributes: dict[str, AttributeValue],
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Add the scope's and the call site's tags and metadata to span ``attributes``, in place."""
    scope = _scope.get()
    if scope is _EMPTY and not tags and not metadata:
        return
    if scope.user_id is not None:
        attributes[semconv.CARROT_USER_ID] = str(scope.user_id)
    if scope.session_id is not None:
        attributes[semconv.CARROT_SESSION_ID] = str(scope.session_id)
        attributes[semconv.GEN_AI_CONVERSATION_ID] = str(scope.session_id)
    all_tags = scope.tags + tuple(t for t in (tags or ()) if t not in scope.tags)
    if all_tags:
        attributes[semconv.CARROT_TAGS] = tuple(str(t) for t in all_tags)
    merged = {**scope.metadata, **metadata} if metadata else scope.metadata
    if merged:
        attributes[semconv.CARROT_METADATA] = dumps(to_jsonable(merged))
