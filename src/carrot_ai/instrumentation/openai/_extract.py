"""Pure extractors: OpenAI request kwargs, responses and errors into span attributes and record fields.

Nothing here touches a span or does I/O. Every function accepts the SDK's pydantic models and plain dicts alike
(users pass dicts, earlier responses' items come back as models, and a raw response body is decoded JSON).

Token convention (the same for every provider): ``gen_ai.usage.input_tokens`` INCLUDES cached tokens (OpenAI's
``prompt_tokens`` / ``input_tokens`` already do), the cache read count is a subset of it; reasoning tokens are a
subset of ``gen_ai.usage.output_tokens`` (OpenAI's ``completion_tokens`` / ``output_tokens`` already include them).

The record's ``output.message`` is the same shape for every endpoint: ``{"role": "assistant", "content": <text>,
"tool_calls"?: [{"id", "type": "function", "function": {"name", "arguments": <JSON string>}}], "refusal"?,
"reasoning"?}``; a chat completion with ``n > 1`` choices also keeps every choice under ``output.choices``. A Responses
answer's other calls for the caller to carry out (computer use, shell, patches) are tool calls too, as
``{"id", "type": <item type>, <item type>: <its call fields>}``; the built-in tools the API ran itself are under
``server_tool_calls`` (:func:`server_tool_call`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core import _content
from carrot_ai._core._serialize import RequestBody
from carrot_ai._core._server_tools import OPENAI_SERVER_INPUT, OPENAI_SERVER_ITEMS, SERVER_RESULT
from carrot_ai.instrumentation._common import fields as _fields
from carrot_ai.instrumentation._common import given as _given
from carrot_ai.instrumentation._common import materialize_iterables as _materialize

PROVIDER = "openai"
# How the SDK writes a model among the parameters (an earlier response's message or output items passed back) into the
# request: ``openai._utils._transform`` dumps it with the fields that were set, without ``__api_exclude__``, by field
# name (pydantic's default: the transform does not ask for aliases).
REQUEST_BODY = RequestBody(by_alias=None)

# Keys of create()/parse()/stream() that are transport options, never request content.
_NOT_INPUT = frozenset({"extra_headers", "extra_query", "extra_body", "timeout", "stream"})
# Top-level kwargs that may be one-shot iterables and that we read before the SDK does.
ITERABLE_KWARGS = ("messages", "tools", "functions", "input")
_CHAT_NUMBERS = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", semconv.GEN_AI_REQUEST_SEED),
)
_RESPONSES_NUMBERS = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("max_output_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
)


def get(value: Any, key: str) -> Any:
    """``value[key]`` for a dict, ``value.key`` for a model; None when absent."""
    if isinstance(value, dict):
        return value.get(key)
    return getattr(value, key, None)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def materialize_iterables(kwargs: dict[str, Any]) -> dict[str, Any]:
    """One-shot iterables among the kwargs we read, as lists (see ``_common.materialize_iterables``)."""
    return _materialize(kwargs, ITERABLE_KWARGS)


def request_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters as sent: the kwargs without transport options, with ``extra_body`` merged in."""
    params = {}
    for key, value in kwargs.items():  # (a loop, not a comprehension: ~0.2 µs less on Python 3.11)
        if key not in _NOT_INPUT and _given(value):
            params[key] = value
    extra_body = kwargs.get("extra_body")
    if extra_body is not None and isinstance(extra_body, dict):
        params.update(extra_body)
    response_format = params.get("response_format")
    # parse(response_format=Model): record the model's name
    if response_format is not None and isinstance(response_format, type):
        params["response_format"] = {"type": "json_schema", "json_schema": {"name": response_format.__name__}}
    text_format = params.get("text_format")
    if isinstance(text_format, type):
        params["text_format"] = text_format.__name__
    return params


def _common(operation: str, model: Any, server: tuple[str, int] | None, stream: bool) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: operation,
        semconv.GEN_AI_PROVIDER_NAME: PROVIDER,
    }
    if isinstance(model, str):
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    if stream:
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    if server is not None:
        attributes[semconv.SERVER_ADDRESS] = server[0]
        attributes[semconv.SERVER_PORT] = server[1]
    return attributes


def _stop(attributes: dict[str, AttributeValue], stop: Any) -> None:
    if isinstance(stop, str):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = (stop,)
    elif isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(stop)


# --- chat completions ----------------------------------------------------------------------------------------


