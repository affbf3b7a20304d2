"""Load benchmarks of the export path: cost on the application thread, bounded memory, delivery, throughput, exit.

    python benchmarks/export_load.py            # the full figures (a few minutes)
    python benchmarks/export_load.py --quick    # a smoke run with small numbers (CI-friendly)

Every case runs in a fresh interpreter (so its peak RSS is its own) against a sink server in another process
on 127.0.0.1 that answers ``ok``, ``slow`` (200 ms a request), ``hang`` (never answers) or is ``down`` (refused).
Results print as a table; ``--json`` prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024


# --- the sink: a minimal ingest endpoint in its own process --------------------------------------------------------


def run_sink(mode: str) -> None:
    """Serve ``/v1/traces/ingest`` on a free port (printed on stdout) until killed."""
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as production servers do: else delayed ACKs stall every response by ~40 ms

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # the record count, for the harness
            body = str(received[0]).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if mode == "hang":
                time.sleep(10**6)
            if mode == "slow":
                time.sleep(0.2)
            count = len(json.loads(gzip.decompress(raw))["traces"])
            with lock:
                received[0] += count
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a benchmark process that exits mid-request

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


@contextmanager
def sink(mode: str) -> Iterator[str]:
    if mode == "down":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        return
    process = subprocess.Popen([sys.executable, __file__, "--sink", mode], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


def received(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.read())


# --- the cases: each runs in a fresh interpreter -------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def init(url: str, **options: Any) -> Any:
    import carrot_ai
    from carrot_ai import _setup

    options.setdefault("api_key", "ck-bench")
    carrot_ai.init(base_url=url, **options)
    return _setup.current_exporter()


def traced_calls(count: int, payload: str, cpu: dict[str, float] | None = None) -> float:
    """Make ``count`` @trace calls; return the wall-clock microseconds per call (``cpu["us"]``: thread CPU time)."""
    import carrot_ai

    @carrot_ai.trace
    def step(index: int, text: str) -> int:
        return index

    started, started_cpu = time.perf_counter(), time.thread_time()
    for index in range(count):
        step(index, payload)
    if cpu is not None:
        cpu["us"] = (time.thread_time() - started_cpu) / count * 1e6
    return (time.perf_counter() - started) / count * 1e6


def case_enqueue(url: str, quick: bool) -> dict[str, Any]:
    """The processor's cost per span on the application thread (on_end: select, size, queue).

    The worker is kept asleep (no batch ever fills) so that only the application thread's own work is timed;
    the SDK's own cost of starting and ending the same span is given for scale.
    """
    from opentelemetry.sdk.trace import TracerProvider

    from carrot_ai.export import CarrotSpanExporter, CarrotSpanProcessor

    count = 20_000 if quick else 100_000
    exporter = CarrotSpanExporter(
        api_key="ck-bench", base_url=url, flush_interval=3600, batch_size=10**9, max_batch_bytes=10**12,
        max_queue_bytes=10**12,
    )  # fmt: skip
    processor = CarrotSpanProcessor(exporter)
    tracer = TracerProvider().get_tracer("carrot_ai.bench")
    attributes = {
        "carrot.kind": "function",
        "carrot.name": "step",
        "carrot.source": "decorator",
        "carrot.input": json.dumps({"question": "x" * 200}),
        "carrot.output": json.dumps({"result": "y" * 100}),
    }
    spans = []
    for _ in range(1000):
        span = tracer.start_span("step", attributes=attributes)
        span.end()
        spans.append(span)
    on_end = sdk = float("inf")
    for _ in range(7):
        exporter._queue.clear()
        started = time.perf_counter()
        for index in range(count):
            processor.on_end(spans[index % 1000])
        on_end = min(on_end, (time.perf_counter() - started) / count * 1e6)
        started = time.perf_counter()
        for _ in range(count // 10):
            tracer.start_span("step", attributes=attributes).end()
        sdk = min(sdk, (time.perf_counter() - started) / (count // 10) * 1e6)
    exporter._closed = True
    return {"on_end_us": round(on_end, 2), "sdk_span_start_end_us": round(sdk, 1)}


def case_app_cost(url: str, quick: bool) -> dict[str, Any]:
    """@trace calls cost the same whatever the endpoint does."""
    exporter = init(url, flush_interval=0.05, request_timeout=600, export_deadline=600, exit_timeout=0.1)
    count = 5_000 if quick else 15_000  # fits in the queue: every case pays for queueing, none for dropping
    traced_calls(500, "warm-up")
    cpu: dict[str, float] = {}
    per_call = traced_calls(count, "x" * 200, cpu)
    stats = exporter.snapshot()
    return {"us_per_call": round(per_call, 1), "thread_cpu_us_per_call": round(cpu["us"], 1), **_losses(stats)}


def _losses(stats: dict[str, int]) -> dict[str, int]:
    return {reason: stats[reason] for reason in ("queue_full", "network", "shutdown") if stats[reason]}


def case_burst(url: str, quick: bool) -> dict[str, Any]:
    """100k @trace calls as fast as possible into a slow sink: bounded bytes, every loss counted."""
    import carrot_ai

    exporter = init(url, flush_interval=0.05, exit_timeout=1.0)
    count = 10_000 if quick else 100_000
    baseline = peak_rss_mb()
    per_call = traced_calls(count, "x" * 200)
    stats = exporter.snapshot()
    carrot_ai.shutdown()
    final = exporter.snapshot()
    return {
        "spans": count,
        "us_per_call": round(per_call, 2),
        "queue_peak_MB": round(stats["queue_peak_bytes"] / MB, 1),
        "max_queue_MB": exporter.settings.max_queue_bytes // MB,
        "rss_growth_MB": round(peak_rss_mb() - baseline, 1),
        "delivered": final["delivered"],
        "queue_full": final["queue_full"],
        "shutdown": final["shutdown"],
        "accounted": final["delivered"] + final["dropped"] == count,
    }


def case_big(url: str, quick: bool, sdk_processor: bool = False) -> dict[str, Any]:
    """5000 spans of 200 KB into a hanging sink: memory stays within max_queue_bytes (plus the SDK's own queue)."""
    count = 500 if quick else 5_000
    payload = "z" * 200_000
    if sdk_processor:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from carrot_ai.export import CarrotSpanExporter

        exporter = CarrotSpanExporter(
            api_key="ck-bench", base_url=url, request_timeout=600, export_deadline=600, exit_timeout=0.1
        )
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("some.genai.instrumentation")
        baseline = peak_rss_mb()
        started = time.perf_counter()
        for index in range(count):
            with tracer.start_as_current_span(
                "chat", attributes={"gen_ai.operation.name": "chat", "gen_ai.input.messages": payload + str(index)}
            ):
                pass
        per_call = (time.perf_counter() - started) / count * 1e6
        provider.force_flush()
    else:
        exporter = init(
            url, flush_interval=0.05, max_string_length=250_000, request_timeout=600, export_deadline=600,
            exit_timeout=0.1,
        )  # fmt: skip
        baseline = peak_rss_mb()
        per_call = traced_calls(count, payload)
    stats = exporter.snapshot()
    return {
        "spans": count,
        "us_per_call": round(per_call, 1),
        "queue_peak_MB": round(stats["queue_peak_bytes"] / MB, 1),
        "rss_growth_MB": round(peak_rss_mb() - baseline, 1),
        "queue_full": stats["queue_full"],
    }


def case_healthy(url: str, quick: bool) -> dict[str, Any]:
    """10,000 back-to-back @trace calls delivered to a healthy local sink, none dropped."""
    import carrot_ai

    exporter = init(url, flush_interval=0.05)
    count = 1_000 if quick else 10_000
    started = time.perf_counter()
    per_call = traced_calls(count, "x" * 200)
    flushed = carrot_ai.flush(60)
    elapsed = time.perf_counter() - started
    stats = exporter.snapshot()
    return {
        "calls": count,
        "us_per_call": round(per_call, 2),
        "flush_ok": flushed,
        "delivered": stats["delivered"],
        "dropped": stats["dropped"],
        "received_by_sink": received(url),
        "records_per_s_end_to_end": round(count / elapsed),
    }


def case_throughput(url: str, quick: bool) -> dict[str, Any]:
    """Records converted, serialized and gzip-compressed per second on one core (the worker's CPU work, the worker's own
    code path: ``encode_span`` splices the captured input and output in without re-encoding them)."""
    from opentelemetry.sdk.trace import TracerProvider

    from carrot_ai.export._convert import encode_span
    from carrot_ai.export._encode import body_of, compress, split_by_bytes

    count = 5_000 if quick else 50_000
    tracer = TracerProvider().get_tracer("carrot_ai.bench")
    spans = []
    for index in range(count):
        span = tracer.start_span(
            "step",
            attributes={
                "carrot.kind": "function",
                "carrot.name": "step",
                "carrot.source": "decorator",
                "carrot.input": json.dumps({"question": f"question {index} " + "x" * 300}),
                "carrot.output": json.dumps({"result": f"answer {index} " + "y" * 300}),
                "carrot.metadata": json.dumps({"user": "u1", "version": "2"}),
            },
        )
        span.end()
        spans.append(span)
    # What the export worker does per batch: encode_span (conversion + serialization), then gzip.
    started = time.process_time()
    for start in range(0, count, 50):
        [encode_span(span) for span in spans[start : start + 50]]
    convert_cpu = time.process_time() - started
    started = time.process_time()
    compressed = 0
    for start in range(0, count, 50):
        encoded = [data for data in map(encode_span, spans[start : start + 50]) if data is not None]
        for group in split_by_bytes(encoded, 5 * MB):
            compressed += len(compress(body_of(group)))
    cpu = time.process_time() - started
    return {
        "records": count,
        "records_per_cpu_s_convert_serialize": round(count / convert_cpu),
        "records_per_cpu_s": round(count / cpu),
        "gzip_bytes_per_record": compressed // count,
    }


def case_exit(url: str, quick: bool) -> dict[str, Any]:
    """How long a program that traced 100 calls takes to exit after its last line (default exit_timeout: 2 s)."""
    code = (
        "import time, carrot_ai\nstep = carrot_ai.trace(lambda i: i)\nfor i in range(100): step(i)\n"
        "print(time.time(), flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARROT_")}
    env.update(CARROT_BASE_URL=url, CARROT_API_KEY="ck-bench", CARROT_FLUSH_INTERVAL="0.05")
    env["PYTHONPATH"] = str(ROOT / "src")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    ended = time.time()
    return {
        "exit_wait_s": round(ended - float(result.stdout.split()[-1]), 2),
        "stderr": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "",
    }


