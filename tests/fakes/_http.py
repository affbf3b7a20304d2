"""A loopback HTTP server for fake LLM providers, and the replies it can be scripted to send.

`FakeServer` binds 127.0.0.1 on a free port and serves HTTP/1.1 (keep-alive) on a daemon thread. Each
request is recorded, then answered by the next scripted reply (`enqueue`) or, when none is queued, by
the subclass's `default_reply`. Streamed replies use `Transfer-Encoding: chunked` and write each SSE
event in several small, flushed slices so that the client sees events split across TCP reads.

Replies (all share `Reply.send`):

    Reply
    ├── JSONReply       status + JSON body (+ headers)
    │   └── ErrorReply  provider-shaped error body, optional retry-after
    ├── BytesReply      status + raw body bytes, optionally streamed in slices
    ├── SSEReply        text/event-stream; can reset or hang after N events
    ├── Hang            read the request, never answer (until the server stops)
    ├── Reset           read the request, then reset the TCP connection
    └── Slow            wait, then send another reply
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar

__all__ = [
    "BytesReply",
    "ErrorReply",
    "FakeServer",
    "Hang",
    "JSONReply",
    "RecordedRequest",
    "Reply",
    "ReplyFactory",
    "Reset",
    "SSEEvent",
    "SSEReply",
    "Slow",
    "encode_sse_event",
]

# Replies that wait (Hang, Slow, SSE pauses) wake up at the latest this often to notice a stop.
_MAX_HANG_SECONDS = 300.0


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake server received it."""

    method: str
    path: str
    """Path including the query string, e.g. ``/v1/messages?beta=true``."""
    headers: dict[str, str]
    """Header names lowercased; repeated headers joined with ``", "``."""
    body: bytes
    json: Any | None
    """The body parsed as JSON, or None when it is empty or not JSON."""

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> str:
        """The query string without ``?`` (empty when there is none)."""
        return self.path.split("?", 1)[1] if "?" in self.path else ""


