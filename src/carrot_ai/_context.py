"""``carrot_ai.context(...)``: user, session, metadata and tags for every record created inside a block.

The scope lives in a ``contextvars.ContextVar``: asyncio tasks inherit it, and so do threads once thread
propagation is installed (``init()`` installs it). Nested scopes merge, the inner one winning.

Also here: ``carrot_ai.tool_call_id(id)``, which names the tool call that the tool execution traced directly
inside the block answers; and carrot-ai 0.2.1's ``current_trace_id``, read-only.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core import _content


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

    Applies to everything traced inside the block: wrapped LLM calls, ``@trace`` / ``@tool`` functions and manual
    capture, in this thread, in asyncio tasks created inside it and in threads started or thread-pool work
    submitted from it. Nested blocks merge with the outer ones: the inner ``user_id`` / ``session_id`` win,
    ``metadata`` is merged key by key (inner wins) and ``tags`` are added. The session id is also exported as
    the GenAI ``gen_ai.conversation.id`` span attribute.

    ``metadata_only=True`` records metadata, token counts and cost only (no prompt, response, argument or
    result text) for the calls that start inside the block.

    When redaction is on, ``user_id``, ``session_id``, ``tags`` and ``metadata`` values are masked like any
    captured string (use opaque ids if you need them with redaction on).
    Raises ``ValueError`` for a value of the wrong type.
    """
    for field, value in (("user_id", user_id), ("session_id", session_id)):
        if value is not None and (not isinstance(value, str | int) or isinstance(value, bool)):
            raise ValueError(f"{field} must be a string, not {type(value).__name__}")
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise ValueError("tags must be a list of strings")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError("metadata must be a mapping")
    if metadata_only is not None and not isinstance(metadata_only, bool):
        raise ValueError("metadata_only must be True or False")
    user_id = str(user_id) if user_id is not None else None
    session_id = str(session_id) if session_id is not None else None
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
        attributes[semconv.CARROT_USER_ID] = _content.prepare_text(scope.user_id)
    if scope.session_id is not None:
        session_id = _content.prepare_text(scope.session_id)
        attributes[semconv.CARROT_SESSION_ID] = session_id
        attributes[semconv.GEN_AI_CONVERSATION_ID] = session_id
    all_tags = scope.tags + tuple(t for t in (tags or ()) if t not in scope.tags)
    if all_tags:
        redacting = _content.redaction_enabled()
        attributes[semconv.CARROT_TAGS] = tuple(_content.prepare_text(t) if redacting else str(t) for t in all_tags)
    merged = {**scope.metadata, **metadata} if metadata else scope.metadata
    if merged:
        # Secret-named keys are masked as in a function's input: metadata may hold a request's headers.
        attributes[semconv.CARROT_METADATA] = _content.prepare_json(dict(merged), mask_secrets=True)


_tool_call: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("carrot_ai.tool_call", default=None)


def _current_span_id() -> int:
    context = trace.get_current_span().get_span_context()
    return context.span_id if context.is_valid else 0


@contextlib.contextmanager
def tool_call_id(call_id: str) -> Iterator[None]:
    """Name the tool call (``tool_calls[i].id`` of the model's response) that the tool run inside the block answers.

    The ``@carrot_ai.tool`` (or ``@trace(kind="tool")``) execution traced *directly* inside the block records it
    as ``gen_ai.tool.call.id`` / ``metadata.tool_call_id``; tools that run nested inside that tool do not inherit
    it. A tool function with a parameter named ``tool_call_id`` needs no block: that argument is used.

    >>> for call in response.choices[0].message.tool_calls:
    ...     with carrot_ai.tool_call_id(call.id):
    ...         result = get_weather(**json.loads(call.function.arguments))
    """
    if not isinstance(call_id, str) or not call_id:
        raise ValueError("call_id must be a non-empty string")
    token = _tool_call.set((call_id, _current_span_id()))
    try:
        yield
    finally:
        _tool_call.reset(token)


def pending_tool_call_id() -> str | None:
    """The call id a tool span starting here answers: set by :func:`tool_call_id` in the current span, else None."""
    pending = _tool_call.get()
    if pending is None:
        return None
    call_id, span_id = pending
    return call_id if span_id == _current_span_id() else None


class _CurrentTraceId:
    """carrot-ai 0.2.1's ``carrot_ai._context.current_trace_id``, for reading: ``get()`` is the id of the record that a
    record started here names as its ``parent_trace_id`` (the enclosing ``@trace`` function's), else ``default``.

    0.2.1's was a ``ContextVar`` one could also ``set()``; here the parent is the enclosing span, so there is no
    ``set()``.
    """

    __slots__ = ()

    def get(self, default: str | None = None) -> str | None:
        """Return the record id of the enclosing exported record, or ``default`` outside one. Never raises."""
        try:
            from carrot_ai._core._tracing import current_context, parent_attribute
            from carrot_ai.export._convert import record_id

            here = current_context()
            span_context = trace.get_current_span(here).get_span_context()
            if not span_context.is_valid:
                return default
            exported = parent_attribute(here)  # None: the current span is the exported parent itself
            span_id = span_context.span_id if exported is None else int(exported or "0", 16)
            return record_id(span_context.trace_id, span_id) if span_id else default
        except Exception as exc:
            from carrot_ai._core._guard import report_internal_error

            report_internal_error("current_trace_id.get", exc)
            return default

    def __repr__(self) -> str:
        return "carrot_ai._context.current_trace_id"


current_trace_id = _CurrentTraceId()
