"""Every recorded Anthropic exchange, replayed through a wrapped client: the record matches the recording.

The expected values are read from the recorded response itself (JSON body or SSE events), independently of the
code under test: model, response id, usage (input INCLUDING cache read and write, output, cache read, cache
write), text, tool calls, thinking, stop reason; and for errors the HTTP status and the API's error type.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import carrot_ai
from tests.anthropic.conftest import records
from tests.fakes.cassettes import (
    CassetteServer,
    Interaction,
    cassette_names,
    default_client,
    load_cassette,
    replay_through_sdk,
)
from tests.ingest_server import IngestServer

NAMES = cassette_names("anthropic")


def wrapped_client(provider: str, base_url: str, is_async: bool) -> Any:
    return carrot_ai.wrap(default_client(provider, base_url, is_async))


def expected_from_recording(interaction: Interaction) -> dict[str, Any]:
    """What the record must say, computed from the recorded response alone."""
    if interaction.status >= 400:
        body = interaction.response_json or {}
        return {"status": "error", "http_status": interaction.status, "error_code": body["error"]["type"]}
    if interaction.is_sse:
        message: dict[str, Any] = {}
        blocks: dict[int, dict[str, Any]] = {}
        usage: dict[str, Any] = {}
        for _name, data in interaction.sse_events:
            event = json.loads(data)
            kind = event.get("type")
            if kind == "message_start":
                message = event["message"]
                usage.update(message.get("usage") or {})
            elif kind == "content_block_start":
                blocks[event["index"]] = {**event["content_block"], "_pieces": []}
            elif kind == "content_block_delta":
                delta = event["delta"]
                piece = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
                if delta["type"] in ("text_delta", "input_json_delta", "thinking_delta"):
                    blocks[event["index"]]["_pieces"].append(piece or "")
            elif kind == "message_delta":
                message["stop_reason"] = event["delta"].get("stop_reason")
                usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        content = []
        for index in sorted(blocks):
            block = blocks[index]
            joined = "".join(block.pop("_pieces"))
            if block["type"] == "text":
                block["text"] = joined
            elif block["type"] == "thinking":
                block["thinking"] = joined
            elif block["type"] == "tool_use":
                block["input"] = json.loads(joined) if joined else block.get("input", {})
            content.append(block)
        message = {**message, "content": content, "usage": usage}
    else:
        message = interaction.response_json
    usage = message["usage"]
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    texts = [b["text"] for b in message["content"] if b["type"] == "text"]
    thinking = [b["thinking"] for b in message["content"] if b["type"] == "thinking"]
    tool_calls = [(b["id"], b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]
    return {
        "status": "success",
        "model": message["model"],
        "response_id": message["id"],
        "input_tokens": usage["input_tokens"] + cache_read + cache_write,
        "output_tokens": usage["output_tokens"],
        "cache_read_input_tokens": usage.get("cache_read_input_tokens"),
        "cache_write_input_tokens": usage.get("cache_creation_input_tokens"),
        "text": "".join(texts) if texts else None,
        "reasoning": "".join(thinking) if thinking else None,
        "tool_calls": tool_calls,
        "finish_reasons": [message["stop_reason"]],
    }


def as_recorded(record: dict[str, Any]) -> dict[str, Any]:
    """The same view of a received record."""
    meta = record["metadata"]
    if record["status"] == "error":
        return {"status": "error", "http_status": meta.get("http_status"), "error_code": meta.get("error_code")}
    message = record["output"]["message"]
    return {
        "status": record["status"],
        "model": meta.get("model"),
        "response_id": meta.get("response_id"),
        "input_tokens": meta.get("input_tokens"),
        "output_tokens": meta.get("output_tokens"),
        "cache_read_input_tokens": meta.get("cache_read_input_tokens"),
        "cache_write_input_tokens": meta.get("cache_write_input_tokens"),
        "text": message.get("content"),
        "reasoning": message.get("reasoning"),
        "tool_calls": [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls", [])
        ],
        "finish_reasons": meta.get("finish_reasons"),
    }


@pytest.mark.parametrize("name", NAMES, ids=[n.split("/", 1)[1] for n in NAMES])
def test_cassette_replay_record_matches_recording(name: str, carrot: IngestServer) -> None:
    interactions = load_cassette(name)
    with CassetteServer(interactions) as server:
        for interaction in interactions:
            try:
                replay_through_sdk(interaction, server.base_url, client_factory=wrapped_client)
            except Exception as exc:
                assert interaction.status >= 400, f"{interaction.index}: {exc!r}"
        assert server.all_used and not server.mismatches and not server.errors
    got = records(carrot, len(interactions))
    for interaction, record in zip(interactions, got, strict=True):
        assert as_recorded(record) == expected_from_recording(interaction), f"interaction {interaction.index}"
        assert record["input"]["model"] == interaction.request_json["model"]
        assert record["input"]["messages"] == without_image_data(interaction.request_json["messages"])


def without_image_data(messages: Any) -> Any:
    """Recorded request messages with inline base64 replaced by the documented placeholder."""
    if isinstance(messages, list):
        return [without_image_data(m) for m in messages]
    if isinstance(messages, dict):
        source = messages.get("source")
        if messages.get("type") == "image" and isinstance(source, dict) and source.get("type") == "base64":
            size = len(base64.b64decode(source["data"]))
            return {**messages, "source": {**source, "data": f"<media: {source['media_type']}, {size} bytes>"}}
        return {k: without_image_data(v) for k, v in messages.items()}
    return messages


def test_all_24_anthropic_cassettes_are_replayed() -> None:
    assert len(NAMES) == 24
