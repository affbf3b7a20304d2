"""carrot-ai for the ``openai`` SDK: ``carrot_ai.wrap(OpenAI())`` and ``OpenAIInstrumentor``.

Importing this package does not import ``openai``; it is imported when a client is wrapped or the instrumentor
runs.
"""

from __future__ import annotations

from carrot_ai.instrumentation.openai._client import wrap_client
from carrot_ai.instrumentation.openai._instrumentor import OpenAIInstrumentor

__all__ = ["OpenAIInstrumentor", "wrap_client"]
