"""``CarrotSpanExporter``: select, convert and deliver spans as trace records, off the application's threads.

``export()`` and :meth:`~CarrotSpanExporter.enqueue` only queue: whichever processor calls them (ours, or the
SDK's ``BatchSpanProcessor`` under ``OTEL_TRACES_EXPORTER=carrot``) returns at once, and never sees an exception.
One background worker converts queued spans into records, encodes them (:mod:`._encode`) and hands request
bodies to the transport (:mod:`._transport`), in batches of at most ``batch_size`` records and
``max_batch_bytes`` bytes, every ``flush_interval`` seconds or as soon as a batch is full.

Guarantees:

* **Bounded memory**: queued and in-flight spans are bounded by bytes (``max_queue_bytes``, 64 MB by default),
  not only by count. A span that does not fit is refused and counted (``queue_full``).
* **Nothing lost silently**: every record that is not delivered is counted by reason (:mod:`._stats`), the first
  loss of each kind is logged at once (rate-limited), a periodic line sums up the losses, and shutdown says on
  stderr how many records were not delivered.
* **Bounded waits**: ``force_flush(timeout)`` returns within its timeout and is True only if everything queued
  when it was called was delivered (and nothing was refused since the previous flush); shutdown, and normal
  interpreter exit, take at most ``exit_timeout`` seconds (2 by default), whatever the ingest endpoint does.
* **Fork safety**: a forked child starts with an empty queue, fresh locks, a fresh worker and a fresh
  connection pool: it exports its own spans and never its parent's.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from carrot_ai._config import Settings, resolve_settings
from carrot_ai._core._guard import report_internal_error
from carrot_ai.export import _duplicates
from carrot_ai.export._convert import encode_span, settle_spans
from carrot_ai.export._cost import load_genai_prices
from carrot_ai.export._encode import body_of, compress, encode_record, split_by_bytes, truncate_record
from carrot_ai.export._lifecycle import live_exporters, merged_stats, register
from carrot_ai.export._secrets import register_secret, scrubbable
from carrot_ai.export._sizing import (
    ATTRIBUTE_OVERHEAD_BYTES,
    SPAN_OVERHEAD_BYTES,
    events_size,
    is_exportable,
    raw_attributes,
    sequence_size,
    span_size,
)
from carrot_ai.export._stats import ExportStats, LossReport, RateLimitedLog, log_send_failure
from carrot_ai.export._transport import HttpTransport, Outcome, SendResult
from carrot_ai.export._urls import redact_url

logger = logging.getLogger("carrot_ai")

__all__ = [
    "CarrotSpanExporter",
    "ExportStats",
    "is_exportable",
    "live_exporters",
    "merged_stats",
    "raw_attributes",
    "span_size",
]

_LOG_INTERVAL = 300.0  # the same failure is logged at most this often
_DROPPED_AFTER_SHUTDOWN = "carrot_ai: spans exported after shutdown() are dropped (counted in carrot_ai.stats())"


# --- the exporter -------------------------------------------------------------------------------------------------


class CarrotSpanExporter(SpanExporter):
    """An OpenTelemetry ``SpanExporter`` that sends GenAI and carrot spans to the Carrot ingest API.

    With no arguments it reads ``CARROT_API_KEY`` / ``CARROT_BASE_URL`` and the other ``CARROT_*`` settings,
    so ``OTEL_TRACES_EXPORTER=carrot`` works without code. Keyword ``options`` are other
    :class:`~carrot_ai._config.Settings` fields (``max_queue_bytes``, ``exit_timeout``, ``ca_bundle``, ...).
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
        **options: Any,
    ) -> None:
        if settings is None:
            settings = resolve_settings(
                api_key=api_key, base_url=base_url, batch_size=batch_size, flush_interval=flush_interval, **options
            )
        self._settings = settings
        self._transport = transport or HttpTransport(
            settings.base_url, settings.api_key, timeout=settings.request_timeout, ca_bundle=settings.ca_bundle
        )
        key = settings.api_key
        self._secret = key.encode() if key and scrubbable(key) else None  # masked in request bodies
        register_secret(key)  # and in log lines
        self._shown_url = redact_url(settings.base_url)
        self._closed = False
        self._init_state()
        register(self)
        # Started now, not at the first span: it loads the price table first (~170 ms), before the application is
        # busy making calls (a CPU-bound thread leaves the worker little of the GIL).
        self._start_worker()

    def _init_state(self) -> None:
        settings = self._settings
        self.stats = ExportStats()
        self._max_queue_bytes = settings.max_queue_bytes
        self._batch_size = settings.batch_size
        self._max_batch_bytes = settings.max_batch_bytes
        self._lock = threading.Lock()
        self._settled_cond = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[ReadableSpan | dict[str, Any], int]] = collections.deque()
        self._queued_bytes = 0  # queued and in flight
        self._peak_bytes = 0
        # Sequence numbers, so that a flush waits for what was queued before it, not for a steady stream after it.
        self._accepted = 0  # the n-th record accepted into the queue has number n
        self._settled = 0  # records delivered or lost so far (FIFO, so numbers 1.._settled)
        self._lost_ranges: collections.deque[tuple[int, int]] = collections.deque(maxlen=256)
        self._refused = 0  # records refused at the door (queue full, closed)
        self._refused_seen = 0
        self._in_flight = 0
        self._in_flight_abandoned = False
        self._wakeup = threading.Event()
        self._worker: threading.Thread | None = None
        self._stop_worker = False
        self._deadline_cap = float("inf")
        self._exit_deadline: float | None = None
        self._warned_queue_full = False
        self._warned_closed = False
        self._log = RateLimitedLog(logger, _LOG_INTERVAL)
        self._loss_report = LossReport(logger, settings.stats_log_interval)

    def __repr__(self) -> str:
        return f"CarrotSpanExporter(base_url={self._shown_url!r})"

    @property
    def settings(self) -> Settings:
        """The settings this exporter runs with."""
        return self._settings

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` has run."""
        return self._closed

    def snapshot(self) -> dict[str, int]:
        """Counters plus the queue's current state (records and bytes queued, peak bytes)."""
        data = self.stats.as_dict()
        data["queued"] = len(self._queue) + self._in_flight
        data["queued_bytes"] = self._queued_bytes
        data["queue_peak_bytes"] = self._peak_bytes
        return data

    # --- the application side: never blocks, never raises ------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue the spans carrot exports and return at once (the SDK's processors call this)."""
        if self._closed:
            self._refuse_after_close(sum(1 for span in spans if _exportable_or_false(span)))
            return SpanExportResult.FAILURE
        for span in spans:
            try:
                if is_exportable(span) and not _duplicates.is_late_duplicate(span):
                    self.enqueue(span)
            except Exception as exc:
                self.count_internal_loss()
                report_internal_error("exporter.export", exc)
        return SpanExportResult.SUCCESS

    def enqueue(
        self, span: ReadableSpan, attributes: Mapping[str, Any] | None = None, overhead: int = SPAN_OVERHEAD_BYTES
    ) -> None:
        """Queue one exportable span: the processor's hot path (no conversion, no I/O; about a microsecond).

        ``attributes``: the span's :func:`raw_attributes`, when the caller already has them; ``overhead``: the fixed
        part of its size estimate (smaller for our own fast spans). The size estimate
        and :meth:`_accept` are inlined here because this runs for every span; keep them in step with
        :func:`span_size` and :meth:`_accept` (a test checks the sizes agree).
        """
        if attributes is None:
            attributes = raw_attributes(span)
        size = overhead + ATTRIBUTE_OVERHEAD_BYTES * len(attributes)
        for value in attributes.values():
            if type(value) is str:
                n = len(value)
                size += n if n < 512 or value.isascii() else 3 * n
            elif type(value) is tuple:
                size += sequence_size(value)
        events = getattr(span, "_events", None)
        # A fast span's are a tuple; an SDK span's a BoundedList (its deque read directly: no Python __len__ call).
        if events is not None and (events if type(events) is tuple else getattr(events, "_dq", events)):
            size += events_size(events)
        lock = self._lock
        lock.acquire()
        try:
            queued = self._queued_bytes + size
            if self._closed or queued > self._max_queue_bytes:
                accepted = False
            else:
                queue = self._queue
                queue.append((span, size))
                self._queued_bytes = queued
                self._accepted += 1
                if queued > self._peak_bytes:
                    self._peak_bytes = queued
                accepted = True
                ready = len(queue) >= self._batch_size or queued >= self._max_batch_bytes
        finally:
            lock.release()
        if not accepted:
            self._accept(span, size)  # the rare path: count and explain the refusal
            return
        if self._worker is None:
            self._start_worker()
        if ready and not self._wakeup.is_set():
            self._wakeup.set()

    def enqueue_record(self, record: dict[str, Any]) -> None:
        """Queue a record that is already built (manual capture, ``get_client().submit()``); never raises."""
        try:
            self._accept(record, SPAN_OVERHEAD_BYTES + 3 * len(encode_record(record)))
        except Exception as exc:
            self.count_internal_loss()
            report_internal_error("exporter.enqueue_record", exc)

    def count_internal_loss(self, count: int = 1) -> None:
        """Count records lost to an internal error before they reached the queue."""
        with self._lock:
            self.stats.internal_error += count
            self._refused += count

    def _accept(self, item: ReadableSpan | dict[str, Any], size: int) -> None:
        explain = full = ready = False
        with self._lock:
            closed = self._closed
            if closed:
                self.stats.shutdown += 1
                self._refused += 1
                # Our processor's spans and manual records come this way, not through export(): explained once too.
                explain, self._warned_closed = not self._warned_closed, True
            elif self._queued_bytes + size > self._max_queue_bytes:
                self.stats.queue_full += 1
                self._refused += 1
                full, self._warned_queue_full = not self._warned_queue_full, True
            else:
                queue = self._queue
                queue.append((item, size))
                self._queued_bytes += size
                self._accepted += 1
                if self._queued_bytes > self._peak_bytes:
                    self._peak_bytes = self._queued_bytes
                ready = len(queue) >= self._batch_size or self._queued_bytes >= self._max_batch_bytes
        if closed:
            if explain:
                self._explain_refusal_after_close()
            return
        if full:
            logger.warning(
                "carrot_ai: the export queue is full (%d bytes, max_queue_bytes=%d): dropping trace records until "
                "the ingest API catches up; drops are counted in carrot_ai.stats()",
                self._queued_bytes,
                self._max_queue_bytes,
            )
            return
        if self._worker is None:
            self._start_worker()
        if ready and not self._wakeup.is_set():
            self._wakeup.set()

    def _explain_refusal_after_close(self) -> None:
        if self._exit_deadline is not None:
            _write_stderr(
                f"carrot_ai: trace records that arrive after the exporter stopped at exit are not delivered to "
                f"{self._shown_url}\n"
            )
        else:
            logger.warning(_DROPPED_AFTER_SHUTDOWN)

    def _refuse_after_close(self, count: int) -> None:
        if not count:
            return
        with self._lock:
            self.stats.shutdown += count
            self._refused += count
        if self._exit_deadline is not None:
            _write_stderr(
                f"carrot_ai: {count} more trace record(s) arrived after the exporter stopped at exit and were not "
                f"delivered to {self._shown_url}\n"
            )
        elif not self._warned_closed:
            self._warned_closed = True
            logger.warning(_DROPPED_AFTER_SHUTDOWN)

    # --- flush and shutdown ---------------------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Deliver everything queued so far; True only if all of it arrived within the timeout."""
        try:
            return self._flush(time.monotonic() + max(timeout_millis, 0) / 1000.0)
        except Exception as exc:
            report_internal_error("exporter.force_flush", exc)
            return False

    def _flush(self, deadline: float) -> bool:
        with self._lock:
            target = self._accepted
            start = self._settled
            refused = self._refused != self._refused_seen
            self._refused_seen = self._refused
            pending = self._settled < target
        if pending:
            self._ensure_worker()
            self._wakeup.set()
        with self._settled_cond:
            while self._settled < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled_cond.wait(remaining)
            lost = any(last > start and first <= target for first, last in self._lost_ranges)
        return not (lost or refused)

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Deliver what is queued within ``exit_timeout`` seconds (or ``timeout_millis``), then stop.

        Says on stderr how many records were not delivered, if any. Calling it again does nothing.
        """
        try:
            self._shutdown(timeout_millis)
        except Exception as exc:
            report_internal_error("exporter.shutdown", exc)

    def _shutdown(self, timeout_millis: float | None) -> None:
        if self._closed:
            return
        budget = _waiting_budget(self._settings.exit_timeout)
        if timeout_millis is not None:
            budget = min(budget, max(timeout_millis, 0) / 1000.0)
        deadline = time.monotonic() + budget
        if self._exit_deadline is not None:
            deadline = min(deadline, self._exit_deadline)
        self._limit_deadline(deadline)
        self._flush(deadline)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop_worker = True
            abandoned = len(self._queue) + self._in_flight
            if abandoned:
                self.stats.shutdown += abandoned
                self._lost_ranges.append((self._settled + 1, self._accepted))
            self._in_flight_abandoned = self._in_flight > 0
            for _, size in self._queue:
                self._queued_bytes -= size
            self._queue.clear()
            self._settled = self._accepted
            self._settled_cond.notify_all()
        self._transport.interrupt()
        self._wakeup.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
        if worker is None or not worker.is_alive():
            # A request may still hang in a worker we stopped waiting for: its connection pool stays open.
            self._transport.close()
        self._report_losses()

    def _limit_deadline(self, deadline: float) -> None:
        self._deadline_cap = min(self._deadline_cap, deadline)
        limit = getattr(self._transport, "limit_deadline", None)
        if limit is not None:
            limit(deadline)

    def _report_losses(self) -> None:
        stats = self.stats
        if not stats.dropped:
            return
        reasons = ", ".join(f"{reason}: {count}" for reason, count in stats.losses().items() if count)
        _write_stderr(
            f"carrot_ai: {stats.dropped} trace record(s) were not delivered to {self._shown_url} ({reasons}); "
            f"{stats.delivered} delivered\n"
        )

    def _begin_exit(self, now: float) -> None:
        if self._exit_deadline is None:
            self._exit_deadline = now + _waiting_budget(self._settings.exit_timeout)

    def _exit_flush(self) -> None:
        """At interpreter exit: deliver within the exit deadline; stop and report if something is left over.

        With nothing left over the exporter stays open, because an SDK processor may still hand it its last
        spans in its own exit hook (its ``shutdown()`` then shares the same deadline).
        """
        deadline = self._exit_deadline if self._exit_deadline is not None else time.monotonic()
        self._limit_deadline(deadline)
        self._flush(deadline)
        if len(self._queue) + self._in_flight or self.stats.dropped:
            self.shutdown()

    # --- the worker -----------------------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        worker = self._worker
        if worker is None or not worker.is_alive():
            self._start_worker()

    def _start_worker(self) -> None:
        with self._lock:
            if self._closed or (self._worker is not None and self._worker.is_alive()):
                return
            self._worker = threading.Thread(target=self._run, name="carrot-ai-exporter", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        # Our own HTTP calls are never traced.
        otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            load_genai_prices()  # here, so that no record waits for it (and see _cost on fork)
        except Exception as exc:
            report_internal_error("loading genai-prices", exc)
        interval = self._settings.flush_interval
        while not self._stop_worker:
            self._wakeup.wait(interval)
            self._wakeup.clear()
            try:
                self._drain()
                self._loss_report.maybe_log(self.stats)
            except Exception as exc:
                report_internal_error("exporter worker", exc)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue or self._stop_worker:
                    return
                batch: list[ReadableSpan | dict[str, Any]] = []
                batch_bytes = 0
                while self._queue and len(batch) < self._batch_size and batch_bytes < self._max_batch_bytes:
                    item, size = self._queue.popleft()
                    batch.append(item)
                    batch_bytes += size
                first = self._settled + 1
                self._in_flight = len(batch)
                self._in_flight_abandoned = False
            tally: collections.Counter[str] = collections.Counter()  # "delivered" and the loss reasons
            try:
                self._deliver(batch, tally)
            except Exception as exc:  # containment: a bug here loses (part of) this batch, counted; never the worker
                tally["internal_error"] += len(batch) - sum(tally.values())
                report_internal_error("exporter batch", exc)
            finally:
                delivered = tally.pop("delivered", 0)
                tally.pop("skipped", None)  # spans that make no record: settled, not lost
                with self._lock:
                    self._queued_bytes -= batch_bytes
                    self._in_flight = 0
                    if self._in_flight_abandoned:  # shutdown counted it under "shutdown" and moved on
                        self.stats.shutdown -= delivered
                        self.stats.delivered += delivered
                    else:
                        self._settled += len(batch)
                        self.stats.delivered += delivered
                        for reason, count in tally.items():
                            self.stats.add_loss(reason, count)
                        if tally:
                            self._lost_ranges.append((first, first + len(batch) - 1))
                    self._settled_cond.notify_all()

    def _deliver(self, batch: list[ReadableSpan | dict[str, Any]], tally: collections.Counter[str]) -> None:
        encoded: list[bytes] = []
        settle_spans(batch)
        for item in batch:
            try:
                if isinstance(item, dict):
                    encoded.append(encode_record(item, self._secret))
                    continue
                data = encode_span(item)  # captured input/output are spliced in, not re-encoded
                if data is None:
                    tally["skipped"] += 1
                    continue
                if self._secret and self._secret in data:
                    data = data.replace(self._secret, b"[REDACTED]")
                encoded.append(data)
            except Exception as exc:
                tally["internal_error"] += 1
                report_internal_error("span conversion", exc)
        if not encoded:
            return
        deadline = min(time.monotonic() + self._settings.export_deadline, self._deadline_cap)
        for group in split_by_bytes(encoded, self._max_batch_bytes):
            self._send(group, deadline, tally)

    def _send(self, records: list[bytes], deadline: float, tally: collections.Counter[str]) -> None:
        """Send one request body's worth of records; on 413 halve it, down to one record cut to its minimum."""
        try:
            plain = getattr(self._transport, "plain", False)  # the endpoint refused gzip (HTTP 415)
            body = body_of(records) if plain else compress(body_of(records))
            result: SendResult = self._transport.send(
                body, deadline=deadline, record_count=len(records), compressed=not plain
            )
        except Exception as exc:
            tally["internal_error"] += len(records)
            report_internal_error("transport", exc)
            return
        self.stats.retries += max(result.attempts - 1, 0)
        if result.outcome is Outcome.DELIVERED:
            self.stats.batches += 1
            tally["delivered"] += len(records)
            return
        if result.outcome is Outcome.TOO_LARGE:
            if len(records) > 1:
                half = len(records) // 2
                self._send(records[:half], deadline, tally)
                self._send(records[half:], deadline, tally)
                return
            smallest = truncate_record(records[0], 0)
            if len(smallest) < len(records[0]):
                self._send([smallest], deadline, tally)
                return
        tally[result.outcome.value] += len(records)
        log_send_failure(self._log, result, len(records), self._shown_url)

    # --- fork -----------------------------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's queue, locks, worker and connections; keep being closed."""
        self._init_state()
        reset = getattr(self._transport, "reset_after_fork", None)
        if reset is not None:
            reset()


def _waiting_budget(exit_timeout: float) -> float:
    """The part of ``exit_timeout`` spent waiting for delivery; the rest is left for stopping and the interpreter's
    own teardown, so that the process is gone within ``exit_timeout``."""
    return max(0.0, exit_timeout - min(0.4, 0.2 * exit_timeout))


def _exportable_or_false(span: Any) -> bool:
    try:
        return is_exportable(span)
    except Exception:
        return False


def _write_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:
        pass
