"""``carrot_ai.patch_litellm()``: install (and remove) our wrappers on the ``litellm`` module and ``litellm.Router``.

``patch_litellm(name=None, tags=None)`` is the reference SDK's name; :class:`LiteLLMInstrumentor` installs the same
wrappers. Calling it again replaces the name and tags. Code that imported a function before patching (``from litellm
import completion``) keeps the unpatched one.
"""

from __future__ import annotations

from collections.abc import Sequence

import wrapt

from carrot_ai import semconv
from carrot_ai._core._guard import report_internal_error
from carrot_ai._core._tags import checked_tags
from carrot_ai.instrumentation._common import CallOptions, wrapper_in_chain
from carrot_ai.instrumentation.litellm._calls import RouterWrapper, Wrapper

# (function, GenAI operation, async): on the litellm module, and the same methods of litellm.Router
_TARGETS = (
    ("completion", semconv.OP_CHAT, False),
    ("acompletion", semconv.OP_CHAT, True),
    ("embedding", semconv.OP_EMBEDDINGS, False),
    ("aembedding", semconv.OP_EMBEDDINGS, True),
)


def patch_litellm(name: str | None = None, tags: Sequence[str] | None = None) -> None:
    """Record every ``litellm.completion`` / ``acompletion`` / ``embedding`` / ``aembedding`` call as a trace, and
    every call of those ``litellm.Router`` methods as one trace, however many attempts it makes.

    ``name`` replaces the record name (by default ``chat.completions``, as carrot-ai 0.2.1's, ``litellm.embedding``,
    ...); ``tags`` go on every record. Calling it again replaces the name and tags. Raises ``ImportError`` when
    litellm is not installed and ``TypeError`` for tags that are not a list of strings.
    """
    tags = checked_tags(tags, TypeError)
    if name is not None and not isinstance(name, str):
        raise TypeError("name must be a string")
    import litellm  # noqa: F401  (the ImportError is the caller's answer)

    patch(CallOptions(name, tuple(tags or ())))


def patch(options: CallOptions) -> None:
    """Install our wrappers on the ``litellm`` module and ``litellm.Router``, or give the installed ones new options."""
    import litellm

    router = getattr(litellm, "Router", None)
    for function, operation, is_async in _TARGETS:
        _install(litellm, function, Wrapper(function, operation, is_async, options), f"litellm.{function}")
        if isinstance(router, type):
            wrapper = RouterWrapper(f"Router.{function}", operation, is_async, options)
            _install(router, function, wrapper, f"litellm.Router.{function}")


def _install(owner: object, function: str, wrapper: Wrapper, label: str) -> None:
    try:
        current = _own(owner, function)
        if current is None:
            return
        installed = _ours(current)
        if type(installed) is type(wrapper):
            # On top, or below another instrumentation's wrapper (left there, switched off, by unpatch()).
            installed.options = wrapper.options
            installed.active = True
            return
        wrapt.wrap_function_wrapper(owner, function, wrapper)
    except Exception as exc:
        report_internal_error(f"instrument {label}", exc)


def unpatch() -> None:
    """Remove exactly our wrappers from the ``litellm`` module and ``litellm.Router``."""
    try:
        import litellm
    except ImportError:
        return
    router = getattr(litellm, "Router", None)
    for function, _, _ in _TARGETS:
        _remove(litellm, function)
        if isinstance(router, type):
            _remove(router, function)


def _remove(owner: object, function: str) -> None:
    current = _own(owner, function)
    ours = _ours(current)
    if ours is None:
        return
    ours.active = False  # (below another instrumentation's wrapper it stays in the chain, passing calls through)
    if getattr(current, "_self_wrapper", None) is ours:
        setattr(owner, function, current.__wrapped__)  # type: ignore[attr-defined]


def _own(owner: object, function: str) -> object:
    """``owner``'s ``function``: a class's own attribute (not an inherited one, nor the function bound to an
    instance), a module's attribute; None if it has none."""
    return vars(owner).get(function) if isinstance(owner, type) else getattr(owner, function, None)


def _ours(function: object) -> Wrapper | None:
    """Our wrapper in ``function``'s chain of wrappers (through other instrumentations'), or None."""
    link = wrapper_in_chain(function, lambda wrapper: isinstance(wrapper, Wrapper))
    return None if link is None else link._self_wrapper
