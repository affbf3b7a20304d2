"""Where carrot's time on a stream goes: the calling thread's CPU per phase, and the same ``create`` hot and cold.

Two diagnostics for the stream figures of ``openai_overhead.py`` and ``anthropic_overhead.py`` (same clients,
in-process transport, content capture on, records exported to a sink in another process):

1. **Phases of a 50-item stream.** Each stream is timed in four parts, bare and wrapped interleaved: ``create``
   returning the stream; the first item; the next 48; the rest (the last items, the end of the stream, its record
   queued, the stream freed). Reported: the median over calls of each part's extra over the bare client.
2. **The same ``create``, hot and cold.** The non-streaming ``create`` timed back to back (as ``*_overhead.py``
   time it), and timed with an untimed bare 50-item stream of the same SDK before every call. carrot's code is the
   same in both; only what the stream's SDK work (~3.5 ms for OpenAI's, ~0.8 ms for Anthropic's) left in the CPU's
   caches differs. OpenAI's added time roughly triples cold (benchmarks/README.md, twelfth pass): a stream's own
   set-up and end run in that state on every call, which is why a stream costs several times a ``create``.

Run: ``python benchmarks/stream_phases.py`` (``--quick`` for a smoke run). Reports, asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import anthropic_overhead
import openai_overhead
from _harness import drain, keep_up, settle_before_timing, sink_process

import carrot_ai

PHASES = ("create", "first", "next 48", "rest")
MESSAGES = [{"role": "user", "content": "Hello!"}]


def openai_stream(client: Any) -> Callable[[], Any]:
    return lambda: client.chat.completions.create(model=openai_overhead.MODEL, messages=MESSAGES, stream=True)


def anthropic_stream(client: Any) -> Callable[[], Any]:
    model = anthropic_overhead.MODEL
    return lambda: client.messages.create(model=model, max_tokens=1024, messages=MESSAGES, stream=True)


def phased(start: Callable[[], Any], samples: list[list[int]]) -> Callable[[], None]:
    """One stream, read to its end, its phases' thread CPU time (ns) appended to ``samples`` (one list a phase)."""
    clock = time.thread_time_ns

    def call() -> None:
        t0 = clock()
        stream = start()
        t1 = clock()
        items = iter(stream)
        next(items)
        t2 = clock()
        for _ in range(48):
            next(items)
        t3 = clock()
        for _ in items:
            pass
        del items, stream
        t4 = clock()
        for phase, took in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phase.append(took)

    return call


def timed(call: Callable[[], Any], samples: list[int], before: Callable[[], Any] | None = None) -> Callable[[], None]:
    """``call``, its thread CPU time (ns) appended to ``samples``; ``before`` runs first, untimed."""
    clock = time.thread_time_ns

    def run() -> None:
        if before is not None:
            before()
        t0 = clock()
        call()
        samples.append(clock() - t0)

    return run


def interleave(configs: dict[str, Callable[[], None]], rounds: int, calls: int) -> None:
    """Run each configuration ``calls`` times a round, in a rotating order (the samples are the configurations')."""
    names = list(configs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for _ in range(calls):
                configs[name]()
        keep_up()  # untimed


def median_extra(values: list[int], base: list[int]) -> float:
    return statistics.median(v - b for v, b in zip(values, base, strict=True)) / 1000


def stream_phases(name: str, bare: Callable[[], Any], wrapped: Callable[[], Any], rounds: int) -> None:
    samples: dict[str, list[list[int]]] = {"bare": [[] for _ in PHASES], "carrot": [[] for _ in PHASES]}
    configs = {"bare": phased(bare, samples["bare"]), "carrot": phased(wrapped, samples["carrot"])}
    interleave(configs, 20, 1)  # warm-up
    settle_before_timing()
    for phases in samples.values():
        for phase in phases:
            phase.clear()
    interleave(configs, rounds, 5)
    extras = [median_extra(c, b) for c, b in zip(samples["carrot"], samples["bare"], strict=True)]
    bare_total = sum(statistics.median(phase) for phase in samples["bare"]) / 1000
    cells = "".join(f"{extra:+10.1f}" for extra in extras)
    print(f"{name:<28}{cells}{sum(extras):+10.1f}   (bare stream {bare_total:,.0f} us)")


def hot_and_cold(
    name: str, bare: Callable[[], Any], wrapped: Callable[[], Any], stream: Callable[[], Any], rounds: int
) -> None:
    samples: dict[str, list[int]] = {key: [] for key in ("bare", "carrot", "bare cold", "carrot cold")}
    configs = {
        "bare": timed(bare, samples["bare"]),
        "carrot": timed(wrapped, samples["carrot"]),
        "bare cold": timed(bare, samples["bare cold"], stream),
        "carrot cold": timed(wrapped, samples["carrot cold"], stream),
    }
    interleave(configs, 20, 1)  # warm-up
    settle_before_timing()
    for values in samples.values():
        values.clear()
    interleave(configs, rounds, 5)
    hot = median_extra(samples["carrot"], samples["bare"])
    cold = median_extra(samples["carrot cold"], samples["bare cold"])
    print(
        f"{name:<28}{hot:+10.1f}{cold:+10.1f}   (bare create {statistics.median(samples['bare']) / 1000:,.0f} us hot,"
        f" {statistics.median(samples['bare cold']) / 1000:,.0f} cold)"
    )


def consume(start: Callable[[], Any]) -> Callable[[], None]:
    def call() -> None:
        for _ in start():
            pass

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke run for CI")
    parser.add_argument("--rounds", type=int, default=151)
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    with sink_process() as url:
        try:
            carrot_ai.init(api_key="ck-bench", base_url=url)
            openai_bare = openai_overhead.make_client()
            openai_wrapped = carrot_ai.wrap(openai_overhead.make_client())
            anthropic_bare = anthropic_overhead.make_client(open_telemetry=False)
            anthropic_wrapped = carrot_ai.wrap(anthropic_overhead.make_client())
            print(f"{rounds} rounds x 5 calls; added calling-thread CPU per call over the bare client (us), medians")
            print(f"\n{'stream, by phase':<28}" + "".join(f"{phase:>10}" for phase in PHASES) + f"{'total':>10}")
            stream_phases("openai chat, 50 chunks", openai_stream(openai_bare), openai_stream(openai_wrapped), rounds)
            drain()
            stream_phases(
                "anthropic messages, 50", anthropic_stream(anthropic_bare), anthropic_stream(anthropic_wrapped), rounds
            )
            drain()
            print(f"\n{'create, non-streaming':<28}{'hot':>10}{'cold':>10}   (cold: after a bare stream, untimed)")
            hot_and_cold(
                "openai chat.completions",
                openai_overhead.create_call(openai_bare),
                openai_overhead.create_call(openai_wrapped),
                consume(openai_stream(openai_bare)),
                rounds,
            )
            drain()
            hot_and_cold(
                "anthropic messages",
                anthropic_overhead.create_call(anthropic_bare),
                anthropic_overhead.create_call(anthropic_wrapped),
                consume(anthropic_stream(anthropic_bare)),
                rounds,
            )
            drain()
            stats = carrot_ai.stats()
            print(f"\nexporter: delivered {stats.get('delivered')}, dropped {stats.get('dropped')}")
        finally:
            carrot_ai.shutdown()


if __name__ == "__main__":
    main()
