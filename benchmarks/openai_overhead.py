"""App-thread overhead of carrot-ai on openai's ``chat.completions.create``, over the bare client.

The SDK talks to an in-process ``httpx2.MockTransport`` (no network), content capture is on, and carrot exports
to a local sink in a separate process (the export worker runs in the background as in production). Each round
times a block of calls on each configuration in turn (interleaved, order rotated), and reports the median over
rounds of the per-call time (calling thread's CPU time), and of the difference to the bare client.

Configurations:
  bare          the SDK alone
  bare+usage    (streams) the SDK alone, asking for ``stream_options.include_usage`` itself
  event-step    (streams, a reference, not carrot) the SDK alone, one Python generator step per SSE event added
                between its decoder and its chunk builder, doing nothing
  usage-rule    (streams, a reference, not carrot) the least the issue's usage rule takes: ``include_usage`` asked
                for (``extra_body``) and the usage-only event kept from the SDK by such a per-event step; no span,
                no record
  carrot        ``carrot_ai.wrap(client)``

``create`` is measured on ``OpenAI`` and on ``AsyncOpenAI`` (each awaited call run on one event loop kept for the
whole run).

The stream has 50 chunks. As the real API does, the transport adds the usage-only chunk only when the request
asks for ``stream_options.include_usage``: carrot asks for it (and hides it), so its stream carries one event
more than the bare one. carrot reads that event itself (the SDK never builds it into a chunk); the overhead over
``bare`` includes receiving it. ``bare+usage`` is a caller who asks for usage and gets the SDK's chunk.

Run: ``python benchmarks/openai_overhead.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
from _harness import drain, keep_up, settle_before_timing, sink_process

import carrot_ai

# The provider's own host (the in-process transport answers; nothing leaves the process): a call to another host
# is priced by that host's provider, or not at all, and the export worker's figures should include the price.
BASE_URL = "https://api.openai.com/v1"
MODEL = "gpt-4o-mini"
COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 9,
        "total_tokens": 21,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
    "system_fingerprint": "fp_bench",
}
STREAM_CHUNKS = 50


def sse_body(include_usage: bool) -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": MODEL}
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    ]
    chunks += [
        {**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
        for i in range(STREAM_CHUNKS - 2)
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    assert len(chunks) == STREAM_CHUNKS
    if include_usage:
        chunks.append({**base, "choices": [], "usage": COMPLETION["usage"]})
    return ("".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n").encode()


COMPLETION_BODY = json.dumps(COMPLETION).encode()
SSE_BODY = sse_body(False)
SSE_BODY_USAGE = sse_body(True)


def handler(request: httpx2.Request) -> httpx2.Response:
    content = request.content
    if b'"stream":true' in content or b'"stream": true' in content:
        usage = b'"include_usage":true' in content or b'"include_usage": true' in content
        return httpx2.Response(
            200,
            headers={"content-type": "text/event-stream", "x-request-id": "req_b"},
            content=SSE_BODY_USAGE if usage else SSE_BODY,
        )
    return httpx2.Response(
        200, headers={"content-type": "application/json", "x-request-id": "req_b"}, content=COMPLETION_BODY
    )


def make_client() -> openai.OpenAI:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return openai.OpenAI(api_key="sk-bench", base_url=BASE_URL, http_client=http, max_retries=0)


def make_async_client() -> openai.AsyncOpenAI:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return openai.AsyncOpenAI(api_key="sk-bench", base_url=BASE_URL, http_client=http, max_retries=0)


def async_create_call(client: openai.AsyncOpenAI, loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
    """One awaited ``create`` per call, on a loop kept for the whole run (the loop's own cost is the same for both)."""
    messages = [{"role": "user", "content": "Hello!"}]

    def call() -> Any:
        return loop.run_until_complete(client.chat.completions.create(model=MODEL, messages=messages))  # type: ignore[arg-type]

    return call


def create_call(client: openai.OpenAI) -> Callable[[], Any]:
    messages = [{"role": "user", "content": "Hello!"}]

    def call() -> Any:
        return client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]

    return call


def stream_call(client: openai.OpenAI, **options: Any) -> Callable[[], Any]:
    messages = [{"role": "user", "content": "Hello!"}]

    def call() -> Any:
        for _chunk in client.chat.completions.create(model=MODEL, messages=messages, stream=True, **options):  # type: ignore[arg-type]
            pass

    return call


