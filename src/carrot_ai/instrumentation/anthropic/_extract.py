"""Pure extractors: Anthropic request kwargs, ``Message`` responses and errors into span attributes.

Nothing here touches a span or does I/O. Every function accepts the SDK's pydantic models and plain dicts alike
(users pass dicts, earlier responses' blocks come back as models, and a raw response body is decoded JSON).

Token convention (the same for every provider): ``gen_ai.usage.input_tokens`` INCLUDES cached tokens, so for
Anthropic it is ``usage.input_tokens + cache_read_input_tokens + cache_creation_input_tokens``; cache read and
cache write (creation) counts are subsets of it. ``gen_ai.usage.output_tokens`` is Anthropic's ``output_tokens``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core import _content
from carrot_ai._core._serialize import RequestBody
from carrot_ai.instrumentation import _common

PROVIDER = "anthropic"
RECORD_NAME = "messages"
# How the SDK writes a model among the parameters (an earlier response's content blocks passed back) into the request:
# ``anthropic._utils._json.openapi_model_dump`` (the fields that were set, by alias, without ``__api_exclude__``).
REQUEST_BODY = RequestBody(by_alias=True)

# Keys of create()/stream()/parse() that are transport options, never request content.
_NOT_INPUT = frozenset({"extra_headers", "extra_query", "extra_body", "timeout", "stream"})
# Top-level kwargs that may be one-shot iterables and that we read before the SDK does.
ITERABLE_KWARGS = ("messages", "system", "tools", "stop_sequences")
_NUMBERS = (int, float)
_SEQUENCES = (list, tuple)
_REQUEST_NUMBERS = (
    ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K),
)


def get(value: Any, key: str) -> Any:
    """``value[key]`` for a dict, ``value.key`` for a model; None when absent."""
    # A plain isinstance(dict) check: the Mapping ABC check costs more than the rest of an extractor.
    if isinstance(value, dict):
        return value.get(key)
    return getattr(value, key, None)


def getter(value: Any) -> Callable[[str], Any]:
    """:func:`get` for one value, to read several of its fields (a decoded body's dict: its own ``get``)."""
    if isinstance(value, dict):
        return value.get
    return functools.partial(_attribute, value)


def _attribute(value: Any, key: str) -> Any:
    return getattr(value, key, None)


def materialize_iterables(kwargs: dict[str, Any]) -> dict[str, Any]:
    """One-shot iterables among the kwargs we read, as lists (see ``_common.materialize_iterables``)."""
    return _common.materialize_iterables(kwargs, ITERABLE_KWARGS)


def request_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters as sent: the kwargs without transport options, with ``extra_body`` merged in."""
    params = {}
    for key, value in kwargs.items():  # (a loop, not a comprehension: ~0.2 µs less on Python 3.11)
        if key not in _NOT_INPUT and _common.given(value):
            params[key] = value
    extra_body = kwargs.get("extra_body")
    if extra_body is not None and isinstance(extra_body, dict):
        params.update(extra_body)
    output_format = params.get("output_format")
    # parse() / stream() given a model class: its name, not the class's repr
    if output_format is not None and isinstance(output_format, type):
        params["output_format"] = output_format.__name__
    return params


def record_input(params: dict[str, Any]) -> dict[str, Any]:
    """The record's ``input``: the request parameters, with inline image/document data replaced by a placeholder."""
    messages = params.get("messages")
    if isinstance(messages, _SEQUENCES) and _has_inline_media(messages):
        return {**params, "messages": [_scrub_message(m) for m in messages]}
    return params


def request_attributes(
    params: Mapping[str, Any], capture: bool, server: tuple[str, int] | None, stream: bool
) -> dict[str, AttributeValue]:
    """GenAI request attributes; content attributes only when ``capture`` is on."""
    model = params.get("model")
    attributes: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
        semconv.GEN_AI_PROVIDER_NAME: PROVIDER,
    }
    if isinstance(model, str):
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    for key, name in _REQUEST_NUMBERS:
        value = params.get(key)
        if value is not None and isinstance(value, _NUMBERS) and not isinstance(value, bool):
            attributes[name] = value
    stops = params.get("stop_sequences")
    if stops is not None and isinstance(stops, _SEQUENCES) and all(isinstance(s, str) for s in stops):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(stops)
    if stream:
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    if server is not None:
        attributes[semconv.SERVER_ADDRESS] = server[0]
        attributes[semconv.SERVER_PORT] = server[1]
    if capture:
        system = params.get("system")
        if system is not None:
            attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = _content.prepare_json(content_parts(system))
        messages = params.get("messages")
        if isinstance(messages, list | tuple):
            attributes[semconv.GEN_AI_INPUT_MESSAGES] = _content.prepare_json(
                [{"role": str(get(m, "role") or "user"), "parts": content_parts(get(m, "content"))} for m in messages]
            )
        tools = params.get("tools")
        if isinstance(tools, list | tuple) and tools:
            attributes[semconv.GEN_AI_TOOL_DEFINITIONS] = _content.prepare_json([_tool_definition(t) for t in tools])
    return attributes


