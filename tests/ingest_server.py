"""A real HTTP ingest server on 127.0.0.1 for the tests: receives what the exporter sends, as the platform would.

It decodes gzip, checks the bearer token, validates every record against the package's JSON Schema and keeps
the records, the raw requests and anything invalid.

Faults, for the reliability tests (see :class:`Fault`): set ``server.fault`` for every request, or queue one-shot
faults with ``server.script(Fault.status(503), Fault.reset())`` (consumed one per request, then ``fault`` again).
``ok``, ``slow``, ``hang``, ``reset`` (connection reset mid-request), any status (5xx, 429 with ``Retry-After``,
413, 401, ...), ``redirect``, and the slow-loris ones that keep a request alive a byte at a time: ``trickle``
(the answer's headers), ``trickle_body`` (its body) and ``slow_read`` (taking in the request body);
``max_body_bytes`` answers 413 to larger bodies. ``IngestServer(tls=...)`` serves
HTTPS with a certificate from :func:`make_certificates`; :func:`refused_url` is an address nobody listens on.
The server also answers as an HTTP proxy would (absolute-form targets, ``CONNECT``), recording the target.
``behaviour`` stays as a free-form hook that runs before the fault.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from carrot_ai.export import trace_record_schema

Behaviour = Callable[["ReceivedRequest"], "tuple[int, dict[str, str], bytes] | None"]


class ReceivedRequest:
    def __init__(self, path: str, headers: dict[str, str], raw: bytes, method: str = "POST") -> None:
        self.method = method
        self.target = path  # as sent: a path, an absolute URL (through a proxy), or host:port (CONNECT)
        self.path = urlsplit(path).path if method != "CONNECT" else path
        self.headers = headers
        self.raw = raw
        try:
            self.body: bytes = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        except (OSError, EOFError):
            self.body = raw
        try:
            self.json: Any = json.loads(self.body)
        except ValueError:
            self.json = None


@dataclasses.dataclass(frozen=True)
class Fault:
    """What the server does with one request."""

    kind: str  # "ok", "slow", "hang", "reset", "status", "redirect", "trickle", "trickle_body", "slow_read"
    seconds: float = 0.0
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def ok(cls) -> Fault:
        return cls("ok")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Answer normally after ``seconds``."""
        return cls("slow", seconds=seconds)

    @classmethod
    def hang(cls) -> Fault:
        """Read the request and never answer (until the server stops or ``release_hangs()``)."""
        return cls("hang")

    @classmethod
    def reset(cls) -> Fault:
        """Read part of the request, then reset the connection (RST)."""
        return cls("reset")

    @classmethod
    def trickle(cls, seconds: float) -> Fault:
        """Read the request, then send the answer's status line and headers one byte every ``seconds``, forever."""
        return cls("trickle", seconds=seconds)

    @classmethod
    def trickle_body(cls, seconds: float) -> Fault:
        """Read the request, send the headers of a 200 at once, then its (long) body one byte every ``seconds``."""
        return cls("trickle_body", seconds=seconds)

    @classmethod
    def slow_read(cls, seconds: float, chunk: int = 4096) -> Fault:
        """Take in the request body ``chunk`` bytes every ``seconds`` (then answer as ``ok`` does)."""
        return cls("slow_read", seconds=seconds, status=chunk)

    @classmethod
    def answer(cls, status: int, headers: dict[str, str] | None = None, body: bytes = b"{}") -> Fault:
        """Answer ``status`` without keeping the records (5xx, 429, 413, 401, ...)."""
        return cls("status", status=status, headers=tuple((headers or {}).items()), body=body)

    @classmethod
    def retry_after(cls, value: str, status: int = 429) -> Fault:
        return cls.answer(status, {"Retry-After": value})

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Fault:
        return cls("redirect", status=status, headers=(("Location", location),))


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    ca: Path  # the CA certificate (what a client trusts)
    cert: Path  # the server's certificate for 127.0.0.1 / localhost, signed by the CA
    key: Path


