"""Where the rest of a wrapped OpenAI ``create``'s overhead is: carrot's own work, or what keeping records costs.

A diagnostic, not a product figure: it measures ``openai_overhead.py``'s ``create`` (same fake provider, same
method) with the finished span handled in four ways, each in a fresh interpreter, alternating, ``--reps`` times:

  export   as shipped: the span is queued and the export worker settles, converts and sends it (the product)
  keep     the span is kept on the calling thread (the newest 1,024), never exported: the memory of queued records
           without the worker's activity
  bytes    only a ``bytes`` object of the same size as a kept span's memory (measured first, below) is kept (newest
           1,024): the cost of any memory kept per call, whatever it holds
  drop     the span is dropped when it ends: carrot's calling-thread work alone

First, in its own interpreter, what one finished call holds until it is exported: the memory (tracemalloc) of 200
calls' spans kept after they end, per call, with their deferred work (the argument snapshot, the response body,
what the worker is to run).

``keep``, ``bytes`` and ``drop`` replace ``CarrotSpanProcessor.on_end_own`` in the child process (this is a
diagnostic of the product, never a test of it). What they showed on 2026-12-06 is in benchmarks/README.md
("Seventh pass").

Run: ``python benchmarks/diagnose_retention.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("export", "keep", "bytes", "drop")
KEPT = 1024


def child(mode: str, rounds: int, calls: int, kept_bytes: int) -> float:
    sys.path.insert(0, HERE)
    import openai_overhead as bench

    import carrot_ai
    from carrot_ai.export import _processor

    sink = subprocess.Popen([sys.executable, "-c", bench.SINK], stdout=subprocess.PIPE, text=True)
    try:
        port = int(sink.stdout.readline())  # type: ignore[union-attr]
        carrot_ai.init(api_key="ck-bench", base_url=f"http://127.0.0.1:{port}")
        kept: collections.deque[Any] = collections.deque(maxlen=KEPT)
        if mode == "keep":
            _processor.CarrotSpanProcessor.on_end_own = lambda self, span: kept.append(span)  # type: ignore[method-assign]
        elif mode == "bytes":
            _processor.CarrotSpanProcessor.on_end_own = lambda self, span: kept.append(bytes(kept_bytes))  # type: ignore[method-assign]
        elif mode == "drop":
            _processor.CarrotSpanProcessor.on_end_own = lambda self, span: None  # type: ignore[method-assign]
        configs = {
            "bare": bench.create_call(bench.make_client()),
            "carrot": bench.create_call(carrot_ai.wrap(bench.make_client())),
        }
        samples = bench.measure(configs, rounds, calls)
        return statistics.median(c - b for c, b in zip(samples["carrot"], samples["bare"], strict=True))
    finally:
        carrot_ai.shutdown()
        sink.terminate()
        sink.wait(5)


def held_per_call(calls: int) -> tuple[float, float]:
    """Bytes and allocated blocks a finished ``create`` holds while queued (its span kept, never exported)."""
    import gc
    import tracemalloc

    sys.path.insert(0, HERE)
    import openai_overhead as bench

    import carrot_ai
    from carrot_ai.export import _processor

    kept: list[Any] = []
    _processor.CarrotSpanProcessor.on_end_own = lambda self, span: kept.append(span)  # type: ignore[method-assign]
    carrot_ai.init(api_key="ck-bench", base_url="http://127.0.0.1:9")  # nothing is sent: the spans are kept here
    try:
        call = bench.create_call(carrot_ai.wrap(bench.make_client()))
        for _ in range(50):
            call()
        kept.clear()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(calls):
            call()
        gc.collect()
        stats = tracemalloc.take_snapshot().compare_to(before, "filename")
        tracemalloc.stop()
        assert len(kept) == calls
        return sum(s.size_diff for s in stats) / calls, sum(s.count_diff for s in stats) / calls
    finally:
        kept.clear()
        carrot_ai.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke run for CI")
    parser.add_argument("--rounds", type=int, default=151)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--kept-bytes", type=int, default=1500, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds, calls, reps = (3, 10, 1) if args.quick else (args.rounds, args.calls, args.reps)
    if args.child == "held":
        size, blocks = held_per_call(200)
        print(f"held {size:.0f} {blocks:.1f}", flush=True)
        return 0
    if args.child:
        print(f"overhead {child(args.child, rounds, calls, args.kept_bytes):.1f}", flush=True)
        return 0
    done = subprocess.run(
        [sys.executable, __file__, "--child", "held"], capture_output=True, text=True, cwd=os.path.dirname(HERE)
    )
    held = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("held ")]
    if done.returncode != 0 or not held:
        print(f"held: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        return 1
    print(f"a queued OpenAI create holds {held[0][0]} bytes in {held[0][1]} allocated blocks until it is exported")
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(reps):
        for mode in MODES:
            command = [sys.executable, __file__, "--child", mode, "--rounds", str(rounds), "--calls", str(calls)]
            command += ["--kept-bytes", held[0][0]]
            done = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(HERE))
            lines = [line for line in done.stdout.splitlines() if line.startswith("overhead ")]
            if done.returncode != 0 or not lines:
                print(f"{mode}: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
                return 1
            results[mode].append(float(lines[-1].split()[1]))
    print(f"OpenAI create, overhead over the bare client (µs per call, thread CPU), {reps} alternating runs each")
    for mode in MODES:
        figures = " ".join(f"{v:+6.1f}" for v in results[mode])
        print(f"  {mode:<7} median {statistics.median(results[mode]):+6.1f}   runs {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