# --- content parts -------------------------------------------------------------------------------------------


def content_parts(content: Any) -> list[dict[str, Any]]:
    """GenAI message parts of Anthropic ``content`` (a string or a list of blocks)."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list | tuple):
        return [block_part(b) for b in content]
    return []


def block_part(block: Any) -> dict[str, Any]:
    """One content block as a GenAI part (never the base64 payload of an image or document)."""
    kind = get(block, "type")
    if kind == "text":
        return {"type": "text", "content": get(block, "text")}
    if kind == "thinking":
        return {"type": "reasoning", "content": get(block, "thinking")}
    if kind == "redacted_thinking":
        return {"type": "reasoning", "content": "", "redacted": True}
    if kind == "tool_use":
        return {
            "type": "tool_call",
            "id": get(block, "id"),
            "name": get(block, "name"),
            "arguments": get(block, "input"),
        }
    if kind == "tool_result":
        return {
            "type": "tool_call_response",
            "id": get(block, "tool_use_id"),
            "response": _tool_result_response(get(block, "content")),
        }
    if kind in SERVER_CALL_BLOCKS:
        return _server_call_part(block)
    if isinstance(kind, str) and kind.endswith(SERVER_RESULT_SUFFIX):
        return _server_result_part(block)
    if kind in ("image", "document"):
        return media_part(kind, get(block, "source"))
    return {"type": str(kind) if kind else "unknown"}


# Blocks of a tool call that Anthropic runs itself (web search, web fetch, code execution; a tool of an MCP server
# through the MCP connector): not calls for the caller to make. Each one's result is a block of its own whose type
# ends in ``_tool_result`` (``web_search_tool_result``, ``code_execution_tool_result``, ``mcp_tool_result``, ...),
# naming the call by ``tool_use_id``.
SERVER_CALL_BLOCKS = frozenset({"server_tool_use", "mcp_tool_use"})
SERVER_RESULT_SUFFIX = "_tool_result"
_RESULT_KEYS = ("type", "tool_use_id", "cache_control")


def _server_call_part(block: Any) -> dict[str, Any]:
    """A server tool's call as a GenAI ``server_tool_call`` part: its input's fields under the tool's type."""
    name = get(block, "name")
    tool_input = _common.plain(get(block, "input"))
    arguments: dict[str, Any] = {}
    if isinstance(tool_input, dict):
        arguments.update(tool_input)
    elif tool_input is not None:  # (a stream cut short: the partial JSON text)
        arguments["input"] = tool_input
    if get(block, "type") == "mcp_tool_use":
        server = get(block, "server_name")
        if server is not None:
            arguments["server_name"] = server
        arguments["type"] = "mcp"
    else:
        arguments["type"] = name
    return {"type": "server_tool_call", "id": get(block, "id"), "name": name, "server_tool_call": arguments}


