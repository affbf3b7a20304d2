"""Pure LiteLLM extractors (no litellm needed: these run in the main environment too)."""

from __future__ import annotations

from typing import Any

import pytest

from carrot_ai import semconv
from carrot_ai.instrumentation.litellm import _extract
from carrot_ai.instrumentation.litellm._accumulate import ChunkAccumulator


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "azure_ad_token",
        "azure_ad_token_provider",
        "aws_secret_access_key",
        "aws_access_key_id",
        "aws_session_token",
        "vertex_credentials",
        "extra_headers",
        "headers",
        "azure_password",
        "Authorization",
    ],
)
def test_credential_arguments_are_secret(name: str) -> None:
    assert _extract.is_secret(name)
    assert _extract.request_params({"model": "m", name: "CANARY"}) == {"model": "m"}


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens", "temperature", "messages", "tools", "top_p"])
def test_request_parameters_are_kept(name: str) -> None:
    assert not _extract.is_secret(name)


def test_request_params_drop_bookkeeping_and_secret_extra_body_keys() -> None:
    params = _extract.request_params(
        {
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "api_base": "https://proxy.example/v1",
            "metadata": {"team": "a"},
            "client": object(),
            "extra_body": {"service_tier": "flex", "private_key": "CANARY"},
            "user": None,
        }
    )
    assert params == {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "service_tier": "flex"}


def test_deployment_settings_arguments_keep_no_credentials() -> None:
    deployment = {"model": "openai/gpt-4o", "api_key": "CANARY", "extra_headers": {"Authorization": "CANARY"}}
    params = _extract.request_params(
        {"model": "m", "fallbacks": ["gpt-4o", deployment], "model_list": [{"litellm_params": deployment}]}
    )
    assert params == {
        "model": "m",
        "fallbacks": ["gpt-4o", {"model": "openai/gpt-4o"}],
        "model_list": [{"litellm_params": {"model": "openai/gpt-4o"}}],
    }
    assert deployment["api_key"] == "CANARY"


def test_positional_arguments_are_named() -> None:
    assert _extract.call_arguments(("m", ["x"]), {"stream": True}, "messages") == {
        "model": "m",
        "messages": ["x"],
        "stream": True,
    }


@pytest.mark.parametrize(
    ("litellm_name", "provider"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("azure", "azure.ai.openai"),
        ("bedrock", "aws.bedrock"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("groq", "groq"),
        (None, None),
    ],
)
def test_provider_names_follow_the_conventions(litellm_name: str | None, provider: str | None) -> None:
    assert _extract.provider_name(litellm_name) == provider


def test_request_attributes() -> None:
    attributes = _extract.request_attributes(
        "chat",
        "gpt-4o",
        "openai",
        {"temperature": 0.5, "max_tokens": 10, "stop": "END", "stream": True},
        "https://api.example.com/v1",
    )
    assert attributes == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.5,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 10,
        semconv.GEN_AI_REQUEST_STOP_SEQUENCES: ("END",),
        semconv.GEN_AI_REQUEST_STREAM: True,
        semconv.SERVER_ADDRESS: "api.example.com",
        semconv.SERVER_PORT: 443,
    }


RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 20,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 3},
        "cache_creation_input_tokens": 4,
    },
}


def test_completion_result() -> None:
    attributes, output = _extract.completion_result(RESPONSE, capture=True)
    assert attributes == {
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        semconv.GEN_AI_RESPONSE_ID: "chatcmpl-1",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 20,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 7,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 8,
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 4,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 3,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls",),
    }
    assert output == {"message": RESPONSE["choices"][0]["message"]}
    assert _extract.completion_result(RESPONSE, capture=False)[1] is None


class _Chunk:
    def __init__(self, data: dict[str, Any], hidden: dict[str, Any] | None = None) -> None:
        self.__dict__.update(data)
        self._hidden_params = hidden or {}


def test_stream_accumulator_folds_text_tool_calls_and_late_usage() -> None:
    hidden: dict[str, Any] = {"usage": {"prompt_tokens": 0, "completion_tokens": 0}}
    chunks = [
        _Chunk({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "He"}}]}),
        _Chunk({"choices": [{"index": 0, "delta": {"content": "llo"}}]}),
        _Chunk(
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f"}}]}}]}
        ),
        _Chunk({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}}]}),
        _Chunk({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]}),
        _Chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, hidden),
    ]
    accumulator = ChunkAccumulator(capture=True)
    assert all(accumulator.process(c) for c in chunks)
    attributes, output = accumulator.result()
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in attributes  # all zeros: the provider sent no usage
    hidden["usage"] = {"prompt_tokens": 9, "completion_tokens": 4}  # LiteLLM's usage, rebuilt at the end
    attributes, output = accumulator.result()
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 9
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert output == {
        "message": {
            "role": "assistant",
            "content": "Hello",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
        }
    }
