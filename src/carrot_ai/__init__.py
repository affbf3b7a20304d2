"""carrot-ai: LLM and pipeline tracing for OpenAI, Anthropic and LiteLLM, built on OpenTelemetry.

>>> import carrot_ai
>>> carrot_ai.init(api_key="sk-...")          # or just set CARROT_API_KEY
>>> client = carrot_ai.wrap(OpenAI())          # every call becomes a trace
>>> @carrot_ai.trace                           # a function becomes a parent trace
... def answer(question: str) -> str: ...
"""

from __future__ import annotations

from carrot_ai._capture import capture_events, capture_llm_call, capture_tool_call
from carrot_ai._compat import CarrotClient, get_client
from carrot_ai._context import context, tool_call_id
from carrot_ai._decorators import tool, trace
from carrot_ai._setup import flush, init, shutdown, stats
from carrot_ai._version import __version__
from carrot_ai._wrap import wrap
from carrot_ai.export import CarrotSpanExporter
from carrot_ai.instrumentation.litellm import patch_litellm

__all__ = [
    "CarrotClient",
    "CarrotSpanExporter",
    "__version__",
    "capture_events",
    "capture_llm_call",
    "capture_tool_call",
    "context",
    "flush",
    "get_client",
    "init",
    "patch_litellm",
    "shutdown",
    "stats",
    "tool",
    "tool_call_id",
    "trace",
    "wrap",
]
