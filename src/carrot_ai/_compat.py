"""What the reference SDK (carrot-ai 0.2.x) exposed beyond the documented API: ``get_client()``."""

from __future__ import annotations

import uuid
from typing import Any

from carrot_ai import _setup


class CarrotClient:
    """The 0.2 client facade: ``submit(trace)`` queues a ready-made record, ``flush()`` and ``shutdown()``."""

    def submit(self, trace: dict[str, Any]) -> None:
        """Queue one trace record dict for background delivery (an ``id`` is added if missing)."""
        exporter = _setup.current_exporter()
        if exporter is None:
            return
        record = dict(trace)
        record.setdefault("id", str(uuid.uuid4()))
        exporter.enqueue_record(record)

    def flush(self) -> None:
        """Deliver queued records now."""
        _setup.flush()

    def shutdown(self) -> None:
        """Deliver queued records and stop."""
        _setup.shutdown()


def get_client() -> CarrotClient:
    """Return the client facade, auto-initializing from ``CARROT_API_KEY`` if needed.

    Raises ``RuntimeError`` when ``init()`` was not called and ``CARROT_API_KEY`` is not set, as 0.2 did.
    """
    _setup.ensure_started()
    if _setup.current_exporter() is None:
        raise RuntimeError("carrot_ai.init() has not been called and CARROT_API_KEY is not set")
    return CarrotClient()