def chat_request(
    params: Mapping[str, Any], capture: bool, server: tuple[str, int] | None, stream: bool
) -> dict[str, AttributeValue]:
    """GenAI request attributes of a chat completion; content attributes only when ``capture`` is on."""
    attributes = _common(semconv.OP_CHAT, params.get("model"), server, stream)
    # Absent parameters (most of them, on most calls) cost one dict lookup each: this runs on every call.
    for key, name in _CHAT_NUMBERS:
        value = params.get(key)
        if value is not None and _number(value):
            attributes[name] = value
    max_tokens = params.get("max_completion_tokens")
    if max_tokens is None:  # (unset, or an explicit None, a null that sets no limit: max_tokens is the limit)
        max_tokens = params.get("max_tokens")
    if max_tokens is not None and _number(max_tokens):
        attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = n
    stop = params.get("stop")
    if stop is not None:
        _stop(attributes, stop)
    response_format = params.get("response_format")
    if response_format is not None:
        output_type = _output_type(get(response_format, "type"))
        if output_type is not None:
            attributes[semconv.GEN_AI_OUTPUT_TYPE] = output_type
    if capture:
        messages = params.get("messages")
        if isinstance(messages, list | tuple):
            attributes[semconv.GEN_AI_INPUT_MESSAGES] = _content.prepare_json([chat_message(m) for m in messages])
        tools = params.get("tools") or params.get("functions")
        if isinstance(tools, list | tuple) and tools:
            attributes[semconv.GEN_AI_TOOL_DEFINITIONS] = _content.prepare_json([tool_definition(t) for t in tools])
    return attributes


def _output_type(kind: Any) -> str | None:
    if kind in ("json_schema", "json_object"):
        return "json"
    if kind == "text":
        return "text"
    return None


def chat_message(message: Any) -> dict[str, Any]:
    """One chat message (request history) as a GenAI message with ``parts``."""
    role = get(message, "role")
    role = role if isinstance(role, str) else "user"
    if role in ("tool", "function"):
        return {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": get(message, "tool_call_id") if role == "tool" else get(message, "name"),
                    "response": _tool_response(get(message, "content")),
                }
            ],
        }
    parts = content_parts(get(message, "content"))
    for call in get(message, "tool_calls") or ():
        custom = get(call, "custom") if get(call, "type") == "custom" else None
        if custom is not None:  # a custom tool's call: its name and free-text input
            parts.append(
                {
                    "type": "tool_call",
                    "id": get(call, "id"),
                    "name": get(custom, "name"),
                    "arguments": get(custom, "input"),
                }
            )
            continue
        function = get(call, "function")
        parts.append(
            {
                "type": "tool_call",
                "id": get(call, "id"),
                "name": get(function, "name"),
                "arguments": _arguments(function),
            }
        )
    function_call = get(message, "function_call")
    if function_call is not None:
        parts.append(
            {
                "type": "tool_call",
                "id": None,
                "name": get(function_call, "name"),
                "arguments": _arguments(function_call),
            }
        )
    return {"role": role, "parts": parts}


def _tool_response(content: Any) -> Any:
    if isinstance(content, list | tuple):
        texts = [get(p, "text") for p in content]
        if all(isinstance(t, str) for t in texts):
            return "".join(texts)
    return content


def _arguments_json(arguments: Any) -> str:
    if arguments is None:
        return ""
    from carrot_ai._core._serialize import dumps, to_jsonable

    return dumps(to_jsonable(arguments))


