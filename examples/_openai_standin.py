"""Offline stand-ins for the OpenAI examples: a local "model" and a local ingest endpoint that prints records.

Each stand-in starts only when the environment does not already point somewhere: set ``OPENAI_BASE_URL`` (and
``OPENAI_API_KEY``) to use a real or other OpenAI-compatible endpoint, and ``CARROT_BASE_URL`` / ``CARROT_API_KEY``
to send traces to a real Carrot ingest API. The stand-in model is clearly not a model: it echoes the last user
message, as a chat completion or as ``chat.completion.chunk`` server-sent events.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    last = body["messages"][-1]["content"]
    text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last if isinstance(p, dict))
    answer = f"[stand-in model, not a real one] You said: {text}"
    prompt_tokens = sum(len(str(m.get("content", "")).split()) + 3 for m in body["messages"])
    return {
        "id": "chatcmpl-standin-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model", "stand-in"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(answer.split()),
            "total_tokens": prompt_tokens + len(answer.split()),
        },
    }


def _chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    words = completion["choices"][0]["message"]["content"].split(" ")
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    chunks += [
        {**base, "choices": [{"index": 0, "delta": {"content": (" " if i else "") + w}, "finish_reason": None}]}
        for i, w in enumerate(words)
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


class _ModelHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        completion = _echo(body)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = [f"data: {json.dumps(c)}\n\n" for c in _chunks(completion, include_usage)] + ["data: [DONE]\n\n"]
            payload, content_type = "".join(events).encode(), "text/event-stream"
        else:
            payload, content_type = json.dumps(completion).encode(), "application/json"
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("x-request-id", "req_standin")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _IngestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        for record in json.loads(raw).get("traces", []):
            print("\n[local ingest] received a trace record:\n" + json.dumps(record, indent=2))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@contextlib.contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Start the stand-ins the environment does not replace, pointing the SDK and carrot-ai at them."""
    with contextlib.ExitStack() as stack:
        if not os.environ.get("OPENAI_BASE_URL"):
            os.environ["OPENAI_BASE_URL"] = stack.enter_context(_serve(_ModelHandler)) + "/v1"
            os.environ.setdefault("OPENAI_API_KEY", "sk-offline-example")
            print(f"(stand-in model at {os.environ['OPENAI_BASE_URL']}: set OPENAI_BASE_URL to use another)")
        if not os.environ.get("CARROT_BASE_URL") and not os.environ.get("CARROT_API_KEY"):
            os.environ["CARROT_BASE_URL"] = stack.enter_context(_serve(_IngestHandler))
            print(f"(local ingest at {os.environ['CARROT_BASE_URL']}: set CARROT_API_KEY to send to Carrot)")
        yield
        import carrot_ai

        carrot_ai.shutdown()  # deliver what is queued while the local ingest still listens