CASES: dict[str, tuple[str, Callable[[str, bool], dict[str, Any]]]] = {
    "enqueue": ("ok", case_enqueue),
    "app_cost_ok": ("ok", case_app_cost),
    "app_cost_slow": ("slow", case_app_cost),
    "app_cost_hang": ("hang", case_app_cost),
    "app_cost_down": ("down", case_app_cost),
    "burst_100k_slow": ("slow", case_burst),
    "big_200KB_hang": ("hang", case_big),
    "big_200KB_hang_sdk_bsp": ("hang", lambda url, quick: case_big(url, quick, sdk_processor=True)),
    "healthy_10k": ("ok", case_healthy),
    "throughput": ("ok", case_throughput),
    "exit_ok": ("ok", case_exit),
    "exit_hang": ("hang", case_exit),
    "exit_down": ("down", case_exit),
}


# What must hold whatever the machine's speed: a failed check makes the run exit non-zero (the smoke test).
CHECKS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "burst_100k_slow": (
        "queue within max_queue_bytes, every record accounted for",
        lambda r: r["queue_peak_MB"] <= r["max_queue_MB"] and r["accounted"],
    ),
    "big_200KB_hang": ("queue within 64 MB", lambda r: r["queue_peak_MB"] <= 64),
    "big_200KB_hang_sdk_bsp": ("queue within 64 MB", lambda r: r["queue_peak_MB"] <= 64),
    "healthy_10k": (
        "everything delivered, nothing dropped",
        lambda r: r["flush_ok"] and r["dropped"] == 0 and r["delivered"] == r["received_by_sink"] == r["calls"],
    ),
    "exit_hang": ("exit bounded (2 s, +0.5 s slack for a loaded machine)", lambda r: r["exit_wait_s"] < 2.5),
    "exit_down": ("exit bounded (2 s, +0.5 s slack for a loaded machine)", lambda r: r["exit_wait_s"] < 2.5),
}