def _usage_event(data: str) -> bool:
    """Whether an event's data is the usage-only chunk (the plain string test a filter needs, nothing decoded)."""
    return '"usage"' in data and '"usage":null' not in data and '"usage": null' not in data


class _EventLayer:
    """A stand-in for the SDK stream's SSE decoder: the SDK's own decoder, with one Python generator step per event
    after it, which drops the usage-only event when ``hide_usage`` is set. Nothing else: no span, no record."""

    def __init__(self, decoder: Any, hide_usage: bool) -> None:
        self._decoder = decoder
        self._hide_usage = hide_usage

    def iter_bytes(self, iterator: Any) -> Any:
        return self._events(self._decoder.iter_bytes(iterator))

    def _events(self, events: Any) -> Any:
        hide_usage = self._hide_usage
        for event in events:
            if hide_usage and _usage_event(event.data):
                continue
            yield event


def layered_stream_call(client: openai.OpenAI, ask_usage: bool) -> Callable[[], Any]:
    """A bare stream read through :class:`_EventLayer`: with ``ask_usage``, what the issue's usage rule costs alone
    (``include_usage`` asked for through ``extra_body`` and its chunk kept from the SDK by a per-event filter, the
    least carrot could do); without, what one per-event Python step costs alone."""
    messages = [{"role": "user", "content": "Hello!"}]
    options: dict[str, Any] = {"extra_body": {"stream_options": {"include_usage": True}}} if ask_usage else {}

    def call() -> Any:
        stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True, **options)  # type: ignore[arg-type]
        stream._decoder = _EventLayer(stream._decoder, hide_usage=ask_usage)  # type: ignore[assignment]
        for _chunk in stream:
            pass

    return call


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
        line = f"  {name:<14} {median:9.1f} us/call"
        if name != baseline:
            overhead = statistics.median([v - b for v, b in zip(values, base, strict=True)])
            result[name] = overhead
            line += f"   overhead {overhead:+8.1f} us"
        print(line)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
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
        bare = make_client()
        wrapped = carrot_ai.wrap(make_client())

        print(f"openai {openai.__version__}, {rounds} rounds x {calls} calls, content capture on")
        create = measure({"bare": create_call(bare), "carrot": create_call(wrapped)}, rounds, calls)
        create_result = report("chat.completions.create (non-streaming)", create, "bare")
        drain()
        loop = asyncio.new_event_loop()
        async_create = measure(
            {
                "bare": async_create_call(make_async_client(), loop),
                "carrot": async_create_call(carrot_ai.wrap(make_async_client()), loop),
            },
            rounds,
            calls,
        )
        async_result = report("AsyncOpenAI chat.completions.create (non-streaming)", async_create, "bare")
        drain()
        loop.close()
        stream = measure(
            {
                "bare": stream_call(bare),
                "bare+usage": stream_call(bare, stream_options={"include_usage": True}),
                "event-step": layered_stream_call(bare, ask_usage=False),
                "usage-rule": layered_stream_call(bare, ask_usage=True),
                "carrot": stream_call(wrapped),
            },
            rounds,
            max(calls // 4, 5),
        )
        stream_result = report(f"chat.completions.create(stream=True), {STREAM_CHUNKS} chunks", stream, "bare")
        own = stream_result["carrot"] - stream_result["bare+usage"]
        print(
            f"\nsummary: create overhead {create_result['carrot']:.1f} us (budget 30), "
            f"async {async_result['carrot']:.1f} us; "
            f"{STREAM_CHUNKS}-chunk stream overhead {stream_result['carrot']:.1f} us (budget 60), "
            f"{own:+.1f} us against a caller who asks for the usage chunk itself; "
            f"the usage rule alone (asked for, its chunk filtered out, nothing recorded) "
            f"{stream_result['usage-rule']:.1f} us, one Python step an event alone {stream_result['event-step']:.1f} us"
        )
        drain()
        stats = carrot_ai.stats()
        print(f"exporter: delivered {stats.get('delivered')}, dropped {stats.get('dropped')}")
    finally:
        carrot_ai.shutdown()


if __name__ == "__main__":
    main()
