"""Pure extractors: ``litellm.completion`` / ``embedding`` arguments and responses into span attributes.

Nothing here touches a span or does I/O, and nothing imports litellm: responses are read by attribute name
(``ModelResponse``, ``ModelResponseStream``, ``EmbeddingResponse``; plain dicts work too).

Secrets: LiteLLM takes credentials as keyword arguments (``api_key``, ``azure_ad_token``, ``aws_secret_access_key``,
``vertex_credentials``, ``extra_headers`` ...). :func:`request_params` keeps none of them: any argument whose name
looks like a credential, a header set or a client object is left out of everything we record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv

# LiteLLM's provider names -> the GenAI conventions' provider names (others are recorded as LiteLLM names them).
_PROVIDERS = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "sagemaker": "aws.sagemaker",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
    "text-completion-openai": "openai",
    "cohere_chat": "cohere",
}
_SECRET_NAME = re.compile(r"key|secret|token|passw|credential|header|auth|cookie|signature", re.IGNORECASE)
_NOT_SECRET = frozenset({"max_tokens", "max_completion_tokens", "max_output_tokens", "top_logprobs"})
# Transport, routing and LiteLLM bookkeeping arguments: not request parameters.
_NOT_INPUT = frozenset(
    {
        "api_base",
        "base_url",
        "api_version",
        "client",
        "timeout",
        "stream_timeout",
        "num_retries",
        "max_retries",
        "metadata",
        "litellm_metadata",
        "litellm_call_id",
        "litellm_logging_obj",
        "logger_fn",
        "acompletion",
        "aembedding",
        "custom_llm_provider",
        "proxy_server_request",
        "model_info",
        "mock_response",
        "extra_body",
        # What a Router adds to each call (its own settings, not the request's).
        "caching",
        "allow_client_keepalive_override",
        "use_in_pass_through",
        "use_litellm_proxy",
        "merge_reasoning_content_in_choices",
        "attempted_targets",
        "fallback_depth",
        "max_fallbacks",
    }
)
# Arguments that hold other deployments' settings, their credentials included
# (``fallbacks=[{"model": ..., "api_key": ...}]``): recorded without those.
_DEPLOYMENT_SETTINGS = ("fallbacks", "model_list")
# LiteLLM's private and bookkeeping arguments (``litellm_trace_id``, ``_context_compaction_state`` ...).
_NOT_INPUT_PREFIXES = ("_", "litellm_")
_REQUEST_NUMBERS = (
    ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", semconv.GEN_AI_REQUEST_SEED),
)


def get(value: Any, key: str) -> Any:
    """``value[key]`` for a dict, ``value.key`` for a model; None when absent."""
    if isinstance(value, dict):
        return value.get(key)
    return getattr(value, key, None)


def is_secret(name: str) -> bool:
    """Whether an argument of this name may carry a credential (it is then never recorded)."""
    return name not in _NOT_SECRET and _SECRET_NAME.search(name) is not None


def call_arguments(args: Sequence[Any], kwargs: Mapping[str, Any], second: str) -> dict[str, Any]:
    """The call's arguments by name: ``completion(model, messages, ...)`` / ``embedding(model, input, ...)``."""
    named = dict(kwargs)
    if args:
        named.setdefault("model", args[0])
    if len(args) > 1:
        named.setdefault(second, args[1])
    return named


