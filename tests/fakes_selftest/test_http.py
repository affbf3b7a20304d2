"""The base server: binding, recording, SSE slicing, hang / reset / slow, and a fast, clean stop."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fakes._http import (
    BytesReply,
    FakeServer,
    Hang,
    JSONReply,
    Reset,
    Slow,
    SSEEvent,
    SSEReply,
    encode_sse_event,
)

_open: list[http.client.HTTPConnection] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def _post(server: FakeServer, path: str, body: object, timeout: float = 5.0) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    _open.append(conn)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", "X-Test": "1"})
    return conn.getresponse()


def test_binds_loopback_on_a_free_port() -> None:
    with FakeServer() as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server._server is not None
        assert server._server.server_address[0] == "127.0.0.1"
        assert server.port > 0


def test_records_method_path_headers_and_json_body() -> None:
    with FakeServer() as server:
        server.enqueue(JSONReply(201, {"ok": True}, {"x-extra": "yes"}))
        response = _post(server, "/v1/things?beta=true", {"a": 1})
        assert response.status == 201
        assert json.loads(response.read()) == {"ok": True}
        assert response.getheader("x-extra") == "yes"
        assert response.getheader("x-request-id", "").startswith("req_fake_")
        (request,) = server.requests
        assert request.method == "POST"
        assert request.path == "/v1/things?beta=true"
        assert request.route == "/v1/things"
        assert request.query == "beta=true"
        assert request.headers["x-test"] == "1"
        assert request.json == {"a": 1}
        assert request.body == b'{"a": 1}'


def test_unscripted_request_gets_404_by_default() -> None:
    with FakeServer() as server:
        assert _post(server, "/nowhere", {}).status == 404


def test_replies_are_used_once_in_order_and_factories_see_the_request() -> None:
    with FakeServer() as server:
        server.enqueue(JSONReply(200, {"n": 1}), lambda req: JSONReply(200, {"echo": req.json}))
        assert json.loads(_post(server, "/a", {}).read()) == {"n": 1}
        assert json.loads(_post(server, "/a", {"x": 2}).read()) == {"echo": {"x": 2}}
        assert server.pending == 0
        assert _post(server, "/a", {}).status == 404


def test_sse_events_are_split_across_tcp_reads() -> None:
    events = [{"i": i, "text": "x" * 40} for i in range(5)]
    with FakeServer(slice_delay=0.01) as server:
        server.enqueue(SSEReply(events))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            reads = []
            while data := sock.recv(65536):
                reads.append(data)
    raw = b"".join(reads)
    assert b"Transfer-Encoding: chunked" in raw
    assert b"text/event-stream" in raw
    # Each event goes out in 3 slices, so there are clearly more reads than events.
    assert len(reads) > len(events) * 2
    for e in events:
        assert json.dumps(e).encode()[:10] in raw


def test_encode_sse_event_forms() -> None:
    assert encode_sse_event("[DONE]") == b"data: [DONE]\n\n"
    assert encode_sse_event({"a": 1}) == b'data: {"a": 1}\n\n'
    assert encode_sse_event(("ping", {"type": "ping"})) == b'event: ping\ndata: {"type": "ping"}\n\n'
    assert encode_sse_event(SSEEvent("x", "e")) == b"event: e\ndata: x\n\n"
    assert encode_sse_event("event: x\ndata: y") == b"event: x\ndata: y\n\n"


def test_hang_is_released_quickly_by_stop() -> None:
    server = FakeServer().start()
    server.enqueue(Hang())
    errors: list[BaseException] = []

    def call() -> None:
        try:
            _post(server, "/h", {}, timeout=30).read()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    server.wait_for_requests(1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    thread.join(5)
    assert not thread.is_alive()
    assert errors, "the hanging client should see its connection dropped"


def test_hang_times_out_on_the_client() -> None:
    with FakeServer() as server:
        server.enqueue(Hang())
        with pytest.raises(TimeoutError):
            _post(server, "/h", {}, timeout=0.2)


def test_reset_breaks_the_connection() -> None:
    with FakeServer() as server:
        server.enqueue(Reset())
        with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
            _post(server, "/r", {}).read()


def test_sse_reset_after_some_events() -> None:
    with FakeServer() as server:
        server.enqueue(SSEReply([{"i": 0}, {"i": 1}, {"i": 2}], reset_after=2))
        response = _post(server, "/r", {})
        assert response.status == 200
        with pytest.raises((ConnectionError, http.client.IncompleteRead)):
            response.read()


def test_slow_delays_the_inner_reply() -> None:
    with FakeServer() as server:
        server.enqueue(Slow(0.2, JSONReply(200, {"late": True})))
        started = time.monotonic()
        assert json.loads(_post(server, "/s", {}).read()) == {"late": True}
        assert time.monotonic() - started >= 0.2


def test_bytes_reply_streams_raw_sse_text() -> None:
    body = b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"
    with FakeServer() as server:
        server.enqueue(BytesReply(200, body, {"content-type": "text/event-stream"}, stream=True))
        assert _post(server, "/b", {}).read() == body


def test_stop_is_idempotent_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    server = FakeServer().start()
    port = server.port
    _post(server, "/x", {}).read()  # leaves a keep-alive connection and its handler thread open
    server.stop()
    server.stop()
    time.sleep(0.05)
    assert set(threading.enumerate()) <= before
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_keep_alive_connection_serves_several_requests() -> None:
    with FakeServer() as server:
        server.enqueue(JSONReply(200, {"n": 1}), SSEReply(["[DONE]"]), JSONReply(200, {"n": 3}))
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        for _ in range(3):
            conn.request("POST", "/k", body=b"{}")
            conn.getresponse().read()
        conn.close()
        assert len(server.requests) == 3
