"""``AnthropicInstrumentor``: record every Messages call of every anthropic client in the process.

An OpenTelemetry ``BaseInstrumentor`` (entry point ``carrot_anthropic``): ``AnthropicInstrumentor().instrument()``
patches ``create`` / ``parse`` / ``stream`` of the stable and beta ``Messages`` resources, sync and async, with
wrapt; ``uninstrument()`` removes exactly those patches. It can be used together with ``carrot_ai.wrap()``: a call
both see is recorded once.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from carrot_ai.instrumentation._common import BODY_HOOKS, body_hook_targets, patch_targets, unpatch_targets
from carrot_ai.instrumentation.anthropic._calls import create_async, create_sync, stream_helper
from carrot_ai.instrumentation.anthropic._native import install_native_span_guard

SUPPORTED = "anthropic >= 0.43"

_MODULES = ("anthropic.resources.messages", "anthropic.resources.beta.messages")
_TARGETS: tuple[tuple[str, str, Any], ...] = (
    ("Messages", "create", create_sync),
    ("Messages", "parse", create_sync),
    ("Messages", "stream", stream_helper),
    ("AsyncMessages", "create", create_async),
    ("AsyncMessages", "parse", create_async),
    ("AsyncMessages", "stream", stream_helper),
)


_WRAPPERS = frozenset(wrapper for _, _, wrapper in _TARGETS)


class AnthropicInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument the ``anthropic`` SDK's Messages API for carrot-ai (sync, async, streaming, beta)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return (SUPPORTED,)

    def _instrument(self, **kwargs: Any) -> None:
        install_native_span_guard()
        patch_targets(_targets())

    def _uninstrument(self, **kwargs: Any) -> None:
        unpatch_targets(_targets(), _WRAPPERS | BODY_HOOKS)


def _targets() -> list[tuple[str, str, str, Any]]:
    """The (module, class, method, wrapper) patches this anthropic version has."""
    # The clients' response processing, where the body of a call's response is kept for the export worker.
    found = body_hook_targets("anthropic")
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for class_name, method, wrapper in _TARGETS:
            cls = getattr(module, class_name, None)
            if cls is not None and callable(getattr(cls, method, None)):
                found.append((module_name, class_name, method, wrapper))
    return found
