"""Shared measurement helpers for the benchmarks: interleaved rounds, medians, a local ingest sink.

Method: each round times ``n`` calls of the bare function and ``n`` calls of the traced one, back to back, so
both see the same machine state; the figure is the median over rounds of (traced - bare) per call. Tracing is
set up as users run it (``carrot_ai.init`` with the default batching) against a healthy ingest server on
127.0.0.1, so the exporter's background thread does its normal work during the measurement.

Two clocks: ``cpu_overhead_us`` is the calling thread's own CPU time (``time.thread_time_ns``): the work tracing
does on the application thread, the figure the targets are about. ``overhead_us`` is wall-clock time, which
also contains the exporter thread's share of the GIL while the loop runs flat out (a tight benchmark loop
produces spans thousands of times faster than an application making LLM calls would).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rounds, for CI (no timing claims)")
    parser.add_argument("--json", action="store_true", help="print results as JSON lines")
    return parser.parse_args()


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as production servers do; else delayed ACKs stall each small response
    received = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        _Sink.received += len(body)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@contextlib.contextmanager
def ingest_sink() -> Iterator[str]:
    """A healthy local ingest endpoint that accepts everything; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# A minimal ingest endpoint, run in a process of its own by :func:`sink_process`.
_SINK_SCRIPT = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as production servers do: else delayed ACKs stall every response by ~40 ms
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


@contextlib.contextmanager
def sink_process() -> Iterator[str]:
    """A healthy local ingest endpoint that accepts everything, in another process (its work stays off the measured
    process's CPU time and GIL); yields its base URL and stops it on the way out."""
    process = subprocess.Popen([sys.executable, "-c", _SINK_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


def interleaved(
    bare: Callable[[], Any],
    traced: Callable[[], Any],
    *,
    n: int,
    rounds: int,
    warmup: int = 2,
    switch: Callable[[bool], None] | None = None,
) -> dict[str, float]:
    """Median per-call overhead (µs) of ``traced`` over ``bare`` across interleaved rounds. ``switch(on)``, when
    given, runs before each block, untimed: tracing that patches classes turned off for ``bare``, on for ``traced``."""

    def timed(fn: Callable[[], Any]) -> tuple[float, float]:
        if switch is not None:
            switch(fn is traced)
        start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(n):
            fn()
        return (time.perf_counter_ns() - start) / n / 1000, (time.thread_time_ns() - cpu_start) / n / 1000

    for _ in range(warmup):
        timed(bare)
        timed(traced)
    samples = []
    for _ in range(rounds):
        samples.append((timed(bare), timed(traced)))
    return summarize(samples)


def summarize(samples: list[tuple[tuple[float, float], tuple[float, float]]]) -> dict[str, float]:
    """Medians of ((bare wall, bare cpu), (traced wall, traced cpu)) rounds."""
    bare_wall = statistics.median(b[0] for b, _ in samples)
    traced_wall = statistics.median(t[0] for _, t in samples)
    return {
        "bare_us": round(bare_wall, 2),
        "traced_us": round(traced_wall, 2),
        "cpu_overhead_us": round(statistics.median(t[1] - b[1] for b, t in samples), 2),
        "overhead_us": round(statistics.median(t[0] - b[0] for b, t in samples), 2),
        "ratio": round(traced_wall / bare_wall, 3) if bare_wall else 0.0,
    }


def interleaved_async(
    bare: Callable[[], Any], traced: Callable[[], Any], *, n: int, rounds: int, warmup: int = 2
) -> dict[str, float]:
    """:func:`interleaved` for coroutine functions, in one event loop."""
    import asyncio

    async def run() -> dict[str, float]:
        async def timed(fn: Callable[[], Any]) -> tuple[float, float]:
            start, cpu_start = time.perf_counter_ns(), time.thread_time_ns()
            for _ in range(n):
                await fn()
            return (time.perf_counter_ns() - start) / n / 1000, (time.thread_time_ns() - cpu_start) / n / 1000

        for _ in range(warmup):
            await timed(bare)
            await timed(traced)
        samples = []
        for _ in range(rounds):
            samples.append((await timed(bare), await timed(traced)))
        return summarize(samples)

    return asyncio.run(run())


def report(name: str, result: dict[str, Any], *, as_json: bool, target: str = "") -> None:
    if as_json:
        print(json.dumps({"benchmark": name, **result, "target": target}))
        return
    figures = "  ".join(f"{k}={v}" for k, v in result.items())
    print(f"{name:<44} {figures}" + (f"  (target {target})" if target else ""))


def machine() -> str:
    import os

    return f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, {sys.platform}"


def keep_up(max_bytes: int = 8 << 20) -> None:
    """Between timed rounds: deliver the queue when it holds more than ``max_bytes`` (an eighth of the default budget).

    A CPU-bound loop over an in-process transport produces records faster than the GIL-starved worker delivers them
    (see :func:`drain`); past a quarter of its budget the queue makes calls extract at once instead of deferring, so a
    long run would measure a mix of both paths, and past the whole budget it drops records. An application waiting on
    the network keeps the queue near empty: this keeps the benchmark there too, untimed.
    """
    import carrot_ai

    if carrot_ai.stats().get("queued_bytes", 0) > max_bytes:
        carrot_ai.flush(120)


def drain(timeout: float = 120.0) -> None:
    """Deliver what a phase queued before the next phase starts (not timed), and say how long it took.

    A benchmark loop over an in-process transport is CPU-bound and releases the GIL briefly and often, which starves
    the export worker (CPython hands a waiting thread the GIL only after a whole switch interval in which the holder
    never let go; benchmarks/README.md). A real application waits on the network, and the worker keeps up.
    """
    import carrot_ai

    start = time.perf_counter()
    drained = carrot_ai.flush(timeout)
    print(f"  (export queue drained: {drained}, in {time.perf_counter() - start:.1f} s)")


def settle_before_timing() -> None:
    """Untimed, between a warm-up and the timed rounds: :func:`drain`, then the full collection the imports have made
    due. The bare client's objects all die young and never trigger one; the first traced call that leaves an object
    alive until export would, and a block would time ~70 ms of collecting the process's import-time objects
    (benchmarks/README.md, ninth pass)."""
    drain()
    gc.collect()
