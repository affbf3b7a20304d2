"""The transport against a fault-injecting ingest server on 127.0.0.1: retries, deadlines, Retry-After, finality.

Backoff never sleeps for real: the transport gets a fake clock, and its sleep advances that clock.
"""

from __future__ import annotations

import email.utils
import gzip
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from carrot_ai.export._transport import HttpTransport, Outcome, backoff_delay, parse_retry_after
from tests.ingest_server import Fault, IngestServer, refused_url

BODY = gzip.compress(b'{"traces":[]}')
EPOCH = 1_700_000_000.0


class FakeTime:
    """A monotonic clock that only moves when the transport sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        return False


@pytest.fixture
def server() -> Iterator[IngestServer]:
    with IngestServer() as ingest:
        yield ingest


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_transport(base_url: str, fake_time: FakeTime, *, timeout: float = 5.0) -> HttpTransport:
    return HttpTransport(
        base_url,
        "ck-test-key",
        timeout=timeout,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        wall_clock=lambda: EPOCH,
        rand=lambda: 0.5,
    )


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_status_is_retried_until_delivered(server: IngestServer, fake_time: FakeTime, status: int) -> None:
    server.script(Fault.answer(status), Fault.answer(status))
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 30)
    assert (result.outcome, result.status, result.attempts) == (Outcome.DELIVERED, 200, 3)
    assert fake_time.sleeps == [0.5, 1.0]  # exponential, jitter fixed at its midpoint
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (400, Outcome.REJECTED),
        (401, Outcome.REJECTED),
        (403, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (413, Outcome.TOO_LARGE),
        (422, Outcome.REJECTED),
        (500, Outcome.REJECTED),
    ],
)
def test_final_status_is_not_retried(server: IngestServer, fake_time: FakeTime, status: int, outcome: Outcome) -> None:
    server.fault = Fault.answer(status)
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 30)
    assert (result.outcome, result.status, result.attempts) == (outcome, status, 1)
    assert fake_time.sleeps == []
    assert len(server.requests) == 1


def test_retry_after_seconds_is_honoured(server: IngestServer, fake_time: FakeTime) -> None:
    server.script(Fault.retry_after("7"), Fault.retry_after("3", status=503))
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 30)
    assert result.outcome is Outcome.DELIVERED
    assert fake_time.sleeps == [7.0, 3.0]


def test_retry_after_http_date_is_honoured(server: IngestServer, fake_time: FakeTime) -> None:
    server.script(Fault.retry_after(email.utils.formatdate(EPOCH + 12, usegmt=True)))
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 30)
    assert result.outcome is Outcome.DELIVERED
    assert fake_time.sleeps == [12.0]


@pytest.mark.parametrize("garbage", ["soon", "-5", "inf", "nan", "1e3", "Mon, 99 Foo 2024", ""])
def test_garbage_retry_after_is_ignored_for_the_backoff(
    server: IngestServer, fake_time: FakeTime, garbage: str
) -> None:
    server.script(Fault.retry_after(garbage))
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 30)
    assert result.outcome is Outcome.DELIVERED
    assert fake_time.sleeps == [0.5]


def test_retry_after_beyond_the_deadline_gives_up_without_sleeping(server: IngestServer, fake_time: FakeTime) -> None:
    server.fault = Fault.retry_after("120")
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 30)
    assert (result.outcome, result.status, result.attempts) == (Outcome.NETWORK, 429, 1)
    assert fake_time.sleeps == []


@pytest.mark.timeout(30)  # (without the floor, the fake clock never moves: the loop spins until this)
@pytest.mark.parametrize("value", ["0", email.utils.formatdate(EPOCH - 60, usegmt=True)], ids=["zero", "past-date"])
def test_retry_after_zero_or_past_never_retries_faster_than_the_backoff(
    server: IngestServer, fake_time: FakeTime, value: str
) -> None:
    # "Retry-After: 0", or a date already past (the server's clock behind ours), taken as is made the transport
    # hammer an overloaded server: thousands of requests a second, until the batch's deadline.
    server.fault = Fault.retry_after(value, status=503)
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 10)
    assert (result.outcome, result.status) == (Outcome.NETWORK, 503)
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert result.attempts == len(server.requests) == 5


def test_retries_stop_at_one_overall_deadline(server: IngestServer, fake_time: FakeTime) -> None:
    server.fault = Fault.answer(503)
    start = fake_time.now
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=start + 10)
    assert result.outcome is Outcome.NETWORK
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]  # the next one (8 s) would pass the deadline
    assert fake_time.now - start <= 10
    assert result.attempts == len(server.requests) == 5


def test_connection_refused_is_retried_until_the_deadline(fake_time: FakeTime) -> None:
    result = make_transport(refused_url(), fake_time).send(BODY, deadline=fake_time.now + 5)
    assert (result.outcome, result.status) == (Outcome.NETWORK, None)
    assert result.detail == "ConnectError"
    assert fake_time.sleeps == [0.5, 1.0, 2.0]


def test_connection_reset_mid_request_is_retried(server: IngestServer, fake_time: FakeTime) -> None:
    server.script(Fault.reset())
    result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 30)
    assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 2)
    assert [r.method for r in server.requests] == ["POST", "POST"]


def test_hanging_server_is_cut_off_by_the_request_timeout(server: IngestServer) -> None:
    server.fault = Fault.hang()
    transport = HttpTransport(server.base_url, "ck-test-key", timeout=0.2, sleep=lambda s: True)
    import time

    result = transport.send(BODY, deadline=time.monotonic() + 30)
    # The first attempt timed out; the (interrupted) backoff sleep then ended the batch.
    assert (result.outcome, result.attempts, result.detail) == (Outcome.SHUTDOWN, 1, "ReadTimeout")


def test_limit_deadline_pulls_the_batch_deadline_forward(server: IngestServer, fake_time: FakeTime) -> None:
    server.fault = Fault.answer(503)
    transport = make_transport(server.base_url, fake_time)
    transport.limit_deadline(fake_time.now + 1.2)
    result = transport.send(BODY, deadline=fake_time.now + 30)
    assert result.outcome is Outcome.SHUTDOWN  # cut short by shutdown, not given up on the network
    assert fake_time.sleeps == [0.5]


def test_interrupt_wakes_the_backoff_sleep(server: IngestServer) -> None:
    server.fault = Fault.retry_after("30", status=503)
    sleeping = threading.Event()

    def sleep(seconds: float) -> bool:  # the transport's own interruptible sleep, saying when it starts
        sleeping.set()
        return transport._stop.wait(seconds)

    transport = HttpTransport(server.base_url, "ck-test-key", sleep=sleep)
    results = []
    import time

    sender = threading.Thread(target=lambda: results.append(transport.send(BODY, deadline=time.monotonic() + 60)))
    sender.start()
    # In the backoff sleep (the 503 read): interrupt() before then also cuts the request in flight (tested apart).
    assert sleeping.wait(10)
    transport.interrupt()
    sender.join(10)
    assert not sender.is_alive()
    [result] = results
    assert (result.outcome, result.status, result.attempts) == (Outcome.SHUTDOWN, 503, 1)
    transport.close()


def test_redirect_is_not_followed(server: IngestServer, fake_time: FakeTime) -> None:
    with IngestServer() as elsewhere:
        server.fault = Fault.redirect(elsewhere.base_url + "/v1/traces/ingest?key=secret-in-location")
        result = make_transport(server.base_url, fake_time).send(BODY, deadline=fake_time.now + 30)
        assert (result.outcome, result.status, result.attempts) == (Outcome.REJECTED, 307, 1)
        assert result.location == elsewhere.base_url + "/v1/traces/ingest?key=***"
        assert elsewhere.requests == []


def test_request_carries_gzip_body_bearer_key_and_record_count(server: IngestServer, fake_time: FakeTime) -> None:
    make_transport(server.base_url + "/", fake_time).send(BODY, deadline=fake_time.now + 30, record_count=0)
    [request] = server.requests
    assert request.path == "/v1/traces/ingest"
    assert request.headers["authorization"] == "Bearer ck-test-key"
    assert request.headers["content-encoding"] == "gzip"
    assert request.json == {"traces": []}


def test_base_url_path_and_query_are_kept(server: IngestServer, fake_time: FakeTime) -> None:
    make_transport(server.base_url + "/proxy/carrot/?tenant=a", fake_time).send(BODY, deadline=fake_time.now + 30)
    [request] = server.requests
    assert request.target == "/proxy/carrot/v1/traces/ingest?tenant=a"


def test_parse_retry_after_accepts_seconds_and_dates_only() -> None:
    assert parse_retry_after("5", EPOCH) == 5.0
    assert parse_retry_after(" 2.5 ", EPOCH) == 2.5
    assert parse_retry_after(email.utils.formatdate(EPOCH + 60, usegmt=True), EPOCH) == 60.0
    assert parse_retry_after(email.utils.formatdate(EPOCH - 60, usegmt=True), EPOCH) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", EPOCH) == 0.0
    for garbage in (None, "", "soon", "-1", "inf", "nan", "0x10", "1e3"):
        assert parse_retry_after(garbage, EPOCH) is None


def test_backoff_is_exponential_with_bounded_jitter() -> None:
    assert [backoff_delay(n, lambda: 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(3, lambda: 0.0) == pytest.approx(1.6)
    assert backoff_delay(3, lambda: 1.0) == pytest.approx(2.4)
    assert backoff_delay(50, lambda: 0.5) == 30.0  # capped


def test_an_endpoint_that_refuses_gzip_gets_plain_json(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    """A server (a self-hosted endpoint, a gateway in front of it) answering 415 Unsupported Media Type to the gzip
    body gets the same batch again as plain JSON at once, and every later batch plain: nothing is lost (carrot-ai
    0.2.1 sent plain JSON)."""
    import carrot_ai

    def refuse_gzip(request: object) -> tuple[int, dict[str, str], bytes] | None:
        if getattr(request, "headers", {}).get("content-encoding") == "gzip":
            return 415, {}, b'{"error":"gzip is not supported"}'
        return None

    ingest.behaviour = refuse_gzip  # type: ignore[assignment]
    carrot_ai.init(
        api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=tracer_provider
    )
    try:

        @carrot_ai.trace
        def step(index: int) -> int:
            return index

        step(1)
        assert carrot_ai.flush(5)
        step(2)
        step(3)
        assert carrot_ai.flush(5)
        records = ingest.wait_for(3)
        assert sorted(r["input"]["index"] for r in records) == [1, 2, 3]
        assert carrot_ai.stats()["dropped"] == 0
        encodings = [r.headers.get("content-encoding") for r in ingest.requests]
        assert encodings[0] == "gzip" and all(e is None for e in encodings[1:]), encodings
    finally:
        carrot_ai.shutdown()
