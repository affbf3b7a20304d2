"""A local stand-in for an OpenAI-compatible model, for the offline demo: deterministic, and says what it is.

It serves ``POST /v1/chat/completions`` (plain and ``stream=True`` server-sent events, with
``stream_options.include_usage``) and ``GET /v1/models`` on 127.0.0.1. It is not a language model: every answer
starts with ``[stand-in model]`` and is built from the request's own messages.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LABEL = "[stand-in model] "
FINGERPRINT = "carrot-ai-stand-in"


def stand_in_answer(messages: list[Any]) -> str:
    """The deterministic answer to a chat: the question, and the first line of any context the system gave."""
    question = ""
    context = ""
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            continue
        if message.get("role") == "user":
            question = content.strip()
        elif message.get("role") in ("system", "developer") and not context:
            lines = [line.strip("- ").strip() for line in content.splitlines()]
            context = next((line for line in lines if line and not line.endswith(":")), "")
    answer = LABEL + "This is a local, deterministic stand-in, not a real LLM."
    if context:
        answer += f" From the context: {context}"
    if question:
        answer += f' (You asked: "{question}")'
    return answer


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)  # about four characters per token, like English text in GPT tokenizers


class StandInModel:
    """``with StandInModel() as model: OpenAI(base_url=model.base_url, api_key="anything")``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests = 0
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, ending in ``/v1``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> StandInModel:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="carrot-ai-stand-in", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> StandInModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def completion(self, request: dict[str, Any]) -> dict[str, Any]:
        """The ``chat.completion`` object answering ``request``."""
        messages = request.get("messages") or []
        answer = stand_in_answer(messages)
        prompt_tokens = sum(_tokens(json.dumps(m, ensure_ascii=False)) for m in messages)
        completion_tokens = _tokens(answer)
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:24]
        return {
            "id": f"chatcmpl-standin-{digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(request.get("model") or "stand-in"),
            "system_fingerprint": FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def stream_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` events that stream ``completion``: role, words, finish, then usage."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    text = completion["choices"][0]["message"]["content"]
    words = text.split(" ")
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for i, word in enumerate(words):
        piece = word if i == len(words) - 1 else word + " "
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def _make_handler(model: StandInModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # one write per response (flushed by the handler), no delayed-ACK stalls
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._json(
                    200, {"object": "list", "data": [{"id": "stand-in", "object": "model", "owned_by": "carrot-ai"}]}
                )
            else:
                self._json(404, {"error": {"message": f"stand-in model: no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path.split("?")[0].rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": f"stand-in model: no route {self.path}", "type": "not_found"}})
                return
            try:
                request = json.loads(body)
                assert isinstance(request, dict)
            except (ValueError, AssertionError):
                self._json(400, {"error": {"message": "body must be a JSON object", "type": "invalid_request_error"}})
                return
            model.requests += 1
            completion = model.completion(request)
            if not request.get("stream"):
                self._json(200, completion)
                return
            options = request.get("stream_options") or {}
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Stand-In-Model", "true")
            self.end_headers()
            for chunk in stream_chunks(completion, bool(options.get("include_usage"))):
                self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Stand-In-Model", "true")
            self.end_headers()
            self.wfile.write(data)

    return Handler