def _server_result_part(block: Any) -> dict[str, Any]:
    """A server tool's result block as a GenAI ``server_tool_call_response`` part: its type and content."""
    data = _common.fields(block)
    response = {"type": get(block, "type"), **{k: v for k, v in data.items() if k not in _RESULT_KEYS}}
    return {"type": "server_tool_call_response", "id": get(block, "tool_use_id"), "server_tool_call_response": response}


def media_part(kind: str, source: Any) -> dict[str, Any]:
    """An image or document block: a uri/file part, or a blob placeholder with media type and size."""
    modality = "image" if kind == "image" else "document"
    source_type = get(source, "type")
    if source_type == "url":
        return {"type": "uri", "modality": modality, "uri": get(source, "url")}
    if source_type == "file":
        return {"type": "file", "modality": modality, "file_id": get(source, "file_id")}
    if source_type == "text":
        return {"type": "text", "content": get(source, "data")}
    if source_type == "content":  # a document of custom content blocks: no bytes, so no blob
        parts = content_parts(get(source, "content"))
        if all(p.get("type") == "text" for p in parts):
            return {"type": "text", "content": "".join(str(p.get("content") or "") for p in parts)}
        return {"type": modality, "parts": parts}
    media_type = get(source, "media_type")
    return {"type": "blob", "modality": modality, "mime_type": media_type, "content": inline_placeholder(source)}


def inline_placeholder(source: Any) -> str:
    """What replaces inline base64 data: ``"<media: image/png, 48213 bytes>"`` (the core's format), never the bytes."""
    data = get(source, "data")
    size = _decoded_size(data) if isinstance(data, str) else _file_size(data)
    return f"<media: {get(source, 'media_type') or 'application/octet-stream'}, {size} bytes>"


def _file_size(data: Any) -> int:
    """The size of a file the SDK read and sent base64-encoded (a ``pathlib.Path`` or a file object as a source's
    ``data``), from the file system's metadata: the file is never read again (a file object and its position are
    the caller's, and the call already read it to its end). 0 when it cannot be known (a closed in-memory file)."""
    import io
    import os

    try:
        if isinstance(data, os.PathLike):
            return os.stat(data).st_size
        if isinstance(data, io.BytesIO):
            return data.getbuffer().nbytes
        name = getattr(data, "name", None)
        if isinstance(name, str | bytes | os.PathLike):
            return os.stat(name).st_size
    except (OSError, ValueError):
        pass
    return 0


