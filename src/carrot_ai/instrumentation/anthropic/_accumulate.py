"""Fold Anthropic's streamed events into the response attributes and the record's output.

The events are the raw SSE events of ``messages.create(stream=True)`` (and of the stream under
``messages.stream()``): ``message_start``, ``content_block_start`` / ``content_block_delta`` (``text_delta``,
``input_json_delta``, ``thinking_delta``, ``signature_delta``, ``citations_delta``) / ``content_block_stop``,
``message_delta``, ``message_stop``. A server tool's call (``server_tool_use``) gets its input in
``input_json_delta`` pieces, as a client tool's does; its result block arrives whole in its ``content_block_start``.

Usage without double counting: ``message_start`` carries the input side (and a placeholder ``output_tokens``);
``message_delta`` carries cumulative counts, so a count it has replaces the earlier one, it is never added. A stream
that ends before ``message_delta`` reports no output tokens rather than the placeholder. Thinking tokens
(``usage.output_tokens_details.thinking_tokens``) are final from ``message_delta`` on too, as for the SDK.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai.instrumentation.anthropic._extract import get, output_from_blocks, usage_attributes

_USAGE_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
# Kept under this key in the accumulated usage; ``usage_attributes`` reads it from ``output_tokens_details``.
_THINKING = "thinking_tokens"
# The 1-hour cache writes (``usage.cache_creation.ephemeral_1h_input_tokens``), kept flat under this key.
_WRITE_1H = "ephemeral_1h_input_tokens"
# What ``message_start`` has placeholders for: known only from ``message_delta`` on.
_FINAL_ONLY = ("output_tokens", _THINKING)


class MessageStreamAccumulator:
    """A :class:`carrot_ai._core._stream.StreamAccumulator` for Anthropic message streams."""

    __slots__ = (
        "_capture",
        "_content_attributes",
        "_request_id",
        "_blocks",
        "_id",
        "_model",
        "_usage",
        "_stop_reason",
        "_final_usage",
    )

    def __init__(self, capture: bool, request_id: str | None = None, content_attributes: bool = True) -> None:
        self._capture = capture
        self._content_attributes = content_attributes  # gen_ai.output.messages too
        self._request_id = request_id
        # index -> [content_block from content_block_start, list of delta pieces]
        self._blocks: dict[int, list[Any]] = {}
        self._id: str | None = None
        self._model: str | None = None
        self._usage: dict[str, int] = {}
        self._stop_reason: str | None = None
        self._final_usage = False

    def process(self, chunk: Any) -> bool:
        # Fast path, for most events of an answer: a text delta, read with plain attribute reads (the SDK's models
        # have their fields); anything else takes the general path.
        if self._capture:
            try:
                if chunk.type == "content_block_delta":
                    delta = chunk.delta
                    if delta.type == "text_delta":
                        block = self._blocks.get(chunk.index)
                        text = delta.text
                        if block is not None and type(text) is str:
                            block[1].append(text)
                            return True
            except AttributeError:
                pass
        return self._process(chunk)

    def process_plain(self, chunk: dict[str, Any]) -> bool:
        """:meth:`process`'s fast path for an event as the export worker decodes it (plain JSON, no view): fold in a
        text delta of a started block as :meth:`process` would, and return True; return False, having done nothing,
        for anything else (the worker then processes it as a view). The same tests on the same data."""
        if not self._capture or chunk.get("type") != "content_block_delta":
            return False
        delta = chunk.get("delta")
        if type(delta) is not dict or delta.get("type") != "text_delta":
            return False
        block = self._blocks.get(chunk.get("index"))  # type: ignore[arg-type]
        text = delta.get("text")
        if block is not None and type(text) is str:
            block[1].append(text)
            return True
        return False

    def _process(self, chunk: Any) -> bool:
        # The SDK builds events without validating them: any field may be missing or None, so read defensively.
        kind = getattr(chunk, "type", None)
        if kind == "content_block_delta":
            if self._capture:
                block = self._blocks.get(getattr(chunk, "index", None))  # type: ignore[arg-type]
                delta = getattr(chunk, "delta", None)
                if block is not None and delta is not None:
                    delta_type = getattr(delta, "type", None)
                    piece = None
                    if delta_type == "text_delta":
                        piece = getattr(delta, "text", None)
                    elif delta_type == "input_json_delta":
                        piece = getattr(delta, "partial_json", None)
                    elif delta_type == "thinking_delta":
                        piece = getattr(delta, "thinking", None)
                    if isinstance(piece, str):
                        block[1].append(piece)
        elif kind == "content_block_start":
            index = getattr(chunk, "index", None)
            if self._capture and isinstance(index, int):
                self._blocks[index] = [getattr(chunk, "content_block", None), []]
        elif kind == "message_start":
            message = getattr(chunk, "message", None)
            response_id = getattr(message, "id", None)
            model = getattr(message, "model", None)
            self._id = response_id if isinstance(response_id, str) else None
            self._model = model if isinstance(model, str) else None
            self._take_usage(getattr(message, "usage", None))
        elif kind == "message_delta":
            stop_reason = getattr(getattr(chunk, "delta", None), "stop_reason", None)
            if isinstance(stop_reason, str):
                self._stop_reason = stop_reason
            self._final_usage = True
            self._take_usage(getattr(chunk, "usage", None))
        return True

    def _take_usage(self, usage: Any) -> None:
        if usage is None:
            return
        for key in _USAGE_KEYS:
            value = getattr(usage, key, None)
            if isinstance(value, int):
                self._usage[key] = value
        # (A model, the JSON's view, or a dict: an SDK that predates the field keeps it as it came.)
        thinking = get(getattr(usage, "output_tokens_details", None), _THINKING)
        if isinstance(thinking, int):
            self._usage[_THINKING] = thinking
        write_1h = get(getattr(usage, "cache_creation", None), _WRITE_1H)
        if isinstance(write_1h, int):
            self._usage[_WRITE_1H] = write_1h

    def result(self) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
        attributes: dict[str, AttributeValue] = {}
        if self._id:
            attributes[semconv.GEN_AI_RESPONSE_ID] = self._id
        if self._model:
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = self._model
        if self._stop_reason:
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = (self._stop_reason,)
        if self._request_id:
            attributes[semconv.CARROT_REQUEST_ID] = self._request_id
        usage: dict[str, Any] = {k: v for k, v in self._usage.items() if self._final_usage or k not in _FINAL_ONLY}
        thinking = usage.pop(_THINKING, None)
        if thinking is not None:
            usage["output_tokens_details"] = {_THINKING: thinking}
        write_1h = usage.pop(_WRITE_1H, None)
        if write_1h is not None:
            usage["cache_creation"] = {_WRITE_1H: write_1h}
        usage_attributes(usage, attributes)
        if not self._capture:
            return attributes, None
        blocks = [_finished_block(*self._blocks[i]) for i in sorted(self._blocks)]
        return attributes, output_from_blocks(blocks, self._stop_reason, attributes, self._content_attributes)


def _finished_block(start: Any, pieces: list[str]) -> Any:
    """The block a ``content_block_start`` and its deltas make, as a dict ``block_part`` reads."""
    kind = getattr(start, "type", None)
    if kind == "text":
        return {"type": "text", "text": (getattr(start, "text", "") or "") + "".join(pieces)}
    if kind == "thinking":
        return {"type": "thinking", "thinking": (getattr(start, "thinking", "") or "") + "".join(pieces)}
    if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
        raw = "".join(pieces)
        arguments: Any = getattr(start, "input", None)
        if raw:
            try:
                arguments = json.loads(raw)
            except ValueError:
                arguments = raw  # a stream cut short: keep the partial JSON text
        block = {
            "type": kind,
            "id": getattr(start, "id", None),
            "name": getattr(start, "name", None),
            "input": arguments,
        }
        server = getattr(start, "server_name", None)  # an MCP tool's server
        if server is not None:
            block["server_name"] = server
        return block
    return start  # (a server tool's result block arrives whole here)
