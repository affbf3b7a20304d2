"""A fake Anthropic Messages API on 127.0.0.1.

Point the real SDK at it with ``Anthropic(base_url=server.base_url, api_key="sk-ant-test")`` (no
``/v1``: the SDK adds it). ``POST /v1/messages`` (also ``?beta=true`` for ``client.beta.messages``)
answers a deterministic ``message``:

* a ``text`` block ``"Echo: <last user text>"``; after ``tool_result`` blocks: ``"Tool results: ..."``;
* ``tool_use`` blocks (after a short text block) when ``tools`` are given and the last user text contains
  ``"use tool"`` (first tool) / ``"use tools"`` (every tool), or ``tool_choice`` is ``any`` / ``tool``;
  ``input`` is sampled from each tool's ``input_schema``; ``stop_reason: tool_use``;
* a ``thinking`` block (with a ``signature``) first when the ``thinking`` param is enabled;
* ``output_format`` / ``output_config.format`` ``json_schema``: JSON text sampled from the schema;
* usage: one token per word (+3 per message, + the tools' JSON); with ``cache_control`` markers the
  prefix up to the last marker is a cache write the first time (a 1-hour one, under
  ``cache_creation.ephemeral_1h_input_tokens``, when that marker has ``"ttl": "1h"``) and a cache read after that, and
  ``input_tokens`` excludes those tokens, as Anthropic's does; ``max_tokens`` cuts the text
  (``stop_reason: max_tokens``), ``stop_sequences`` stop it.

``stream: true`` sends the real event sequence: ``message_start``, per block ``content_block_start``
/ ``content_block_delta`` (``text_delta``, ``input_json_delta``, ``thinking_delta``,
``signature_delta``) / ``content_block_stop``, one ``ping``, ``message_delta``, ``message_stop``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ._generate import (
    PrefixCache,
    count_tokens,
    fragments,
    iter_text_pieces,
    sample_from_schema,
    text_of,
    truncate_words,
    wants_tools,
)
from ._http import ErrorReply, FakeServer, JSONReply, RecordedRequest, Reply, SSEEvent, SSEReply

__all__ = [
    "FakeAnthropic",
    "anthropic_error_body",
    "error_event",
    "not_found",
    "overloaded",
    "rate_limit",
    "stream_failing_with",
]

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def anthropic_error_body(
    status: int, message: str | None = None, *, model: str = "claude-sonnet-4-5", request_id: str | None = None
) -> dict[str, Any]:
    """Anthropic's error JSON: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    kind, default_message = _ERRORS.get(status, ("api_error", f"HTTP {status}"))
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": kind, "message": message or default_message.format(model=model)},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def error_event(kind: str = "overloaded_error", message: str = "Overloaded") -> SSEEvent:
    """A mid-stream ``event: error`` (the SDK raises an APIStatusError subclass when it reads it)."""
    return SSEEvent({"type": "error", "error": {"type": kind, "message": message}}, "error")


def overloaded(retry_after: float | None = 0.01) -> ErrorReply:
    """A 529 ``overloaded_error`` (the SDK retries it)."""
    return ErrorReply(529, retry_after=retry_after)


def rate_limit(retry_after: float = 0.01) -> ErrorReply:
    """A 429 ``rate_limit_error`` with ``retry-after-ms``."""
    return ErrorReply(429, retry_after=retry_after)


def not_found(model: str = "claude-does-not-exist") -> ErrorReply:
    """A 404 ``not_found_error`` naming `model`."""
    return ErrorReply(404, anthropic_error_body(404, model=model))


def _blocks(content: Any) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _segments(body: Mapping[str, Any]) -> list[Any]:
    """The prompt in cache order (tools, system, messages), one item per block."""
    segments: list[Any] = [dict(t) for t in body.get("tools") or []]
    segments.extend(_blocks(body.get("system")))
    for m in body.get("messages") or []:
        for block in _blocks(m.get("content") if isinstance(m, Mapping) else m):
            segments.append({"role": m.get("role") if isinstance(m, Mapping) else None, **block})
    return segments


