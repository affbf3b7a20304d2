"""``carrot_ai.patch_litellm()``: install (and remove) our wrappers on the ``litellm`` module.

``patch_litellm(name=None, tags=None)`` is the reference SDK's name; :class:`LiteLLMInstrumentor` installs the same
wrappers. Calling it again replaces the name and tags. Code that imported a function before patching (``from litellm
import completion``) keeps the unpatched one.
"""

from __future__ import annotations

from collections.abc import Sequence

import wrapt

from carrot_ai import semconv
from carrot_ai._core._guard import report_internal_error
from carrot_ai.instrumentation._common import CallOptions
from carrot_ai.instrumentation.litellm._calls import Wrapper

# (function, GenAI operation, async)
_TARGETS = (
    ("completion", semconv.OP_CHAT, False),
    ("acompletion", semconv.OP_CHAT, True),
    ("embedding", semconv.OP_EMBEDDINGS, False),
    ("aembedding", semconv.OP_EMBEDDINGS, True),
)


def patch_litellm(name: str | None = None, tags: Sequence[str] | None = None) -> None:
    """Record every ``litellm.completion`` / ``acompletion`` / ``embedding`` / ``aembedding`` call as a trace.

    ``name`` replaces the record name (by default ``litellm.completion``, ``litellm.acompletion``, ...); ``tags`` go
    on every record. Calling it again replaces the name and tags. Raises ``ImportError`` when litellm is not
    installed and ``TypeError`` for tags that are not a list of strings.
    """
    if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
        raise TypeError("tags must be a list of strings")
    if name is not None and not isinstance(name, str):
        raise TypeError("name must be a string")
    import litellm  # noqa: F401  (the ImportError is the caller's answer)

    patch(CallOptions(name, tuple(tags or ())))


def patch(options: CallOptions) -> None:
    """Install our wrappers on the ``litellm`` module, or give the installed ones new options."""
    import litellm

    for function, operation, is_async in _TARGETS:
        try:
            current = getattr(litellm, function, None)
            if current is None:
                continue
            wrapper = getattr(current, "_self_wrapper", None)
            if isinstance(wrapper, Wrapper):
                wrapper.options = options
                continue
            wrapt.wrap_function_wrapper(litellm, function, Wrapper(function, operation, is_async, options))
        except Exception as exc:
            report_internal_error(f"instrument litellm.{function}", exc)


def unpatch() -> None:
    """Remove exactly our wrappers from the ``litellm`` module."""
    try:
        import litellm
    except ImportError:
        return
    for function, _, _ in _TARGETS:
        current = getattr(litellm, function, None)
        if isinstance(getattr(current, "_self_wrapper", None), Wrapper):
            setattr(litellm, function, current.__wrapped__)  # type: ignore[union-attr]