def make_certificates(directory: Path) -> TLSFiles:
    """Create a private CA and a server certificate for 127.0.0.1 with the ``openssl`` command."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=carrot-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return TLSFiles(ca=ca, cert=cert, key=key)


def refused_url() -> str:
    """A loopback URL on which nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class IngestServer:
    """``with IngestServer() as ingest: ... ingest.wait_for(3)``."""

    def __init__(self, api_key: str | None = "ck-test-key", *, tls: TLSFiles | None = None) -> None:
        self.api_key = api_key
        self.requests: list[ReceivedRequest] = []
        self.records: list[dict[str, Any]] = []
        self.invalid: list[tuple[dict[str, Any], str]] = []
        self.behaviour: Behaviour | None = None
        self.fault: Fault | None = None
        self.max_body_bytes: int | None = None
        self.tls = tls
        self._script: collections.deque[Fault] = collections.deque()
        self._cond = threading.Condition()
        self._validator = jsonschema.Draft202012Validator(
            trace_record_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        self._stopping = threading.Event()
        self._release = threading.Event()
        server = self
        context: ssl.SSLContext | None = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls.cert), str(tls.key))

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs stall every small response by ~40 ms

            def setup(self) -> None:
                if context is not None:  # handshake here, in the connection's thread, not in accept()
                    self.request = context.wrap_socket(self.request, server_side=True)
                    self.connection = self.request
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_CONNECT(self) -> None:
                server._record(ReceivedRequest(self.path, self._headers(), b"", "CONNECT"))
                self._respond(403, {}, b"")
                self.close_connection = True

            def do_POST(self) -> None:
                headers = self._headers()
                length = int(headers.get("content-length") or 0)
                fault = server._next_fault()
                if fault.kind == "reset":
                    self.rfile.read(min(length, 16))
                    server._record(ReceivedRequest(self.path, headers, b"", "POST"))
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if fault.kind == "slow_read":
                    raw = self._read_slowly(length, fault.seconds, fault.status)
                    if raw is None:
                        return
                else:
                    raw = self.rfile.read(length)
                request = ReceivedRequest(self.path, headers, raw)
                if fault.kind in ("trickle", "trickle_body"):
                    server._record(request)
                    self._trickle(fault)
                    return
                if fault.kind == "hang":
                    server._record(request)
                    server._release.wait()
                    self.close_connection = True
                    return
                if fault.kind == "slow":
                    server._stopping.wait(fault.seconds)
                status, reply_headers, body = server._handle(request, fault)
                self._respond(status, reply_headers, body)

            def _read_slowly(self, length: int, seconds: float, chunk: int) -> bytes | None:
                raw = b""
                while len(raw) < length:
                    if server._stopping.wait(seconds):
                        self.close_connection = True
                        return None
                    data = self.rfile.read1(min(chunk, length - len(raw)))
                    if not data:
                        self.close_connection = True
                        return None
                    raw += data
                return raw

            def _trickle(self, fault: Fault) -> None:
                self.close_connection = True
                if fault.kind == "trickle":
                    head, filler = b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a"
                else:
                    head, filler = b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n", b"{"
                try:
                    self.wfile.write(head[:1])
                    for index in range(1, 10**9):
                        if server._stopping.wait(fault.seconds):
                            return
                        self.wfile.write(head[index : index + 1] or filler)
                        self.wfile.flush()
                except OSError:  # the client gave up
                    pass

            def _headers(self) -> dict[str, str]:
                return {k.lower(): v for k, v in self.headers.items()}

            def _respond(self, status: int, headers: dict[str, str], body: bytes) -> None:
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # failed handshakes and resets are part of the tests

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def __enter__(self) -> IngestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def script(self, *faults: Fault) -> None:
        """Queue one-shot faults, applied to the next requests in order."""
        with self._cond:
            self._script.extend(faults)

    def release_hangs(self) -> None:
        """Let requests held by a ``hang`` fault go (they end without an answer)."""
        self._release.set()

    def _next_fault(self) -> Fault:
        with self._cond:
            if self._script:
                return self._script.popleft()
        return self.fault or Fault.ok()

    def _record(self, request: ReceivedRequest) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def _handle(self, request: ReceivedRequest, fault: Fault) -> tuple[int, dict[str, str], bytes]:
        self._record(request)
        if self.behaviour is not None:
            scripted = self.behaviour(request)
            if scripted is not None:
                return scripted
        if fault.kind in ("status", "redirect"):
            return fault.status, dict(fault.headers), fault.body
        if self.max_body_bytes is not None and len(request.raw) > self.max_body_bytes:
            return 413, {}, b'{"error":"payload too large"}'
        if request.path != "/v1/traces/ingest":
            return 404, {}, b'{"error":"not found"}'
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, b'{"error":"invalid api key"}'
        payload = request.json
        if not isinstance(payload, dict) or not isinstance(payload.get("traces"), list):
            return 400, {}, b'{"error":"body must be {\\"traces\\": [...]}"}'
        with self._cond:
            for record in payload["traces"]:
                errors = sorted(self._validator.iter_errors(record), key=lambda e: list(e.path))
                if errors:
                    self.invalid.append((record, f"{list(errors[0].path)}: {errors[0].message}"))
                else:
                    self.records.append(record)
            self._cond.notify_all()
        return 200, {"content-type": "application/json"}, b'{"accepted":true}'

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until at least ``count`` valid records arrived; return all records."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.records) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} records, got {len(self.records)}; invalid: {self.invalid[:3]}"
                    )
                self._cond.wait(remaining)
            return list(self.records)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Wait until at least ``count`` requests arrived (whatever the answer); return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self._cond.wait(remaining)
            return list(self.requests)

    def by_name(self, name: str) -> dict[str, Any]:
        matches = [r for r in self.records if r["name"] == name]
        assert len(matches) == 1, f"{len(matches)} records named {name!r}: {[r['name'] for r in self.records]}"
        return matches[0]
