"""carrot-ai 0.2.1's module of :func:`~carrot_ai.trace`, for programs that import it from there."""

from __future__ import annotations

from carrot_ai._decorators import trace

__all__ = ["trace"]
