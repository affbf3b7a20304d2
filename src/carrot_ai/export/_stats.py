"""Counting and reporting of the export path: what was delivered, what was lost and why, in a few log lines.

Every record that does not reach the ingest API is counted under exactly one reason:

==================  =============================================================================
``queue_full``      refused at enqueue: the queue already held ``max_queue_bytes``
``too_large``       the server answered 413 even for the record alone, truncated
``rejected``        the server gave a final error (400, 401, 403, 404, 422, a redirect, ...)
``network``         retries ran out before the batch deadline (down, hanging, 5xx, 429, TLS failure)
``shutdown``        still queued or in flight when the exporter stopped (exit, ``shutdown()``)
``internal_error``  a bug or broken configuration on our side (conversion, encoding, transport)
==================  =============================================================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from carrot_ai.export._transport import Outcome, SendResult

LOSS_REASONS = ("queue_full", "too_large", "rejected", "network", "shutdown", "internal_error")


class ExportStats:
    """Counters of one exporter: records delivered, and records lost by reason."""

    __slots__ = (
        "delivered",
        "batches",
        "retries",
        "queue_full",
        "too_large",
        "rejected",
        "network",
        "shutdown",
        "internal_error",
    )

    def __init__(self) -> None:
        self.delivered = 0
        self.batches = 0
        self.retries = 0
        self.queue_full = 0
        self.too_large = 0
        self.rejected = 0
        self.network = 0
        self.shutdown = 0
        self.internal_error = 0

    @property
    def dropped(self) -> int:
        """Records lost, all reasons together."""
        return self.queue_full + self.too_large + self.rejected + self.network + self.shutdown + self.internal_error

    def add_loss(self, reason: str, count: int) -> None:
        """Count ``count`` records lost for ``reason`` (one of :data:`LOSS_REASONS`)."""
        setattr(self, reason, getattr(self, reason) + count)

    def losses(self) -> dict[str, int]:
        """The loss counters by reason."""
        return {reason: getattr(self, reason) for reason in LOSS_REASONS}

    def as_dict(self) -> dict[str, int]:
        """All counters as a plain dict (what ``carrot_ai.stats()`` shows)."""
        return {
            "delivered": self.delivered,
            "batches": self.batches,
            "retries": self.retries,
            "dropped": self.dropped,
            **self.losses(),
        }

    def __repr__(self) -> str:
        return f"ExportStats({self.as_dict()})"


class RateLimitedLog:
    """Log a message at most once per ``interval`` seconds per key, saying how many repeats were held back."""

    def __init__(
        self, logger: logging.Logger, interval: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held_back: dict[str, int] = {}

    def emit(self, key: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago; True if it was logged."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held_back[key] = self._held_back.get(key, 0) + 1
            return False
        self._last[key] = now
        held_back = self._held_back.pop(key, 0)
        if held_back:
            message += " [%d similar message(s) held back]"
            args = (*args, held_back)
        self._logger.warning(message, *args)
        return True


class LossReport:
    """The periodic log line: how many records were lost since the last line, by reason (silent when none)."""

    def __init__(self, logger: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self.interval = interval
        self._clock = clock
        self._since = clock()
        self._reported: dict[str, int] = dict.fromkeys(LOSS_REASONS, 0)

    def maybe_log(self, stats: ExportStats) -> bool:
        """Log the losses since the previous line if ``interval`` has passed; True if a line was logged."""
        now = self._clock()
        if self.interval <= 0 or now - self._since < self.interval:
            return False
        losses = stats.losses()
        new = {reason: losses[reason] - self._reported[reason] for reason in LOSS_REASONS}
        self._reported = losses
        elapsed, self._since = now - self._since, now
        lost = sum(new.values())
        if not lost:
            return False
        by_reason = ", ".join(f"{reason}={count}" for reason, count in new.items() if count)
        self._logger.warning(
            "carrot_ai: %d trace record(s) not delivered in the last %.0f s (%s); totals: delivered=%d, dropped=%d "
            "(carrot_ai.stats() has the details)",
            lost,
            elapsed,
            by_reason,
            stats.delivered,
            stats.dropped,
        )
        return True


def log_send_failure(log: RateLimitedLog, result: SendResult, count: int, shown_url: str) -> None:
    """Explain a batch that was not delivered: one line per kind of failure, rate-limited by ``log``."""
    status = result.status
    if result.outcome is Outcome.SHUTDOWN:
        return
    if status in (401, 403):
        log.emit(
            "auth",
            "carrot_ai: the ingest API at %s refused the API key (HTTP %d): trace records are being dropped. "
            "Check CARROT_API_KEY or carrot_ai.init(api_key=...)",
            shown_url,
            status,
        )
    elif status is not None and 300 <= status < 400:
        log.emit(
            "redirect",
            "carrot_ai: the ingest API at %s answered with a redirect (HTTP %d to %s); redirects are not "
            "followed: set CARROT_BASE_URL to the final address. %d trace record(s) dropped",
            shown_url,
            status,
            result.location or "?",
            count,
        )
    elif result.tls_error:
        log.emit(
            "tls",
            "carrot_ai: the TLS certificate of %s did not verify; for a private CA set CARROT_CA_BUNDLE "
            "(or init(ca_bundle=...)) to its PEM bundle. %d trace record(s) dropped",
            shown_url,
            count,
        )
    elif result.outcome is Outcome.NETWORK:
        log.emit(
            "network",
            "carrot_ai: %d trace record(s) not delivered to %s after %d attempt(s) (%s): the ingest API is "
            "slow or unreachable",
            count,
            shown_url,
            result.attempts,
            result.detail or "network error",
        )
    elif result.outcome is Outcome.INTERNAL_ERROR:
        log.emit(
            "internal",
            "carrot_ai: could not send %d trace record(s) to %s (%s); check the exporter settings",
            count,
            shown_url,
            result.detail,
        )
    else:
        log.emit(
            f"status-{status}",
            "carrot_ai: the ingest API at %s rejected %d trace record(s) (%s)",
            shown_url,
            count,
            result.detail or result.outcome.value,
        )