def _arguments(function: Any) -> Any:
    arguments = get(function, "arguments")
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def content_parts(content: Any) -> list[dict[str, Any]]:
    """GenAI parts of chat or Responses message ``content`` (a string or a list of content parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list | tuple):
        return [content_part(p) for p in content]
    return [{"type": "unknown"}]


def content_part(part: Any) -> dict[str, Any]:
    """One content part (chat ``text`` / ``image_url`` / ``input_audio`` / ``file``; Responses ``input_*``)."""
    kind = get(part, "type")
    if kind in ("text", "input_text", "output_text"):
        return {"type": "text", "content": get(part, "text")}
    if kind == "refusal":
        return {"type": "refusal", "content": get(part, "refusal")}
    if kind == "image_url":
        return _uri_or_blob("image", get(get(part, "image_url"), "url"))
    if kind == "input_image":
        if get(part, "file_id"):
            return {"type": "file", "modality": "image", "file_id": get(part, "file_id")}
        return _uri_or_blob("image", get(part, "image_url"))
    if kind == "input_audio":
        audio = get(part, "input_audio")
        # The base64 payload itself: the core's content policy makes it a placeholder with its size (or keeps it,
        # up to max_media_bytes), as it does an image's data URL.
        data = get(audio, "data")
        return {
            "type": "blob",
            "modality": "audio",
            "mime_type": f"audio/{get(audio, 'format')}",
            "content": data if isinstance(data, str) else "",
        }
    if kind in ("file", "input_file"):
        file = get(part, "file") if kind == "file" else part
        if get(file, "file_id"):
            return {"type": "file", "modality": "document", "file_id": get(file, "file_id")}
        if get(file, "file_url"):
            return {"type": "uri", "modality": "document", "uri": get(file, "file_url")}
        data = get(file, "file_data")
        if isinstance(data, str) and data.startswith("data:"):
            return _uri_or_blob("document", data)  # (with the data URL's media type)
        return {"type": "blob", "modality": "document", "content": data}
    return {"type": str(kind) if kind else "unknown"}


def _uri_or_blob(modality: str, url: Any) -> dict[str, Any]:
    # A data: URL is inline media: the core's content policy replaces its payload with a placeholder.
    if isinstance(url, str) and url.startswith("data:"):
        mime = url[5:].split(";", 1)[0].split(",", 1)[0] or None
        return {"type": "blob", "modality": modality, "mime_type": mime, "content": url}
    return {"type": "uri", "modality": modality, "uri": url}


def tool_definition(tool: Any) -> dict[str, Any]:
    """A chat tool (``{"type": "function", "function": {...}}``), a legacy function or a Responses tool."""
    kind = get(tool, "type")
    function = get(tool, "function") if kind == "function" and get(tool, "function") is not None else tool
    if kind == "custom" and get(tool, "custom") is not None:
        function = get(tool, "custom")  # a chat custom tool; a Responses one has its fields at the top
    if kind in (None, "function", "custom"):
        definition: dict[str, Any] = {"type": kind or "function", "name": get(function, "name")}
        description = get(function, "description")
        if description is not None:
            definition["description"] = description
        parameters = get(function, "parameters")
        if parameters is not None:
            definition["parameters"] = parameters
        return definition
    # A built-in tool (``{"type": "web_search"}``, ``{"type": "mcp", "server_label": ...}``) has no name of its own:
    # its type names it, as in its server_tool_call parts.
    definition = {"type": str(kind), "name": get(tool, "name") or str(kind)}
    label = get(tool, "server_label")
    if isinstance(label, str):
        definition["server_label"] = label
    return definition


def usage_attributes(usage: Any, attributes: dict[str, AttributeValue]) -> None:
    """Token counts of a chat / completions / Responses / embeddings ``usage`` (input INCLUDES cached tokens)."""
    if usage is None:
        return
    if isinstance(usage, dict):
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        input_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
        output_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    else:
        prompt = getattr(usage, "prompt_tokens", None)
        if prompt is None:
            prompt = getattr(usage, "input_tokens", None)
        completion = getattr(usage, "completion_tokens", None)
        if completion is None:
            completion = getattr(usage, "output_tokens", None)
        input_details = getattr(usage, "prompt_tokens_details", None) or getattr(usage, "input_tokens_details", None)
        output_details = getattr(usage, "completion_tokens_details", None) or getattr(
            usage, "output_tokens_details", None
        )
    if isinstance(prompt, int):
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = prompt
    if isinstance(completion, int):
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = completion
    if input_details is not None:
        cached = get(input_details, "cached_tokens")
        if isinstance(cached, int):
            attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
        # The audio part of the input (an audio model bills it at its audio rate); every chat usage says 0.
        audio = get(input_details, "audio_tokens")
        if type(audio) is int and audio > 0:
            attributes[semconv.OPENAI_USAGE_INPUT_AUDIO_TOKENS] = audio
    if output_details is not None:
        reasoning = get(output_details, "reasoning_tokens")
        if isinstance(reasoning, int):
            attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
        audio = get(output_details, "audio_tokens")
        if type(audio) is int and audio > 0:
            attributes[semconv.OPENAI_USAGE_OUTPUT_AUDIO_TOKENS] = audio


def _response_basics(response: Any, attributes: dict[str, AttributeValue]) -> None:
    if isinstance(response, dict):
        response_id, model, usage = response.get("id"), response.get("model"), response.get("usage")
    else:
        response_id = getattr(response, "id", None)
        model = getattr(response, "model", None)
        usage = getattr(response, "usage", None)
    if isinstance(response_id, str):
        attributes[semconv.GEN_AI_RESPONSE_ID] = response_id
    if isinstance(model, str):
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    if usage is not None:
        usage_attributes(usage, attributes)
    request_id = getattr(response, "_request_id", None)
    if isinstance(request_id, str) and request_id:
        attributes[semconv.CARROT_REQUEST_ID] = request_id


def _choices(completion: Any, attributes: dict[str, AttributeValue]) -> tuple[list[Any], list[Any]]:
    """The response basics and finish reasons of a completion (chat or legacy); its choices and their reasons."""
    _response_basics(completion, attributes)
    choices = get(completion, "choices")
    choices = list(choices) if isinstance(choices, list | tuple) else []
    reasons = [c.get("finish_reason") if isinstance(c, dict) else getattr(c, "finish_reason", None) for c in choices]
    if reasons and not [r for r in reasons if not isinstance(r, str)]:
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reasons)
    return choices, reasons


def chat_result(
    completion: Any, capture: bool, content_attributes: bool = True
) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
    """Response attributes and the record's ``output`` of a ``ChatCompletion`` (model or decoded JSON)."""
    attributes: dict[str, AttributeValue] = {}
    choices, reasons = _choices(completion, attributes)
    if not capture:
        return attributes, None
    messages = []
    for choice in choices:
        message = get(choice, "message")
        if isinstance(message, dict) or message is None:
            fields = message or {}
            content, tool_calls = fields.get("content"), fields.get("tool_calls")
            refusal, function_call, audio = fields.get("refusal"), fields.get("function_call"), fields.get("audio")
        else:
            content = getattr(message, "content", None)
            tool_calls = getattr(message, "tool_calls", None)
            refusal = getattr(message, "refusal", None)
            function_call = getattr(message, "function_call", None)
            audio = getattr(message, "audio", None)
        messages.append(
            assistant_message(content, tool_calls, refusal=refusal, function_call=function_call, audio=audio)
        )
    return attributes, output_from_messages(messages, reasons, attributes, content_attributes)