class _Connection:
    """What a reply needs to write its answer: the handler, the server, and the stop signal."""

    def __init__(self, handler: _Handler, server: FakeServer) -> None:
        self.handler = handler
        self.server = server

    @property
    def stopping(self) -> threading.Event:
        return self.server._stopping

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; return True when the server is stopping (the reply should give up)."""
        if seconds <= 0:
            return self.stopping.is_set()
        return self.stopping.wait(seconds)

    def start_response(self, status: int, headers: Mapping[str, str], *, chunked: bool, length: int | None) -> None:
        h = self.handler
        h.send_response(status)
        sent = {k.lower() for k in headers}
        for name, value in headers.items():
            h.send_header(name, value)
        for name, value in self.server.extra_response_headers().items():
            if name.lower() not in sent:
                h.send_header(name, value)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            h.send_header("Content-Length", str(length))
        h.end_headers()
        h.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        if not data:
            return
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.handler.wfile.flush()

    def end_chunks(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def write_sliced(self, data: bytes) -> None:
        """Write `data` as 2-3 flushed chunks with a short pause between, so a reader gets it in pieces."""
        pieces = _slices(data, self.server.slices_per_event)
        for i, piece in enumerate(pieces):
            if i:
                self.wait(self.server.slice_delay)
            self.write_chunk(piece)

    def reset(self) -> None:
        """Close the socket with an RST (SO_LINGER 0) so the client sees a broken connection."""
        h = self.handler
        with contextlib.suppress(OSError):
            h.wfile.flush()
        with contextlib.suppress(OSError):
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.close()

    def close_after(self) -> None:
        self.handler.close_connection = True


def _slices(data: bytes, count: int) -> list[bytes]:
    if count <= 1 or len(data) < count:
        return [data]
    # Uneven cut points so slice borders fall inside the JSON, the "data:" prefix and the blank line.
    cuts = sorted({max(1, len(data) * i // count - i) for i in range(1, count)})
    out, start = [], 0
    for cut in cuts:
        out.append(data[start:cut])
        start = cut
    out.append(data[start:])
    return [p for p in out if p]


class Reply:
    """One scripted answer. Subclasses write it through a `_Connection`."""

    def send(self, conn: _Connection, request: RecordedRequest) -> None:
        raise NotImplementedError


ReplyFactory = Callable[[RecordedRequest], Reply]
"""A callable that builds a reply from the request, usable wherever a Reply is accepted by `enqueue`."""


@dataclass
class JSONReply(Reply):
    """A JSON body with `status` and extra `headers`."""

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: Mapping[str, str] | None = None

    def send(self, conn: _Connection, request: RecordedRequest) -> None:
        data = json.dumps(self.body).encode()
        headers = {"content-type": "application/json", **dict(self.headers or {})}
        conn.start_response(self.status, headers, chunked=False, length=len(data))
        conn.handler.wfile.write(data)
        conn.handler.wfile.flush()


@dataclass(init=False)
class ErrorReply(JSONReply):
    """An error status with the provider's error JSON.

    With `error_body` None the server builds its own provider-shaped body for `status` (see
    `FakeServer.error_body`), using `message` when given. `retry_after` (seconds) adds both
    ``retry-after`` (whole seconds, rounded up) and ``retry-after-ms``; the SDKs prefer the latter, so
    `retry_after=0.01` makes an SDK retry after 10 ms.
    """

    error_body: Any = None
    message: str | None = None
    retry_after: float | None = None

    def __init__(
        self,
        status: int,
        error_body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status=status, body=error_body, headers=headers)
        self.error_body = error_body
        self.message = message
        self.retry_after = retry_after

    def send(self, conn: _Connection, request: RecordedRequest) -> None:
        body = (
            self.error_body
            if self.error_body is not None
            else conn.server.error_body(self.status, self.message, request)
        )
        headers = dict(self.headers or {})
        if self.retry_after is not None:
            headers.setdefault("retry-after", str(max(0, int(-(-self.retry_after // 1)))))
            headers.setdefault("retry-after-ms", str(int(self.retry_after * 1000)))
        headers.update(conn.server.error_headers(self.status))
        JSONReply(self.status, body, headers).send(conn, request)


@dataclass
class BytesReply(Reply):
    """Raw body bytes. With `stream=True` they are sent chunked, one SSE event (or 4 KiB) at a time, sliced."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    stream: bool = False

    def send(self, conn: _Connection, request: RecordedRequest) -> None:
        headers = dict(self.headers or {})
        if not self.stream:
            conn.start_response(self.status, headers, chunked=False, length=len(self.body))
            conn.handler.wfile.write(self.body)
            conn.handler.wfile.flush()
            return
        conn.start_response(self.status, headers, chunked=True, length=None)
        for i, piece in enumerate(_split_events(self.body)):
            if i and conn.wait(conn.server.event_delay):
                conn.reset()
                return
            conn.write_sliced(piece)
        conn.end_chunks()