def request_params(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters to record: no credentials, headers, clients or LiteLLM bookkeeping."""
    params = {
        k: v
        for k, v in arguments.items()
        if v is not None and k not in _NOT_INPUT and not k.startswith(_NOT_INPUT_PREFIXES) and not is_secret(k)
    }
    extra_body = arguments.get("extra_body")
    if isinstance(extra_body, dict):
        params.update({k: v for k, v in extra_body.items() if not is_secret(str(k))})
    for name in _DEPLOYMENT_SETTINGS:
        if name in params:
            params[name] = _without_secrets(params[name])
    return params


def _without_secrets(value: Any) -> Any:
    """A copy of ``value`` without the dict keys, at any depth, that :func:`request_params` leaves out by name."""
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not is_secret(str(k))}
    if isinstance(value, list | tuple):
        return [_without_secrets(v) for v in value]
    return value


def provider_name(litellm_provider: str | None) -> str | None:
    """The GenAI conventions' name of a LiteLLM provider (``openai``, ``anthropic``, ``aws.bedrock`` ...)."""
    if not isinstance(litellm_provider, str) or not litellm_provider:
        return None  # (LiteLLM rejects any other value the application passed)
    return _PROVIDERS.get(litellm_provider, litellm_provider)


def request_attributes(
    operation: str, model: str | None, provider: str | None, params: Mapping[str, Any], api_base: str | None
) -> dict[str, AttributeValue]:
    """The GenAI request attributes of one call (no content)."""
    attributes: dict[str, AttributeValue] = {semconv.GEN_AI_OPERATION_NAME: operation}
    if provider:
        attributes[semconv.GEN_AI_PROVIDER_NAME] = provider
    if model:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    for key, name in _REQUEST_NUMBERS:
        value = params.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[name] = value
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = n
    stop = params.get("stop")
    if isinstance(stop, str):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = (stop,)
    elif isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(stop)
    if params.get("stream") is True:
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    server_attributes(api_base, attributes)
    return attributes


def route_attributes(model: str | None, provider: str | None, api_base: str | None) -> dict[str, AttributeValue]:
    """Where a call goes: the model, the provider and the server (a Router's attempt)."""
    attributes: dict[str, AttributeValue] = {}
    if provider:
        attributes[semconv.GEN_AI_PROVIDER_NAME] = provider
    if model:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    server_attributes(api_base, attributes)
    return attributes


def server_attributes(api_base: str | None, attributes: dict[str, AttributeValue]) -> None:
    """``server.address`` / ``server.port`` of the API base a call goes to."""
    if not isinstance(api_base, str) or not api_base:
        return  # (LiteLLM rejects any other value the application passed)
    try:
        url = urlsplit(api_base)
        if url.hostname:
            attributes[semconv.SERVER_ADDRESS] = url.hostname
            attributes[semconv.SERVER_PORT] = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        pass


def usage_attributes(usage: Any, attributes: dict[str, AttributeValue]) -> None:
    """Token counts of an OpenAI-style ``usage`` (LiteLLM normalises every provider to it)."""
    if usage is None:
        return
    prompt = get(usage, "prompt_tokens")
    completion = get(usage, "completion_tokens")
    if isinstance(prompt, int):
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = prompt
    if isinstance(completion, int):
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = completion
    cached = get(get(usage, "prompt_tokens_details"), "cached_tokens")
    if not isinstance(cached, int):
        cached = get(usage, "cache_read_input_tokens")
    if isinstance(cached, int) and cached > 0:
        attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
    written = get(usage, "cache_creation_input_tokens")
    if isinstance(written, int) and written > 0:
        attributes[semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = written
    reasoning = get(get(usage, "completion_tokens_details"), "reasoning_tokens")
    if isinstance(reasoning, int) and reasoning > 0:
        attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
    # The audio part of input / output (OpenAI's details, which LiteLLM keeps), billed at the model's audio rates.
    input_audio = get(get(usage, "prompt_tokens_details"), "audio_tokens")
    if type(input_audio) is int and input_audio > 0:
        attributes[semconv.OPENAI_USAGE_INPUT_AUDIO_TOKENS] = input_audio
    output_audio = get(get(usage, "completion_tokens_details"), "audio_tokens")
    if type(output_audio) is int and output_audio > 0:
        attributes[semconv.OPENAI_USAGE_OUTPUT_AUDIO_TOKENS] = output_audio


def response_attributes(response: Any) -> dict[str, AttributeValue]:
    """Response model, id and usage of a ``ModelResponse`` / ``EmbeddingResponse``."""
    attributes: dict[str, AttributeValue] = {}
    model = get(response, "model")
    if isinstance(model, str) and model:
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    response_id = get(response, "id")
    if isinstance(response_id, str) and response_id:
        attributes[semconv.GEN_AI_RESPONSE_ID] = response_id
    usage_attributes(get(response, "usage"), attributes)
    return attributes


def message_dict(message: Any) -> dict[str, Any]:
    """An assistant message as the record's ``{"role", "content", "tool_calls"?, "reasoning"?}`` (``reasoning``: the
    model's thinking, which LiteLLM normalises to ``reasoning_content`` whatever the provider)."""
    out: dict[str, Any] = {"role": get(message, "role") or "assistant", "content": get(message, "content")}
    tool_calls = get(message, "tool_calls")
    if tool_calls:
        out["tool_calls"] = [_tool_call(call) for call in tool_calls]
    reasoning = get(message, "reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        out["reasoning"] = reasoning
    return out


def _tool_call(call: Any) -> dict[str, Any]:
    function = get(call, "function")
    return {
        "id": get(call, "id"),
        "type": get(call, "type") or "function",
        "function": {"name": get(function, "name"), "arguments": get(function, "arguments")},
    }


def completion_result(response: Any, capture: bool) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
    """Attributes and the record's ``output`` of a ``ModelResponse``."""
    attributes = response_attributes(response)
    choices = list(get(response, "choices") or ())
    reasons = [str(get(c, "finish_reason")) for c in choices if get(c, "finish_reason")]
    if reasons:
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reasons)
    if not capture:
        return attributes, None
    messages = [message_dict(get(c, "message")) for c in choices]
    output: dict[str, Any] = {"message": messages[0]} if messages else {}
    if len(messages) > 1:
        output["choices"] = [{"index": i, "message": m} for i, m in enumerate(messages)]
    return attributes, output


def embedding_result(response: Any, capture: bool) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
    """Attributes and the record's ``output`` of an ``EmbeddingResponse``: counts, never the vectors."""
    attributes = response_attributes(response)
    data = list(get(response, "data") or ())
    # ``embeddings_count``: the reference SDK's key, kept for its readers.
    output: dict[str, Any] = {"embeddings": len(data), "embeddings_count": len(data)}
    if data:
        vector = get(data[0], "embedding")
        if isinstance(vector, list):
            output["dimensions"] = len(vector)
    return attributes, output if capture else None


# Under LiteLLM's own exception, the provider SDK's and the HTTP client's: whether the request got an HTTP answer.
# (LiteLLM gives a request that got none a status of its own choosing: 500 for a connection reset, 408 for a
# timeout; and it maps a real 408 answer to its Timeout too, so its own classes say nothing either way.)
_ANSWERED = frozenset({"APIStatusError", "HTTPStatusError"})
_UNANSWERED = frozenset({"APIConnectionError", "APITimeoutError", "TransportError", "TimeoutException"})


def error_attributes(exc: BaseException) -> dict[str, AttributeValue]:
    """HTTP status of a LiteLLM exception: the one the provider answered.

    LiteLLM's exception carries a status of its own mapping (Anthropic's 529 ``overloaded`` becomes its
    ``InternalServerError`` with 500, a 413 its ``BadRequestError`` with 400); the SDK or HTTP client error it was
    raised from carries the answer's own, and wins."""
    attributes: dict[str, AttributeValue] = {}
    answered, status = _answer(exc)
    if answered is None or not isinstance(status, int):
        status = getattr(exc, "status_code", None)
    if answered is not False and isinstance(status, int) and not isinstance(status, bool):
        attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = status
    return attributes


def _answer(exc: BaseException) -> tuple[bool | None, Any]:
    """Whether what ``exc`` (LiteLLM's) was raised from says the request got an HTTP answer (None: nothing says
    either way), and that answer's status: the first SDK or HTTP client error below it that tells either way decides
    (an error the application was handling when it made the call may be further down the chain, and says nothing
    about this call)."""
    seen = exc.__cause__ or exc.__context__
    for _ in range(8):
        if seen is None:
            return None, None
        names = {kind.__name__ for kind in type(seen).__mro__}
        if names & _ANSWERED:
            status = getattr(seen, "status_code", None)  # the SDKs' APIStatusError
            if status is None:
                status = getattr(getattr(seen, "response", None), "status_code", None)  # httpx's HTTPStatusError
            return True, status
        if names & _UNANSWERED or isinstance(seen, OSError):
            return False, None
        seen = seen.__cause__ or seen.__context__
    return None, None
