"""The wrappers around ``create`` / ``parse`` of the chat completions, Responses, embeddings and completions resources.

One implementation serves both ways in: :class:`OpenAIInstrumentor` installs these functions on the resource
classes with wrapt (``wrapper(wrapped, instance, args, kwargs)``), and ``carrot_ai.wrap(client)`` binds them to one
client's resource instances. When both see the same call, the outer one records it and the inner one passes
through (``in_llm_call()``).

What a call returns decides how it ends: a response model ends the span at once; a ``Stream`` / ``AsyncStream`` is
handed back inside the shared stream proxy (the span ends with the stream); a raw ``APIResponse``
(``with_raw_response`` / ``with_streaming_response``) ends the span when its body is known (see ``_raw``).
The ``chat.completions.stream()`` and ``responses.stream()`` helpers send their request through ``create`` (looked
up on the resource when the manager is entered), so they are recorded by the same wrapper.

Usage on streams: when the caller streams a chat (or legacy) completion without saying anything about
``stream_options.include_usage``, the wrapper asks for it and the accumulator hides the extra usage-only chunk,
so the caller sees exactly the stream it asked for. An explicit ``include_usage`` (True or False) is left alone,
and a raw response (whose bytes the caller may read) is never changed. A server that refuses the option (a 400 or
422 naming it) gets the request again as the caller wrote it, and that client's streams are not asked again. Still
visible: the response's raw bytes (``stream.response.iter_lines()``) carry the usage event.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core._content import capture_enabled
from carrot_ai._core._guard import guard, report_internal_error
from carrot_ai._core._llm import LLMCall
from carrot_ai._core._stream import (
    AsyncStreamProxy,
    StreamAccumulator,
    StreamState,
    SyncStreamProxy,
    end_with_helper,
    install_tap,
)
from carrot_ai._core._tracing import in_llm_call
from carrot_ai.instrumentation import _common
from carrot_ai.instrumentation._common import DEFAULT_OPTIONS, CallOptions, server_address
from carrot_ai.instrumentation.openai import _extract
from carrot_ai.instrumentation.openai._accumulate import (
    USAGE_HINTS,
    ChatStreamAccumulator,
    CompletionStreamAccumulator,
    ResponseStreamAccumulator,
    is_usage_chunk,
    response_error,
)

_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

Extract = Callable[[Mapping[str, Any], bool, "tuple[str, int] | None", bool], dict[str, AttributeValue]]
Result = Callable[[Any, bool, bool], "tuple[dict[str, AttributeValue], dict[str, Any] | None]"]


class Endpoint:
    """What differs between the API resources: record name, request/response extractors, stream accumulator."""

    __slots__ = ("record_name", "operation", "request", "result", "accumulator", "asks_usage")

    def __init__(
        self,
        record_name: str,
        operation: str,
        request: Extract,
        result: Result,
        accumulator: Any,
        asks_usage: bool,
    ) -> None:
        self.record_name = record_name
        self.operation = operation  # what ``request`` puts in gen_ai.operation.name
        self.request = request
        self.result = result
        self.accumulator = accumulator
        self.asks_usage = asks_usage


CHAT = Endpoint(
    "chat.completions", semconv.OP_CHAT, _extract.chat_request, _extract.chat_result, ChatStreamAccumulator, True
)
RESPONSES = Endpoint(
    "responses",
    semconv.OP_CHAT,
    _extract.responses_request,
    _extract.responses_result,
    ResponseStreamAccumulator,
    False,
)
EMBEDDINGS = Endpoint(
    "embeddings", semconv.OP_EMBEDDINGS, _extract.embeddings_request, _extract.embeddings_result, None, False
)
COMPLETIONS = Endpoint(
    "completions",
    semconv.OP_TEXT_COMPLETION,
    _extract.completions_request,
    _extract.completions_result,
    CompletionStreamAccumulator,
    True,
)


class ResponseFailedError(Exception):
    """Stands for a Responses API failure the SDK does not raise (a ``response.failed`` or ``error`` event)."""


class OpenAIStreamState(StreamState):
    """The shared stream state, plus the HTTP status / error code / request id of an error that ends the stream."""

    __slots__ = ()

    def error_attributes(self, exc: BaseException) -> dict[str, AttributeValue]:
        return _extract.error_attributes(exc)

    @staticmethod
    def sdk_texts(events: list[tuple[str | None, str]]) -> list[str]:
        """openai's ``Stream`` makes an item of every event until one whose data starts with ``[DONE]``, where it
        stops reading (see :meth:`StreamState.sdk_texts`)."""
        texts: list[str] = []
        for _, data in events:
            if data.startswith("[DONE]"):
                break
            texts.append(data)
        return texts


class ResponsesStreamState(OpenAIStreamState):
    """A Responses stream's state: a stream that reported a failure (an ``error`` event, ``response.failed``) ends as
    an error even though the SDK yields those events rather than raising."""

    __slots__ = ()

    def finish(self) -> None:
        error = getattr(self.accumulator, "error", None)
        if error is None:
            super().finish()
            return
        if not self.mark_done():
            return
        with guard("openai stream finish"):
            attributes, output = self.accumulator.result()
            if error[0]:
                attributes[semconv.CARROT_ERROR_CODE] = error[0]
            self.call.fail(ResponseFailedError(error[1]), attributes, output)


# --- starting and ending a call ------------------------------------------------------------------------------


def start_call(
    endpoint: Endpoint,
    resource: Any,
    kwargs: dict[str, Any],
    options: CallOptions,
    stream: bool,
    metadata_only: bool,
) -> LLMCall | None:
    """Start the span of one call, or return None (tracing off, nested, or an internal error)."""
    try:
        capture = not metadata_only and capture_enabled()
        model = kwargs.get("model")
        operation = endpoint.operation
        return LLMCall.start(
            semconv.SCOPE_OPENAI,
            f"{operation} {model}" if isinstance(model, str) else operation,
            {semconv.GEN_AI_OPERATION_NAME: operation},
            record_name=options.name or endpoint.record_name,
            record_input=None,
            tags=options.tags,
            metadata_only=metadata_only,
            capture=capture,
            request=_request,
            arguments=kwargs,
            request_args=(endpoint, resource, stream),
            stream=stream,
            request_body=_extract.REQUEST_BODY,
        )
    except Exception as exc:
        report_internal_error("openai call start", exc)
        return None


def _request(
    arguments: Mapping[str, Any], content_attributes: bool, endpoint: Endpoint, resource: Any, stream: bool
) -> tuple[dict[str, AttributeValue], Any]:
    """A call's request attributes and the record's input (its parameters), from its keyword arguments."""
    params = _extract.request_params(arguments)
    return endpoint.request(params, content_attributes, server_address(resource), stream), params


def fail_call(call: LLMCall, exc: BaseException) -> None:
    """End ``call`` as failed by ``exc`` (status, error code, request id). Never raises."""
    with guard("openai call fail"):
        call.fail(exc, _extract.error_attributes(exc))


def finish(endpoint: Endpoint, call: LLMCall, result: Any, hide_usage: bool) -> Any:
    """End ``call`` with what the SDK returned, or hand back a stream that ends it later. Never raises."""
    try:
        types = _common.sdk_types("openai")
        if isinstance(result, types[0]):
            return SyncStreamProxy(result, stream_state(endpoint, call, result, hide_usage))
        if isinstance(result, types[1]):
            return AsyncStreamProxy(result, stream_state(endpoint, call, result, hide_usage))
        body = call.take_body()  # the response's bytes, when kept for the export worker (never a stream's)
        if isinstance(result, types[2]):
            from carrot_ai.instrumentation.openai._raw import track_raw_response

            return track_raw_response(endpoint, call, result)
        error = response_error(result) if endpoint is RESPONSES else None
        if body is not None and error is None:
            # Read from the bytes the SDK received (on the export worker): the returned object is the caller's.
            call.stop_with_body(body, endpoint.result, getattr(result, "_request_id", None))
            return result
        attributes, output = endpoint.result(result, call.capture, call.content_attributes)
        if error is not None:
            if error[0]:
                attributes[semconv.CARROT_ERROR_CODE] = error[0]
            call.fail(ResponseFailedError(error[1]), attributes, output)
        else:
            call.stop(attributes, output)
    except Exception as exc:
        report_internal_error("openai call finish", exc)
        LLMCall.stop_quietly(call, {}, None)
    return result


def stream_state(endpoint: Endpoint, call: LLMCall, stream: Any, hide_usage: bool = False) -> OpenAIStreamState:
    """The state of a proxied stream, with the request id from its response headers."""
    headers = getattr(getattr(stream, "response", None), "headers", None)
    request_id = headers.get("x-request-id") if headers is not None else None
    accumulator: StreamAccumulator = (endpoint.accumulator or ChatStreamAccumulator)(
        call.capture, request_id, hide_usage, call.content_attributes
    )
    state = (ResponsesStreamState if endpoint is RESPONSES else OpenAIStreamState)(call, accumulator)
    divert = getattr(accumulator, "divert", None) if hide_usage else None
    # Chat streams are tapped (StreamState.tap); otherwise (and for other streams) each chunk is folded in as the
    # caller reads it. A tapped stream's usage chunk is kept with the other events: the divert only decides.
    kept_divert = is_usage_chunk if divert is not None else None
    if endpoint is CHAT and state.tap(stream, kept_divert, USAGE_HINTS):
        return state
    if divert is not None:
        install_tap(stream, None, divert, USAGE_HINTS)
    return state


def ask_for_usage(endpoint: Endpoint, instance: Any, kwargs: dict[str, Any], stream: bool) -> dict[str, Any] | None:
    """The keyword arguments that ask a stream for its usage chunk, when the caller left ``include_usage`` unsaid
    (a copy of ``kwargs``); None to send ``kwargs`` as they are. Not for a client whose server refused the option
    before (:func:`usage_refused`)."""
    if not stream or not endpoint.asks_usage:
        return None
    try:
        # (``is not None`` first: isinstance with an abstract class costs a Python call, and these are mostly unset.)
        headers = kwargs.get("extra_headers")
        if headers is not None and isinstance(headers, Mapping) and _RAW_RESPONSE_HEADER in headers:
            return None  # the caller may read the raw bytes: never change them
        extra_body = kwargs.get("extra_body")
        if extra_body is not None and isinstance(extra_body, Mapping) and "stream_options" in extra_body:
            return None  # the caller's extra_body decides what is sent
        if _refused_any and getattr(instance, "_client", None) in _REFUSED:
            return None
        options = kwargs.get("stream_options")
        if options is None or not _common.given(options):
            # Sent through extra_body: the same JSON, without the SDK's type-driven transform of a new parameter
            # (which costs more than the rest of the request's preparation).
            if extra_body is None:
                body = {"stream_options": {"include_usage": True}}
            elif isinstance(extra_body, Mapping):
                body = {**extra_body, "stream_options": {"include_usage": True}}
            elif not _common.given(extra_body):
                body = {"stream_options": {"include_usage": True}}
            else:
                return None
            asking = dict(kwargs)
            asking.pop("stream_options", None)
            asking["extra_body"] = body
            return asking
        if isinstance(options, Mapping) and "include_usage" not in options:
            return {**kwargs, "stream_options": {**options, "include_usage": True}}
    except Exception as exc:
        report_internal_error("openai stream usage", exc)
    return None


# Clients whose server refused ``stream_options`` (some OpenAI-compatible servers and older Azure API versions
# answer 400 to a parameter they do not know): their streams are no longer asked for usage.
_REFUSED: weakref.WeakSet[Any] = weakref.WeakSet()
_refused_any = False  # whether _REFUSED was ever added to (a WeakSet's truth value costs a Python call)
logger = logging.getLogger("carrot_ai")


def usage_refused(exc: BaseException, instance: Any) -> bool:
    """Whether ``exc`` is the server refusing the ``stream_options`` carrot added (a 400 or 422 whose error names it);
    if so, the client is remembered (its next streams are sent as the caller wrote them). Never raises."""
    try:
        if getattr(exc, "status_code", None) not in (400, 422) or not _names_stream_options(getattr(exc, "body", None)):
            return False
        global _refused_any
        client = getattr(instance, "_client", None)
        if client is not None:
            _REFUSED.add(client)
            _refused_any = True
        logger.info(
            "carrot_ai: the server refused stream_options.include_usage (%s); the stream is sent again without it "
            "and this client's streams are no longer asked for usage",
            getattr(exc, "status_code", None),
        )
        return True
    except Exception as exc2:
        report_internal_error("openai stream usage", exc2)
        return False


# A validation error's location naming the option, as FastAPI / pydantic servers write it in a message:
# 'loc': ('body', 'stream_options') or "loc": ["body", "stream_options", ...].
_LOC_STREAM_OPTIONS = re.compile(r"""['"]loc['"]\s*:\s*[\[(][^\])]*stream_options""")