def _segment_tokens(segment: Any) -> int:
    if isinstance(segment, Mapping) and "input_schema" in segment:
        return count_tokens(json.dumps(segment))
    return count_tokens(text_of(segment))


def _signature(text: str) -> str:
    return "fakesig" + hashlib.sha256(text.encode()).hexdigest()[:32]


class FakeAnthropic(FakeServer):
    """The fake Anthropic server. See the module docstring for its default answers; `enqueue` scripts others."""

    request_id_header: ClassVar[str] = "request-id"
    request_id_prefix: ClassVar[str] = "req_fake"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt_cache = PrefixCache()

    def default_reply(self, request: RecordedRequest) -> Reply:
        route = request.route.rstrip("/")
        if request.method == "POST" and route in ("/v1/messages", "/messages"):
            body = request.json if isinstance(request.json, dict) else {}
            if body.get("stream"):
                return SSEReply(self.build_message_events(body))
            return JSONReply(200, self.build_message(body))
        return self.not_found(request)

    def error_body(self, status: int, message: str | None, request: RecordedRequest | None = None) -> Any:
        model = "claude-sonnet-4-5"
        if request is not None and isinstance(request.json, dict):
            model = str(request.json.get("model", model))
        return anthropic_error_body(status, message, model=model, request_id=f"req_fake_error_{status}")

    def error_headers(self, status: int) -> dict[str, str]:
        return {"x-should-retry": "true"} if status in (429, 500, 529) else {}

    def extra_response_headers(self) -> dict[str, str]:
        return {**super().extra_response_headers(), "anthropic-organization-id": "org-fake"}

    # -- building answers ----------------------------------------------------------------------
    def build_message(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The default ``message`` object for request `body`."""
        messages: list[Any] = list(body.get("messages") or [])
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        last_blocks = _blocks(last.get("content")) if last.get("role") == "user" else []
        tool_results = [b for b in last_blocks if isinstance(b, Mapping) and b.get("type") == "tool_result"]
        user_text = ""
        for m in reversed(messages):
            if isinstance(m, Mapping) and m.get("role") == "user":
                texts = [b for b in _blocks(m.get("content")) if not isinstance(b, Mapping) or b.get("type") == "text"]
                user_text = text_of(texts)
                if texts:
                    break

        # Usage, with the prompt cache.
        segments = _segments(body)
        total_input = sum(_segment_tokens(s) for s in segments) + 3 * len(messages)
        breakpoints = [i for i, s in enumerate(segments) if isinstance(s, Mapping) and s.get("cache_control")]
        cache_read = cache_write = write_1h = 0
        if breakpoints:
            prefix = segments[: breakpoints[-1] + 1]
            prefix_tokens = sum(_segment_tokens(s) for s in prefix)
            if self.prompt_cache.seen_before(prefix):
                cache_read = prefix_tokens
            else:
                cache_write = prefix_tokens
                # A breakpoint with ``"ttl": "1h"`` writes for an hour (billed apart from 5-minute writes).
                control = segments[breakpoints[-1]]["cache_control"]
                if isinstance(control, Mapping) and control.get("ttl") == "1h":
                    write_1h = cache_write

        content: list[dict[str, Any]] = []
        thinking = body.get("thinking")
        if isinstance(thinking, Mapping) and thinking.get("type") not in (None, "disabled"):
            thought = f"The user said: {user_text}. I will echo it back."
            content.append({"type": "thinking", "thinking": thought, "signature": _signature(thought)})

        tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and "name" in t]
        raw_choice = body.get("tool_choice")
        choice: Mapping[str, Any] = raw_choice if isinstance(raw_choice, Mapping) else {}
        selected: list[Mapping[str, Any]] = []
        if tools and not tool_results and choice.get("type") != "none":
            mode = wants_tools(user_text)
            if choice.get("type") == "tool":
                selected = [t for t in tools if t["name"] == choice.get("name")][:1]
            elif mode == "all":
                selected = tools
            elif mode == "one" or choice.get("type") == "any":
                selected = tools[:1]

        stop_reason = "end_turn"
        stop_sequence = None
        n = self.next_id()
        if selected:
            names = ", ".join(t["name"] for t in selected)
            content.append({"type": "text", "text": f"I'll use {names}."})
            for i, tool in enumerate(selected):
                content.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_fake{n:06d}_{i}",
                        "name": tool["name"],
                        "input": sample_from_schema(tool.get("input_schema") or {"type": "object"}),
                    }
                )
            stop_reason = "tool_use"
        else:
            fmt = body.get("output_format") or (body.get("output_config") or {}).get("format")
            if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
                text = json.dumps(sample_from_schema(fmt.get("schema") or {}))
            elif tool_results:
                text = "Tool results: " + " ".join(text_of(b.get("content")) for b in tool_results)
            else:
                text = f"Echo: {user_text}"
            for seq in body.get("stop_sequences") or []:
                if seq and seq in text:
                    text = text[: text.index(seq)]
                    stop_reason, stop_sequence = "stop_sequence", seq
                    break
            text, cut = truncate_words(text, body.get("max_tokens"))
            if cut:
                stop_reason, stop_sequence = "max_tokens", None
            content.append({"type": "text", "text": text})

        output_tokens = 0
        for block in content:
            if block["type"] == "tool_use":
                output_tokens += count_tokens(json.dumps(block["input"])) + 5
            else:
                output_tokens += count_tokens(block.get("text") or block.get("thinking") or "")
        return {
            "id": f"msg_fake{n:06d}",
            "type": "message",
            "role": "assistant",
            "model": str(body.get("model") or "claude-sonnet-4-5"),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": total_input - cache_read - cache_write,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": cache_write - write_1h,
                    "ephemeral_1h_input_tokens": write_1h,
                },
                "output_tokens": output_tokens,
                "service_tier": "standard",
            },
        }

    def build_message_events(self, body: Mapping[str, Any]) -> list[SSEEvent]:
        """The default SSE events of a streamed message, ``message_start`` to ``message_stop``."""
        final = self.build_message(body)
        usage = final["usage"]
        events: list[SSEEvent] = []

        def emit(kind: str, **data: Any) -> None:
            events.append(SSEEvent({"type": kind, **data}, kind))

        start_usage = {**usage, "output_tokens": 1}
        emit(
            "message_start",
            message={**final, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage},
        )
        for index, block in enumerate(final["content"]):
            kind = block["type"]
            if kind == "text":
                emit("content_block_start", index=index, content_block={"type": "text", "text": ""})
                if index == 0:
                    events.append(SSEEvent({"type": "ping"}, "ping"))
                for piece in iter_text_pieces(block["text"]):
                    emit("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
            elif kind == "thinking":
                emit(
                    "content_block_start",
                    index=index,
                    content_block={"type": "thinking", "thinking": "", "signature": ""},
                )
                if index == 0:
                    events.append(SSEEvent({"type": "ping"}, "ping"))
                for piece in iter_text_pieces(block["thinking"]):
                    emit("content_block_delta", index=index, delta={"type": "thinking_delta", "thinking": piece})
                emit(
                    "content_block_delta",
                    index=index,
                    delta={"type": "signature_delta", "signature": block["signature"]},
                )
            elif kind == "tool_use":
                emit(
                    "content_block_start",
                    index=index,
                    content_block={"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                )
                for piece in ["", *fragments(json.dumps(block["input"]))]:
                    emit("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": piece})
            emit("content_block_stop", index=index)
        emit(
            "message_delta",
            delta={"stop_reason": final["stop_reason"], "stop_sequence": final["stop_sequence"]},
            usage={
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                "output_tokens": usage["output_tokens"],
            },
        )
        emit("message_stop")
        return events


def stream_failing_with(events: Sequence[SSEEvent], after: int, failure: SSEEvent | None = None) -> SSEReply:
    """The first `after` of `events`, then an ``event: error`` (overloaded by default), then the stream ends."""
    return SSEReply([*events[:after], failure or error_event()])
