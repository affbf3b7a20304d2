"""A fake OpenAI API on 127.0.0.1: chat completions, Responses, embeddings and legacy completions.

Point the real SDK at it with ``OpenAI(base_url=server.base_url + "/v1", api_key="sk-test")`` (a
base_url without ``/v1`` works too: routes are matched with or without the prefix).

Default answers are deterministic and built from the request:

* text: ``"Echo: <last user text>"`` (choice *i* > 0 of ``n`` says ``"Echo #<i+1>: ..."``); after tool
  results (last message ``role: tool``) the answer is ``"Tool results: <their text>"``;
* tool calls when ``tools`` (or legacy ``functions``) are given and the last user text contains
  ``"use tool"`` (first tool) or ``"use tools"`` / ``"use all tools"`` (every tool, in parallel), or
  when ``tool_choice`` forces one (``"required"`` or a named function); arguments come from each
  tool's JSON Schema;
* ``response_format`` / ``text.format`` ``json_schema``: JSON content sampled from the schema
  (so ``chat.completions.parse`` and ``responses.parse`` work); ``json_object``: ``{"echo": ...}``;
* usage: one token per word; ``prompt_tokens`` = words of every message + 3 per message;
  ``cached_tokens`` = the tokens of the longest message prefix this server saw before (a repeated
  request is fully cached); ``reasoning_tokens`` = 16/32/64 for ``reasoning_effort`` (or
  ``reasoning.effort``) low/medium/high, and counted in ``completion_tokens``;
* audio (chat): each ``input_audio`` part counts one audio token per 32 bytes of its decoded data (at least one),
  reported in ``prompt_tokens_details.audio_tokens`` and part of ``prompt_tokens``; with ``"audio"`` in
  ``modalities`` the answer is spoken: ``message.audio`` (``id``, ``data``, ``expires_at``, ``transcript``: the
  text) with ``content`` null, streamed as ``delta.audio`` transcript pieces then data, and 4 audio tokens per
  transcript word in ``completion_tokens_details.audio_tokens``, part of ``completion_tokens`` (as the real API
  reports an audio model's usage);
* ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` cut the text (finish ``length``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ._generate import (
    PrefixCache,
    count_tokens,
    fragments,
    iter_text_pieces,
    sample_from_schema,
    text_of,
    tool_arguments,
    truncate_words,
    wants_tools,
)
from ._http import ErrorReply, FakeServer, JSONReply, RecordedRequest, Reply, SSEEvent, SSEReply

__all__ = [
    "CREATED",
    "FakeOpenAI",
    "model_not_found",
    "openai_error_body",
    "rate_limit",
    "server_error",
]

CREATED = 1_700_000_000
"""The fixed ``created`` timestamp of every default answer."""

_REASONING_TOKENS = {"minimal": 8, "low": 16, "medium": 32, "high": 64, "xhigh": 96}
_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072, "text-embedding-3-small": 1536, "text-embedding-ada-002": 1536}

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-test."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 3, Used 3, "
        "Requested 1. Please try again in 20s.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def openai_error_body(
    status: int,
    message: str | None = None,
    *,
    model: str = "gpt-4o-mini",
    type: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error JSON for `status`: ``{"error": {"message", "type", "param", "code"}}``."""
    default_type, default_code, default_message = _ERRORS.get(status, ("api_error", None, f"HTTP {status}"))
    return {
        "error": {
            "message": message or default_message.format(model=model),
            "type": type or default_type,
            "param": None,
            "code": code if code is not None else default_code,
        }
    }


def rate_limit(retry_after: float = 0.01, message: str | None = None) -> ErrorReply:
    """A 429 ``rate_limit_exceeded`` with ``retry-after-ms`` (so the SDK's retry waits only `retry_after`)."""
    return ErrorReply(429, message=message, retry_after=retry_after)


def server_error(status: int = 500, message: str | None = None) -> ErrorReply:
    """A 5xx ``server_error`` (the SDK retries it)."""
    return ErrorReply(status, message=message, retry_after=0.01)


