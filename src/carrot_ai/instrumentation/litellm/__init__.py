"""carrot-ai for ``litellm``: ``carrot_ai.patch_litellm()`` and ``LiteLLMInstrumentor``.

Importing this package imports neither ``litellm`` nor ``opentelemetry-instrumentation`` (``LiteLLMInstrumentor`` is
loaded on first access).
"""

from __future__ import annotations

from typing import Any

from carrot_ai.instrumentation.litellm._patch import patch_litellm

__all__ = ["LiteLLMInstrumentor", "patch_litellm"]


def __getattr__(name: str) -> Any:
    if name == "LiteLLMInstrumentor":
        from carrot_ai.instrumentation.litellm._instrumentor import LiteLLMInstrumentor

        return LiteLLMInstrumentor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
