"""Local server: sustained ingest rate into SQLite (records/s) and search latency at 100k stored records.

    python benchmarks/server_ingest.py            # 100,000 records
    python benchmarks/server_ingest.py --quick    # 10,000 records, fewer repetitions

The server runs as ``carrot-ai serve`` in its own process; this process only sends. Batches are built and
gzip-encoded before the clock starts, so the figure is the server's (HTTP + validation + SQLite), not the sender's.
Records look like the exporter's: one ``@trace`` root and two children (a function and an LLM call) per trace.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "claude-haiku-4"]
WORDS = "password billing invoice export refund account login settings security plan upgrade team".split()


def trace_records(i: int, rng: random.Random) -> list[dict[str, Any]]:
    """One trace: a root function, a retrieval step and an LLM call (children listed first, as exporters send)."""
    start = T0 + datetime.timedelta(seconds=i * 3)
    question = " ".join(rng.choice(WORDS) for _ in range(8)) + f" ticket-{i}"
    root_id, step_id, llm_id = (str(uuid.uuid4()) for _ in range(3))
    model = MODELS[i % len(MODELS)]
    error = i % 50 == 0

    def record(rid: str, name: str, kind: str, offset: float, latency: float, **extra: Any) -> dict[str, Any]:
        began = start + datetime.timedelta(milliseconds=offset)
        metadata = {"type": kind, "source": "decorator" if kind != "llm" else "sdk", "latency_ms": latency}
        metadata.update(extra.pop("metadata", {}))
        return {
            "id": rid,
            "name": name,
            "input": extra.pop("input"),
            "output": extra.pop("output"),
            "metadata": metadata,
            "status": "error" if error and kind != "function" else "success",
            "started_at": began.isoformat(),
            "ended_at": (began + datetime.timedelta(milliseconds=latency)).isoformat(),
            "tags": ["prod" if i % 3 else "staging", f"team-{i % 7}"],
        }

    answer = "Go to Settings > Security and choose Reset password. " * 4
    return [
        record(
            llm_id,
            "chat.completions",
            "llm",
            5,
            800 + i % 400,
            input={
                "model": model,
                "messages": [
                    {"role": "system", "content": "Context: " + answer},
                    {"role": "user", "content": question},
                ],
                "temperature": 0.2,
            },
            output={"message": {"role": "assistant", "content": answer}},
            metadata={
                "model": model,
                "provider": "openai" if model.startswith("gpt") else "anthropic",
                "input_tokens": 180 + i % 50,
                "output_tokens": 60,
                "total_tokens": 240 + i % 50,
                "cost_usd": 0.00012,
                "parent_trace_id": root_id,
                "user_id": f"user-{i % 500}",
            },
        ),
        record(
            step_id,
            "search_knowledge_base",
            "function",
            1,
            3.5,
            input={"question": question},
            output={"result": [answer]},
            metadata={"parent_trace_id": root_id},
        ),
        record(
            root_id,
            "answer_question",
            "function",
            0,
            820 + i % 400,
            input={"question": question},
            output={"result": answer},
            metadata={"user_id": f"user-{i % 500}", "session_id": f"s-{i % 2000}"},
        ),
    ]


def encoded_batches(count: int, batch_size: int) -> tuple[list[bytes], list[str]]:
    rng = random.Random(7)
    records: list[dict[str, Any]] = []
    for i in range((count + 2) // 3):
        records.extend(trace_records(i, rng))
    records = records[:count]
    bodies = [
        gzip.compress(json.dumps({"traces": records[i : i + batch_size]}).encode(), compresslevel=5)
        for i in range(0, len(records), batch_size)
    ]
    roots = [r["id"] for r in records if r["name"] == "answer_question"]
    return bodies, roots


def start_server(db: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "carrot_ai._cli", "serve", "--port", "0", "--db", db],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return process, match.group(1)


def ingest(url: str, bodies: list[bytes], threads: int) -> float:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    local = threading.local()

    def send(body: bytes) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx2.Client(timeout=60)
        response = client.post(url + "/v1/traces/ingest", content=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, bodies))
    return time.perf_counter() - began


def latency(client: httpx2.Client, url: str, repeat: int, **params: Any) -> tuple[float, float, int]:
    timings = []
    count = 0
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(url, params=params)
        timings.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        body = response.json()
        count = len(body.get("traces", [])) if "traces" in body else body.get("record_count", body.get("total", 0))
    timings.sort()
    return statistics.median(timings), timings[max(0, int(len(timings) * 0.95) - 1)], count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10,000 records and fewer repetitions")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--batch", type=int, default=50, help="records per request (the exporter's default: 50)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent senders")
    args = parser.parse_args()
    count = args.records or (10_000 if args.quick else 100_000)
    repeat = 10 if args.quick else 30

    bodies, roots = encoded_batches(count, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db")
        process, url = start_server(db)
        try:
            elapsed = ingest(url, bodies, args.threads)
            print(
                f"ingest: {count:,} records in {len(bodies):,} requests of {args.batch}, {args.threads} senders: "
                f"{elapsed:.1f} s = {count / elapsed:,.0f} records/s"
            )
            duplicate = ingest(url, bodies[: max(1, len(bodies) // 10)], args.threads)
            print(
                f"re-delivery (all duplicates) of {len(bodies) // 10:,} requests: "
                f"{len(bodies) // 10 * args.batch / duplicate:,.0f} records/s"
            )
            print(f"database: {os.path.getsize(db) / 1e6:.0f} MB (+ WAL {os.path.getsize(db + '-wal') / 1e6:.0f} MB)")
            print(f"\nsearch at {count:,} stored records ({repeat} runs each; p50 / p95 ms, over HTTP):")
            queries: list[tuple[str, str, dict[str, Any]]] = [
                ("newest 50", "/v1/traces", {}),
                ("model=gpt-4o", "/v1/traces", {"model": "gpt-4o"}),
                ("status=error", "/v1/traces", {"status": "error"}),
                ("tag=team-3 & tag=staging", "/v1/traces", {"tag": ["team-3", "staging"]}),
                ("user_id", "/v1/traces", {"user_id": "user-42"}),
                (
                    "root=true, one hour",
                    "/v1/traces",
                    {"root": "true", "since": "2025-01-01T01:00:00Z", "until": "2025-01-01T02:00:00Z"},
                ),
                ("q=refund (common word)", "/v1/traces", {"q": "refund"}),
                ("q=ticket-777 (rare)", "/v1/traces", {"q": f"ticket-{min(777, len(roots) - 1)}"}),
                ("page 3 via cursor", "/v1/traces", {"cursor": None}),
                ("trace tree (3 records)", f"/v1/traces/{roots[len(roots) // 2]}", {}),
                ("stats, 60 buckets, all", "/v1/stats", {}),
            ]
            with httpx2.Client(timeout=60) as client:
                cursor = client.get(url + "/v1/traces", params={"limit": 50}).json()["next_cursor"]
                cursor = client.get(url + "/v1/traces", params={"limit": 50, "cursor": cursor}).json()["next_cursor"]
                print(f"| {'query':<28} | {'p50 ms':>7} | {'p95 ms':>7} | {'results':>7} |")
                print(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
                for label, path, params in queries:
                    if "cursor" in params:
                        params = {"cursor": cursor}
                    p50, p95, results = latency(client, url + path, repeat, **params)
                    print(f"| {label:<28} | {p50:>7.1f} | {p95:>7.1f} | {results:>7} |")
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
