"""HTTP delivery of one encoded batch: retries under one deadline, and an honest result.

* 2xx: delivered.
* 408, 429, 502, 503, 504 and network errors (refused, reset, timeouts): retried with jittered exponential backoff
  until the batch's deadline, honouring ``Retry-After`` (delay seconds or an HTTP date; anything else is
  ignored) where it asks for a longer wait than the backoff. A ``Retry-After`` that points past the deadline ends the
  batch at once instead of sleeping in vain.
* Everything else is final: 400, 401, 403, 404, 413, 422, other 4xx and 5xx, redirects (never followed), and a
  TLS certificate that does not verify.
* The deadline bounds each attempt too, however the server behaves: every step of a request (connect, TLS handshake,
  each read and write) waits at most ``timeout`` seconds and never past the deadline (:mod:`._deadline_io`), so a
  server that trickles its answer, or takes in the request a few bytes at a time, costs the batch, not the worker.
* :meth:`HttpTransport.interrupt` (shutdown) wakes a backoff sleep and ends the batch; :meth:`limit_deadline`
  pulls the deadline of the batch in flight forward (exit).

TLS certificates are verified (``ca_bundle`` replaces the default trust store); ``HTTPS_PROXY`` / ``NO_PROXY``
and the other proxy variables are honoured. The API key goes into the ``Authorization`` header of our own
requests and nowhere else: results carry exception type names and status codes, never messages or URLs.
"""

from __future__ import annotations

import base64
import datetime
import encodings.idna  # noqa: F401  (see below)
import enum
import gzip
import logging
import math
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from carrot_ai._version import __version__
from carrot_ai.export._urls import ingest_url, redact_url

if TYPE_CHECKING:
    from carrot_ai.export._deadline_io import DeadlineBackend

# Nothing is imported lazily on the worker thread: a fork while another thread holds a module's import lock leaves
# the child deadlocked on it. That is why encodings.idna (the first getaddrinfo() imports it) is imported above
# and the HTTP client is built in HttpTransport.__init__. (The one exception, genai-prices, which the worker loads as
# it starts, makes a fork wait until it is loaded: _cost.load_genai_prices.)

