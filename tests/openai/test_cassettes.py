"""Every recorded OpenAI exchange, replayed through a wrapped client: the record matches the recording.

The expected values are read from the recorded response itself (JSON body or SSE events), independently of the
code under test: model, response id, usage (input INCLUDING cached tokens, output, cache read, reasoning), text,
tool calls, finish reasons; and for errors the HTTP status and the API's error code (or type).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import carrot_ai
from tests.fakes.cassettes import (
    CassetteServer,
    Interaction,
    cassette_names,
    default_client,
    load_cassette,
    replay_through_sdk,
)
from tests.ingest_server import IngestServer
from tests.openai.conftest import records

NAMES = cassette_names("openai")


def wrapped_client(provider: str, base_url: str, is_async: bool) -> Any:
    return carrot_ai.wrap(default_client(provider, base_url, is_async))


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    if not usage:
        return {}
    input_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    return {
        "input_tokens": usage.get("prompt_tokens", usage.get("input_tokens")),
        "output_tokens": usage.get("completion_tokens", usage.get("output_tokens")),
        "cache_read_input_tokens": input_details.get("cached_tokens"),
        "reasoning_tokens": output_details.get("reasoning_tokens"),
    }


def _chat_from_sse(interaction: Interaction) -> dict[str, Any]:
    """A chat completion assembled from recorded chunks (only what the record needs)."""
    completion: dict[str, Any] = {"choices": {}}
    for _name, data in interaction.sse_events:
        if data.strip() == "[DONE]":
            continue
        chunk = json.loads(data)
        completion.setdefault("id", chunk.get("id"))
        completion.setdefault("model", chunk.get("model"))
        if chunk.get("usage"):
            completion["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or []:
            state = completion["choices"].setdefault(
                choice["index"], {"content": [], "calls": {}, "finish_reason": None}
            )
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]
            delta = choice.get("delta") or {}
            if delta.get("content"):
                state["content"].append(delta["content"])
            for call in delta.get("tool_calls") or []:
                entry = state["calls"].setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                entry["id"] = call.get("id") or entry["id"]
                function = call.get("function") or {}
                entry["name"] = function.get("name") or entry["name"]
                entry["arguments"] += function.get("arguments") or ""
    choices = []
    for index in sorted(completion["choices"]):
        state = completion["choices"][index]
        calls = [
            {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(state["calls"].items())
        ]
        message = {"content": "".join(state["content"]) if state["content"] or not calls else None, "tool_calls": calls}
        choices.append({"message": message, "finish_reason": state["finish_reason"]})
    return {**completion, "choices": choices}


def _response_from_sse(interaction: Interaction) -> dict[str, Any]:
    for _name, data in reversed(interaction.sse_events):
        event = json.loads(data)
        if event.get("type") in ("response.completed", "response.incomplete", "response.failed"):
            response: dict[str, Any] = event["response"]
            return response
    raise AssertionError("no terminal event recorded")


def expected_from_recording(interaction: Interaction) -> dict[str, Any]:
    """What the record must say, computed from the recorded response alone."""
    if interaction.status >= 400:
        error = (interaction.response_json or {}).get("error") or {}
        return {
            "status": "error",
            "http_status": interaction.status,
            "error_code": error.get("code") or error.get("type"),
        }
    route = interaction.route
    if route.endswith("/embeddings"):
        body = interaction.response_json
        usage = {**_usage(body["usage"]), "output_tokens": 0}  # none in an embedding's usage: recorded as 0
        return {"status": "success", "model": body["model"], **usage, "embeddings": len(body["data"])}
    if route.endswith("/responses"):
        response = _response_from_sse(interaction) if interaction.is_sse else interaction.response_json
        texts, calls = [], []
        for item in response["output"]:
            if item["type"] == "message":
                texts += [p["text"] for p in item["content"] if p["type"] == "output_text"]
            elif item["type"] == "function_call":
                calls.append((item["call_id"], item["name"], item["arguments"]))
        return {
            "status": "success",
            "model": response["model"],
            "response_id": response["id"],
            **_usage(response.get("usage")),
            "text": "".join(texts) if texts else None,
            "tool_calls": calls,
        }
    completion = _chat_from_sse(interaction) if interaction.is_sse else interaction.response_json
    first = completion["choices"][0]["message"]
    return {
        "status": "success",
        "model": completion["model"],
        "response_id": completion["id"],
        **_usage(completion.get("usage")),
        "text": first.get("content"),
        "tool_calls": [
            (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in first.get("tool_calls") or []
        ],
        "finish_reasons": [c["finish_reason"] for c in completion["choices"]],
        "choices": len(completion["choices"]),
    }


def as_recorded(record: dict[str, Any], interaction: Interaction) -> dict[str, Any]:
    """The same view of a received record."""
    meta = record["metadata"]
    if record["status"] == "error":
        return {"status": "error", "http_status": meta.get("http_status"), "error_code": meta.get("error_code")}
    usage = {
        key: meta.get(key)
        for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "reasoning_tokens")
        if key in meta
    }
    if interaction.route.endswith("/embeddings"):
        return {
            "status": record["status"],
            "model": meta.get("model"),
            **usage,
            "embeddings": record["output"]["embeddings"],
        }
    message = record["output"]["message"]
    view = {
        "status": record["status"],
        "model": meta.get("model"),
        "response_id": meta.get("response_id"),
        **usage,
        "text": message.get("content"),
        "tool_calls": [
            (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls", [])
        ],
    }
    if not interaction.route.endswith("/responses"):
        view["finish_reasons"] = meta.get("finish_reasons")
        view["choices"] = len(record["output"].get("choices", [message]))
    return view


def _expected_usage_keys(expected: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in expected.items() if v is not None or k in ("text", "response_id")}


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
        expected = _expected_usage_keys(expected_from_recording(interaction))
        assert as_recorded(record, interaction) == expected, f"interaction {interaction.index}"
        assert record["input"]["model"] == interaction.request_json["model"]
        for key in ("messages", "input"):
            if key in interaction.request_json and "data:" not in json.dumps(interaction.request_json[key]):
                assert record["input"][key] == interaction.request_json[key], f"interaction {interaction.index}"


def test_all_43_openai_cassettes_are_replayed() -> None:
    assert len(NAMES) == 43
