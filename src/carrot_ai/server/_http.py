"""The local server's HTTP side: routes, authentication, body limits, and JSON responses (stdlib only).

Routes (the OpenAPI document at ``/openapi.json`` describes each):

* ``POST /v1/traces/ingest``: the exporter's wire format, ``{"traces": [record, ...]}``, gzip or plain.
* ``POST /v1/traces``: OTLP/HTTP traces, protobuf or JSON.
* ``GET /v1/traces``, ``GET /v1/traces/{id}``, ``GET /v1/stats``: search, one tree, cost/latency over time.
* ``GET /``: the trace viewer; ``GET /openapi.json``; ``GET /healthz``.

When an API key is configured, every ``/v1/`` route needs ``Authorization: Bearer <key>``; the viewer page and
the OpenAPI document do not (the page asks for the key). Whatever the key, a request a web page made for another site
(its ``Origin`` is not this server) is refused, and so, on a loopback address, is one naming a host other than this
machine (a DNS name rebound to 127.0.0.1): otherwise any page the user visits could write traces, or read them.
"""

from __future__ import annotations

import datetime
import hmac
import json
import logging
import re
import socket
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from carrot_ai._config import is_loopback_host
from carrot_ai.export._schema import complete_record
from carrot_ai.server import _otlp
from carrot_ai.server._openapi import openapi_document
from carrot_ai.server._query import QueryError, SearchQuery
from carrot_ai.server._store import TraceStore
from carrot_ai.server._validate import RecordError, validate_record

logger = logging.getLogger("carrot_ai.server")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024  # after decompression; the exporter sends at most 5 MiB per batch
DEFAULT_IDLE_TIMEOUT = 120.0  # seconds; above the exporter's flush interval, so its kept-alive connection is reused
_TRACE_PATH = re.compile(r"^/v1/traces/([0-9A-Za-z_.:-]{1,200})$")
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
}


class HttpError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class _ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6  # the stdlib server is IPv4 only: "::1" failed with "address family not supported"