def model_not_found(model: str = "gpt-does-not-exist") -> ErrorReply:
    """A 404 ``model_not_found`` naming `model`."""
    return ErrorReply(404, openai_error_body(404, model=model))


def _messages_for_tokens(messages: Sequence[Any]) -> int:
    return sum(count_tokens(text_of(m.get("content") if isinstance(m, Mapping) else m)) + 3 for m in messages)


_OUTPUT_AUDIO_TOKENS_PER_WORD = 4


def _input_audio_tokens(messages: Sequence[Any]) -> int:
    """The audio tokens of the ``input_audio`` parts of `messages`: one per 32 bytes of decoded audio, at least one."""
    tokens = 0
    for m in messages:
        content = m.get("content") if isinstance(m, Mapping) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "input_audio":
                data = (part.get("input_audio") or {}).get("data") or ""
                try:
                    size = len(base64.b64decode(data))
                except ValueError:
                    size = len(data)
                tokens += max(1, size // 32)
    return tokens


def _audio_id(plan: Mapping[str, Any], choice: int) -> str:
    return f"audio_{plan['id'][len('chatcmpl-') :]}_{choice}"


def _audio_data(transcript: str) -> str:
    """Stand-in audio bytes of a spoken answer (base64), as long as its audio tokens would take."""
    return base64.b64encode(bytes(32 * _OUTPUT_AUDIO_TOKENS_PER_WORD * count_tokens(transcript))).decode("ascii")


def _last_user_text(messages: Sequence[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, Mapping) and m.get("role") == "user":
            return text_of(m.get("content"))
    return ""


def _tool_results(messages: Sequence[Any]) -> str | None:
    """The text of the tool results at the end of `messages`, or None when the last message is no tool result."""
    results: list[str] = []
    for m in reversed(messages):
        if not isinstance(m, Mapping):
            break
        if m.get("role") in ("tool", "function") or m.get("type") == "function_call_output":
            results.append(text_of(m.get("content", m.get("output"))))
            continue
        break
    return " ".join(reversed(results)) if results else None


def _embedding(text: str, dimensions: int) -> list[float]:
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vec = out[:dimensions]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


class FakeOpenAI(FakeServer):
    """The fake OpenAI server. See the module docstring for its default answers; `enqueue` scripts others."""

    request_id_header: ClassVar[str] = "x-request-id"
    request_id_prefix: ClassVar[str] = "req_fake"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt_cache = PrefixCache()

    # -- routing -------------------------------------------------------------------------------
    def default_reply(self, request: RecordedRequest) -> Reply:
        route = request.route.rstrip("/")
        if route.startswith("/v1/"):
            route = route[3:]
        body = request.json if isinstance(request.json, dict) else {}
        if request.method != "POST":
            return self.not_found(request)
        if route == "/chat/completions":
            if body.get("stream"):
                return SSEReply(self.build_chat_chunks(body))
            return JSONReply(200, self.build_chat_completion(body))
        if route == "/responses":
            if body.get("stream"):
                return SSEReply(self.build_response_events(body))
            return JSONReply(200, self.build_response(body))
        if route == "/embeddings":
            return JSONReply(200, self.build_embeddings(body))
        if route == "/completions":
            if body.get("stream"):
                return SSEReply(self.build_completion_chunks(body))
            return JSONReply(200, self.build_completion(body))
        return self.not_found(request)

    def error_body(self, status: int, message: str | None, request: RecordedRequest | None = None) -> Any:
        model = "gpt-4o-mini"
        if request is not None and isinstance(request.json, dict):
            model = str(request.json.get("model", model))
        return openai_error_body(status, message, model=model)

    def error_headers(self, status: int) -> dict[str, str]:
        return {"x-should-retry": "true"} if status in (429, 500, 502, 503) else {}

    def extra_response_headers(self) -> dict[str, str]:
        return {**super().extra_response_headers(), "openai-version": "2020-10-01", "openai-processing-ms": "7"}

    # -- chat completions ----------------------------------------------------------------------
    def _chat_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """What the model 'says' for a chat request: texts per choice or tool calls, finish reason, usage."""
        messages: list[Any] = list(body.get("messages") or [])
        n = int(body.get("n") or 1)
        user_text = _last_user_text(messages)
        input_audio = _input_audio_tokens(messages)
        prompt_tokens = _messages_for_tokens(messages) + input_audio
        cached_items = self.prompt_cache.longest_seen(messages)
        cached = _messages_for_tokens(messages[:cached_items])
        effort = body.get("reasoning_effort")
        reasoning = _REASONING_TOKENS.get(str(effort), 16) if effort else 0
        limit = body.get("max_completion_tokens") or body.get("max_tokens")

        tools = [
            t for t in body.get("tools") or [] if isinstance(t, Mapping) and t.get("type", "function") == "function"
        ]
        functions = list(body.get("functions") or [])
        tool_results = _tool_results(messages)
        calls: list[dict[str, Any]] = []
        legacy_call: dict[str, Any] | None = None
        if tool_results is None:
            choice = body.get("tool_choice")
            mode = wants_tools(user_text)
            if tools and choice != "none":
                if isinstance(choice, Mapping) and choice.get("type") == "function":
                    wanted = choice.get("function", {}).get("name")
                    selected = [t for t in tools if t.get("function", {}).get("name") == wanted][:1]
                elif mode == "all":
                    selected = tools
                elif mode == "one" or choice == "required":
                    selected = tools[:1]
                else:
                    selected = []
                calls = [
                    {
                        "name": t["function"]["name"],
                        "arguments": tool_arguments(t["function"].get("parameters")),
                    }
                    for t in selected
                ]
            elif functions and body.get("function_call") != "none":
                fc = body.get("function_call")
                forced = fc.get("name") if isinstance(fc, Mapping) else None
                chosen = next((f for f in functions if f.get("name") == forced), None) if forced else None
                if chosen is None and mode:
                    chosen = functions[0]
                if chosen is not None:
                    legacy_call = {"name": chosen["name"], "arguments": tool_arguments(chosen.get("parameters"))}

        texts: list[str] = []
        finish = "stop"
        if calls:
            finish = "tool_calls"
        elif legacy_call:
            finish = "function_call"
        else:
            for i in range(n):
                structured = self._structured_text(body.get("response_format"), user_text)
                if tool_results is not None:
                    text = f"Tool results: {tool_results}"
                elif structured is not None:
                    text = structured
                else:
                    text = f"Echo: {user_text}" if i == 0 else f"Echo #{i + 1}: {user_text}"
                text, cut = truncate_words(text, limit)
                if cut:
                    finish = "length"
                texts.append(text)
        completion = sum(count_tokens(t) for t in texts)
        completion += sum(count_tokens(c["arguments"]) + 5 for c in calls) * n
        if legacy_call:
            completion += count_tokens(legacy_call["arguments"]) + 5
        completion += reasoning
        spoken = "audio" in (body.get("modalities") or []) and bool(texts)
        output_audio = _OUTPUT_AUDIO_TOKENS_PER_WORD * sum(count_tokens(t) for t in texts) if spoken else 0
        completion += output_audio
        model = str(body.get("model") or "gpt-4o-mini")
        return {
            "id": f"chatcmpl-fake{self.next_id():06d}",
            "model": model,
            "n": n,
            "texts": texts,
            "calls": calls,
            "legacy_call": legacy_call,
            "finish": finish,
            "spoken": spoken,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": input_audio},
                "completion_tokens_details": {
                    "reasoning_tokens": reasoning,
                    "audio_tokens": output_audio,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": body.get("service_tier") if body.get("service_tier") not in (None, "auto") else "default",
        }

    @staticmethod
    def _structured_text(response_format: Any, user_text: str) -> str | None:
        if not isinstance(response_format, Mapping):
            return None
        kind = response_format.get("type")
        if kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or response_format.get("schema") or {}
            return json.dumps(sample_from_schema(schema))
        if kind == "json_object":
            return json.dumps({"echo": user_text})
        return None

    def _call_id(self, plan: Mapping[str, Any], choice: int, i: int) -> str:
        return f"call_fake{plan['id'][-6:]}_{choice}_{i}"

    def build_chat_completion(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The default ``chat.completion`` object for request `body`."""
        plan = self._chat_plan(body)
        choices = []
        for c in range(plan["n"]):
            message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
            if plan["calls"]:
                message["tool_calls"] = [
                    {
                        "id": self._call_id(plan, c, i),
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                    for i, call in enumerate(plan["calls"])
                ]
            elif plan["legacy_call"]:
                message["function_call"] = dict(plan["legacy_call"])
            elif plan["spoken"]:
                message["audio"] = {
                    "id": _audio_id(plan, c),
                    "data": _audio_data(plan["texts"][c]),
                    "expires_at": CREATED + 3600,
                    "transcript": plan["texts"][c],
                }
            else:
                message["content"] = plan["texts"][c]
            choices.append({"index": c, "message": message, "logprobs": None, "finish_reason": plan["finish"]})
        return {
            "id": plan["id"],
            "object": "chat.completion",
            "created": CREATED,
            "model": plan["model"],
            "choices": choices,
            "usage": plan["usage"],
            "service_tier": plan["service_tier"],
            "system_fingerprint": "fp_fake",
        }

    def build_chat_chunks(self, body: Mapping[str, Any]) -> list[Any]:
        """The default SSE events (chunk dicts, then ``"[DONE]"``) of a streamed chat completion."""
        plan = self._chat_plan(body)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": plan["id"],
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": plan["model"],
                "service_tier": plan["service_tier"],
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                out["usage"] = usage
            return out

        def delta(index: int, d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": index, "delta": d, "logprobs": None, "finish_reason": finish}

        events: list[Any] = []
        for c in range(plan["n"]):
            first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
            if plan["calls"] or plan["legacy_call"] or plan["spoken"]:
                first["content"] = None
            if plan["legacy_call"]:
                first["function_call"] = {"name": plan["legacy_call"]["name"], "arguments": ""}
            if not plan["calls"]:
                events.append(chunk([delta(c, first)]))
        for c in range(plan["n"]):
            if plan["calls"]:
                for i, call in enumerate(plan["calls"]):
                    head = {
                        "index": i,
                        "id": self._call_id(plan, c, i),
                        "type": "function",
                        "function": {"name": call["name"], "arguments": ""},
                    }
                    # As the real API does, the first tool call's head rides on the chunk that has the role.
                    opening = {"role": "assistant", "content": None, "refusal": None} if i == 0 else {}
                    events.append(chunk([delta(c, {**opening, "tool_calls": [head]})]))
                    for piece in fragments(call["arguments"]):
                        events.append(
                            chunk([delta(c, {"tool_calls": [{"index": i, "function": {"arguments": piece}}]})])
                        )
            elif plan["legacy_call"]:
                for piece in fragments(plan["legacy_call"]["arguments"]):
                    events.append(chunk([delta(c, {"function_call": {"arguments": piece}})]))
        # Text deltas of several choices interleave, as the real API's do; a spoken answer's are transcript pieces
        # of ``delta.audio``, then its audio data and expiry.
        pieces = [list(iter_text_pieces(t)) for t in plan["texts"]]
        for step in range(max((len(p) for p in pieces), default=0)):
            for c, p in enumerate(pieces):
                if step < len(p):
                    if plan["spoken"]:
                        audio = {"id": _audio_id(plan, c), "transcript": p[step]}
                        events.append(chunk([delta(c, {"audio": audio})]))
                    else:
                        events.append(chunk([delta(c, {"content": p[step]})]))
        if plan["spoken"]:
            for c, text in enumerate(plan["texts"]):
                audio = {"id": _audio_id(plan, c), "data": _audio_data(text)}
                events.append(chunk([delta(c, {"audio": audio})]))
                events.append(chunk([delta(c, {"audio": {"id": _audio_id(plan, c), "expires_at": CREATED + 3600}})]))
        for c in range(plan["n"]):
            events.append(chunk([delta(c, {}, plan["finish"])]))
        if include_usage:
            events.append(chunk([], plan["usage"]))
        events.append("[DONE]")
        return events

    # -- responses -----------------------------------------------------------------------------
    def _response_input(self, body: Mapping[str, Any]) -> list[Any]:
        raw = body.get("input")
        if raw is None:
            return []
        if isinstance(raw, str):
            return [{"role": "user", "content": raw}]
        return list(raw)

    def build_response(self, body: Mapping[str, Any], *, status: str = "completed") -> dict[str, Any]:
        """The default Responses API ``response`` object for request `body`."""
        items = self._response_input(body)
        user_text = _last_user_text(
            [i for i in items if isinstance(i, Mapping) and i.get("type", "message") == "message"]
        )
        instructions = body.get("instructions")
        input_tokens = _messages_for_tokens(items) + (count_tokens(str(instructions)) if instructions else 0)
        seen = self.prompt_cache.longest_seen([instructions, *items])
        cached = 0
        if seen:
            cached = _messages_for_tokens(items[: seen - 1]) + (count_tokens(str(instructions)) if instructions else 0)
        reasoning_param = body.get("reasoning") or {}
        effort = reasoning_param.get("effort") if isinstance(reasoning_param, Mapping) else None
        reasoning = _REASONING_TOKENS.get(str(effort), 16) if effort else 0
        n = self.next_id()
        output: list[dict[str, Any]] = []
        if reasoning:
            output.append({"id": f"rs_fake{n:06d}", "type": "reasoning", "summary": []})

        tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and t.get("type") == "function"]
        tool_results = _tool_results(items)
        choice = body.get("tool_choice")
        mode = wants_tools(user_text) if tool_results is None else None
        selected: list[Mapping[str, Any]] = []
        if tools and choice != "none" and tool_results is None:
            if isinstance(choice, Mapping) and choice.get("type") == "function":
                selected = [t for t in tools if t.get("name") == choice.get("name")][:1]
            elif mode == "all":
                selected = tools
            elif mode == "one" or choice == "required":
                selected = tools[:1]
        output_tokens = reasoning
        incomplete = None
        if selected:
            for i, tool in enumerate(selected):
                args = tool_arguments(tool.get("parameters"))
                output_tokens += count_tokens(args) + 5
                output.append(
                    {
                        "id": f"fc_fake{n:06d}_{i}",
                        "type": "function_call",
                        "status": "completed",
                        "arguments": args,
                        "call_id": f"call_fake{n:06d}_{i}",
                        "name": tool["name"],
                    }
                )
        else:
            fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), Mapping) else None
            text = None
            if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
                text = json.dumps(sample_from_schema(fmt.get("schema") or {}))
            elif isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
                text = json.dumps({"echo": user_text})
            if text is None:
                text = f"Tool results: {tool_results}" if tool_results is not None else f"Echo: {user_text}"
            text, cut = truncate_words(text, body.get("max_output_tokens"))
            if cut:
                status = "incomplete"
                incomplete = {"reason": "max_output_tokens"}
            output_tokens += count_tokens(text)
            output.append(
                {
                    "id": f"msg_fake{n:06d}",
                    "type": "message",
                    "status": "completed" if not cut else "incomplete",
                    "role": "assistant",
                    "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
                }
            )
        return {
            "id": f"resp_fake{n:06d}",
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": instructions,
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": str(body.get("model") or "gpt-4o-mini"),
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": effort, "summary": None},
            "service_tier": body.get("service_tier") if body.get("service_tier") not in (None, "auto") else "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": list(body.get("tools") or []),
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": input_tokens + output_tokens,
            },
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def build_response_events(self, body: Mapping[str, Any]) -> list[SSEEvent]:
        """The default event sequence of a streamed Responses API call, ``response.created`` to ``.completed``."""
        final = self.build_response(body)
        seq = 0
        events: list[SSEEvent] = []

        def emit(kind: str, **data: Any) -> None:
            nonlocal seq
            events.append(SSEEvent({"type": kind, "sequence_number": seq, **data}, kind))
            seq += 1

        start = {**final, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
        emit("response.created", response=start)
        emit("response.in_progress", response=start)
        for index, item in enumerate(final["output"]):
            if item["type"] == "message":
                part = item["content"][0]
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                empty = {**part, "text": ""}
                emit("response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=empty)
                for piece in iter_text_pieces(part["text"]):
                    emit(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        delta=piece,
                        logprobs=[],
                    )
                emit(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=part["text"],
                    logprobs=[],
                )
                emit("response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part)
            elif item["type"] == "function_call":
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                for piece in fragments(item["arguments"]):
                    emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=piece)
                emit(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            else:
                emit("response.output_item.added", output_index=index, item=item)
            emit("response.output_item.done", output_index=index, item=item)
        done_kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        emit(done_kind, response=final)
        return events

    # -- embeddings ----------------------------------------------------------------------------
    def build_embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The default embeddings list: deterministic unit vectors (base64 float32 for ``encoding_format: base64``)."""
        raw = body.get("input")
        inputs: list[Any] = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw or [])
        model = str(body.get("model") or "text-embedding-3-small")
        dims = int(body.get("dimensions") or _EMBEDDING_DIMENSIONS.get(model, 1536))
        data = []
        tokens = 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else json.dumps(item)
            tokens += count_tokens(text) if isinstance(item, str) else len(item)
            vector = _embedding(text, dims)
            value: Any = vector
            if body.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # -- legacy completions --------------------------------------------------------------------
    def _completion_plan(self, body: Mapping[str, Any]) -> dict[str, Any]:
        raw = body.get("prompt")
        prompts = [raw] if isinstance(raw, str) else [p if isinstance(p, str) else json.dumps(p) for p in raw or [""]]
        n = int(body.get("n") or 1)
        texts, finishes = [], []
        for prompt in prompts:
            for i in range(n):
                text = f"Echo: {prompt}" if i == 0 else f"Echo #{i + 1}: {prompt}"
                text, cut = truncate_words(text, body.get("max_tokens"))
                texts.append(text)
                finishes.append("length" if cut else "stop")
        prompt_tokens = sum(count_tokens(p) for p in prompts)
        completion = sum(count_tokens(t) for t in texts)
        return {
            "id": f"cmpl-fake{self.next_id():06d}",
            "model": str(body.get("model") or "gpt-3.5-turbo-instruct"),
            "texts": texts,
            "finishes": finishes,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            },
        }

    def build_completion(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The default legacy ``text_completion`` object."""
        plan = self._completion_plan(body)
        return {
            "id": plan["id"],
            "object": "text_completion",
            "created": CREATED,
            "model": plan["model"],
            "system_fingerprint": None,
            "choices": [
                {"text": t, "index": i, "logprobs": None, "finish_reason": f}
                for i, (t, f) in enumerate(zip(plan["texts"], plan["finishes"], strict=True))
            ],
            "usage": plan["usage"],
        }

    def build_completion_chunks(self, body: Mapping[str, Any]) -> list[Any]:
        """The default SSE events of a streamed legacy completion, ending with ``"[DONE]"``."""
        plan = self._completion_plan(body)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": plan["id"],
                "object": "text_completion",
                "created": CREATED,
                "model": plan["model"],
                "system_fingerprint": None,
                "choices": choices,
            }
            if include_usage:
                out["usage"] = usage
            return out

        events: list[Any] = []
        for i, text in enumerate(plan["texts"]):
            for piece in iter_text_pieces(text):
                events.append(chunk([{"text": piece, "index": i, "logprobs": None, "finish_reason": None}]))
            events.append(chunk([{"text": "", "index": i, "logprobs": None, "finish_reason": plan["finishes"][i]}]))
        if include_usage:
            events.append(chunk([], plan["usage"]))
        events.append("[DONE]")
        return events
