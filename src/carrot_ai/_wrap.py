"""``carrot_ai.wrap(client)``: instrument one OpenAI or Anthropic client instance."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TypeVar

from carrot_ai._core._tags import checked_tags

T = TypeVar("T")


class UnsupportedClientError(TypeError, ValueError):
    """``wrap()`` of an object that is not a supported client: a ``TypeError``, and a ``ValueError`` as carrot-ai 0.2.1
    raised (a program catching either keeps working)."""


# Top-level module of the client's class -> the instrumentation package that wraps it.
_ADAPTERS = {
    "openai": "carrot_ai.instrumentation.openai",
    "anthropic": "carrot_ai.instrumentation.anthropic",
}


def wrap(client: T, *, name: str | None = None, tags: Sequence[str] | None = None) -> T:
    """Instrument ``client`` (OpenAI, AsyncOpenAI, Anthropic, AsyncAnthropic) and return it.

    The client keeps its type and behaviour; every call is recorded as a trace. ``name`` replaces the record name
    (by default the resource: ``chat.completions``, ``responses``, ``messages``, ...); ``tags`` go on every record.
    Clients derived with ``with_options()`` / ``copy()`` are instrumented too. Raises ``TypeError`` (also a
    ``ValueError``, as carrot-ai 0.2.1 raised) for an object that is not a supported client.
    """
    tags = checked_tags(tags, TypeError)
    # The SDK a client's class (or the SDK class it derives from: a subclass of the application's) comes from.
    adapter = next(
        (
            _ADAPTERS[module]
            for kind in type(client).__mro__
            if (module := (getattr(kind, "__module__", "") or "").split(".", 1)[0]) in _ADAPTERS
        ),
        None,
    )
    if adapter is None:
        raise UnsupportedClientError(
            f"carrot_ai.wrap() supports OpenAI, AsyncOpenAI, Anthropic and AsyncAnthropic clients, "
            f"not {type(client).__module__}.{type(client).__qualname__}"
        )
    wrapped: T = importlib.import_module(adapter).wrap_client(client, name=name, tags=tuple(tags or ()))
    return wrapped