def _split_events(body: bytes) -> list[bytes]:
    """Cut an SSE body after each blank line (keeping the separators); fall back to 4 KiB pieces."""
    out: list[bytes] = []
    start = 0
    while start < len(body):
        idx = body.find(b"\n\n", start)
        if idx == -1:
            out.append(body[start:])
            break
        end = idx + 2
        while end < len(body) and body[end : end + 1] == b"\n":
            end += 1
        out.append(body[start:end])
        start = end
    return [p[i : i + 4096] for p in out for i in range(0, len(p), 4096)]


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: `data` (a dict/list is JSON-encoded, a str is sent as is) and an optional name."""

    data: Any
    event: str | None = None


def encode_sse_event(item: str | Mapping[str, Any] | SSEEvent | tuple[str, Any]) -> bytes:
    """Encode one event as SSE bytes ending in a blank line.

    A str is a data payload (``"[DONE]"`` becomes ``data: [DONE]``) unless it already looks like SSE
    text (starts with ``data:``, ``event:``, ``id:`` or ``:``), in which case it is sent verbatim with a
    blank line added if missing. A mapping is JSON-encoded into a ``data:`` line. A tuple is
    ``(event_name, data)``.
    """
    if isinstance(item, tuple):
        item = SSEEvent(item[1], item[0])
    if isinstance(item, SSEEvent):
        data = item.data if isinstance(item.data, str) else json.dumps(item.data)
        head = f"event: {item.event}\n" if item.event else ""
        lines = "".join(f"data: {line}\n" for line in data.split("\n"))
        return (head + lines + "\n").encode()
    if isinstance(item, str):
        if item.startswith(("data:", "event:", "id:", ":", "retry:")):
            text = item if item.endswith("\n\n") else item.rstrip("\n") + "\n\n"
            return text.encode()
        return encode_sse_event(SSEEvent(item))
    return encode_sse_event(SSEEvent(dict(item)))


@dataclass
class SSEReply(Reply):
    """A ``text/event-stream`` answer, each event written in small slices.

    `events` items: see `encode_sse_event`. After `reset_after` events the connection is reset (a
    stream failing mid-way); after `hang_after` events the server stops writing until it is stopped
    (a stalled stream). `event_delay` (default: the server's) pauses between events.
    """

    events: Sequence[str | Mapping[str, Any] | SSEEvent | tuple[str, Any]] = ()
    status: int = 200
    headers: Mapping[str, str] | None = None
    reset_after: int | None = None
    hang_after: int | None = None
    event_delay: float | None = None

    def send(self, conn: _Connection, request: RecordedRequest) -> None:
        headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        headers.update(self.headers or {})
        conn.start_response(self.status, headers, chunked=True, length=None)
        delay = conn.server.event_delay if self.event_delay is None else self.event_delay
        for i, event in enumerate(self.events):
            if i == self.reset_after:
                conn.reset()
                return
            if i == self.hang_after:
                conn.wait(_MAX_HANG_SECONDS)
                conn.reset()
                return
            if i and conn.wait(delay):
                conn.reset()
                return
            conn.write_sliced(encode_sse_event(event))
        n = len(self.events)
        if self.reset_after is not None and self.reset_after >= n:
            conn.reset()
            return
        if self.hang_after is not None and self.hang_after >= n:
            conn.wait(_MAX_HANG_SECONDS)
            conn.reset()
            return
        conn.end_chunks()


@dataclass
class Hang(Reply):
    """Read the request and never answer; the connection is dropped when the server stops."""

    def send(self, conn: _Connection, request: RecordedRequest) -> None:
        conn.wait(_MAX_HANG_SECONDS)
        conn.reset()


@dataclass
class Reset(Reply):
    """Read the request, then reset the connection without sending a byte."""

    def send(self, conn: _Connection, request: RecordedRequest) -> None:
        conn.reset()


@dataclass
class Slow(Reply):
    """Wait `seconds`, then send `inner` (the server's default reply when None)."""

    seconds: float
    inner: Reply | None = None

    def send(self, conn: _Connection, request: RecordedRequest) -> None:
        if conn.wait(self.seconds):
            conn.reset()
            return
        inner = self.inner if self.inner is not None else conn.server.default_reply(request)
        inner.send(conn, request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        fake = self.server.fake
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        request = RecordedRequest(self.command, self.path, headers, body, parsed)
        fake._record(request)
        conn = _Connection(self, fake)
        try:
            reply = fake._next_reply(request)
            reply.send(conn, request)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in a fake: answer 500 rather than hang the client
            fake._errors.append(exc)
            self.close_connection = True
            with contextlib.suppress(OSError):
                JSONReply(500, {"error": {"message": f"fake server error: {exc!r}", "type": "fake_error"}}).send(
                    conn, request
                )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Registered before the thread starts, so stop() can always find (and wake, and join) it.
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{type(self.fake).__name__}-connection",
            daemon=True,
        )
        self.fake._track(request, thread, add=True)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.fake._track(request, threading.current_thread(), add=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client hang-ups and resets during stop are normal for a test server; stay quiet.
        pass


class FakeServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 that records requests and answers scripted or default replies.

    Use as a context manager (``with FakeOpenAI() as server:``) or call `start()` / `stop()`.
    `stop()` is idempotent, fast even while handlers hang, and joins every thread it started.
    """

    request_id_header: ClassVar[str] = "x-request-id"
    request_id_prefix: ClassVar[str] = "req_fake"

    def __init__(self, *, slice_delay: float = 0.0005, slices_per_event: int = 3, event_delay: float = 0.0) -> None:
        self.slice_delay = slice_delay
        """Pause between the slices of one SSE event (seconds)."""
        self.slices_per_event = slices_per_event
        self.event_delay = event_delay
        """Pause between SSE events (seconds)."""
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queue: deque[Reply | ReplyFactory] = deque()
        self._errors: list[BaseException] = []
        self._sockets: dict[socket.socket, threading.Thread] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._request_cond = threading.Condition(self._lock)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeServer:
        """Bind 127.0.0.1:0 and serve on a daemon thread. Returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections (waking hanging handlers), close the socket, join the thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            open_connections = list(self._sockets.items())
        for sock, _ in open_connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        for _, handler_thread in open_connections:
            if handler_thread is not threading.current_thread():
                handler_thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if thread is not None:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash, no ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    # -- scripting -----------------------------------------------------------------------------
    def enqueue(self, *replies: Reply | ReplyFactory) -> None:
        """Queue one-shot replies; each answers one request, in order, before defaults resume."""
        with self._lock:
            self._queue.extend(replies)

    def clear_queue(self) -> None:
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        """How many queued replies are not yet used."""
        with self._lock:
            return len(self._queue)

    def default_reply(self, request: RecordedRequest) -> Reply:
        """The answer when nothing is queued. Subclasses route on `request.route`."""
        return self.not_found(request)

    def not_found(self, request: RecordedRequest) -> Reply:
        return ErrorReply(404, message=f"Unknown request URL: {request.method} {request.path}")

    def error_body(self, status: int, message: str | None, request: RecordedRequest | None = None) -> Any:
        """The JSON body of an error with `status`; providers override it."""
        return {"error": {"message": message or f"HTTP {status}", "type": "error"}}

    def error_headers(self, status: int) -> dict[str, str]:
        """Extra headers an error response carries; providers override it."""
        return {}

    def extra_response_headers(self) -> dict[str, str]:
        """Headers added to every response unless the reply sets them: the request id."""
        with self._lock:
            self._counter += 1
            n = self._counter
        return {self.request_id_header: f"{self.request_id_prefix}_{n:06d}"}

    def next_id(self) -> int:
        """A per-server counter for deterministic object ids."""
        with self._lock:
            self._counter += 1
            return self._counter

    # -- inspection ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            if not self._requests:
                raise AssertionError("the fake server received no request")
            return self._requests[-1]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests arrived (or raise TimeoutError)."""
        deadline = time.monotonic() + timeout
        with self._request_cond:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"got {len(self._requests)} requests, expected {count}")
                self._request_cond.wait(left)
            return list(self._requests)

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the fake itself while answering (a test may assert this is empty)."""
        return list(self._errors)

    # -- internals -----------------------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._request_cond:
            self._requests.append(request)
            self._request_cond.notify_all()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            item = self._queue.popleft() if self._queue else None
        if item is None:
            return self.default_reply(request)
        return item if isinstance(item, Reply) else item(request)

    def _track(self, sock: socket.socket, thread: threading.Thread, *, add: bool) -> None:
        with self._lock:
            if add:
                self._sockets[sock] = thread
            else:
                self._sockets.pop(sock, None)
