"""Where the rest of a wrapped OpenAI ``create``'s overhead is: carrot's own work, or what keeping records costs.

A diagnostic, not a product figure: it measures ``openai_overhead.py``'s ``create`` (same fake provider, same
method; ``--stream``: its 50-chunk stream) with the finished span handled in four ways, each in a fresh
interpreter, alternating, ``--reps`` times:

  export   as shipped: the span is queued and the export worker settles, converts and sends it (the product)
  keep     the span is kept on the calling thread (the newest 1,024), never exported: the memory of queued records
           without the worker's activity
  bytes    only a ``bytes`` object of the same size as a kept span's memory (measured first, below) is kept (newest
           1,024): the cost of any memory kept per call, whatever it holds
  drop     the span is dropped when it ends: carrot's calling-thread work alone

First, in its own interpreter, what one finished call holds until it is exported: the memory (tracemalloc) of 200
calls' spans kept after they end, per call, with their deferred work (the argument snapshot, the response body or
the stream's events, what the worker is to run). With each mode's overhead it prints the time the garbage
collector took on the calling thread per traced call and per bare call (``gc.callbacks``): what is kept alive
after a call makes the next collections come sooner.

``keep``, ``bytes`` and ``drop`` replace ``CarrotSpanProcessor.on_end_own`` in the child process (this is a
diagnostic of the product, never a test of it). What they showed on 2026-12-06 is in benchmarks/README.md
("Seventh pass").

Run: ``python benchmarks/diagnose_retention.py`` (``--stream`` for the stream, ``--quick`` for a smoke run).
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


def child(mode: str, rounds: int, calls: int, kept_bytes: int, stream: bool) -> tuple[float, float, float]:
    """The median overhead per call, and the garbage collector's time per traced and per bare call (µs)."""
    import gc
    import threading
    import time

    sys.path.insert(0, HERE)
    import openai_overhead as bench
    from _harness import sink_process

    import carrot_ai
    from carrot_ai.export import _processor

    with sink_process() as url:
        try:
            carrot_ai.init(api_key="ck-bench", base_url=url)
            kept: collections.deque[Any] = collections.deque(maxlen=KEPT)
            if mode == "keep":
                _processor.CarrotSpanProcessor.on_end_own = lambda self, span: kept.append(span)  # type: ignore[method-assign]
            elif mode == "bytes":
                _processor.CarrotSpanProcessor.on_end_own = lambda self, span: kept.append(bytes(kept_bytes))  # type: ignore[method-assign]
            elif mode == "drop":
                _processor.CarrotSpanProcessor.on_end_own = lambda self, span: None  # type: ignore[method-assign]
            make = bench.stream_call if stream else bench.create_call
            running = [""]  # which configuration is running: the collector's time is charged to it
            collected: collections.Counter[str] = collections.Counter()
            started = [0]
            main = threading.get_ident()

            def on_collect(phase: str, info: dict[str, Any]) -> None:
                if threading.get_ident() != main or not running[0]:
                    return
                if phase == "start":
                    started[0] = time.thread_time_ns()
                else:
                    collected[running[0]] += time.thread_time_ns() - started[0]

            def labelled(name: str, call: Any) -> Any:
                def run() -> None:  # (the same extra frame for both configurations)
                    running[0] = name
                    call()
                    running[0] = ""

                return run

            configs = {
                "bare": labelled("bare", make(bench.make_client())),
                "carrot": labelled("carrot", make(carrot_ai.wrap(bench.make_client()))),
            }
            gc.callbacks.append(on_collect)
            samples = bench.measure(configs, rounds, calls)
            counted = rounds * calls * 1000
            overhead = statistics.median(c - b for c, b in zip(samples["carrot"], samples["bare"], strict=True))
            return overhead, collected["carrot"] / counted, collected["bare"] / counted
        finally:
            carrot_ai.shutdown()


def held_per_call(calls: int, stream: bool) -> tuple[float, float]:
    """Bytes and allocated blocks a finished call holds while queued (its span kept, never exported)."""
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
        call = (bench.stream_call if stream else bench.create_call)(carrot_ai.wrap(bench.make_client()))
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
    parser.add_argument("--calls", type=int, default=None, help="calls per block (20; streams 5)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help="the 50-chunk stream instead of create")
    parser.add_argument("--kept-bytes", type=int, default=1500, help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = args.calls if args.calls is not None else (5 if args.stream else 20)
    rounds, calls, reps = (3, min(calls, 10), 1) if args.quick else (args.rounds, calls, args.reps)
    what = "50-chunk stream" if args.stream else "create"
    extra = ["--stream"] if args.stream else []
    if args.child == "held":
        size, blocks = held_per_call(200, args.stream)
        print(f"held {size:.0f} {blocks:.1f}", flush=True)
        return 0
    if args.child:
        overhead, gc_carrot, gc_bare = child(args.child, rounds, calls, args.kept_bytes, args.stream)
        print(f"overhead {overhead:.1f} {gc_carrot:.2f} {gc_bare:.2f}", flush=True)
        return 0
    done = subprocess.run(
        [sys.executable, __file__, "--child", "held", *extra], capture_output=True, text=True, cwd=os.path.dirname(HERE)
    )
    held = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("held ")]
    if done.returncode != 0 or not held:
        print(f"held: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        return 1
    print(f"a queued OpenAI {what} holds {held[0][0]} bytes in {held[0][1]} allocated blocks until it is exported")
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    collector: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for _ in range(reps):
        for mode in MODES:
            command = [sys.executable, __file__, "--child", mode, "--rounds", str(rounds), "--calls", str(calls)]
            command += ["--kept-bytes", held[0][0], *extra]
            done = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(HERE))
            lines = [line for line in done.stdout.splitlines() if line.startswith("overhead ")]
            if done.returncode != 0 or not lines:
                print(f"{mode}: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
                return 1
            figures = lines[-1].split()[1:]
            results[mode].append(float(figures[0]))
            collector[mode].append((float(figures[1]), float(figures[2])))
    print(f"OpenAI {what}, overhead over the bare client (µs per call, thread CPU), {reps} alternating runs each;")
    print("  gc: the garbage collector's time on the calling thread per traced / bare call, medians")
    for mode in MODES:
        figures = " ".join(f"{v:+6.1f}" for v in results[mode])
        gc_carrot = statistics.median(c for c, _ in collector[mode])
        gc_bare = statistics.median(b for _, b in collector[mode])
        print(
            f"  {mode:<7} median {statistics.median(results[mode]):+6.1f}   runs {figures}"
            f"   gc {gc_carrot:5.1f} / {gc_bare:5.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
