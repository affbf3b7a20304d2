"""The per-call ``X-Carrot-Trace: metadata-only`` header: record one call without prompt or response text.

The shared helper ``carrot_ai._core._content.pop_trace_header`` (from the ``privacy`` work) is used when the core has
it; until then this module's equivalent follows the same contract:

* looks at ``kwargs["extra_headers"]``; the name matches case-insensitively, the value ``metadata-only`` case- and
  whitespace-insensitively;
* when found, ``kwargs["extra_headers"]`` is replaced by a *new* dict without it (the caller's dict is never
  changed), or removed when nothing else is left; returns True;
* any other value is left in place and sent on; returns False.

``kwargs`` is the wrapper's own dict of the call's keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from carrot_ai._core import _content

TRACE_HEADER = "x-carrot-trace"
METADATA_ONLY = "metadata-only"


def _pop_trace_header(kwargs: MutableMapping[str, Any]) -> bool:
    headers = kwargs.get("extra_headers")
    if not headers or not hasattr(headers, "items"):
        return False
    found = False
    kept: dict[Any, Any] = {}
    for name, value in headers.items():
        if (
            isinstance(name, str)
            and name.lower() == TRACE_HEADER
            and isinstance(value, str)
            and value.strip().lower() == METADATA_ONLY
        ):
            found = True
        else:
            kept[name] = value
    if not found:
        return False
    if kept:
        kwargs["extra_headers"] = kept
    else:
        del kwargs["extra_headers"]
    return True


pop_trace_header: Callable[[MutableMapping[str, Any]], bool] = getattr(_content, "pop_trace_header", _pop_trace_header)