class TraceServer:
    """The local ingest server, search API and viewer. ``with TraceServer(store) as server: server.url``."""

    def __init__(
        self,
        store: TraceStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.store = store
        #: Seconds a connection may wait for a request's next bytes (an idle keep-alive connection, a client that
        #: stopped sending) before the server closes it: each connection holds a thread. None: no limit.
        self.idle_timeout = idle_timeout
        self.api_key = api_key or None
        self.max_body_bytes = max_body_bytes
        self.loopback_only = _is_loopback(host)
        server_type = _ThreadingHTTPServer6 if ":" in host else ThreadingHTTPServer
        self._httpd = server_type((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``); use it as ``CARROT_BASE_URL``."""
        host, port = self._httpd.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        shown = "127.0.0.1" if host == "0.0.0.0" else "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> TraceServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="carrot-ai-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until :meth:`stop` (or KeyboardInterrupt)."""
        self._httpd.serve_forever(poll_interval=0.25)

    def stop(self) -> None:
        """Stop serving and close the socket (the store stays open)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> TraceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling (called from the handler's thread) ---------------------------------------------------

    def check_browser_headers(self, host: str | None, origin: str | None) -> None:
        """Refuse a web page's request for another site (``Origin``) or via a name rebound to 127.0.0.1 (``Host``)."""
        if self.loopback_only and host is not None and not _is_loopback(_hostname(host)):
            raise HttpError(403, f"Host {host!r} is not this machine: use {self.url}")
        if origin is not None and (host is None or urlsplit(origin).netloc.lower() != host.lower()):
            raise HttpError(403, f"a request from the web page at {origin!r} is refused (only the viewer's own pages)")

    def authorized(self, header: str | None) -> bool:
        if self.api_key is None:
            return True
        expected = f"Bearer {self.api_key}".encode()
        return header is not None and hmac.compare_digest(header.strip().encode(), expected)

    def ingest(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            payload = json.loads(body, parse_constant=_not_json)  # NaN / Infinity are not JSON
        except ValueError as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from None
        except RecursionError:
            raise HttpError(400, "body is nested too deeply") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("traces"), list):
            raise HttpError(400, 'body must be {"traces": [record, ...]}', "traces")
        valid: list[dict[str, Any]] = []
        rejected: list[RecordError] = []
        seen: set[str] = set()
        received = datetime.datetime.now(datetime.timezone.utc)
        for index, record in enumerate(payload["traces"]):
            if isinstance(record, dict):
                record = complete_record(record, received)  # a hand-written record may omit its id and times
            error = validate_record(record, index)
            if error is not None:
                rejected.append(error)
            elif record["id"] not in seen:  # the same id twice in one batch is a duplicate too
                seen.add(record["id"])
                valid.append(record)
        stored, duplicates = self.store.insert(valid)
        duplicates += len(payload["traces"]) - len(rejected) - len(valid)
        result: dict[str, Any] = {
            "accepted": len(payload["traces"]) - len(rejected),
            "stored": stored,
            "duplicates": duplicates,
            "rejected": [error.as_dict() for error in rejected],
        }
        if rejected:
            first = rejected[0]
            result["error"] = (
                f"{len(rejected)} record(s) rejected; first: traces[{first.index}].{first.field}: {first.error}"
            )
            return 422, result
        return 200, result

    def ingest_otlp(self, body: bytes, content_type: str) -> tuple[int, bytes, str]:
        kind = _otlp.PROTOBUF if "protobuf" in content_type else _otlp.JSON if "json" in content_type else ""
        if not kind:
            raise HttpError(415, "OTLP needs Content-Type application/x-protobuf or application/json")
        try:
            request = _otlp.decode_request(body, kind)
        except _otlp.OtlpError as exc:
            raise HttpError(400, str(exc)) from None
        records, _elided = _otlp.spans_to_records(request)
        valid: list[dict[str, Any]] = []
        problems: list[str] = []
        for index, record in enumerate(records):
            error = validate_record(record, index)
            if error is None:
                valid.append(dict(record))
            else:
                problems.append(f"{record.get('name')}: {error.field}: {error.error}")
        self.store.insert(valid)
        return 200, _otlp.encode_response(len(problems), "; ".join(problems[:5]), kind), kind

    def search(self, query_string: str) -> bytes:
        query = _parse_query(query_string)
        texts, cursor = self.store.search(query)
        return ('{"traces":[' + ",".join(texts) + '],"next_cursor":' + json.dumps(cursor) + "}").encode("utf-8")

    def stats(self, query_string: str) -> dict[str, Any]:
        params = parse_qs(query_string, keep_blank_values=False)
        buckets = 60
        if "buckets" in params:
            try:
                buckets = int(params.pop("buckets")[0])
            except ValueError:
                raise HttpError(400, "buckets: must be an integer", "buckets") from None
            if not 1 <= buckets <= 1000:
                raise HttpError(400, "buckets: must be between 1 and 1000", "buckets")
        try:
            query = SearchQuery.from_params(params)
        except QueryError as exc:
            raise HttpError(400, str(exc), exc.field) from None
        return self.store.stats(query, buckets)


def _hostname(host_header: str) -> str:
    try:
        return urlsplit("//" + host_header).hostname or ""
    except ValueError:
        return ""


def _is_loopback(host: str) -> bool:
    return host.endswith(".localhost") or is_loopback_host(host)  # (browsers resolve *.localhost to this machine)


def _parse_query(query_string: str) -> SearchQuery:
    try:
        return SearchQuery.from_params(parse_qs(query_string, keep_blank_values=False))
    except QueryError as exc:
        raise HttpError(400, str(exc), exc.field) from None


def _decompress(raw: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "deflate"):
        raise HttpError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise HttpError(400, f"body is not valid {encoding}: {exc}") from None
    if len(data) > limit:
        raise HttpError(413, f"decompressed body is larger than {limit} bytes")
    return data


def _make_handler(server: TraceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "carrot-ai"
        sys_version = ""
        # Headers and body leave in one write (the handler flushes after each request), with Nagle off: otherwise
        # delayed ACKs add ~40 ms to every response.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True
        timeout = server.idle_timeout  # applied to the connection by StreamRequestHandler.setup

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            self._body_consumed = False
            try:
                self._route(method)
            except HttpError as exc:
                if not self._body_consumed and (
                    self.headers.get("Content-Length", "0") != "0" or self.headers.get("Transfer-Encoding")
                ):
                    self.close_connection = True  # an unread body would be taken for the next request
                body: dict[str, Any] = {"error": exc.message}
                if exc.field:
                    body["field"] = exc.field
                extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
                self._json(exc.status, body, extra)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception:
                logger.exception("carrot-ai server: internal error on %s %s", method, urlsplit(self.path).path)
                self._json(500, {"error": "internal server error (see the server's log)"})

        def _route(self, method: str) -> None:
            server.check_browser_headers(self.headers.get("Host"), self.headers.get("Origin"))
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            if path in _STATIC or path == "/openapi.json" or path == "/healthz":
                if method != "GET":
                    raise HttpError(405, f"{method} not allowed on {path}")
                if path == "/openapi.json":
                    self._json(200, openapi_document())
                elif path == "/healthz":
                    self._json(200, {"ok": True})
                else:
                    self._static(*_STATIC[path])
                return
            if not path.startswith("/v1/"):
                raise HttpError(404, f"no route {path}")
            if not server.authorized(self.headers.get("Authorization")):
                self._drain_body()
                raise HttpError(401, "missing or wrong API key (Authorization: Bearer <key>)")
            if path == "/v1/traces/ingest":
                self._need(method, "POST", path)
                status, result = server.ingest(self._body())
                self._json(status, result)
            elif path == "/v1/traces" and method == "POST":
                status, payload, content_type = server.ingest_otlp(
                    self._body(), (self.headers.get("Content-Type") or "").lower()
                )
                self._send(status, payload, content_type)
            elif path == "/v1/traces":
                self._need(method, "GET", path)
                self._send(200, server.search(parts.query), "application/json")
            elif path == "/v1/stats":
                self._need(method, "GET", path)
                self._json(200, server.stats(parts.query))
            elif match := _TRACE_PATH.match(path):
                self._need(method, "GET", path)
                tree = server.store.tree(match.group(1))
                if tree is None:
                    raise HttpError(404, f"no trace record with id {match.group(1)}")
                self._json(200, tree)
            else:
                raise HttpError(404, f"no route {path}")

        def _need(self, method: str, expected: str, path: str) -> None:
            if method != expected:
                self._drain_body()
                raise HttpError(405, f"{method} not allowed on {path} (use {expected})")

        def _drain_body(self) -> None:
            # Read what the client sent so the connection can be reused for the error response.
            length = self.headers.get("Content-Length")
            if length and length.isdigit() and int(length) <= server.max_body_bytes:
                self.rfile.read(int(length))
                self._body_consumed = True
            else:
                self.close_connection = True

        def _body(self) -> bytes:
            self._body_consumed = True
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                raw = self._read_chunked()
            else:
                length_header = self.headers.get("Content-Length")
                if length_header is None or not length_header.isdigit():
                    self.close_connection = True
                    raise HttpError(411, "Content-Length required")
                length = int(length_header)
                if length > server.max_body_bytes:
                    self.close_connection = True
                    raise HttpError(413, f"body is larger than {server.max_body_bytes} bytes")
                raw = self.rfile.read(length)
            return _decompress(raw, self.headers.get("Content-Encoding") or "", server.max_body_bytes)

        def _read_chunked(self) -> bytes:
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    size = -1
                if size < 0:  # read(-1) would read to the end of the connection, past the body limit
                    self.close_connection = True
                    raise HttpError(400, "malformed chunked body")
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > server.max_body_bytes:
                    self.close_connection = True
                    raise HttpError(413, f"body is larger than {server.max_body_bytes} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(16)

        def _static(self, name: str, content_type: str) -> None:
            data = resources.files("carrot_ai.server").joinpath("static").joinpath(name).read_bytes()
            self._send(
                200,
                data,
                content_type,
                {
                    "Cache-Control": "no-cache",
                    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'",
                    "X-Content-Type-Options": "nosniff",
                },
            )

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            self._send(status, data, "application/json", headers)

        def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")
