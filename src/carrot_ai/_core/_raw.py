"""Raw responses, for every provider: ``<resource>.with_raw_response.create(...)`` / ``with_streaming_response``.

The user gets the SDK's own ``APIResponse`` object back, unchanged in type. When its body is already read (the
``with_raw_response`` of a non-streamed request) the call ends at once, from the decoded body. Otherwise the
response's ``parse()`` and ``close()`` are observed on that one instance: ``parse()`` giving a response model ends the
call with it; giving a stream hands back the same stream proxy as ``create(stream=True)`` (cached, so a second
``parse()`` returns the same object); ``close()`` (the ``with`` block's exit) ends the call with the body if it was
read (``.read()``, ``.json()``, ``.text()``) and without output otherwise (``iter_lines()`` and friends). A response
that is dropped without any of this ends the call when it is garbage-collected; a stream parsed from it lives on
without it, and ends the call itself.

A provider adapter describes itself with a :class:`RawAdapter`: how a decoded body or parsed model becomes
attributes and output, its SDK's stream classes, its stream state, and its request-id header.
"""

from __future__ import annotations

import functools
import inspect
import json
import weakref
from typing import Any, Protocol

from carrot_ai import semconv
from carrot_ai._core._guard import guard
from carrot_ai._core._llm import LLMCall
from carrot_ai._core._stream import AsyncStreamProxy, StreamState, SyncStreamProxy


class RawAdapter(Protocol):
    """What the raw-response tracking needs to know of one provider's call."""

    label: str  # for internal error reports: "openai", "anthropic"
    request_id_header: str

    def result(self, call: LLMCall, body: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Attributes and the record's output from a decoded JSON body or a parsed response model."""

    def stream_types(self) -> tuple[type[Any], type[Any]]:
        """The SDK's sync and async stream classes."""

    def stream_state(self, call: LLMCall, stream: Any) -> StreamState:
        """The state of a proxied stream of this call."""


def track_raw_response(adapter: RawAdapter, call: LLMCall, response: Any) -> Any:
    """End ``call`` now if the body is known, else when ``response`` is parsed, closed or dropped. Returns it."""
    http = getattr(response, "http_response", None)
    if not getattr(response, "_is_sse_stream", False) and not _is_event_stream(http):
        body = _decoded_body(http)
        if body is not None:
            _stop_with_body(adapter, call, http, body)
            return response
    tracker = _RawTracker(adapter, call)
    _observe(type(response))
    vars(response)[_TRACKER] = tracker
    weakref.finalize(response, tracker.abandoned)
    return response


# Where a tracked response keeps its tracker. Its class's parse() and close() look for it there: observed on the class
# (once per class), not by functions on the instance, which would have to hold the instance (a cycle: it would
# outlive its last reference until a collection) or a weak reference to it (gone in ``raw.parse()`` on a temporary:
# the instance is released before the call; found in review).
_TRACKER = "_carrot_raw_tracker"
_OBSERVED: set[type] = set()


def _observe(kind: type) -> None:
    """Have ``kind``'s ``parse()`` and ``close()`` tell a tracked instance's tracker what they did (once per class;
    an instance without a tracker runs them as before)."""
    if kind in _OBSERVED:
        return
    _OBSERVED.add(kind)
    for name, observe in (("parse", _observe_parse), ("close", _observe_close)):
        method = getattr(kind, name, None)
        if method is not None and not hasattr(method, _TRACKER):  # (not a base class's, observed already)
            observed = observe(method)
            setattr(observed, _TRACKER, True)
            setattr(kind, name, observed)


def _tracker_of(response: Any) -> _RawTracker | None:
    return getattr(response, "__dict__", {}).get(_TRACKER)


class _RawTracker:
    __slots__ = ("adapter", "call", "state", "proxy", "__weakref__")

    def __init__(self, adapter: RawAdapter, call: LLMCall) -> None:
        self.adapter = adapter
        self.call = call
        self.state: Any = None
        self.proxy: Any = None

    def parsed(self, result: Any) -> Any:
        with guard(f"{self.adapter.label} raw parse"):
            if self.proxy is not None:
                # The SDK caches what it parsed, per type asked for: the same stream again is our proxy; a stream of
                # another type (``parse(to=...)``) is the caller's, as without carrot.
                return self.proxy if result is self.proxy.__wrapped__ else result
            if self.call.span.ended:
                return result
            stream_type, async_stream_type = self.adapter.stream_types()
            if isinstance(result, stream_type | async_stream_type):
                self.state = self.adapter.stream_state(self.call, result)
                proxy_type = SyncStreamProxy if isinstance(result, stream_type) else AsyncStreamProxy
                self.proxy = proxy_type(result, self.state)
                return self.proxy
            attributes, output = self.adapter.result(self.call, result)
            self.call.stop(attributes, output)
        return result

    def closed(self, response: Any) -> None:
        with guard(f"{self.adapter.label} raw close"):
            if self.state is not None:
                self.state.finish()
            elif not self.call.span.ended:
                http = getattr(response, "http_response", None)
                body = None if _is_event_stream(http) else _decoded_body(http)
                if body is not None:
                    _stop_with_body(self.adapter, self.call, http, body)
                else:
                    self.call.stop(_headers_attributes(self.adapter, http), None)

    def abandoned(self) -> None:
        """The response is gone, never parsed nor closed: the call ends without output. A stream parsed from it lives
        on without it (the SDK's stream holds none of it): its proxy ends the call (read, closed or dropped)."""
        with guard(f"{self.adapter.label} raw abandoned"):
            if self.state is None and not self.call.span.ended:
                self.call.stop({}, None)


def _observe_parse(parse: Any) -> Any:
    if inspect.iscoroutinefunction(parse):

        @functools.wraps(parse)
        async def async_parse(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = await parse(self, *args, **kwargs)
            tracker = _tracker_of(self)
            return result if tracker is None else tracker.parsed(result)

        return async_parse

    @functools.wraps(parse)
    def sync_parse(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = parse(self, *args, **kwargs)
        tracker = _tracker_of(self)
        return result if tracker is None else tracker.parsed(result)

    return sync_parse


def _observe_close(close: Any) -> Any:
    if inspect.iscoroutinefunction(close):

        @functools.wraps(close)
        async def async_close(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await close(self, *args, **kwargs)
            finally:
                tracker = _tracker_of(self)
                if tracker is not None:
                    tracker.closed(self)

        return async_close

    @functools.wraps(close)
    def sync_close(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return close(self, *args, **kwargs)
        finally:
            tracker = _tracker_of(self)
            if tracker is not None:
                tracker.closed(self)

    return sync_close


def _is_event_stream(http: Any) -> bool:
    headers = getattr(http, "headers", None)
    if headers is None:
        return False
    return "text/event-stream" in str(headers.get("content-type", ""))


def _decoded_body(http: Any) -> Any:
    if http is None:
        return None
    try:
        content = http.content  # raises while the body is unread
    except Exception:
        return None
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


def _headers_attributes(adapter: RawAdapter, http: Any) -> dict[str, Any]:
    headers = getattr(http, "headers", None)
    request_id = headers.get(adapter.request_id_header) if headers is not None else None
    return {semconv.CARROT_REQUEST_ID: request_id} if isinstance(request_id, str) and request_id else {}


def _stop_with_body(adapter: RawAdapter, call: LLMCall, http: Any, body: Any) -> None:
    attributes, output = adapter.result(call, body)
    attributes.update(_headers_attributes(adapter, http))
    call.stop(attributes, output)