def assistant_message(
    content: Any,
    tool_calls: Any,
    *,
    refusal: Any = None,
    function_call: Any = None,
    reasoning: Any = None,
    audio: Any = None,
) -> dict[str, Any]:
    """The record's OpenAI-shaped assistant message."""
    message: dict[str, Any] = {"role": "assistant", "content": content if isinstance(content, str) else None}
    if message["content"] is None and audio is not None:
        transcript = get(audio, "transcript")
        if isinstance(transcript, str):
            message["content"] = transcript
    calls = []
    for call in tool_calls or ():
        kind = get(call, "type")
        custom = get(call, "custom") if kind == "custom" else None
        if custom is not None:  # a custom tool's call as the API has it: its name and free-text input
            name, arguments = get(custom, "name"), get(custom, "input")
        else:
            function = get(call, "function")
            name, arguments = get(function, "name"), get(function, "arguments")
        call_id = get(call, "id")
        if name is None and not arguments and call_id is None:
            continue  # nothing known about this call (a malformed delta)
        calls.append(
            {
                "id": call_id if isinstance(call_id, str) else None,
                "type": kind if isinstance(kind, str) else "function",
                "function": {
                    "name": name if isinstance(name, str) else "",
                    "arguments": arguments if isinstance(arguments, str) else _arguments_json(arguments),
                },
            }
        )
    if calls:
        message["tool_calls"] = calls
    if function_call is not None:
        name = get(function_call, "name")
        arguments = get(function_call, "arguments")
        message["function_call"] = {
            "name": name if isinstance(name, str) else "",
            "arguments": arguments if isinstance(arguments, str) else _arguments_json(arguments),
        }
    if isinstance(refusal, str) and refusal:
        message["refusal"] = refusal
    if isinstance(reasoning, str) and reasoning:
        message["reasoning"] = reasoning
    return message


