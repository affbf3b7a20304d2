"""``LiteLLMInstrumentor``: record every ``litellm`` completion and embedding call.

An OpenTelemetry ``BaseInstrumentor`` (entry point ``carrot_litellm``): ``instrument()`` wraps ``litellm.completion``,
``acompletion``, ``embedding`` and ``aembedding`` and the same methods of ``litellm.Router`` with wrapt;
``uninstrument()`` removes exactly those wrappers.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from carrot_ai.instrumentation._common import CallOptions
from carrot_ai.instrumentation.litellm._patch import patch, unpatch

SUPPORTED = "litellm >= 1.50"

logger = logging.getLogger("carrot_ai")


class LiteLLMInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument ``litellm.completion`` / ``acompletion`` / ``embedding`` / ``aembedding`` for carrot-ai."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return (SUPPORTED,)

    def _instrument(self, **kwargs: Any) -> None:
        # opentelemetry-instrument may skip the dependency check: without litellm, do nothing and say nothing.
        conflict = get_dependency_conflicts(self.instrumentation_dependencies())
        if conflict is not None:
            logger.debug("carrot_ai: litellm instrumentation skipped: %s", conflict)
            return
        patch(CallOptions())

    def _uninstrument(self, **kwargs: Any) -> None:
        unpatch()
