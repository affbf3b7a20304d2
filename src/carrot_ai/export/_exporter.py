"""``CarrotSpanExporter``: select, convert and deliver spans as trace records, off the application's threads.

``export()`` only queues (it never blocks on the network and never raises): a processor that calls it, ours or
the SDK's ``BatchSpanProcessor``, returns at once. One background worker converts queued spans into records,
encodes them, and ships them in batches of at most ``batch_size`` records and ``max_batch_bytes`` bytes,
every ``flush_interval`` seconds or as soon as a batch is full.

Memory is bounded by bytes (``max_queue_bytes``), not only by count. Every record that is not delivered is
counted by reason (see :class:`ExportStats`) and reported in a log line; nothing is dropped silently.
"""

from __future__ import annotations

import collections
import functools
import gzip
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from carrot_ai._config import Settings, resolve_settings
from carrot_ai._core._guard import report_internal_error
from carrot_ai._core._serialize import dumps
from carrot_ai.export._convert import encode_span, record_kind
from carrot_ai.export._transport import HttpTransport, Outcome, SendResult

logger = logging.getLogger("carrot_ai")

_SPAN_OVERHEAD_BYTES = 600  # a converted record's fixed part, roughly
_LOSS_REASONS = ("queue_full", "too_large", "rejected", "network", "shutdown", "internal_error")
_instances: weakref.WeakSet[CarrotSpanExporter] = weakref.WeakSet()


class ExportStats:
    """Counters of one exporter: records delivered, and records lost by reason."""

    __slots__ = ("delivered", "batches", "queue_full", "too_large", "rejected", "network", "shutdown", "internal_error")

    def __init__(self) -> None:
        self.delivered = 0
        self.batches = 0
        self.queue_full = 0
        self.too_large = 0
        self.rejected = 0
        self.network = 0
        self.shutdown = 0
        self.internal_error = 0

    @property
    def dropped(self) -> int:
        return sum(getattr(self, reason) for reason in _LOSS_REASONS)

    def as_dict(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "batches": self.batches,
            "dropped": self.dropped,
            **{reason: getattr(self, reason) for reason in _LOSS_REASONS},
        }


def _span_size(span: ReadableSpan) -> int:
    size = _SPAN_OVERHEAD_BYTES
    attributes = span.attributes
    if attributes:
        for value in attributes.values():
            if isinstance(value, str):
                size += len(value)
            else:
                size += 16
    return size


def is_exportable(span: ReadableSpan) -> bool:
    """Whether carrot turns this span into a record (GenAI spans and our own spans)."""
    return record_kind(span) is not None


