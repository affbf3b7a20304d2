"""The per-call ``X-Carrot-Trace`` header: ``extra_headers={"X-Carrot-Trace": "metadata-only"}``.

The header is ours: it is removed before the SDK sends the request. ``metadata-only`` records the call without
prompt or response text. A private stand-in for ``carrot_ai._core._content.pop_trace_header`` (coming on the
``privacy`` branch); switch to that once it lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRACE_HEADER = "x-carrot-trace"
METADATA_ONLY = "metadata-only"


def pop_trace_header(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return ``kwargs`` without our header (a copy only when it was there) and whether the call is metadata-only.

    The caller's own dicts are never modified.
    """
    headers = kwargs.get("extra_headers")
    if not isinstance(headers, Mapping) or not headers:
        return kwargs, False
    found: str | None = None
    for key in headers:
        if isinstance(key, str) and key.lower() == TRACE_HEADER:
            found = key
            break
    if found is None:
        return kwargs, False
    value = headers[found]
    remaining = {k: v for k, v in headers.items() if k != found}
    kwargs = {**kwargs, "extra_headers": remaining}
    return kwargs, isinstance(value, str) and value.strip().lower() == METADATA_ONLY