def _emit(result: dict[str, Any]) -> int:
    print(json.dumps(result), flush=True)
    return 0


def run_case(name: str, quick: bool) -> dict[str, Any]:
    mode, _ = CASES[name]
    with sink(mode) as url:
        args = [sys.executable, __file__, "--case", name, "--url", url] + (["--quick"] if quick else [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARROT_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
        result = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=ROOT, env=env)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0 or not lines:
            return {"error": (result.stderr or result.stdout).strip()[-500:]}
        data: dict[str, Any] = json.loads(lines[-1])
        return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small numbers: a smoke run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--only", nargs="*", help="run only these cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink)
        return
    if args.case:
        result = CASES[args.case][1](args.url, args.quick)
        _emit(result)
        os._exit(0)  # the hang cases leave a worker waiting on the sink: do not wait for it
    results = {}
    for name in args.only or list(CASES):
        results[name] = run_case(name, args.quick)
        if not args.json:
            print(f"{name:24} {json.dumps(results[name])}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    failed = [name for name, result in results.items() if "error" in result]
    for name, (expectation, holds) in CHECKS.items():
        if name in results and "error" not in results[name] and not holds(results[name]):
            print(f"CHECK FAILED {name}: {expectation}: {results[name]}", file=sys.stderr)
            failed.append(name)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