def output_from_messages(
    messages: list[dict[str, Any]],
    reasons: list[Any],
    attributes: dict[str, AttributeValue],
    content_attributes: bool = True,
) -> dict[str, Any]:
    """The record's ``output`` from assistant messages (one per choice); sets ``gen_ai.output.messages``."""
    if content_attributes:  # False on carrot's fast path, where nobody reads them (LLMCall.content_attributes)
        out_messages = []
        for index, message in enumerate(messages):
            parts: list[dict[str, Any]] = []
            if message.get("reasoning"):
                parts.append({"type": "reasoning", "content": message["reasoning"]})
            if message.get("content") is not None:
                parts.append({"type": "text", "content": message["content"]})
            if message.get("refusal"):
                parts.append({"type": "refusal", "content": message["refusal"]})
            for call in message.get("tool_calls", ()):
                function = call["function"]
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call["id"],
                        "name": function["name"],
                        # A custom tool's input is free text, never read as JSON.
                        "arguments": function["arguments"] if call["type"] == "custom" else _arguments(function),
                    }
                )
            if "function_call" in message:
                call = message["function_call"]
                parts.append({"type": "tool_call", "id": None, "name": call["name"], "arguments": _arguments(call)})
            out: dict[str, Any] = {"role": "assistant", "parts": parts}
            reason = reasons[index] if index < len(reasons) else None
            if isinstance(reason, str):
                out["finish_reason"] = reason
            out_messages.append(out)
        attributes[semconv.GEN_AI_OUTPUT_MESSAGES] = _content.prepare_json(out_messages)
    output: dict[str, Any] = {"message": messages[0] if messages else {"role": "assistant", "content": None}}
    if len(messages) > 1:
        output["choices"] = messages
    return output


# --- Responses API -------------------------------------------------------------------------------------------


def responses_request(
    params: Mapping[str, Any], capture: bool, server: tuple[str, int] | None, stream: bool
) -> dict[str, AttributeValue]:
    """GenAI request attributes of a Responses API call; content attributes only when ``capture`` is on."""
    attributes = _common(semconv.OP_CHAT, params.get("model"), server, stream)
    for key, name in _RESPONSES_NUMBERS:
        value = params.get(key)
        if _number(value):
            attributes[name] = value
    output_type = _output_type(get(get(params.get("text"), "format"), "type"))
    if output_type is None and params.get("text_format") is not None:
        output_type = "json"
    if output_type is not None:
        attributes[semconv.GEN_AI_OUTPUT_TYPE] = output_type
    conversation = params.get("conversation")
    conversation_id = conversation if isinstance(conversation, str) else get(conversation, "id")
    if isinstance(conversation_id, str):
        attributes[semconv.GEN_AI_CONVERSATION_ID] = conversation_id
    if capture:
        instructions = params.get("instructions")
        if isinstance(instructions, str):
            attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = _content.prepare_json(
                [{"type": "text", "content": instructions}]
            )
        items = params.get("input")
        if isinstance(items, str):
            attributes[semconv.GEN_AI_INPUT_MESSAGES] = _content.prepare_json(
                [{"role": "user", "parts": [{"type": "text", "content": items}]}]
            )
        elif isinstance(items, list | tuple):
            attributes[semconv.GEN_AI_INPUT_MESSAGES] = _content.prepare_json([input_item(i) for i in items])
        tools = params.get("tools")
        if isinstance(tools, list | tuple) and tools:
            attributes[semconv.GEN_AI_TOOL_DEFINITIONS] = _content.prepare_json([tool_definition(t) for t in tools])
    return attributes


def input_item(item: Any) -> dict[str, Any]:
    """One Responses ``input`` item as a GenAI message."""
    kind = get(item, "type")
    if kind in ("function_call", "custom_tool_call"):
        arguments = _arguments(item) if kind == "function_call" else get(item, "input")  # (a custom tool's: text)
        call = {"type": "tool_call", "id": get(item, "call_id"), "name": get(item, "name"), "arguments": arguments}
        return {"role": "assistant", "parts": [call]}
    if kind in ("function_call_output", "custom_tool_call_output") or kind in CALLER_OUTPUT_ITEMS:
        call_id = get(item, "call_id")
        if call_id is None:  # a local shell call's output names its call by ``id``
            call_id = get(item, "id")
        return {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": call_id, "response": get(item, "output")}],
        }
    if is_caller_call(item):
        return {"role": "assistant", "parts": [caller_call(item)[1]]}
    if is_server_call(item):
        return {"role": "assistant", "parts": server_tool_call(item)[1]}
    if kind == "reasoning":
        return {"role": "assistant", "parts": [{"type": "reasoning", "content": _summary_text(item)}]}
    if kind in (None, "message"):
        role = get(item, "role")
        return {"role": role if isinstance(role, str) else "user", "parts": content_parts(get(item, "content"))}
    return {"role": "assistant", "parts": [{"type": str(kind)}]}


def _summary_text(item: Any) -> str:
    """A reasoning item's summary text: its parts are paragraphs (a bold title and its text, each), kept apart."""
    texts = [get(s, "text") for s in get(item, "summary") or ()]
    return "\n\n".join(t for t in texts if isinstance(t, str) and t)