def _names_stream_options(body: Any) -> bool:
    """Whether an error body (what the SDK keeps: OpenAI's ``error`` object, or the whole JSON) says the request's
    ``stream_options`` is what the server refused: its ``param``, a validation error's ``loc``, or its message. A
    message that quotes the request back (validation errors with their ``input``) is only read for a ``loc``: the
    option carrot added is in any echo of the request, whatever the error is about."""
    if not isinstance(body, Mapping):
        return False
    param = body.get("param")
    if isinstance(param, str) and param.startswith("stream_options"):
        return True
    detail = body.get("detail")
    if isinstance(detail, list):
        return any(isinstance(item, Mapping) and "stream_options" in (item.get("loc") or ()) for item in detail)
    message = body.get("message")
    if not isinstance(message, str):
        return False
    if _LOC_STREAM_OPTIONS.search(message):
        return True
    echoed = "messages" in message or "'input'" in message or '"input"' in message
    return not echoed and ("stream_options" in message or "include_usage" in message)


# --- create / parse ------------------------------------------------------------------------------------------

Wrapper = Callable[..., Any]


def _make_wrappers(endpoint: Endpoint) -> tuple[Wrapper, Wrapper]:
    def create_sync(
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: CallOptions = DEFAULT_OPTIONS,
    ) -> Any:
        if in_llm_call():
            return wrapped(*args, **kwargs)
        kwargs, metadata_only = _common.prepare_kwargs(kwargs, _extract.ITERABLE_KWARGS, instance)
        stream = kwargs.get("stream") is True
        call = start_call(endpoint, instance, kwargs, options, stream, metadata_only)
        if call is None:
            return wrapped(*args, **kwargs)
        asking = ask_for_usage(endpoint, instance, kwargs, stream) if stream else None
        hide_usage = asking is not None
        try:
            if asking is None:
                result = wrapped(*args, **kwargs)
            else:
                refused = False
                try:
                    result = wrapped(*args, **asking)
                except Exception as exc:
                    if not usage_refused(exc, instance):
                        raise
                    refused = True
                if refused:  # sent again as the caller wrote it (outside the except: no chained first error)
                    hide_usage = False
                    result = wrapped(*args, **kwargs)
        except BaseException as exc:
            fail_call(call, exc)
            raise
        finally:
            LLMCall.leave(call)
        return finish(endpoint, call, result, hide_usage)

    async def create_async(
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: CallOptions = DEFAULT_OPTIONS,
    ) -> Any:
        if in_llm_call():
            return await wrapped(*args, **kwargs)
        kwargs, metadata_only = _common.prepare_kwargs(kwargs, _extract.ITERABLE_KWARGS, instance)
        stream = kwargs.get("stream") is True
        call = start_call(endpoint, instance, kwargs, options, stream, metadata_only)
        if call is None:
            return await wrapped(*args, **kwargs)
        asking = ask_for_usage(endpoint, instance, kwargs, stream) if stream else None
        hide_usage = asking is not None
        try:
            if asking is None:
                result = await wrapped(*args, **kwargs)
            else:
                refused = False
                try:
                    result = await wrapped(*args, **asking)
                except Exception as exc:
                    if not usage_refused(exc, instance):
                        raise
                    refused = True
                if refused:  # sent again as the caller wrote it (outside the except: no chained first error)
                    hide_usage = False
                    result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            fail_call(call, exc)
            raise
        finally:
            LLMCall.leave(call)
        return finish(endpoint, call, result, hide_usage)

    create_sync.__qualname__ = create_sync.__name__ = f"{endpoint.record_name}.create"
    create_async.__qualname__ = create_async.__name__ = f"{endpoint.record_name}.create_async"
    return create_sync, create_async


