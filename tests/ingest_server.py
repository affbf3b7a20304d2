"""A real HTTP ingest server on 127.0.0.1 for the tests: receives what the exporter sends, as the platform would.

It decodes gzip, checks the bearer token, validates every record against the package's JSON Schema and keeps
the records, the raw requests and anything invalid. ``behaviour`` scripts faults for the reliability tests.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema

from carrot_ai.export import trace_record_schema

Behaviour = Callable[["ReceivedRequest"], "tuple[int, dict[str, str], bytes] | None"]


class ReceivedRequest:
    def __init__(self, path: str, headers: dict[str, str], raw: bytes) -> None:
        self.path = path
        self.headers = headers
        self.raw = raw
        self.body: bytes = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        try:
            self.json: Any = json.loads(self.body)
        except ValueError:
            self.json = None


class IngestServer:
    """``with IngestServer() as ingest: ... ingest.wait_for(3)``."""

    def __init__(self, api_key: str | None = "ck-test-key") -> None:
        self.api_key = api_key
        self.requests: list[ReceivedRequest] = []
        self.records: list[dict[str, Any]] = []
        self.invalid: list[tuple[dict[str, Any], str]] = []
        self.behaviour: Behaviour | None = None
        self._cond = threading.Condition()
        self._validator = jsonschema.Draft202012Validator(
            trace_record_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs stall every small response by ~40 ms

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                request = ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                status, headers, body = server._handle(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

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
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _handle(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        with self._cond:
            self.requests.append(request)
        if self.behaviour is not None:
            scripted = self.behaviour(request)
            if scripted is not None:
                return scripted
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

    def by_name(self, name: str) -> dict[str, Any]:
        matches = [r for r in self.records if r["name"] == name]
        assert len(matches) == 1, f"{len(matches)} records named {name!r}: {[r['name'] for r in self.records]}"
        return matches[0]
