"""Offline stand-ins for the Anthropic examples: a local "model" and a local ingest endpoint that prints records.

Each stand-in starts only when the environment does not already point somewhere: set ``ANTHROPIC_BASE_URL`` (and
``ANTHROPIC_API_KEY``) to use a real or other Anthropic endpoint, and ``CARROT_BASE_URL`` / ``CARROT_API_KEY`` to send
traces to a real Carrot ingest API. The stand-in model is clearly not a model: it echoes the last user message.
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
    text = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last if isinstance(b, dict))
    answer = f"[stand-in model, not a real one] You said: {text}"
    return {
        "id": "msg_standin_1",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "stand-in"),
        "content": [{"type": "text", "text": answer}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": len(text.split()) + 3, "output_tokens": len(answer.split())},
    }


def _events(message: dict[str, Any]) -> list[dict[str, Any]]:
    words = message["content"][0]["text"].split(" ")
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": (" " if i else "") + w}}
        for i, w in enumerate(words)
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": message["usage"]},
        {"type": "message_stop"},
    ]
    return events


class _ModelHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        message = _echo(body)
        if body.get("stream"):
            payload = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in _events(message)).encode()
            content_type = "text/event-stream"
        else:
            payload, content_type = json.dumps(message).encode(), "application/json"
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("request-id", "req_standin")
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
        if not os.environ.get("ANTHROPIC_BASE_URL"):
            os.environ["ANTHROPIC_BASE_URL"] = stack.enter_context(_serve(_ModelHandler))
            os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-offline-example")
            print(f"(stand-in model at {os.environ['ANTHROPIC_BASE_URL']}: set ANTHROPIC_BASE_URL to use another)")
        if not os.environ.get("CARROT_BASE_URL") and not os.environ.get("CARROT_API_KEY"):
            os.environ["CARROT_BASE_URL"] = stack.enter_context(_serve(_IngestHandler))
            print(f"(local ingest at {os.environ['CARROT_BASE_URL']}: set CARROT_API_KEY to send to Carrot)")
        yield
        import carrot_ai

        carrot_ai.shutdown()  # deliver what is queued while the local ingest still listens
