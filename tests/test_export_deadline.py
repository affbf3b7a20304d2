"""A batch ends by its ``export_deadline`` however slowly the ingest server talks.

A slow-loris server (one that keeps a request alive a byte at a time, so no single read or write ever times out)
costs the batch it holds, counted as ``network`` and logged, never the worker: the next records are delivered.
"""

from __future__ import annotations

import gzip
import logging
import os
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai.export._deadline_io import DeadlineBackend
from carrot_ai.export._transport import HttpTransport, Outcome
from tests.export_helpers import call_traced, shutdown_after, start  # noqa: F401
from tests.ingest_server import Fault, IngestServer

DEADLINE = 2.0
# An upper bound on behaviour, not a speed target: room for a loaded 2-core CI machine.
LATEST = DEADLINE + 5.0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", [Fault.trickle(0.2), Fault.trickle_body(0.2)], ids=["headers", "body"])
def test_slow_loris_answer_costs_the_batch_not_the_worker(
    ingest: IngestServer, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture, fault: Fault
) -> None:
    ingest.script(fault)  # the first request only; the next ones are answered at once
    # request_timeout above the deadline: only the deadline can end the trickled request.
    start(ingest.base_url, tracer_provider, flush_interval=30, request_timeout=5.0, export_deadline=DEADLINE)
    with caplog.at_level(logging.WARNING, logger="carrot_ai"):
        began = time.monotonic()
        call_traced(3, name="first")
        assert carrot_ai.flush(LATEST + 10) is False
        elapsed = time.monotonic() - began
        call_traced(2, name="second")
        assert carrot_ai.flush(10) is True
    assert DEADLINE - 0.1 <= elapsed <= LATEST
    stats = carrot_ai.stats()
    assert (stats["delivered"], stats["network"], stats["dropped"]) == (2, 3, 3)
    assert [r["name"] for r in ingest.records] == ["second", "second"]
    assert len(ingest.requests) == 2
    logged = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert logged == [
        f"carrot_ai: 3 trace record(s) not delivered to {ingest.base_url} after 1 attempt(s) (ReadTimeout): "
        "the ingest API is slow or unreachable"
    ]


@pytest.mark.timeout(60)
def test_slow_reading_server_is_cut_off_at_the_deadline(ingest: IngestServer) -> None:
    # Big enough to fill the socket buffers on both sides, so the writes wait on the server's reads.
    body = os.urandom(24 * 1024 * 1024)
    ingest.script(Fault.slow_read(0.05, chunk=64 * 1024))  # ~1.3 MB/s: each write goes a little further
    transport = HttpTransport(ingest.base_url, "ck-test-key", timeout=5.0)
    try:
        began = time.monotonic()
        result = transport.send(body, deadline=began + DEADLINE)
        elapsed = time.monotonic() - began
        assert (result.outcome, result.attempts, result.detail) == (Outcome.NETWORK, 1, "WriteTimeout")
        assert DEADLINE - 0.1 <= elapsed <= LATEST
        # The next request goes out on a new connection and arrives.
        assert (
            transport.send(gzip.compress(b'{"traces":[]}'), deadline=time.monotonic() + 10).outcome is Outcome.DELIVERED
        )
    finally:
        transport.close()


@pytest.mark.timeout(60)
def test_exit_pulls_the_deadline_of_the_request_in_flight_forward(ingest: IngestServer) -> None:
    ingest.script(Fault.trickle(0.1))
    transport = HttpTransport(ingest.base_url, "ck-test-key", timeout=5.0)
    try:
        began = time.monotonic()
        transport.limit_deadline(began + 0.5)
        result = transport.send(b"{}", deadline=began + 60)
        assert (result.outcome, result.detail) == (Outcome.SHUTDOWN, "ReadTimeout")
        assert time.monotonic() - began <= LATEST
    finally:
        transport.close()


@pytest.mark.timeout(60)
def test_shutdown_cuts_the_request_in_flight(ingest: IngestServer) -> None:
    # interrupt() (shutdown, once what was in flight is counted as lost) ends a trickled request at its next step.
    import threading

    ingest.script(Fault.trickle(0.1))
    transport = HttpTransport(ingest.base_url, "ck-test-key", timeout=5.0)
    results = []
    sender = threading.Thread(target=lambda: results.append(transport.send(b"{}", deadline=time.monotonic() + 60)))
    try:
        sender.start()
        ingest.wait_for_requests(1)
        began = time.monotonic()
        transport.interrupt()
        sender.join(LATEST)
        assert not sender.is_alive()
        assert time.monotonic() - began <= LATEST
        [result] = results
        assert result.outcome is Outcome.SHUTDOWN
    finally:
        transport.close()


def test_every_connection_pool_is_bounded_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx2 has no public hook for this: if a release moves its pools, this test says so.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    transport = HttpTransport("https://ingest.example", "ck-test-key")
    try:
        client = transport._client
        pools = [client._transport._pool, *(t._pool for t in client._mounts.values() if t is not None)]
        assert len(pools) >= 3  # the direct one and the two proxies
        assert all(isinstance(pool._network_backend, DeadlineBackend) for pool in pools)
        assert len(transport._io_backends) == len(pools)
    finally:
        transport.close()