WRAPPERS: dict[Endpoint, tuple[Wrapper, Wrapper]] = {
    e: _make_wrappers(e) for e in (CHAT, RESPONSES, EMBEDDINGS, COMPLETIONS)
}
ALL_WRAPPERS = frozenset(w for pair in WRAPPERS.values() for w in pair)


# --- binding to one instance (wrap) --------------------------------------------------------------------------


def bind(
    endpoint: Endpoint, is_async: bool, original: Callable[..., Any], instance: Any, options: CallOptions
) -> Callable[..., Any]:
    """``original`` (a bound method of ``instance``) with our wrapper around it; a coroutine function stays one."""
    create_sync, create_async = WRAPPERS[endpoint]
    wrapper = create_async if is_async else create_sync
    return _common.bind(wrapper, original, instance, options, is_async=is_async)


_STREAM_HELPERS = (
    ("openai.lib.streaming.chat._completions", ("ChatCompletionStream", "AsyncChatCompletionStream")),
    ("openai.lib.streaming.responses._responses", ("ResponseStream", "AsyncResponseStream")),
)


def observe_stream_helpers() -> None:
    """The ``stream()`` helpers' streams end our call when closed (their ``with`` block's end): see
    :func:`end_with_helper`."""
    import importlib

    for module_name, names in _STREAM_HELPERS:
        with guard("openai stream helpers"):
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for name in names:
                kind = getattr(module, name, None)
                if isinstance(kind, type):
                    end_with_helper(kind)
