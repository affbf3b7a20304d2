"""Differences between anthropic versions that the stream proxy has to bridge.

anthropic 0.x (up to at least 0.75) gives ``Stream`` / ``AsyncStream`` a metaclass whose ``__instancecheck__``
answers only for its legacy ``MessageStream`` (a compatibility shim), so ``isinstance(proxy, anthropic.Stream)``
would be False for our transparent proxy even though ``proxy.__class__`` is ``Stream``. The check is extended, once,
to say True for our proxies around a real stream; every other answer stays the SDK's own.
"""

from __future__ import annotations

import threading
from typing import Any

from carrot_ai._core._stream import AsyncStreamProxy, SyncStreamProxy

_lock = threading.Lock()
_done = False


def patch_stream_instancecheck() -> None:
    """Make ``isinstance(proxy, anthropic.Stream)`` hold on SDKs whose stream metaclass overrides it."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        try:
            from anthropic import _streaming
        except ImportError:
            return
        for name in ("_SyncStreamMeta", "_AsyncStreamMeta"):
            meta = getattr(_streaming, name, None)
            check = getattr(meta, "__instancecheck__", None) if meta is not None else None
            if check is None or getattr(check, "_carrot", False):
                continue

            def instancecheck(cls: Any, instance: Any, _original: Any = check) -> bool:
                if isinstance(instance, SyncStreamProxy | AsyncStreamProxy):
                    return isinstance(instance.__wrapped__, cls)
                return bool(_original(cls, instance))

            instancecheck._carrot = True  # type: ignore[attr-defined]
            meta.__instancecheck__ = instancecheck  # type: ignore[union-attr]
