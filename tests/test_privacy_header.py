"""The per-call ``X-Carrot-Trace: metadata-only`` header never reaches the provider, with the real SDKs over HTTP.

These drive ``pop_trace_header`` the way the provider wrappers do (on their own copy of the call's keyword
arguments) and check, at a fake provider on 127.0.0.1, which headers the real OpenAI and Anthropic clients sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from carrot_ai._core import _content

_CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}


class FakeProvider:
    """Answers any POST with a canned OpenAI or Anthropic response and keeps the request headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                provider.headers.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps(_MESSAGE if self.path.endswith("/messages") else _CHAT).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


def test_openai_request_goes_out_without_the_trace_header(provider: FakeProvider) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-test", base_url=f"{provider.base_url}/v1", max_retries=0)
    caller_headers = {"X-Carrot-Trace": "metadata-only", "X-Request-Id": "r-1"}
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "extra_headers": caller_headers,
    }
    assert _content.capture_for_call(kwargs) is False
    client.chat.completions.create(**kwargs)
    [sent] = provider.headers
    assert "x-carrot-trace" not in sent
    assert sent["x-request-id"] == "r-1"
    assert caller_headers == {"X-Carrot-Trace": "metadata-only", "X-Request-Id": "r-1"}


def test_anthropic_request_goes_out_without_the_trace_header(provider: FakeProvider) -> None:
    import anthropic

    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=provider.base_url, max_retries=0)
    kwargs: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "extra_headers": {"x-carrot-trace": "METADATA-ONLY"},
    }
    assert _content.pop_trace_header(kwargs) is True
    client.messages.create(**kwargs)
    [sent] = provider.headers
    assert "x-carrot-trace" not in sent


def test_carrot_inference_trace_header_is_sent_on(provider: FakeProvider) -> None:
    import openai

    client = openai.OpenAI(api_key="sk-test", base_url=f"{provider.base_url}/v1", max_retries=0)
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "extra_headers": {"X-Carrot-Trace": "true"},
    }
    assert _content.capture_for_call(kwargs) is True
    client.chat.completions.create(**kwargs)
    [sent] = provider.headers
    assert sent["x-carrot-trace"] == "true"


@pytest.mark.parametrize("spelling", ["X-Carrot-Trace", "x-carrot-trace"])
def test_a_metadata_only_call_on_a_client_tracing_through_the_carrot_api_sends_no_trace_header(
    provider: FakeProvider, carrot: Any, spelling: str
) -> None:
    # A client made as the docs' inference-header snippet makes it (default X-Carrot-Trace: true, which makes the Carrot
    # inference API keep the whole call). With the per-call metadata-only header taken out, the client's default came
    # back: the call was sent with "true" and its content kept after all.
    import anthropic
    import openai

    import carrot_ai

    defaults = {spelling: "true"}
    chat = carrot_ai.wrap(
        openai.OpenAI(api_key="sk-test", base_url=f"{provider.base_url}/v1", max_retries=0, default_headers=defaults)
    )
    claude = carrot_ai.wrap(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=provider.base_url, max_retries=0, default_headers=defaults)
    )
    messages = [{"role": "user", "content": "private"}]
    metadata_only = {"X-Carrot-Trace": "metadata-only"}
    chat.chat.completions.create(model="gpt-4o-mini", messages=messages, extra_headers=metadata_only)  # type: ignore[arg-type]
    claude.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=messages, extra_headers=metadata_only)  # type: ignore[arg-type]
    chat.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    assert [sent.get("x-carrot-trace") for sent in provider.headers] == [None, None, "true"]
    records = carrot.wait_for(3)
    assert ["private" in json.dumps(record) for record in records] == [False, False, True]