def _decoded_size(data: str) -> int:
    padding = 2 if data.endswith("==") else 1 if data.endswith("=") else 0
    return max(len(data) * 3 // 4 - padding, 0)


def _tool_result_response(content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        parts = [block_part(b) for b in content]
        if all(p.get("type") == "text" for p in parts):
            return "".join(str(p.get("content") or "") for p in parts)
        return parts
    return content


def _tool_definition(tool: Any) -> dict[str, Any]:
    kind = get(tool, "type")
    if kind in (None, "custom"):
        definition: dict[str, Any] = {"type": "function", "name": get(tool, "name")}
        description = get(tool, "description")
        if description is not None:
            definition["description"] = description
        schema = get(tool, "input_schema")
        if schema is not None:
            definition["parameters"] = schema
        return definition
    return {"type": kind, "name": get(tool, "name")}


def _has_inline_media(messages: Any) -> bool:
    for message in messages:
        content = get(message, "content")
        if isinstance(content, list | tuple):
            for block in content:
                if get(block, "type") in ("image", "document") and get(get(block, "source"), "type") == "base64":
                    return True
                if get(block, "type") == "tool_result" and _has_inline_media([block]):
                    return True
    return False


def _scrub_message(message: Any) -> Any:
    content = get(message, "content")
    if not isinstance(content, list | tuple):
        return message
    return {**_as_dict(message), "content": [_scrub_block(b) for b in content]}


def _scrub_block(block: Any) -> Any:
    kind = get(block, "type")
    if kind in ("image", "document"):
        source = get(block, "source")
        if get(source, "type") == "base64":
            return {**_as_dict(block), "source": {**_as_dict(source), "data": inline_placeholder(source)}}
    elif kind == "tool_result" and isinstance(get(block, "content"), list | tuple):
        return {**_as_dict(block), "content": [_scrub_block(b) for b in get(block, "content")]}
    return block


def _as_dict(value: Any) -> dict[str, Any]:
    """A message or block as a dict: a model (an earlier response's, passed back) as the SDK sends it."""
    if isinstance(value, Mapping):
        return dict(value)
    if callable(getattr(value, "model_dump", None)):
        try:
            result = REQUEST_BODY.dump(value)
        except Exception:
            result = value.model_dump(exclude_none=True)
        if isinstance(result, dict):
            return result
    return {"value": repr(value)}


# --- responses -----------------------------------------------------------------------------------------------


def usage_attributes(usage: Any, attributes: dict[str, AttributeValue]) -> None:
    """Add the token counts of an Anthropic ``usage`` to ``attributes`` (input INCLUDES cached tokens)."""
    if usage is None:
        return
    field = getter(usage)
    base = field("input_tokens")
    cache_read = field("cache_read_input_tokens")
    cache_write = field("cache_creation_input_tokens")
    output = field("output_tokens")
    read = cache_read if isinstance(cache_read, int) else 0
    write = cache_write if isinstance(cache_write, int) else 0
    if isinstance(base, int):
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = base + read + write
    if isinstance(cache_read, int):
        attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
    if isinstance(cache_write, int):
        attributes[semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write
    if isinstance(output, int):
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = output
    details = field("output_tokens_details")
    thinking = get(details, "thinking_tokens") if details is not None else None
    if isinstance(thinking, int):
        attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = thinking
    # 1-hour cache writes cost more than 5-minute ones: the part of the writes they are, when there are any.
    creation = field("cache_creation")
    write_1h = get(creation, "ephemeral_1h_input_tokens") if creation is not None else None
    if isinstance(write_1h, int) and not isinstance(write_1h, bool) and write_1h > 0:
        attributes[semconv.ANTHROPIC_USAGE_CACHE_WRITE_1H_INPUT_TOKENS] = write_1h


def message_result(
    message: Any, capture: bool, content_attributes: bool = True
) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
    """Response attributes and the record's ``output`` of a complete ``Message`` (model or decoded JSON);
    ``content_attributes``: whether to set ``gen_ai.output.messages`` too (when ``capture`` is on)."""
    attributes: dict[str, AttributeValue] = {}
    field = getter(message)
    response_id = field("id")
    if isinstance(response_id, str):
        attributes[semconv.GEN_AI_RESPONSE_ID] = response_id
    model = field("model")
    if isinstance(model, str):
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    stop_reason = field("stop_reason")
    if isinstance(stop_reason, str):
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = (stop_reason,)
    usage_attributes(field("usage"), attributes)
    request_id = getattr(message, "_request_id", None)
    if isinstance(request_id, str) and request_id:
        attributes[semconv.CARROT_REQUEST_ID] = request_id
    if not capture:
        return attributes, None
    content = field("content")
    blocks = list(content) if isinstance(content, _SEQUENCES) else []
    return attributes, output_from_blocks(blocks, stop_reason, attributes, content_attributes)


def output_from_blocks(
    blocks: list[Any], stop_reason: Any, attributes: dict[str, AttributeValue], content_attributes: bool = True
) -> dict[str, Any]:
    """The record's ``output`` from response blocks; also sets ``gen_ai.output.messages`` in ``attributes`` unless
    ``content_attributes`` is False.

    ``output.message`` is OpenAI-like so records look the same across providers: ``content`` is the text,
    ``tool_calls`` are ``{"id", "type": "function", "function": {"name", "arguments": <JSON string>}}``, and
    ``reasoning`` is the thinking text. The calls of tools Anthropic runs itself are not the caller's to make: they
    are ``server_tool_calls``, in output order, ``{"id", "type": <block type>, "name", "input"?, "result"?}``, the
    result being the content of the ``*_tool_result`` block that names the call (a result without its call in this
    answer is an entry of its own, ``{"id", "type": <result block type>, "result"}``).
    """
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    server_calls: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        part = block_part(block)
        parts.append(part)
        kind = part["type"]
        if kind == "text":
            texts.append(str(part["content"] or ""))
        elif kind == "reasoning" and not part.get("redacted"):
            thinking.append(str(part["content"] or ""))
        elif kind == "tool_call":
            tool_calls.append(
                {
                    "id": part["id"],
                    "type": "function",
                    "function": {"name": part["name"], "arguments": _arguments_json(part.get("arguments"))},
                }
            )
        elif kind == "server_tool_call":
            server_calls.append(_server_call_entry(block, part))
        elif kind == "server_tool_call_response":
            _add_server_result(server_calls, block, part)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if server_calls:
        message["server_tool_calls"] = server_calls
    if thinking:
        message["reasoning"] = "".join(thinking)
    if content_attributes:
        output_message: dict[str, Any] = {"role": "assistant", "parts": parts}
        if isinstance(stop_reason, str):
            output_message["finish_reason"] = stop_reason
        attributes[semconv.GEN_AI_OUTPUT_MESSAGES] = _content.prepare_json([output_message])
    return {"message": message}


def _server_call_entry(block: Any, part: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": part["id"], "type": get(block, "type"), "name": part["name"]}
    tool_input = _common.plain(get(block, "input"))
    if tool_input is not None:
        entry["input"] = tool_input
    server = get(block, "server_name")  # an MCP tool's server
    if isinstance(server, str):
        entry["server_name"] = server
    return entry


def _add_server_result(server_calls: list[dict[str, Any]], block: Any, part: dict[str, Any]) -> None:
    """Put a ``*_tool_result`` block's content on the call it names (the latest of that id), or on an entry of its
    own when the call is not in this answer."""
    call_id = part["id"]
    entry = next((e for e in reversed(server_calls) if e["id"] == call_id and "result" not in e), None)
    if entry is None:
        entry = {"id": call_id, "type": get(block, "type")}
        server_calls.append(entry)
    content = part["server_tool_call_response"].get("content")
    if content is not None:
        entry["result"] = content
    if part["server_tool_call_response"].get("is_error") is True:  # an MCP tool's failure
        entry["is_error"] = True


def _arguments_json(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    from carrot_ai._core._serialize import dumps, to_jsonable

    return dumps(to_jsonable({} if arguments is None else arguments))


# --- errors --------------------------------------------------------------------------------------------------


def error_attributes(exc: BaseException) -> dict[str, AttributeValue]:
    """HTTP status, the provider's error type and the request id of an SDK exception (whatever is known)."""
    attributes: dict[str, AttributeValue] = {}
    status = getattr(exc, "status_code", None)
    # A mid-stream ``error`` event arrives on a 200 response: the status says nothing about the failure.
    if isinstance(status, int) and status >= 400:
        attributes[semconv.HTTP_RESPONSE_STATUS_CODE] = status
    code = getattr(exc, "type", None)
    if not isinstance(code, str):
        code = get(get(getattr(exc, "body", None), "error"), "type")
    if isinstance(code, str) and code:
        attributes[semconv.CARROT_ERROR_CODE] = code
    request_id = getattr(exc, "request_id", None)
    if not isinstance(request_id, str):
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        request_id = headers.get("request-id") if headers is not None else None
    if isinstance(request_id, str) and request_id:
        attributes[semconv.CARROT_REQUEST_ID] = request_id
    return attributes
