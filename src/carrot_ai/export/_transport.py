"""HTTP delivery of encoded batches: compression, retries under a deadline, and honest results.

* 2xx: delivered. 429, 502, 503, 504 and connection errors / timeouts: retried with jittered exponential
  backoff, honouring ``Retry-After`` (seconds or an HTTP date; a value that is neither is ignored), until the
  batch's deadline. Everything else (400, 401, 403, 404, 413, 422, other 4xx and 5xx) is final.
* A shutdown event interrupts the backoff sleep. Redirects are never followed. TLS certificates are verified
  (``ca_bundle`` adds a custom CA); ``HTTPS_PROXY`` / ``NO_PROXY`` are honoured.
* The API key goes into the ``Authorization`` header of our own requests and nowhere else: not into a log line,
  an exception message or a ``repr``.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from carrot_ai._version import __version__

logger = logging.getLogger("carrot_ai")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_BACKOFF = 30.0


class Outcome(enum.Enum):
    """How one batch ended."""

    DELIVERED = "delivered"
    REJECTED = "rejected"  # the server answered with a final error (400, 401, 403, 404, 422, ...)
    TOO_LARGE = "too_large"  # 413
    NETWORK = "network"  # retries ran out against a down, slow or failing server
    SHUTDOWN = "shutdown"  # stopped by shutdown before it could be delivered


class SendResult:
    __slots__ = ("outcome", "status", "attempts", "detail")

    def __init__(self, outcome: Outcome, status: int | None = None, attempts: int = 1, detail: str = "") -> None:
        self.outcome = outcome
        self.status = status
        self.attempts = attempts
        self.detail = detail

    def __repr__(self) -> str:
        return f"SendResult({self.outcome.value}, status={self.status}, attempts={self.attempts})"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # nan or in the past
        return 0.0 if seconds == seconds else None
    return min(seconds, 3600.0)


def backoff_delay(
    attempt: int, base: float = 0.5, cap: float = MAX_BACKOFF, rand: Callable[[], float] = random.random
) -> float:
    """Full-jitter exponential backoff for retry number ``attempt`` (1-based)."""
    return float(rand() * min(cap, base * (2 ** (attempt - 1))))


class HttpTransport:
    """POSTs gzip JSON batches to ``{base_url}/v1/traces/ingest`` with httpx2."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 10.0,
        ca_bundle: str | None = None,
        path: str = "/v1/traces/ingest",
        client: Any = None,
        sleep: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = base_url.rstrip("/") + path
        self._api_key = api_key
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        self._client = client
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        # sleep(seconds) -> True if interrupted by shutdown; injectable so tests do not sleep for real.
        self._sleep = sleep or self._interruptible_sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"HttpTransport(url={self.url!r})"

    def _interruptible_sleep(self, seconds: float) -> bool:
        return self._stop.wait(seconds)

    def interrupt(self) -> None:
        """Stop waiting in backoff sleeps; used at shutdown."""
        self._stop.set()

    def reset_after_fork(self) -> None:
        """Drop the connection pool inherited from the parent process."""
        self._client = None
        self._client_lock = threading.Lock()
        self._stop = threading.Event()

    def _get_client(self) -> Any:
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    import httpx2

                    verify: Any = True
                    if self._ca_bundle:
                        verify = httpx2.create_ssl_context(verify=self._ca_bundle)
                    self._client = httpx2.Client(
                        timeout=httpx2.Timeout(self._timeout),
                        follow_redirects=False,
                        verify=verify,
                        trust_env=True,
                    )
                client = self._client
        return client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def send(self, body: bytes, *, deadline: float, record_count: int = 0) -> SendResult:
        """Deliver one gzip-compressed batch, retrying until ``deadline`` (a ``clock()`` time)."""
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"carrot-ai-python/{__version__}",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if record_count:
            headers["X-Carrot-Record-Count"] = str(record_count)
        attempt = 0
        while True:
            attempt += 1
            if self._stop.is_set() and attempt > 1:
                return SendResult(Outcome.SHUTDOWN, attempts=attempt - 1)
            remaining = deadline - self._clock()
            if remaining <= 0:
                return SendResult(Outcome.NETWORK, attempts=attempt - 1, detail="deadline passed")
            retry_after: float | None = None
            try:
                import httpx2

                timeout = httpx2.Timeout(min(self._timeout, remaining))
                response = self._get_client().post(self.url, content=body, headers=headers, timeout=timeout)
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                response.close()
            except Exception as exc:
                status = None
                detail = _describe(exc)
            else:
                if 200 <= status < 300:
                    return SendResult(Outcome.DELIVERED, status, attempt)
                if status == 413:
                    return SendResult(Outcome.TOO_LARGE, status, attempt)
                if status not in RETRYABLE_STATUS:
                    return SendResult(Outcome.REJECTED, status, attempt, detail=f"HTTP {status}")
                detail = f"HTTP {status}"
            delay = retry_after if retry_after is not None else backoff_delay(attempt)
            remaining = deadline - self._clock()
            if delay >= remaining:
                return SendResult(Outcome.NETWORK, status, attempt, detail=detail)
            if self._sleep(delay):
                return SendResult(Outcome.SHUTDOWN, status, attempt, detail=detail)


def _describe(exc: BaseException) -> str:
    # The exception's type only: messages may quote URLs, and a URL may carry credentials.
    return type(exc).__name__
