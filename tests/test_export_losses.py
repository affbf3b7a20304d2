"""Nothing is lost silently: every loss is counted by reason, logged (rate-limited), and flush() tells the truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai.export._stats import LOSS_REASONS
from tests.export_helpers import call_traced, final_stats, shutdown_after, start  # noqa: F401
from tests.ingest_server import Fault, IngestServer, refused_url


def _queue_full(ingest: IngestServer) -> dict[str, Any]:
    ingest.fault = Fault.hang()
    return {"max_queue_bytes": 5_000, "exit_timeout": 0.1, "request_timeout": 60}


def _too_large(ingest: IngestServer) -> dict[str, Any]:
    ingest.max_body_bytes = 10
    return {}


def _rejected(ingest: IngestServer) -> dict[str, Any]:
    ingest.fault = Fault.answer(422)
    return {}


def _network(ingest: IngestServer) -> dict[str, Any]:
    return {"base_url": refused_url(), "export_deadline": 0.3}


def _shutdown(ingest: IngestServer) -> dict[str, Any]:
    ingest.fault = Fault.hang()
    return {"exit_timeout": 0.1, "request_timeout": 60}


def _internal_error(ingest: IngestServer) -> dict[str, Any]:
    return {"ca_bundle": "/nonexistent/ca.pem", "base_url": ingest.base_url.replace("http:", "https:")}


SCENARIOS: dict[str, Callable[[IngestServer], dict[str, Any]]] = {
    "queue_full": _queue_full,
    "too_large": _too_large,
    "rejected": _rejected,
    "network": _network,
    "shutdown": _shutdown,
    "internal_error": _internal_error,
}


@pytest.mark.parametrize("reason", LOSS_REASONS)
def test_every_loss_is_counted_under_its_reason(
    ingest: IngestServer, tracer_provider: TracerProvider, reason: str, capfd: pytest.CaptureFixture[str]
) -> None:
    options = {"base_url": ingest.base_url, **SCENARIOS[reason](ingest)}
    start(options.pop("base_url"), tracer_provider, **options)
    call_traced(10)
    assert carrot_ai.flush(1.0) is False
    stats = final_stats()
    assert stats["delivered"] == 0
    assert stats[reason] > 0
    assert stats["delivered"] + stats["dropped"] == 10
    assert {r: stats[r] for r in LOSS_REASONS if r != reason and r != "shutdown" and stats[r]} == {}
    err = capfd.readouterr().err
    assert f"{stats['dropped']} trace record(s) were not delivered" in err
    assert f"{reason}: {stats[reason]}" in err


def test_flush_is_true_once_everything_is_delivered(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    start(ingest.base_url, tracer_provider, flush_interval=30)
    call_traced(120)
    assert carrot_ai.flush(10) is True
    assert len(ingest.records) == 120
    assert carrot_ai.stats()["delivered"] == 120
    assert carrot_ai.flush(1) is True  # nothing queued: still true


@pytest.mark.timeout(30)
def test_flush_returns_within_its_timeout_when_the_sink_hangs(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    ingest.fault = Fault.hang()
    start(ingest.base_url, tracer_provider, request_timeout=300, export_deadline=600, exit_timeout=0.1)
    call_traced(5)
    assert carrot_ai.flush(0.3) is False
    assert carrot_ai.stats()["queued"] == 5


def test_flush_is_false_after_a_loss_then_true_once_healthy_again(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    start(ingest.base_url, tracer_provider)
    ingest.script(Fault.answer(400))
    call_traced(3)
    assert carrot_ai.flush(5) is False
    call_traced(3)
    assert carrot_ai.flush(5) is True
    assert carrot_ai.stats()["rejected"] == 3
    assert len(ingest.records) == 3


def test_flush_is_false_when_records_were_refused_for_a_full_queue(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    start(ingest.base_url, tracer_provider, max_queue_bytes=50_000, flush_interval=30)
    call_traced(40, "z" * 2_000)
    assert carrot_ai.flush(5) is False
    refused = carrot_ai.stats()["queue_full"]
    assert refused > 0
    assert len(ingest.wait_for(40 - refused)) == 40 - refused
    assert carrot_ai.flush(5) is True


def test_401_logs_one_clear_message_however_many_batches_fail(
    ingest: IngestServer, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    start(ingest.base_url, tracer_provider, api_key="ck-wrong-key", batch_size=1, flush_interval=30)
    call_traced(20)
    with caplog.at_level(logging.WARNING, logger="carrot_ai"):
        carrot_ai.flush(5)
    assert carrot_ai.stats()["rejected"] == 20
    assert len([r for r in ingest.requests if r.json]) == 20
    messages = [r.getMessage() for r in caplog.records if r.name == "carrot_ai"]
    assert len(messages) == 1, messages
    assert "refused the API key (HTTP 401)" in messages[0]
    assert "CARROT_API_KEY" in messages[0]
    assert "ck-wrong-key" not in messages[0]


def test_periodic_log_line_sums_up_losses_by_reason(
    ingest: IngestServer, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    ingest.fault = Fault.answer(400)
    caplog.set_level(logging.WARNING, logger="carrot_ai")
    start(ingest.base_url, tracer_provider, stats_log_interval=0.1)
    call_traced(4)
    carrot_ai.flush(5)
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = [r.getMessage() for r in caplog.records if "not delivered in the last" in r.getMessage()]
    assert lines, [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("carrot_ai: 4 trace record(s) not delivered in the last")
    assert "(rejected=4)" in lines[0]
    assert "totals: delivered=0, dropped=4" in lines[0]


def test_no_periodic_log_line_without_losses(
    ingest: IngestServer, tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="carrot_ai")
    start(ingest.base_url, tracer_provider, stats_log_interval=0.05)
    for _ in range(4):
        call_traced(2)
        assert carrot_ai.flush(5)
        time.sleep(0.06)
    assert [r.getMessage() for r in caplog.records if r.name == "carrot_ai"] == []


def test_stats_show_delivery_and_the_queue(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    start(ingest.base_url, tracer_provider)
    call_traced(5)
    assert carrot_ai.flush(5)
    stats = carrot_ai.stats()
    assert stats == {
        "delivered": 5,
        "batches": stats["batches"],
        "retries": 0,
        "dropped": 0,
        **dict.fromkeys(LOSS_REASONS, 0),
        "queued": 0,
        "queued_bytes": 0,
        "queue_peak_bytes": stats["queue_peak_bytes"],
        "internal_errors": stats["internal_errors"],
    }
    assert 1 <= stats["batches"] <= 5
    assert stats["queue_peak_bytes"] > 0


def test_retries_are_counted_and_the_batch_delivered_once(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    ingest.script(Fault.retry_after("0", status=503), Fault.reset())
    start(ingest.base_url, tracer_provider, flush_interval=30)
    call_traced(3)
    assert carrot_ai.flush(10)
    assert len(ingest.records) == 3
    stats = carrot_ai.stats()
    assert (stats["delivered"], stats["retries"], stats["dropped"]) == (3, 2, 0)


def test_retried_batch_carries_the_same_record_ids(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    ingest.script(Fault.answer(503))
    start(ingest.base_url, tracer_provider, flush_interval=30)
    call_traced(4)
    assert carrot_ai.flush(10)
    first, second = (request.json["traces"] for request in ingest.requests)
    assert [r["id"] for r in first] == [r["id"] for r in second]  # the server can drop what it already has
    assert len({r["id"] for r in second}) == 4
