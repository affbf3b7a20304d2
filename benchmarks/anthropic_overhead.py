"""App-thread overhead of carrot-ai on anthropic's ``messages.create``, over the bare client.

The SDK talks to an in-process ``httpx2.MockTransport`` (no network), content capture is on, and carrot exports
to a local sink in a separate process (the export worker runs in the background as in production). Each round
times a block of calls on each configuration in turn (interleaved, order rotated), and reports the median over
rounds of the per-call time, and of the difference to the bare client.

Configurations:
  bare            anthropic client with its own spans off (``open_telemetry=False``): the SDK alone
  bare+native     anthropic client with its own span (what an app pays once any tracer provider is installed)
  carrot          ``carrot_ai.wrap(client)`` (the SDK's span suppressed while our call is current)
  carrot-unguarded  the same without the guard: the SDK's span is made, then dropped by our processor
  carrot-spans-off  ``carrot_ai.wrap(client)`` of a client made like ``bare`` (``open_telemetry=False``): carrot's
                    own cost, without the ``traceparent`` header the SDK sends (and carrot keeps sending) when its
                    spans are on

Run: ``python benchmarks/anthropic_overhead.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
from _harness import drain, keep_up, settle_before_timing, sink_process

import carrot_ai

# The provider's own host (the in-process transport answers; nothing leaves the process): a call to another host
# is priced by that host's provider, or not at all, and the export worker's figures should include the price.
BASE_URL = "https://api.anthropic.com"
MODEL = "claude-sonnet-4-5"  # priced by genai-prices; claude-opus-4-5 now warns (deprecated) on every call
MESSAGE = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": MODEL,
    "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 9, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
}
STREAM_EVENTS = 50


def sse_body() -> bytes:
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    deltas = STREAM_EVENTS - 5
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"w{i} "}},
        )
        for i in range(deltas)
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": deltas},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert len(events) == STREAM_EVENTS
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


MESSAGE_BODY = json.dumps(MESSAGE).encode()
SSE_BODY = sse_body()


def handler(request: httpx2.Request) -> httpx2.Response:
    if b'"stream":true' in request.content or b'"stream": true' in request.content:
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream", "request-id": "req_b"}, content=SSE_BODY
        )
    return httpx2.Response(
        200, headers={"content-type": "application/json", "request-id": "req_b"}, content=MESSAGE_BODY
    )


def make_client(**options: Any) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(api_key="sk-ant-bench", base_url=BASE_URL, http_client=http, max_retries=0, **options)


def create_call(client: anthropic.Anthropic) -> Callable[[], Any]:
    messages = [{"role": "user", "content": "Hello!"}]

    def call() -> Any:
        return client.messages.create(model=MODEL, max_tokens=1024, messages=messages)  # type: ignore[arg-type]

    return call


def stream_call(client: anthropic.Anthropic) -> Callable[[], Any]:
    messages = [{"role": "user", "content": "Hello!"}]

    def call() -> Any:
        for _event in client.messages.create(model=MODEL, max_tokens=1024, messages=messages, stream=True):  # type: ignore[arg-type]
            pass

    return call


def unguarded(call: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``call`` with the SDK's original ``_tracer`` (as if the native-span guard were not installed)."""
    base = anthropic._base_client.BaseClient
    guarded_property = base.__dict__["_tracer"]
    original = property(guarded_property.fget._carrot_original)

    def run() -> Any:
        base._tracer = original  # type: ignore[assignment]
        try:
            return call()
        finally:
            base._tracer = guarded_property  # type: ignore[assignment]

    return run


def measure(configs: dict[str, Callable[[], Any]], rounds: int, calls: int) -> dict[str, list[float]]:
    """Per-call microseconds per round, for each configuration, interleaved with a rotating order."""
    for call in configs.values():  # warm up: imports, connection pools, caches
        for _ in range(max(20, calls // 5)):
            call()
    # Untimed: the warm-up's records delivered, so the export worker has started and loaded genai-prices. Loading
    # it while this CPU-bound loop holds the GIL took ~10 s (benchmarks/README.md), during which the queue passed a
    # quarter of its budget and calls stopped deferring their work: the phase measured a mix of both paths.
    settle_before_timing()  # (and the full collection the imports have made due)
    names = list(configs)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            call = configs[name]
            start = time.thread_time_ns()
            for _ in range(calls):
                call()
            samples[name].append((time.thread_time_ns() - start) / calls / 1000)
        keep_up()  # untimed
    return samples


def report(title: str, samples: dict[str, list[float]], baseline: str) -> dict[str, float]:
    print(f"\n{title}")
    base = samples[baseline]
    result = {}
    for name, values in samples.items():
        median = statistics.median(values)
        line = f"  {name:<18} {median:9.1f} us/call"
        if name != baseline:
            overhead = statistics.median([v - b for v, b in zip(values, base, strict=True)])
            result[name] = overhead
            line += f"   overhead {overhead:+8.1f} us"
        print(line)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke run for CI")
    parser.add_argument("--rounds", type=int, default=301)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    rounds, calls = (3, 20) if args.quick else (args.rounds, args.calls)

    with sink_process() as url:
        run(url, rounds, calls)


def run(url: str, rounds: int, calls: int) -> None:
    try:
        carrot_ai.init(api_key="ck-bench", base_url=url)
        bare = make_client(open_telemetry=False)
        native = make_client()
        wrapped = carrot_ai.wrap(make_client())
        wrapped_off = carrot_ai.wrap(make_client(open_telemetry=False))
        # Imported here, not at the top: peers.py imports this module under carrot-ai 0.2.1 too.
        from carrot_ai.instrumentation.anthropic import _native

        assert _native.native_span_guard_installed()

        print(f"anthropic {anthropic.__version__}, {rounds} rounds x {calls} calls, content capture on")
        create = measure(
            {
                "bare": create_call(bare),
                "bare+native": create_call(native),
                "carrot": create_call(wrapped),
                "carrot-unguarded": unguarded(create_call(wrapped)),
                "carrot-spans-off": create_call(wrapped_off),
            },
            rounds,
            calls,
        )
        create_result = report("messages.create (non-streaming)", create, "bare")
        drain()
        stream = measure(
            {
                "bare": stream_call(bare),
                "carrot": stream_call(wrapped),
                "carrot-unguarded": unguarded(stream_call(wrapped)),
            },
            rounds,
            max(calls // 4, 5),
        )
        stream_result = report(f"messages.create(stream=True), {STREAM_EVENTS} events", stream, "bare")
        print(
            f"\nsummary: create overhead {create_result['carrot']:.1f} us (budget 40); "
            f"{STREAM_EVENTS}-event stream overhead {stream_result['carrot']:.1f} us (budget 60); "
            f"native span avoided: {create_result['carrot-unguarded'] - create_result['carrot']:.1f} us per create; "
            f"create on a client with its spans off (no traceparent): {create_result['carrot-spans-off']:.1f} us"
        )
        drain()
        stats = carrot_ai.stats()
        print(f"exporter: delivered {stats.get('delivered')}, dropped {stats.get('dropped')}")
    finally:
        carrot_ai.shutdown()


if __name__ == "__main__":
    main()
