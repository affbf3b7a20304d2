"""carrot-ai 0.2.1's module of :class:`~carrot_ai.CarrotClient`, for programs that import it from there."""

from __future__ import annotations

from carrot_ai._compat import CarrotClient

__all__ = ["CarrotClient"]
