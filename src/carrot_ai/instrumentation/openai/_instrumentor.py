"""``OpenAIInstrumentor``: record every model call of every openai client in the process.

An OpenTelemetry ``BaseInstrumentor`` (entry point ``carrot_openai``): ``OpenAIInstrumentor().instrument()``
patches ``create`` / ``parse`` of the chat completions, Responses, embeddings and legacy completions resources,
sync and async, with wrapt; ``uninstrument()`` removes exactly those patches (another instrumentation's wrappers
stay). It can be used together with ``carrot_ai.wrap()`` or another OpenAI instrumentation: a call both see is
recorded once.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from carrot_ai.instrumentation._common import BODY_HOOKS, body_hook_targets, patch_targets, unpatch_targets
from carrot_ai.instrumentation.openai._calls import (
    ALL_WRAPPERS,
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
    WRAPPERS,
    observe_stream_helpers,
)

SUPPORTED = "openai >= 1.92"

# (module, sync class, async class, methods, endpoint)
_TARGETS: tuple[tuple[str, str, str, tuple[str, ...], Any], ...] = (
    ("openai.resources.chat.completions", "Completions", "AsyncCompletions", ("create", "parse"), CHAT),
    ("openai.resources.responses", "Responses", "AsyncResponses", ("create", "parse"), RESPONSES),
    ("openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", ("create",), EMBEDDINGS),
    ("openai.resources.completions", "Completions", "AsyncCompletions", ("create",), COMPLETIONS),
    ("openai.resources.beta.responses", "Responses", "AsyncResponses", ("create", "parse"), RESPONSES),
)


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument the ``openai`` SDK for carrot-ai (chat completions, Responses, embeddings, completions)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return (SUPPORTED,)

    def _instrument(self, **kwargs: Any) -> None:
        patch_targets(_targets())
        observe_stream_helpers()

    def _uninstrument(self, **kwargs: Any) -> None:
        unpatch_targets(_targets(), ALL_WRAPPERS | BODY_HOOKS)


def _targets() -> list[tuple[str, str, str, Any]]:
    """The (module, class, method, wrapper) patches this openai version has."""
    # The clients' response processing, where the body of a call's response is kept for the export worker.
    found = body_hook_targets("openai")
    for module_name, sync_class, async_class, methods, endpoint in _TARGETS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for class_name, wrapper in zip((sync_class, async_class), WRAPPERS[endpoint], strict=True):
            cls = getattr(module, class_name, None)
            for method in methods:
                if cls is not None and callable(getattr(cls, method, None)):
                    found.append((module_name, class_name, method, wrapper))
    return found