RETRYABLE_STATUS = frozenset({408, 429, 502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
_DELAY_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
_MAX_RETRY_AFTER = 24 * 3600.0


class Outcome(enum.Enum):
    """How one batch ended; the values are the loss reasons of :class:`~carrot_ai.export.ExportStats`."""

    DELIVERED = "delivered"
    REJECTED = "rejected"  # a final answer from the server: 400, 401, 403, 404, 422, a redirect, ...
    TOO_LARGE = "too_large"  # 413
    NETWORK = "network"  # retries ran out (down, hanging, failing server) or TLS did not verify
    SHUTDOWN = "shutdown"  # interrupted by shutdown
    INTERNAL_ERROR = "internal_error"  # a bug or a broken configuration on our side


class SendResult:
    """The outcome of one :meth:`HttpTransport.send`, with what a log line may safely say about it."""

    __slots__ = ("outcome", "status", "attempts", "detail", "location", "tls_error")

    def __init__(
        self,
        outcome: Outcome,
        status: int | None = None,
        attempts: int = 1,
        detail: str = "",
        *,
        location: str | None = None,
        tls_error: bool = False,
    ) -> None:
        self.outcome = outcome
        self.status = status
        self.attempts = attempts
        self.detail = detail
        self.location = location  # a redirect's target, credentials masked
        self.tls_error = tls_error

    def __repr__(self) -> str:
        return f"SendResult({self.outcome.value}, status={self.status}, attempts={self.attempts})"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay seconds or an HTTP date, ``now`` being epoch seconds).

    Returns None for a missing or unusable value (negative, not a number, not a date), so that the caller
    falls back to its own backoff; a date in the past means "now" (0).
    """
    if not value:
        return None
    match = _DELAY_SECONDS.match(value)
    if match:
        return min(float(match.group(1)), _MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # "-0000": HTTP dates are always GMT
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    try:
        seconds = moment.timestamp() - now
    except (OverflowError, OSError, ValueError):
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def backoff_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Jittered exponential backoff before retry number ``attempt`` (1-based): 0.5 s, 1 s, 2 s, ... ±20 %."""
    base = min(BACKOFF_CAP, BACKOFF_BASE * (2.0 ** min(attempt - 1, 16)))
    return base * (0.8 + 0.4 * rand())


def _is_tls_verification_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class _HideOurQueryStrings(logging.Filter):
    """Mask the query of our ingest URL (it may hold a key) in httpx2's ``HTTP Request: POST <url>`` lines."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if self.urls and isinstance(args, tuple) and len(args) > 1 and str(args[1]) in self.urls:
            record.args = (args[0], redact_url(str(args[1])), *args[2:])
        return True


_log_filter = _HideOurQueryStrings()
logging.getLogger("httpx2").addFilter(_log_filter)


class HttpTransport:
    """POSTs gzip JSON batches to ``{base_url}/v1/traces/ingest`` with httpx2.

    ``timeout`` bounds each step of a request (connecting, each read, each write); the deadline given to
    :meth:`send` bounds the whole batch, the time spent inside each attempt included.

    ``sleep(seconds) -> interrupted`` and ``clock()`` (monotonic) are injectable so tests of the backoff never
    sleep for real; ``wall_clock()`` (epoch seconds) resolves ``Retry-After`` dates.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 10.0,
        ca_bundle: str | None = None,
        client: Any = None,
        sleep: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        import httpx2

        from carrot_ai.export._deadline_io import DeadlineBackend  # imports httpcore2, as httpx2 does

        self._httpx = httpx2
        self._deadline_backend = DeadlineBackend  # here, not on the worker after a fork (see above)
        self.url, userinfo = ingest_url(base_url)
        if "?" in self.url:
            _log_filter.urls.add(self.url)
        self._headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"carrot-ai-python/{__version__}",
        }
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        elif userinfo is not None:
            token = base64.b64encode(f"{userinfo[0]}:{userinfo[1]}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._timeout = timeout
        # The endpoint answered a gzip body with 415 Unsupported Media Type (a self-hosted endpoint, a gateway that
        # does not take Content-Encoding): bodies go as plain JSON from then on (what the caller reads to skip gzip).
        self.plain = False
        self._ca_bundle = ca_bundle
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        self._cap = float("inf")
        self._injected_sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self._rand = rand
        self._io_backends: list[DeadlineBackend] = []
        self._client = client
        self._setup_error: BaseException | None = None
        if client is not None:
            self._bound_by_deadline(client)
        else:
            # Built now, on the thread that sets up tracing, not lazily in the worker: building it imports a
            # dozen modules (httpcore2, h11, anyio, truststore), and a fork in the middle of an import would
            # leave the child with half-initialized modules.
            try:
                self._client = self._new_client()
            except Exception as exc:  # reported by send(), which never raises
                self._setup_error = exc

    def __repr__(self) -> str:
        return f"HttpTransport(url={redact_url(self.url)!r})"

    def interrupt(self) -> None:
        """End backoff sleeps now and make the batch in flight give up (its request at its next network step)."""
        self._stop.set()
        self._limit_io(time.monotonic())

    def limit_deadline(self, deadline: float) -> None:
        """Make every batch, including the one in flight, end by ``deadline`` (a ``clock()`` time)."""
        self._cap = min(self._cap, deadline)
        self._limit_io(time.monotonic() + (deadline - self._clock()))

    def _limit_io(self, deadline: float) -> None:
        for backend in self._io_backends:
            backend.deadline = min(backend.deadline, deadline)

    def _set_io_deadline(self, deadline: float) -> None:
        for backend in self._io_backends:
            backend.deadline = deadline

    def reset_after_fork(self) -> None:
        """Forget the parent's connection pool, lock and stop state (the child's transport starts afresh)."""
        self._client = None
        self._io_backends = []
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        self._cap = float("inf")

    def _sleep(self, seconds: float) -> bool:
        if self._injected_sleep is not None:
            return self._injected_sleep(seconds) or self._stop.is_set()
        return self._stop.wait(seconds)

    def close(self) -> None:
        """Close the connection pool (call only when no request is in flight)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def _new_client(self) -> Any:
        httpx2 = self._httpx
        verify: ssl.SSLContext | bool = True
        if self._ca_bundle:
            verify = ssl.create_default_context(cafile=self._ca_bundle)
        client = httpx2.Client(
            timeout=httpx2.Timeout(self._timeout),
            follow_redirects=False,
            verify=verify,
            trust_env=True,
            limits=httpx2.Limits(max_connections=4, max_keepalive_connections=2),
        )
        self._bound_by_deadline(client)
        return client

    def _bound_by_deadline(self, client: Any) -> None:
        """Put a :class:`~._deadline_io.DeadlineBackend` under each connection pool of ``client``.

        httpx2 has no setting for it, hence the private attributes: the client's transport and its proxy mounts
        (from ``HTTPS_PROXY`` and the like), each with an httpcore2 pool that opens its connections through
        ``_network_backend``. A test checks that every pool got one; should a later httpx2 move them, requests
        fall back to httpx2's per-step timeouts (cut to the time left when each attempt starts), with a warning.
        """
        transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
        pools: list[Any] = [getattr(transport, "_pool", None) for transport in transports if transport is not None]
        if not pools or not all(hasattr(pool, "_network_backend") for pool in pools):
            logging.getLogger("carrot_ai").warning(
                "carrot_ai: cannot bound export requests by export_deadline with this httpx2 (%s): a server that "
                "answers slowly may hold up the export for longer",
                getattr(self._httpx, "__version__", "?"),
            )
            return
        for pool in pools:
            backend = self._deadline_backend(pool._network_backend)
            pool._network_backend = backend
            self._io_backends.append(backend)

    def _get_client(self) -> Any:
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._new_client()
                client = self._client
        return client

    def _out_of_time(self, deadline: float) -> Outcome:
        # Cut short by shutdown's deadline rather than the batch's own: a shutdown loss, not a network one.
        return Outcome.SHUTDOWN if self._cap <= deadline else Outcome.NETWORK

    def send(self, body: bytes, *, deadline: float, record_count: int = 0, compressed: bool = True) -> SendResult:
        """Deliver one batch (gzip-compressed, unless ``compressed`` is False), retrying until ``deadline`` (a
        ``clock()`` time); never raises. A 415 answer to a gzip body sends it again as plain JSON at once, and sets
        :attr:`plain` for the batches after it."""
        if self._setup_error is not None:
            reason = type(self._setup_error).__name__
            return SendResult(Outcome.INTERNAL_ERROR, None, 0, f"cannot set up the HTTP client: {reason}")
        httpx2 = self._httpx
        headers = dict(self._headers)
        if not compressed:
            del headers["Content-Encoding"]
        if record_count:
            headers["X-Carrot-Record-Count"] = str(record_count)
        attempt = 0
        status: int | None = None
        detail = ""
        while True:
            if attempt and self._stop.is_set():
                return SendResult(Outcome.SHUTDOWN, status, attempt, detail)
            remaining = min(deadline, self._cap) - self._clock()
            if remaining <= 0:
                return SendResult(self._out_of_time(deadline), status, attempt, detail or "deadline passed")
            attempt += 1
            retry_after: float | None = None
            try:
                client = self._get_client()
                # The sockets wait on the real clock, whatever clock() is.
                self._set_io_deadline(time.monotonic() + remaining)
                self._limit_io(time.monotonic() + (self._cap - self._clock()))  # a limit_deadline() meanwhile
                try:
                    response = client.post(
                        self.url, content=body, headers=headers, timeout=httpx2.Timeout(min(self._timeout, remaining))
                    )
                finally:
                    self._set_io_deadline(math.inf)
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"), self._wall_clock())
                location = response.headers.get("location")
                response.close()
            except httpx2.TransportError as exc:
                status = None
                detail = type(exc).__name__  # never the message: it may quote the URL
                if _is_tls_verification_error(exc):
                    return SendResult(
                        Outcome.NETWORK, None, attempt, "TLS certificate verification failed", tls_error=True
                    )
                if isinstance(exc, httpx2.UnsupportedProtocol):
                    return SendResult(Outcome.INTERNAL_ERROR, None, attempt, "unsupported URL scheme")
            except Exception as exc:  # a bug or a broken configuration (say, an unreadable CA bundle)
                return SendResult(Outcome.INTERNAL_ERROR, None, attempt, type(exc).__name__)
            else:
                if 200 <= status < 300:
                    return SendResult(Outcome.DELIVERED, status, attempt)
                if status == 413:
                    return SendResult(Outcome.TOO_LARGE, status, attempt, "HTTP 413")
                if status == 415 and compressed:
                    body, compressed = gzip.decompress(body), False
                    del headers["Content-Encoding"]
                    if not self.plain:
                        self.plain = True
                        logging.getLogger("carrot_ai").warning(
                            "carrot_ai: the ingest API does not take gzip (HTTP 415): sending plain JSON"
                        )
                    continue
                if 300 <= status < 400:
                    shown = redact_url(location) if location else None
                    return SendResult(Outcome.REJECTED, status, attempt, f"HTTP {status} redirect", location=shown)
                if status not in RETRYABLE_STATUS:
                    return SendResult(Outcome.REJECTED, status, attempt, f"HTTP {status}")
                detail = f"HTTP {status}"
            # Never sooner than the backoff: a "Retry-After: 0", or a date already past (the server's clock behind
            # ours), would otherwise send thousands of requests a second to a server that is overloaded.
            delay = backoff_delay(attempt, self._rand)
            if retry_after is not None:
                delay = max(delay, retry_after)
            if delay >= min(deadline, self._cap) - self._clock():
                return SendResult(self._out_of_time(deadline), status, attempt, detail)
            if self._sleep(delay):
                return SendResult(Outcome.SHUTDOWN, status, attempt, detail)
