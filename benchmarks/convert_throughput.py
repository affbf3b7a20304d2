"""The export worker's CPU per record: conversion + serialization (+ gzip), on one core, on real spans.

The spans are made the way applications make them: ``@carrot_ai.trace`` calls (a function record with captured
input and output), ``carrot_ai.wrap(anthropic_client).messages.create`` calls over an in-process transport (an
LLM record with request attributes, usage and cost; the usage differs from call to call, as real calls' does), and
50-chunk ``chat.completions.create(stream=True)`` calls on ``carrot_ai.wrap(openai_client)`` (the stream's events
folded into the record on the worker). They are taken from the exporter's queue (its worker is kept asleep) and
then run through exactly what the worker does per batch of 50: ``settle_spans`` (the spans' deferred work --
reading the request, the response, a stream's events --), ``encode_span`` (span -> record JSON, cost included),
``split_by_bytes`` and gzip. Each pass runs on spans made for it (the deferred work runs once a span); thread CPU
time, best of several passes.

Run: ``python benchmarks/convert_throughput.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import machine, parse_args, report

import carrot_ai
from carrot_ai import _setup
from carrot_ai.export._convert import encode_span, settle_spans
from carrot_ai.export._encode import body_of, compress, split_by_bytes

BATCH = 50


def queued_spans(exporter: Any) -> list[Any]:
    spans = [item for item, _ in exporter._queue]
    exporter._queue.clear()
    exporter._queued_bytes = 0
    return spans


def make_function_spans(count: int, exporter: Any) -> list[Any]:
    @carrot_ai.trace
    def answer(question: str, top_k: int = 3) -> dict[str, Any]:
        return {"answer": question.upper(), "sources": ["doc-1", "doc-2"]}

    for index in range(count):
        answer(f"question {index}: " + "x" * 200, top_k=index % 5)
    return queued_spans(exporter)


_CALLS = itertools.count()


def make_llm_spans(count: int, exporter: Any) -> list[Any]:
    """Anthropic ``create`` records whose usage differs from call to call, as real calls' does (a price computed
    once for one usage and remembered would make a benchmark of repeated usage faster than production)."""
    warnings.simplefilter("ignore")
    import anthropic
    import anthropic_overhead
    import httpx2

    def handler(request: httpx2.Request) -> httpx2.Response:
        n = next(_CALLS)  # (one count for all passes: no pass repeats an earlier one's usages)
        usage = {"input_tokens": 40 + n % 100_003, "output_tokens": 5 + n * 13 % 901}
        usage |= {"cache_read_input_tokens": n * 11 % 2_003, "cache_creation_input_tokens": 0}
        body = json.dumps({**anthropic_overhead.MESSAGE, "usage": usage}).encode()
        return httpx2.Response(200, headers={"content-type": "application/json", "request-id": "req_b"}, content=body)

    client = anthropic.Anthropic(
        api_key="sk-ant-bench",
        base_url=anthropic_overhead.BASE_URL,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    call = anthropic_overhead.create_call(carrot_ai.wrap(client))
    for _ in range(count):
        call()
    return queued_spans(exporter)


def make_stream_spans(count: int, exporter: Any) -> list[Any]:
    import openai_overhead

    call = openai_overhead.stream_call(carrot_ai.wrap(openai_overhead.make_client()))
    for _ in range(count):
        call()
    return queued_spans(exporter)


def worker_pass(spans: list[Any], *, gzip: bool) -> float:
    """Thread CPU seconds for the worker's per-batch work over ``spans``."""
    started = time.thread_time()
    for start in range(0, len(spans), BATCH):
        batch = spans[start : start + BATCH]
        settle_spans(batch)
        encoded = [data for data in map(encode_span, batch) if data is not None]
        if gzip:
            for group in split_by_bytes(encoded, 5 * 1024 * 1024):
                compress(body_of(group))
    return time.thread_time() - started


def measure(make: Callable[[], list[Any]], passes: int) -> dict[str, float]:
    """Best of ``passes`` worker passes without gzip and with it, each over spans ``make`` made for it."""
    count = len(make())  # (a warm-up)
    convert = min(worker_pass(make(), gzip=False) for _ in range(passes))
    total = min(worker_pass(make(), gzip=True) for _ in range(passes))
    return {
        "records": count,
        "records_per_s_convert_serialize": round(count / convert),
        "records_per_s_with_gzip": round(count / total),
        "us_per_record": round(convert / count * 1e6, 2),
    }


def main() -> None:
    args = parse_args(__doc__ or "")
    functions, llm, streams, passes = (1_000, 200, 20, 2) if args.quick else (10_000, 2_000, 300, 3)
    carrot_ai.init(
        api_key="ck-bench", base_url="http://127.0.0.1:9", flush_interval=3600, batch_size=10**9,
        max_batch_bytes=10**12, max_queue_bytes=10**12,
    )  # fmt: skip
    exporter = _setup.current_exporter()
    assert exporter is not None
    if not args.json:
        print(machine())
    report(
        "function records (@trace)",
        measure(lambda: make_function_spans(functions, exporter), passes),
        as_json=args.json,
        target=">= 50,000/s",
    )
    report(
        "LLM records (anthropic, with cost)",
        measure(lambda: make_llm_spans(llm, exporter), passes),
        as_json=args.json,
        target=">= 50,000/s",
    )
    report(
        "50-chunk stream records (openai, with cost)",
        measure(lambda: make_stream_spans(streams, exporter), passes),
        as_json=args.json,
    )
    exporter._closed = True  # nothing to deliver: the spans were taken out of the queue
    os._exit(0)


if __name__ == "__main__":
    main()
