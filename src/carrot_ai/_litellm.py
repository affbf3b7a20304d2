"""carrot-ai 0.2.1's module of :func:`~carrot_ai.patch_litellm`, for programs that import it from there."""

from __future__ import annotations

from carrot_ai.instrumentation.litellm import patch_litellm

__all__ = ["patch_litellm"]
