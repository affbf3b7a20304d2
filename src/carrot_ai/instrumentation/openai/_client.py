"""``carrot_ai.wrap(OpenAI())``: instrument one client instance, in place.

The client keeps its type (``wrap(client) is client``). Its ``chat.completions``, ``responses``, ``embeddings`` and
``completions`` resources (and ``beta.chat.completions``, ``beta.responses``) get instance attributes ``create`` (and
``parse`` where the resource has it) that record each call; the ``stream()`` helpers send their request through that
``create``. Cached ``with_raw_response`` / ``with_streaming_response`` objects are dropped so they are rebuilt around
ours. ``copy()`` and ``with_options()`` return clients that are wrapped the same way.
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
from carrot_ai.instrumentation.openai._calls import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
    Endpoint,
    bind,
    observe_stream_helpers,
)

T = TypeVar("T")

_RESOURCES: tuple[tuple[tuple[str, ...], Endpoint], ...] = (
    (("chat", "completions"), CHAT),
    (("responses",), RESPONSES),
    (("embeddings",), EMBEDDINGS),
    (("completions",), COMPLETIONS),
    # Their beta twins: another instance of the chat completions class (``beta.chat.completions.parse``, the
    # structured-output call of older releases' guides), and openai 2.5x / 3.x's beta Responses resource.
    (("beta", "chat", "completions"), CHAT),
    (("beta", "responses"), RESPONSES),
)
# The objects whose cached ``with_raw_response`` / ``with_streaming_response`` are built from the resources above.
_HOLDERS: tuple[tuple[str, ...], ...] = ((), ("chat",), ("beta",), ("beta", "chat"))
_CACHED = ("with_raw_response", "with_streaming_response")


def wrap_client(client: T, *, name: str | None = None, tags: Sequence[str] = ()) -> T:
    """Instrument an ``OpenAI`` / ``AsyncOpenAI`` client (and the clients derived from it); return it."""
    if getattr(client, "chat", None) is None or getattr(client, "base_url", None) is None:
        raise UnsupportedClientError(
            f"carrot_ai.wrap(): {type(client).__qualname__} is not an OpenAI client (no `chat` resource)"
        )
    existing = client.__dict__.get(OPTIONS_KEY)
    if isinstance(existing, CallOptions):
        existing.name, existing.tags = name, tuple(tags)
        return client
    _wrap_client(client, CallOptions(name, tags))
    observe_stream_helpers()
    return client


def _wrap_client(client: Any, options: CallOptions) -> None:
    client.__dict__[OPTIONS_KEY] = options
    hook_process_response(client)
    for path, endpoint in _RESOURCES:
        with guard("openai wrap resource"):
            resource = resolve(client, path)
            if resource is not None:
                _wrap_resource(resource, endpoint, options)
    for path in _HOLDERS:
        holder = resolve(client, path)
        if holder is not None:
            for cached in _CACHED:
                vars(holder).pop(cached, None)
    wrap_derived_clients(client, options, _wrap_client)


def _wrap_resource(resource: Any, endpoint: Endpoint, options: CallOptions) -> None:
    for method_name in ("create", "parse"):
        original = getattr(resource, method_name, None)
        if original is None or getattr(original, "_carrot_wrapped", False):
            continue
        is_async = _is_async(getattr(type(resource), method_name, None))
        resource.__dict__[method_name] = bind(endpoint, is_async, original, resource, options)
    # Built from `self.create` on first access: drop cached ones so they are rebuilt around ours.
    for cached in _CACHED:
        resource.__dict__.pop(cached, None)


def _is_async(function: Any) -> bool:
    # The SDK's methods are decorated (`required_args`) and may be wrapt-wrapped by an instrumentor: unwrap all.
    try:
        return inspect.iscoroutinefunction(inspect.unwrap(function))
    except ValueError:
        return inspect.iscoroutinefunction(function)