# Output items for a call the caller's code is to carry out besides function and custom calls: recorded among the
# tool calls as ``{"id": call_id, "type": <item type>, <item type>: <its call fields>}``.
CALLER_ITEMS = frozenset({"computer_call", "local_shell_call", "shell_call", "apply_patch_call"})
# The caller's answers to those, in an input history.
CALLER_OUTPUT_ITEMS = frozenset(
    {"computer_call_output", "local_shell_call_output", "shell_call_output", "apply_patch_call_output"}
)
# Output items that are calls the caller's code is to make (the response's finish reason is then ``tool_calls``).
CALL_ITEMS = frozenset({"function_call", "custom_tool_call"}) | CALLER_ITEMS
# Built-in tools the API runs itself (any other ``*_call`` item not named above is taken for one too: the API adds
# tools faster than SDKs are released, and a call recorded as the server's beats a call dropped).
SERVER_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "tool_search_call",
    }
)
# A server call's input field by its item type (see :data:`OPENAI_SERVER_INPUT`).
_SERVER_INPUT = {OPENAI_SERVER_ITEMS[tool]: field for tool, field in OPENAI_SERVER_INPUT.items()}
_ITEM_KEYS = ("id", "call_id", "type", "status")


def is_caller_call(item: Any) -> bool:
    """Whether ``item`` is a call the caller is to carry out other than a function or custom tool call."""
    kind = get(item, "type")
    if kind == "tool_search_call":
        return bool(get(item, "execution") == "client")
    return kind in CALLER_ITEMS


def is_server_call(item: Any) -> bool:
    """Whether ``item`` is a call of a built-in tool that the API ran itself."""
    kind = get(item, "type")
    if kind in SERVER_ITEMS:
        return kind != "tool_search_call" or bool(get(item, "execution") != "client")
    return isinstance(kind, str) and kind.endswith("_call") and kind not in CALL_ITEMS


def _tool_name(kind: str) -> str:
    return kind[: -len("_call")] if kind.endswith("_call") else kind


