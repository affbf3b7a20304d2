"""Every recorded cassette loads, and replays through the real SDK against a CassetteServer."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.cassettes import (
    CASSETTE_DIR,
    CassetteServer,
    Interaction,
    cassette_names,
    load_cassette,
    replay_through_sdk,
)

ALL = cassette_names()


def test_all_cassettes_are_listed() -> None:
    assert len(cassette_names("openai")) == 43
    assert len(cassette_names("anthropic")) == 24
    assert len(ALL) == 67
    assert (CASSETTE_DIR / "README.md").is_file()


def test_gzip_bodies_are_decoded_and_framing_headers_dropped() -> None:
    (interaction,) = load_cassette("anthropic/openllmetry_anthropic_message_create")
    assert interaction.response_body.startswith(b"{")
    assert interaction.response_json["type"] == "message"
    assert "content-encoding" not in interaction.response_headers
    assert "content-length" not in interaction.response_headers
    assert "transfer-encoding" not in interaction.response_headers
    assert interaction.request_headers["user-agent"] == "Anthropic/Python 0.21.3"


def test_header_names_are_lowercased_and_bare_values_kept() -> None:
    (interaction,) = load_cassette("openai/contrib_chat_completion_404.yaml")
    assert interaction.response_headers["set-cookie"] == "REDACTED"
    assert interaction.response_headers["content-type"].startswith("application/json")
    assert all(name == name.lower() for name in interaction.response_headers)
    assert interaction.status == 404
    assert interaction.response_json["error"]["code"] == "model_not_found"


def test_call_style_is_read_from_the_sdk_headers() -> None:
    (raw_stream,) = load_cassette("contrib_chat_completion_with_raw_response_streaming")
    assert raw_stream.sdk_async and raw_stream.raw_response and raw_stream.stream and raw_stream.is_sse
    parse = load_cassette("openai/openllmetry_parsed_refused_completion")
    assert [i.helper_method for i in parse] == ["chat.completions.parse"] * 3
    (helper,) = load_cassette("anthropic/openllmetry_async_anthropic_beta_message_stream_manager")
    assert helper.helper_method == "stream" and helper.sdk_async and helper.beta
    assert helper.betas == ["tools-2024-04-04"]
    assert helper.path == "/v1/messages?beta=true" and helper.route == "/v1/messages"


def test_folded_single_quoted_sse_bodies_keep_their_event_structure() -> None:
    (interaction,) = load_cassette("anthropic/openllmetry_anthropic_message_streaming")
    events = interaction.sse_events
    assert events[0][0] == "message_start"
    assert events[-1][0] == "message_stop"
    for name, data in events:
        assert json.loads(data)["type"] == name


def _stream_item_count(interaction: Interaction) -> int:
    """How many items the SDK should yield for a recorded SSE body."""
    events = interaction.sse_events
    if interaction.provider == "anthropic":
        return sum(1 for name, _ in events if name not in (None, "ping"))
    return sum(1 for _, data in events if data and not data.startswith("[DONE]"))


def _check_value(interaction: Interaction, result: Any) -> None:
    recorded = interaction.response_json
    if interaction.route == "/v1/embeddings":
        assert len(result.final.data) == len(recorded["data"])
        assert result.final.usage.total_tokens == recorded["usage"]["total_tokens"]
        return
    assert result.final.id == recorded["id"]
    assert result.final.model == recorded["model"]


@pytest.mark.parametrize("name", ALL)
def test_cassette_replays_through_the_sdk(name: str) -> None:
    interactions = load_cassette(name)
    assert interactions
    with CassetteServer(interactions) as server:
        for interaction in interactions:
            if interaction.status < 400:
                result = replay_through_sdk(interaction, server.base_url)
                if interaction.stream and interaction.helper_method == "stream":
                    # messages.stream() yields derived events (text, input_json) besides the raw ones.
                    start = json.loads(interaction.sse_events[0][1])
                    assert result.final.id == start["message"]["id"]
                elif interaction.stream:
                    assert len(result.items) == _stream_item_count(interaction)
                else:
                    _check_value(interaction, result)
                if interaction.raw_response:
                    assert result.raw is not None and result.raw.status_code == interaction.status
            else:
                error_type = anthropic.APIStatusError if interaction.provider == "anthropic" else openai.APIStatusError
                with pytest.raises(error_type) as info:
                    replay_through_sdk(interaction, server.base_url)
                assert info.value.status_code == interaction.status
                assert type(info.value) is not error_type  # the status-specific subclass
        assert server.all_used
        assert server.mismatches == []
        assert server.errors == []
        # The SDK sent what was recorded (the current openai SDK adds encoding_format to embeddings).
        for request, interaction in server.served:
            sent = dict(request.json)
            if interaction.route == "/v1/embeddings" and "encoding_format" not in interaction.request_json:
                assert sent.pop("encoding_format") == "base64"
            assert sent == interaction.request_json
