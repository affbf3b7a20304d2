"""``carrot_ai.wrap(Anthropic())``: instrument one client instance, in place.

The client keeps its type (``wrap(client) is client``). Its ``messages`` and ``beta.messages`` resources get
instance attributes ``create`` / ``parse`` / ``stream`` that record each call; their cached
``with_raw_response`` / ``with_streaming_response`` are rebuilt so those go through the same methods. ``copy()``
and ``with_options()`` return clients that are wrapped the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, TypeVar

from carrot_ai._core._guard import guard
from carrot_ai._wrap import UnsupportedClientError
from carrot_ai.instrumentation._common import (
    OPTIONS_KEY,
    CallOptions,
    hook_process_response,
    resolve,
    wrap_derived_clients,
)
from carrot_ai.instrumentation.anthropic._calls import bind, create_async, create_sync, stream_helper
from carrot_ai.instrumentation.anthropic._native import install_native_span_guard

T = TypeVar("T")

_RESOURCES = (("messages",), ("beta", "messages"))


def wrap_client(client: T, *, name: str | None = None, tags: Sequence[str] = ()) -> T:
    """Instrument an ``Anthropic`` / ``AsyncAnthropic`` client (and the clients derived from it); return it."""
    if getattr(client, "messages", None) is None:
        raise UnsupportedClientError(
            f"carrot_ai.wrap(): {type(client).__qualname__} has no `messages` resource to instrument"
        )
    existing = client.__dict__.get(OPTIONS_KEY)
    if isinstance(existing, CallOptions):
        existing.name, existing.tags = name, tuple(tags)
        return client
    install_native_span_guard()
    _wrap_client(client, CallOptions(name, tags))
    return client


def _wrap_client(client: Any, options: CallOptions) -> None:
    client.__dict__[OPTIONS_KEY] = options
    hook_process_response(client)
    for path in _RESOURCES:
        with guard("anthropic wrap resource"):
            resource = resolve(client, path)
            if resource is not None:
                _wrap_resource(resource, options)
    wrap_derived_clients(client, options, _wrap_client)


def _wrap_resource(resource: Any, options: CallOptions) -> None:
    for method_name in ("create", "parse"):
        original = getattr(resource, method_name, None)
        if original is None or getattr(original, "_carrot_wrapped", False):
            continue
        function = getattr(type(resource), method_name, None)
        wrapper = create_async if _is_async(function) else create_sync
        resource.__dict__[method_name] = bind(wrapper, original, resource, options)
    original_stream = getattr(resource, "stream", None)
    if original_stream is not None and not getattr(original_stream, "_carrot_wrapped", False):
        resource.__dict__["stream"] = bind(stream_helper, original_stream, resource, options)
    # Built from `self.create` on first access: drop cached ones so they are rebuilt around ours.
    for cached in ("with_raw_response", "with_streaming_response"):
        resource.__dict__.pop(cached, None)


def _is_async(function: Any) -> bool:
    # The SDK's methods are decorated (`required_args`) and may be wrapt-wrapped by an instrumentor: unwrap all.
    try:
        return inspect.iscoroutinefunction(inspect.unwrap(function))
    except ValueError:
        return inspect.iscoroutinefunction(function)
