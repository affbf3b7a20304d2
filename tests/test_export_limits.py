"""Bounded memory and bounded requests: the queue is bounded by bytes, requests by records and bytes."""

from __future__ import annotations

import gzip
import json

from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai.export import CarrotSpanExporter
from tests.export_helpers import call_traced, final_stats, shutdown_after, start  # noqa: F401
from tests.ingest_server import Fault, IngestServer


def test_queue_is_bounded_by_bytes_when_the_sink_hangs(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    ingest.fault = Fault.hang()
    start(ingest.base_url, tracer_provider, max_queue_bytes=2_000_000, request_timeout=60, exit_timeout=0.2)
    call_traced(500, "x" * 20_000)
    stats = carrot_ai.stats()
    assert 1_500_000 < stats["queue_peak_bytes"] <= 2_000_000
    assert stats["queue_full"] > 300  # 500 records of 20 KB cannot fit in 2 MB
    assert stats["queued_bytes"] <= 2_000_000
    after = final_stats()
    assert after["delivered"] == 0
    assert after["queue_full"] + after["shutdown"] == 500


def test_queue_is_bounded_by_bytes_in_a_burst_into_a_slow_sink(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    ingest.fault = Fault.slow(0.2)
    start(ingest.base_url, tracer_provider, max_queue_bytes=1_000_000, exit_timeout=0.3)
    call_traced(5_000)
    stats = carrot_ai.stats()
    assert stats["queue_peak_bytes"] <= 1_000_000
    assert stats["queue_full"] > 0
    after = final_stats()
    assert after["delivered"] > 0
    assert after["dropped"] == after["queue_full"] + after["shutdown"]
    assert after["delivered"] + after["dropped"] == 5_000
    # A request cut off by the exit deadline may still land: never claim more than the server has.
    assert after["delivered"] <= len(ingest.records)


def test_requests_hold_at_most_batch_size_records(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    start(ingest.base_url, tracer_provider, batch_size=7, flush_interval=30)
    call_traced(30)
    assert carrot_ai.flush(10)
    ingest.wait_for(30)
    assert sorted(len(r.json["traces"]) for r in ingest.requests) == [2, 7, 7, 7, 7]


def test_batches_are_split_to_stay_under_the_byte_limit(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    start(ingest.base_url, tracer_provider, max_batch_bytes=20_000, flush_interval=30)
    call_traced(12, random_bytes=3_000)  # 6 KB of incompressible text each
    assert carrot_ai.flush(10)
    records = ingest.wait_for(12)
    assert len(ingest.requests) >= 4
    assert all(len(r.body) <= 20_000 and len(r.raw) <= 20_000 for r in ingest.requests)
    assert not any(r["metadata"].get("truncated") for r in records)


def test_413_halves_the_batch_until_it_fits(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    ingest.max_body_bytes = 9_000
    start(ingest.base_url, tracer_provider, flush_interval=30)
    call_traced(16, random_bytes=1_000)  # 2 KB each: 16 in one body is ~32 KB, 4 fit in 9 KB
    assert carrot_ai.flush(10)
    assert len(ingest.wait_for(16)) == 16
    statuses = [len(r.json["traces"]) for r in ingest.requests]
    assert statuses[:3] == [16, 8, 4]  # 413, 413, then accepted
    assert carrot_ai.stats()["too_large"] == 0


def test_oversized_record_is_truncated_with_a_marker_and_neighbours_kept(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    start(ingest.base_url, tracer_provider, max_batch_bytes=50_000, flush_interval=30)

    @carrot_ai.trace
    def small(n: int) -> int:
        return n

    @carrot_ai.trace
    def huge(text: str) -> str:
        return text

    small(1)
    huge("y" * 200_000)
    small(2)
    assert carrot_ai.flush(10)
    records = ingest.wait_for(3)
    assert sorted(r["name"].rsplit(".", 1)[-1] for r in records) == ["huge", "small", "small"]
    [cut] = [r for r in records if r["name"].endswith("huge")]
    assert cut["input"]["truncated"] is True
    assert cut["input"]["original_bytes"] > 200_000  # input and output, each cut at 100k chars by @trace
    assert cut["input"]["preview"].startswith('{"text":"yyyy')
    assert cut["output"]["truncated"] is True
    assert cut["metadata"]["truncated"] is True
    assert cut["status"] == "success"
    assert all(len(r.body) <= 50_000 for r in ingest.requests)


def test_record_rejected_alone_with_413_is_sent_cut_to_its_minimum(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    ingest.max_body_bytes = 3_000
    start(ingest.base_url, tracer_provider, flush_interval=30)
    call_traced(1, name="big", random_bytes=4_000)
    assert carrot_ai.flush(10)
    [record] = ingest.wait_for(1)
    assert record["input"] == {"truncated": True, "original_bytes": record["input"]["original_bytes"]}
    assert record["name"] == "big"


def test_gzip_body_is_valid_json_of_the_records(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    start(ingest.base_url, tracer_provider)
    call_traced(3)
    assert carrot_ai.flush(10)
    ingest.wait_for(3)
    for request in ingest.requests:
        assert json.loads(gzip.decompress(request.raw))["traces"]


def test_span_size_counts_text_events_and_wide_characters(tracer_provider: TracerProvider) -> None:
    from carrot_ai.export._exporter import span_size

    tracer = tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("a", attributes={"carrot.kind": "function"}) as small:
        pass
    with tracer.start_as_current_span("b", attributes={"carrot.kind": "function", "carrot.input": "x" * 10_000}) as big:
        pass
    with tracer.start_as_current_span(
        "c", attributes={"carrot.kind": "function", "carrot.input": "中" * 10_000}
    ) as wide:
        pass
    with tracer.start_as_current_span("d", attributes={"carrot.kind": "function"}) as failed:
        failed.add_event("exception", {"exception.stacktrace": "s" * 20_000})
    base = span_size(small)
    assert 2_000 < base < 5_000  # what a finished SDK span costs in memory, measured
    assert span_size(big) - base == 10_000 + 80
    assert span_size(wide) - base == 30_000 + 80  # up to 3 bytes a character once encoded
    assert span_size(failed) - base >= 20_000

    exporter = CarrotSpanExporter(api_key="ck-test-key", base_url="http://127.0.0.1:9", flush_interval=600)
    for span in (small, big, wide, failed):
        exporter.enqueue(span)  # sizes inline on the hot path: the same figures
    assert exporter.snapshot()["queued_bytes"] == sum(span_size(s) for s in (small, big, wide, failed))
    exporter.shutdown(timeout_millis=0)