class CarrotSpanExporter(SpanExporter):
    """An OpenTelemetry ``SpanExporter`` that sends GenAI and carrot spans to the Carrot ingest API.

    With no arguments it reads ``CARROT_API_KEY`` / ``CARROT_BASE_URL`` and the other ``CARROT_*`` settings,
    so ``OTEL_TRACES_EXPORTER=carrot`` works without code.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        settings: Settings | None = None,
        transport: Any = None,
    ) -> None:
        if settings is None:
            settings = resolve_settings(
                api_key=api_key, base_url=base_url, batch_size=batch_size, flush_interval=flush_interval
            )
        self._settings = settings
        self._transport = transport or HttpTransport(
            settings.base_url, settings.api_key, timeout=settings.request_timeout, ca_bundle=settings.ca_bundle
        )
        self.stats = ExportStats()
        self._init_state()
        _instances.add(self)
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=functools.partial(_after_fork_in_child, ref))

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[ReadableSpan | dict[str, Any], int]] = collections.deque()
        self._queued_bytes = 0
        self._in_flight = 0
        self._wakeup = threading.Event()
        self._flush_cond = threading.Condition(self._lock)
        self._flush_requested = 0
        self._flush_done = 0
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._pid = os.getpid()
        self._logged: set[str] = set()

    def __repr__(self) -> str:
        return f"CarrotSpanExporter(base_url={self._settings.base_url!r})"

    @property
    def settings(self) -> Settings:
        return self._settings

    # --- the application side: never blocks, never raises ------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue the spans carrot exports; return at once."""
        try:
            if self._closed:
                return SpanExportResult.FAILURE
            for span in spans:
                if is_exportable(span):
                    self.enqueue(span)
            return SpanExportResult.SUCCESS
        except Exception as exc:
            report_internal_error("exporter.export", exc)
            return SpanExportResult.FAILURE

    def enqueue(self, span: ReadableSpan) -> None:
        """Queue one exportable span (the processor's hot path)."""
        self._enqueue(span, _span_size(span))

    def enqueue_record(self, record: dict[str, Any]) -> None:
        """Queue a record that is already built (manual capture, ``get_client().submit()``)."""
        self._enqueue(record, _SPAN_OVERHEAD_BYTES + len(dumps(record)))

    def _enqueue(self, item: ReadableSpan | dict[str, Any], size: int) -> None:
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            if self._closed:
                self.stats.shutdown += 1
                return
            if self._queued_bytes + size > self._settings.max_queue_bytes:
                self.stats.queue_full += 1
                full = True
            else:
                self._queue.append((item, size))
                self._queued_bytes += size
                full = False
            queued = len(self._queue)
        if full:
            self._log_loss_once("queue_full", "queue is full (%d bytes); dropping records", self._queued_bytes)
            return
        if self._worker is None:
            self._start_worker()
        if queued >= self._settings.batch_size:
            self._wakeup.set()

    # --- flush and shutdown ---------------------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver everything queued so far; True only if it all arrived within the timeout."""
        try:
            return self._flush(timeout_millis / 1000.0)
        except Exception as exc:
            report_internal_error("exporter.force_flush", exc)
            return False

    def _flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        lost_before = self.stats.dropped
        with self._lock:
            if not self._queue and not self._in_flight:
                return True
            self._flush_requested += 1
            ticket = self._flush_requested
        if self._worker is None or not self._worker.is_alive():
            self._start_worker()
        self._wakeup.set()
        with self._flush_cond:
            while self._flush_done < ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._flush_cond.wait(remaining)
        return self.stats.dropped == lost_before

    def shutdown(self) -> None:
        """Deliver what is queued within ``exit_timeout`` seconds, then stop; report what was not delivered."""
        if self._closed:
            return
        try:
            self._flush(self._settings.exit_timeout)
        except Exception as exc:
            report_internal_error("exporter.shutdown", exc)
        with self._lock:
            self._closed = True
            self._stopping = True
            abandoned = len(self._queue) + self._in_flight
            self.stats.shutdown += abandoned
            self._queue.clear()
            self._queued_bytes = 0
        self._transport.interrupt()
        self._wakeup.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(0.2)
        if abandoned:
            sys.stderr.write(
                f"carrot_ai: {abandoned} trace record(s) were not delivered to {self._settings.base_url} "
                f"before exit (ingest slow or unreachable)\n"
            )
        if self.stats.dropped:
            logger.warning("carrot_ai: exporter stopped; %s", self.stats.as_dict())

    # --- the worker -----------------------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        with self._lock:
            if self._closed or (self._worker is not None and self._worker.is_alive()):
                return
            self._worker = threading.Thread(target=self._run, name="carrot-ai-exporter", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

        # Our own HTTP calls are never traced.
        otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        while not self._stopping:
            self._wakeup.wait(self._settings.flush_interval)
            self._wakeup.clear()
            try:
                self._drain()
            except Exception as exc:
                report_internal_error("exporter worker", exc)

    def _drain(self) -> None:
        while not self._stopping:
            with self._lock:
                target = self._flush_requested
                if not self._queue:
                    self._flush_done = target
                    self._flush_cond.notify_all()
                    return
                batch: list[ReadableSpan | dict[str, Any]] = []
                while self._queue and len(batch) < self._settings.batch_size:
                    span, size = self._queue.popleft()
                    self._queued_bytes -= size
                    batch.append(span)
                self._in_flight = len(batch)
            try:
                self._send_spans(batch)
            finally:
                with self._lock:
                    self._in_flight = 0

    def _send_spans(self, items: list[ReadableSpan | dict[str, Any]]) -> None:
        encoded: list[bytes] = []
        for item in items:
            try:
                data = dumps(item).encode("utf-8") if isinstance(item, dict) else encode_span(item)
                if data is not None:
                    encoded.append(data)
            except Exception as exc:
                self.stats.internal_error += 1
                report_internal_error("span conversion", exc)
        for chunk in _split_by_bytes(encoded, self._settings.max_batch_bytes):
            self._send_encoded(chunk)

    def _send_encoded(self, records: list[bytes]) -> None:
        body = gzip.compress(b'{"traces":[' + b",".join(records) + b"]}", compresslevel=5)
        deadline = time.monotonic() + self._settings.export_deadline
        result: SendResult = self._transport.send(body, deadline=deadline, record_count=len(records))
        if result.outcome is Outcome.DELIVERED:
            self.stats.delivered += len(records)
            self.stats.batches += 1
            return
        if result.outcome is Outcome.TOO_LARGE and len(records) > 1:
            half = len(records) // 2
            self._send_encoded(records[:half])
            self._send_encoded(records[half:])
            return
        reason = result.outcome.value
        setattr(self.stats, reason, getattr(self.stats, reason) + len(records))
        if result.status == 401 or result.status == 403:
            self._log_loss_once(
                "auth", "the ingest API refused our API key (HTTP %s); check CARROT_API_KEY", result.status
            )
        else:
            self._log_loss_once(reason, "%d record(s) not delivered: %s", len(records), result.detail or reason)

    def _log_loss_once(self, key: str, message: str, *args: Any) -> None:
        if key in self._logged:
            logger.debug("carrot_ai: %s", message % args)
            return
        self._logged.add(key)
        logger.warning("carrot_ai: %s (further losses are counted in carrot_ai.stats())", message % args)

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's queue, locks and thread; never export the parent's spans."""
        self._init_state()
        self.stats = ExportStats()
        reset = getattr(self._transport, "reset_after_fork", None)
        if reset is not None:
            reset()


def _after_fork_in_child(ref: weakref.ref[CarrotSpanExporter]) -> None:
    exporter = ref()
    if exporter is not None:
        exporter._after_fork()


def _split_by_bytes(records: list[bytes], limit: int) -> list[list[bytes]]:
    chunks: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if len(record) > limit:
            record = _truncate_record(record, limit)
        if current and size + len(record) + 1 > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record) + 1
    if current:
        chunks.append(current)
    return chunks


def _truncate_record(encoded: bytes, limit: int) -> bytes:
    """Replace an oversized record's input and output with a marker, keeping its identity and metadata."""
    import json

    record = json.loads(encoded)
    marker = {"truncated": True, "original_bytes": len(encoded)}
    record["input"] = marker
    record["output"] = dict(marker)
    shrunk = dumps(record).encode("utf-8")
    if len(shrunk) > limit:
        record["metadata"] = {
            k: record["metadata"][k] for k in ("type", "source", "parent_trace_id") if k in record["metadata"]
        }
        shrunk = dumps(record).encode("utf-8")
    return shrunk


def live_exporters() -> list[CarrotSpanExporter]:
    """Exporters created in this process that are not shut down."""
    return [e for e in list(_instances) if not e._closed]
