"""carrot-ai for the ``anthropic`` SDK: ``carrot_ai.wrap(Anthropic())`` and ``AnthropicInstrumentor``.

Importing this package does not import ``anthropic``; it is imported when a client is wrapped or the instrumentor
runs.
"""

from __future__ import annotations

from carrot_ai.instrumentation.anthropic._client import wrap_client
from carrot_ai.instrumentation.anthropic._instrumentor import AnthropicInstrumentor

__all__ = ["AnthropicInstrumentor", "wrap_client"]
