"""What the reference SDK (carrot-ai 0.2.x) exposed beyond the documented API: ``get_client()``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carrot_ai import _setup
from carrot_ai._core import _content
from carrot_ai.export._schema import complete_record


class CarrotClient:
    """The 0.2 client: ``submit(trace)`` queues a ready-made record, ``flush()`` and ``shutdown()``.

    ``CarrotClient()`` (what :func:`get_client` returns) sends through the exporter ``init()`` set up.
    ``CarrotClient(api_key, base_url, flush_interval, batch_size, max_queue)``, as 0.2 was built, is a client of its
    own with its own export queue and worker, sending to that ``base_url`` with that key, whatever ``init()`` did;
    ``max_queue`` (a number of records in 0.2) is accepted, and the queue is bounded in bytes (``max_queue_bytes``)
    as every carrot-ai queue is.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        flush_interval: float | None = None,
        batch_size: int | None = None,
        max_queue: int | None = None,
    ) -> None:
        self._exporter: Any = None
        given = (api_key, base_url, flush_interval, batch_size, max_queue)
        if any(value is not None for value in given):
            from carrot_ai.export._exporter import CarrotSpanExporter

            self._exporter = CarrotSpanExporter(api_key, base_url, flush_interval=flush_interval, batch_size=batch_size)

    def _target(self) -> Any:
        return self._exporter if self._exporter is not None else _setup.current_exporter()

    def submit(self, trace: dict[str, Any]) -> None:
        """Queue one trace record dict for background delivery.

        What a hand-written record may omit is filled in now, as the ingest API would on receipt: an ``id``, and
        ``ended_at`` / ``started_at`` (the time of this call, less ``metadata.latency_ms``); see
        :func:`carrot_ai.export._schema.complete_record`.
        """
        if not isinstance(trace, Mapping):
            raise TypeError(f"submit() takes a trace record dict, not {type(trace).__name__}")
        exporter = self._target()
        if exporter is None:
            return
        exporter.enqueue_record(complete_record(_obey_content_policy(dict(trace))))

    def flush(self) -> None:
        """Deliver queued records now."""
        if self._exporter is not None:
            self._exporter.force_flush()
        else:
            _setup.flush()

    def shutdown(self) -> None:
        """Deliver queued records and stop."""
        if self._exporter is not None:
            self._exporter.shutdown()
        else:
            _setup.shutdown()


def _obey_content_policy(record: dict[str, Any]) -> dict[str, Any]:
    """Withhold or clean a submitted record's input, output, metadata and tags as the content policy says."""
    captured = _content.capture_enabled()
    for field in ("input", "output"):
        if field not in record:
            continue  # (the schema rejects the record, as before)
        value = record[field]
        if not captured:
            kept = isinstance(value, Mapping) and field == "output"
            value = {key: value[key] for key in ("error", "error_type") if key in value} if kept else {}
        record[field] = _content.prepare(value)
    metadata = record.get("metadata")
    if isinstance(metadata, Mapping):
        record["metadata"] = metadata = _content.prepare(metadata, mask_secrets=True)
        if not captured and isinstance(metadata, dict):
            metadata["content_captured"] = False
    tags = record.get("tags")
    if _content.redaction_enabled() and isinstance(tags, list | tuple):
        record["tags"] = [_content.prepare_text(tag) if isinstance(tag, str) else tag for tag in tags]
    return record


def get_client() -> CarrotClient:
    """Return the client facade (always the same object), auto-initializing from ``CARROT_API_KEY`` if needed.

    Raises ``RuntimeError`` when ``init()`` was not called and ``CARROT_API_KEY`` is not set, as 0.2 did.
    """
    _setup.ensure_started()
    if _setup.current_exporter() is None:
        raise RuntimeError("carrot_ai.init() has not been called and CARROT_API_KEY is not set")
    return _CLIENT


# What get_client() returns, always the same object as 0.2.1's global client was: it sends through whatever exporter
# init() set up at the time of each call.
_CLIENT = CarrotClient()
