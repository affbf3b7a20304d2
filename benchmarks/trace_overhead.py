"""``@carrot_ai.trace`` overhead per call: sync, async, and nested three deep.

Run: ``.venv/bin/python benchmarks/trace_overhead.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import ingest_sink, interleaved, interleaved_async, machine, parse_args, report

import carrot_ai


def main() -> None:
    args = parse_args(__doc__ or "")
    n, rounds = (200, 3) if args.quick else (2_000, 21)
    with ingest_sink() as url:
        carrot_ai.init(base_url=url)

        def bare(question: str, top_k: int = 3) -> str:
            return question

        traced = carrot_ai.trace(bare)

        async def abare(question: str, top_k: int = 3) -> str:
            return question

        atraced = carrot_ai.trace(abare)

        @carrot_ai.trace
        def level3(question: str) -> str:
            return question

        @carrot_ai.trace
        def level2(question: str) -> str:
            return level3(question)

        @carrot_ai.trace
        def level1(question: str) -> str:
            return level2(question)

        def bare3(question: str) -> str:
            return bare(bare(question))

        if not args.json:
            print(machine())
        report(
            "@trace sync call",
            interleaved(lambda: bare("hello", top_k=2), lambda: traced("hello", top_k=2), n=n, rounds=rounds),
            as_json=args.json,
            target="<= 15 us",
        )
        carrot_ai.flush(60)  # between measurements, outside the timed rounds: each starts with an empty queue
        report(
            "@trace async call",
            interleaved_async(lambda: abare("hello"), lambda: atraced("hello"), n=n, rounds=rounds),
            as_json=args.json,
            target="<= 15 us",
        )
        carrot_ai.flush(60)
        report(
            "@trace nested 3 deep (3 spans)",
            interleaved(lambda: bare3("hello"), lambda: level1("hello"), n=max(n // 3, 1), rounds=rounds),
            as_json=args.json,
            target="<= 45 us (15 per span)",
        )
        delivered = carrot_ai.flush(30)
        stats = carrot_ai.stats()
        if not args.json:
            print(f"delivered all: {delivered}; stats: {stats}")
        carrot_ai.shutdown()


if __name__ == "__main__":
    main()