def caller_call(item: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record's tool call and the GenAI ``tool_call`` part of a caller-executed item (computer use, shell, ...)."""
    data = _fields(item)
    kind = str(data.get("type"))
    call_id = data.get("call_id")
    arguments = {key: value for key, value in data.items() if key not in _ITEM_KEYS}
    return (
        {"id": call_id, "type": kind, kind: arguments},
        {"type": "tool_call", "id": call_id, "name": _tool_name(kind), "arguments": arguments},
    )


def server_tool_call(item: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The record's server tool call and the GenAI parts of a built-in tool's item: a ``server_tool_call`` part, and
    a ``server_tool_call_response`` part when the item has a result.

    Record: ``{"id", "type": <item type>, "name": <item type without "_call">, "input"?, "status"?, "result"?,
    "error"?}``, each key absent when the item lacks it."""
    data = _fields(item)
    kind = str(data.pop("type", None))
    item_id = data.pop("id", None)
    data.pop("call_id", None)
    status = data.pop("status", None)
    error = data.pop("error", None)
    result_key = next((key for key in SERVER_RESULT if key in data), None)
    result = data.pop(result_key) if result_key is not None else None
    for key in SERVER_RESULT:
        data.pop(key, None)
    name = _tool_name(kind)
    record: dict[str, Any] = {"id": item_id, "type": kind, "name": name}
    primary = _SERVER_INPUT.get(kind)
    tool_input = data.get(primary) if primary is not None else data or None
    if tool_input is not None:
        record["input"] = tool_input
    if status is not None:
        record["status"] = status
    if result_key is not None:
        record["result"] = result
    if error is not None:
        record["error"] = error
    arguments = {"type": name, **data}
    if status is not None:  # (as other instrumentations have it: the call's state is part of the call)
        arguments["status"] = status
    parts: list[dict[str, Any]] = [
        {"type": "server_tool_call", "id": item_id, "name": name, "server_tool_call": arguments}
    ]
    if result_key is not None or error is not None:
        response: dict[str, Any] = {"type": name}
        if result_key is not None:
            response[result_key] = result
        if error is not None:
            response["error"] = error
        parts.append({"type": "server_tool_call_response", "id": item_id, "server_tool_call_response": response})
    return record, parts


def has_calls(items: list[Any]) -> bool:
    """Whether Responses output ``items`` hold a call for the caller (the finish reason is then ``tool_calls``)."""
    for item in items:
        kind = get(item, "type")
        if kind in CALL_ITEMS or (kind == "tool_search_call" and is_caller_call(item)):
            return True
    return False


def responses_result(
    response: Any, capture: bool, content_attributes: bool = True
) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
    """Response attributes and the record's ``output`` of a Responses API ``Response`` (model or JSON)."""
    attributes: dict[str, AttributeValue] = {}
    _response_basics(response, attributes)
    output = get(response, "output")
    items = list(output) if isinstance(output, list | tuple) else []
    reason = responses_finish_reason(response, has_calls(items))
    if reason is not None:
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = (reason,)
    conversation = get(get(response, "conversation"), "id")
    if isinstance(conversation, str):
        attributes[semconv.GEN_AI_CONVERSATION_ID] = conversation
    if not capture:
        return attributes, None
    return attributes, output_from_items(items, reason, attributes, content_attributes)


def responses_finish_reason(response: Any, calls: bool) -> str | None:
    """A chat-like finish reason for a Response: ``stop`` / ``tool_calls``, the incomplete reason, or the status."""
    status = get(response, "status")
    if status == "completed":
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        reason = get(get(response, "incomplete_details"), "reason")
        return reason if isinstance(reason, str) else "incomplete"
    return status if isinstance(status, str) else None


def output_from_items(
    items: list[Any], reason: str | None, attributes: dict[str, AttributeValue], content_attributes: bool = True
) -> dict[str, Any]:
    """The record's ``output`` from Responses output items; sets ``gen_ai.output.messages``."""
    texts: list[str] = []
    refusals: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    # Calls other than function calls: (output index, record entry, GenAI parts), in output order.
    caller_calls: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
    server_calls: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
    for index, item in enumerate(items):
        kind = get(item, "type")
        if kind == "message":
            for part in get(item, "content") or ():
                part_type = get(part, "type")
                if part_type == "output_text":
                    texts.append(str(get(part, "text") or ""))
                elif part_type == "refusal":
                    refusals.append(str(get(part, "refusal") or ""))
        elif kind == "function_call":
            calls.append(
                {
                    "id": get(item, "call_id"),
                    "function": {"name": get(item, "name"), "arguments": get(item, "arguments")},
                }
            )
        elif kind == "custom_tool_call":  # a custom tool's call: its input is free text
            calls.append(
                {
                    "id": get(item, "call_id"),
                    "type": "custom",
                    "function": {"name": get(item, "name"), "arguments": get(item, "input")},
                }
            )
        elif kind == "reasoning":
            summary = _summary_text(item)
            if summary:
                reasoning.append(summary)
        elif is_caller_call(item):
            call, part = caller_call(item)
            caller_calls.append((index, call, [part]))
        elif is_server_call(item):
            server_calls.append((index, *server_tool_call(item)))
    message = assistant_message(
        "".join(texts) if texts else None,
        calls,
        refusal="".join(refusals),
        reasoning="\n\n".join(reasoning),
    )
    if not caller_calls and not server_calls:
        return output_from_messages([message], [reason], attributes, content_attributes)
    # Function calls keep their place: the caller's other calls follow them, in output order.
    message.setdefault("tool_calls", []).extend(call for _, call, _ in caller_calls)
    if not message["tool_calls"]:
        del message["tool_calls"]
    if server_calls:
        message["server_tool_calls"] = [call for _, call, _ in server_calls]
    output = output_from_messages([message], [reason], attributes, content_attributes=False)
    if content_attributes:
        attributes[semconv.GEN_AI_OUTPUT_MESSAGES] = _content.prepare_json(
            [_output_message_in_order(items, reason, dict((i, p) for i, _, p in caller_calls + server_calls))]
        )
    return output


def _output_message_in_order(
    items: list[Any], reason: str | None, other_parts: dict[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The GenAI output message of Responses ``items`` with their parts in output order: where server tools ran, what
    the model said before and after them is read in that order. ``other_parts``: the parts of the items other than
    messages, reasoning and function calls, by output index."""
    parts: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        kind = get(item, "type")
        if kind == "message":
            texts = [get(p, "text") for p in get(item, "content") or () if get(p, "type") == "output_text"]
            if texts:
                parts.append({"type": "text", "content": "".join(str(t or "") for t in texts)})
            for part in get(item, "content") or ():
                if get(part, "type") == "refusal":
                    parts.append({"type": "refusal", "content": get(part, "refusal")})
        elif kind == "reasoning":
            summary = _summary_text(item)
            if summary:
                parts.append({"type": "reasoning", "content": summary})
        elif kind in ("function_call", "custom_tool_call"):
            parts.append(input_item(item)["parts"][0])
        else:
            parts.extend(other_parts.get(index, ()))
    message: dict[str, Any] = {"role": "assistant", "parts": parts}
    if isinstance(reason, str):
        message["finish_reason"] = reason
    return message


# --- embeddings ----------------------------------------------------------------------------------------------


def embeddings_request(
    params: Mapping[str, Any], capture: bool, server: tuple[str, int] | None, stream: bool
) -> dict[str, AttributeValue]:
    """GenAI request attributes of an embeddings call (the input texts are only in the record's ``input``)."""
    attributes = _common(semconv.OP_EMBEDDINGS, params.get("model"), server, False)
    encoding = params.get("encoding_format")
    if isinstance(encoding, str):
        attributes[semconv.GEN_AI_REQUEST_ENCODING_FORMATS] = (encoding,)
    dimensions = params.get("dimensions")
    if isinstance(dimensions, int) and not isinstance(dimensions, bool):
        attributes["gen_ai.embeddings.dimension.count"] = dimensions
    return attributes


def embeddings_result(
    response: Any, capture: bool, content_attributes: bool = True
) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
    """Attributes and ``output`` of a ``CreateEmbeddingResponse``: counts and dimensions, never the vectors."""
    attributes: dict[str, AttributeValue] = {}
    _response_basics(response, attributes)
    data = get(response, "data")
    data = list(data) if isinstance(data, list | tuple) else []
    dimensions = None
    if data:
        vector = get(data[0], "embedding")
        if isinstance(vector, list | tuple):
            dimensions = len(vector)
        elif isinstance(vector, str):  # base64 float32 (a raw response body)
            dimensions = len(vector) * 3 // 4 // 4
    if dimensions is not None:
        attributes["gen_ai.embeddings.dimension.count"] = dimensions
    if not capture:
        return attributes, None
    # ``embeddings_count``: the same count under carrot-ai 0.2.1's name, which its records had.
    return attributes, {"embeddings": len(data), "dimensions": dimensions, "embeddings_count": len(data)}


# --- legacy completions --------------------------------------------------------------------------------------


def completions_request(
    params: Mapping[str, Any], capture: bool, server: tuple[str, int] | None, stream: bool
) -> dict[str, AttributeValue]:
    """GenAI request attributes of a legacy text completion."""
    attributes = _common(semconv.OP_TEXT_COMPLETION, params.get("model"), server, stream)
    for key, name in _CHAT_NUMBERS:
        value = params.get(key)
        if _number(value):
            attributes[name] = value
    max_tokens = params.get("max_tokens")
    if _number(max_tokens):
        attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = n
    _stop(attributes, params.get("stop"))
    if capture:
        prompt = params.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list | tuple) else []
        attributes[semconv.GEN_AI_INPUT_MESSAGES] = _content.prepare_json(
            [{"role": "user", "parts": [{"type": "text", "content": p}]} for p in prompts if isinstance(p, str)]
        )
    return attributes


def completions_result(
    completion: Any, capture: bool, content_attributes: bool = True
) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
    """Attributes and ``output`` of a legacy ``Completion``."""
    attributes: dict[str, AttributeValue] = {}
    choices, reasons = _choices(completion, attributes)
    if not capture:
        return attributes, None
    messages = [assistant_message(get(c, "text"), None) for c in choices]
    return attributes, output_from_messages(messages, reasons, attributes, content_attributes)


# --- errors --------------------------------------------------------------------------------------------------


def error_attributes(exc: BaseException) -> dict[str, AttributeValue]:
    """HTTP status, the provider's error code (or type) and the request id of an SDK exception."""
    attributes: dict[str, AttributeValue] = {}
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = status
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        code = getattr(exc, "type", None)
    if not isinstance(code, str) or not code:
        body = getattr(exc, "body", None)
        error = get(body, "error") or body
        code = get(error, "code") or get(error, "type")
    if isinstance(code, str) and code:
        attributes[semconv.CARROT_ERROR_CODE] = code
    request_id = getattr(exc, "request_id", None)
    if not isinstance(request_id, str):
        headers = getattr(getattr(exc, "response", None), "headers", None)
        request_id = headers.get("x-request-id") if headers is not None else None
    if isinstance(request_id, str) and request_id:
        attributes[semconv.CARROT_REQUEST_ID] = request_id
    return attributes
