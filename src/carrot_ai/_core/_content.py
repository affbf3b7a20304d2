"""The content policy: whether prompt and response text is captured, and how it is cleaned first.

Applied in the core, before a value reaches a span attribute, so every path (wrappers, instrumentors, ``@trace``,
manual capture) obeys it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carrot_ai._core._serialize import DEFAULT_MAX_STRING, dumps, to_jsonable


class ContentPolicy:
    """Capture on or off, the string limit, and an optional redactor applied to every captured string."""

    __slots__ = ("capture", "max_string", "redactor")

    def __init__(
        self,
        capture: bool = True,
        max_string: int = DEFAULT_MAX_STRING,
        redactor: Callable[[Any], Any] | None = None,
    ) -> None:
        self.capture = capture
        self.max_string = max_string
        self.redactor = redactor


_policy = ContentPolicy()


def set_policy(policy: ContentPolicy) -> None:
    """Install the policy ``init()`` resolved."""
    global _policy
    _policy = policy


def policy() -> ContentPolicy:
    """Return the policy in force."""
    return _policy


def capture_enabled() -> bool:
    """Whether content may be captured here (the global switch and a ``metadata_only`` scope)."""
    if not _policy.capture:
        return False
    from carrot_ai._context import current_scope

    return not current_scope().metadata_only


def prepare(value: Any) -> Any:
    """Return ``value`` as JSON-safe data, truncated and redacted per the policy; never raises."""
    data = to_jsonable(value, max_string=_policy.max_string)
    redactor = _policy.redactor
    if redactor is not None:
        data = redactor(data)
    return data


def prepare_json(value: Any) -> str:
    """:func:`prepare`, then encode as compact JSON."""
    return dumps(prepare(value))
