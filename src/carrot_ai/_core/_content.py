"""The content policy: whether prompt and response text is captured, and how it is cleaned first.

Applied in the core, before a value reaches a span attribute, so every path (wrappers, instrumentors, ``@trace``,
manual capture) obeys it the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from carrot_ai._context import current_scope
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
    return _policy.capture and not current_scope().metadata_only


def prepare(value: Any) -> Any:
    """Return ``value`` as JSON-safe data, truncated and redacted per the policy; never raises."""
    data = to_jsonable(value, max_string=_policy.max_string)
    redactor = _policy.redactor
    if redactor is not None:
        data = redactor(data)
    return data


def _make_fast_encoder() -> Any:
    """A compact, strict JSON encoder built once (``json.dumps`` with options builds a new one per call)."""
    from json import encoder

    def refuse(value: Any) -> Any:
        raise TypeError(type(value).__name__)

    make_encoder = getattr(encoder, "c_make_encoder", None)
    if make_encoder is None:  # no C accelerator (e.g. PyPy)
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    # No cycle markers: a cycle ends in RecursionError, which sends the value down the full path.
    chunks = make_encoder(None, refuse, encoder.encode_basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(chunks(value, 0))


_fast_encoder = _make_fast_encoder()


def prepare_json(value: Any) -> str:
    """:func:`prepare`, then encode as compact JSON."""
    if _policy.redactor is None:
        # Fast path for plain JSON data: if the whole text fits the string limit, no string in it needs cutting.
        # Anything json cannot encode as is (objects, nan, cycles) takes the full path.
        try:
            text: str = _fast_encoder(value)
        except (TypeError, ValueError, RecursionError):
            pass
        else:
            if len(text) <= _policy.max_string:
                return text
    return dumps(prepare(value))
