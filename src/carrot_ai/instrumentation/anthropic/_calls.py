"""The wrappers around ``messages.create`` / ``parse`` / ``stream`` (stable and beta, sync and async).

One implementation serves both ways in: :class:`AnthropicInstrumentor` installs these functions on the resource
classes with wrapt (``wrapper(wrapped, instance, args, kwargs)``), and ``carrot_ai.wrap(client)`` binds them to one
client's resource instances. When both see the same call, the outer one records it and the inner one passes
through (``in_llm_call()``).

What a call returns decides how it ends: a ``Message`` ends the span at once; a ``Stream`` / ``AsyncStream`` is
handed back inside the shared stream proxy (the span ends with the stream); a raw ``APIResponse``
(``with_raw_response`` / ``with_streaming_response``) ends the span when its body is known (see ``_raw``).
``messages.stream()`` sends its request when its manager is entered, so the span starts there, and the manager's
``MessageStream`` reads the proxied raw stream: ``text_stream``, iteration, ``get_final_message()`` and
``get_final_text()`` all go through it.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core._content import capture_enabled
from carrot_ai._core._guard import guard, report_internal_error
from carrot_ai._core._llm import LLMCall
from carrot_ai._core._stream import AsyncStreamProxy, StreamState, SyncStreamProxy
from carrot_ai._core._tracing import in_llm_call
from carrot_ai.instrumentation import _common
from carrot_ai.instrumentation._common import DEFAULT_OPTIONS, CallOptions, Wrapper, server_address
from carrot_ai.instrumentation.anthropic import _extract, _native
from carrot_ai.instrumentation.anthropic._accumulate import MessageStreamAccumulator


class AnthropicStreamState(StreamState):
    """The shared stream state, plus the HTTP status / error type / request id of an error that ends the stream."""

    __slots__ = ()

    def error_attributes(self, exc: BaseException) -> dict[str, AttributeValue]:
        return _extract.error_attributes(exc)

    @staticmethod
    def sdk_texts(events: list[tuple[str | None, str]]) -> list[str]:
        """anthropic's ``Stream`` skips ``ping`` events, events without a name and events without data, raises at an
        ``error`` event, and makes an item of each other event (see :meth:`StreamState.sdk_texts`)."""
        texts: list[str] = []
        for event, data in events:
            if event == "error":
                break
            if event is not None and event != "ping" and data:
                texts.append(data)
        return texts


# --- starting and ending a call ------------------------------------------------------------------------------


def start_call(
    resource: Any, kwargs: dict[str, Any], options: CallOptions, stream: bool, metadata_only: bool
) -> LLMCall | None:
    """Start the span of one Messages call, or return None (tracing off, nested, or an internal error)."""
    try:
        capture = not metadata_only and capture_enabled()
        model = kwargs.get("model")
        return LLMCall.start(
            semconv.SCOPE_ANTHROPIC,
            f"{semconv.OP_CHAT} {model}" if isinstance(model, str) else semconv.OP_CHAT,
            {semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT},
            record_name=options.name or _extract.RECORD_NAME,
            record_input=None,
            tags=options.tags,
            metadata_only=metadata_only,
            capture=capture,
            request=_request,
            arguments=kwargs,
            request_args=(resource, stream, capture),
            stream=stream,
            request_body=_extract.REQUEST_BODY,
        )
    except Exception as exc:
        report_internal_error("anthropic call start", exc)
        return None


def _request(
    arguments: Mapping[str, Any], content_attributes: bool, resource: Any, stream: bool, capture: bool
) -> tuple[dict[str, AttributeValue], Any]:
    """A call's request attributes and the record's input, from its keyword arguments."""
    params = _extract.request_params(arguments)
    attributes = _extract.request_attributes(params, content_attributes, server_address(resource), stream)
    return attributes, _extract.record_input(params) if capture else params


def fail_call(call: LLMCall, exc: BaseException) -> None:
    """End ``call`` as failed by ``exc`` (status, error type, request id). Never raises."""
    with guard("anthropic call fail"):
        call.fail(exc, _extract.error_attributes(exc))


def finish(call: LLMCall, result: Any) -> Any:
    """End ``call`` with what the SDK returned, or hand back a stream that ends it later. Never raises."""
    try:
        types = _common.sdk_types("anthropic")
        if isinstance(result, types[0]):
            return SyncStreamProxy(result, stream_state(call, result))
        if isinstance(result, types[1]):
            return AsyncStreamProxy(result, stream_state(call, result))
        body = call.take_body()  # the response's bytes, when kept for the export worker (never a stream's)
        if isinstance(result, types[2]):
            from carrot_ai.instrumentation.anthropic._raw import track_raw_response

            return track_raw_response(call, result)
        if body is not None:
            # Read from the bytes the SDK received (on the export worker): the returned object is the caller's.
            call.stop_with_body(body, _extract.message_result, getattr(result, "_request_id", None))
            return result
        attributes, output = _extract.message_result(result, call.capture, call.content_attributes)
        call.stop(attributes, output)
    except Exception as exc:
        report_internal_error("anthropic call finish", exc)
        LLMCall.stop_quietly(call, {}, None)
    return result


def stream_state(call: LLMCall, stream: Any) -> AnthropicStreamState:
    """The state of a proxied stream, with the request id from its response headers."""
    headers = getattr(getattr(stream, "response", None), "headers", None)
    request_id = headers.get("request-id") if headers is not None else None
    state = AnthropicStreamState(call, MessageStreamAccumulator(call.capture, request_id, call.content_attributes))
    state.tap(stream)  # else each event is folded in as the caller reads it
    return state


def _with_trace_headers(resource: Any, kwargs: dict[str, Any]) -> tuple[dict[str, Any], contextvars.Token[bool]]:
    """Add the trace-context headers the SDK would send, so its own span machinery can be skipped entirely."""
    headers = None
    try:
        client = getattr(resource, "_client", None)
        headers = _native.propagation_headers(client) if client is not None else None
        if headers:
            extra = kwargs.get("extra_headers")
            kwargs = {**kwargs, "extra_headers": {**extra, **headers} if isinstance(extra, Mapping) else headers}
    except Exception as exc:
        report_internal_error("anthropic trace headers", exc)
        headers = None
    return kwargs, _native.headers_added.set(headers is not None)


# --- create / parse ------------------------------------------------------------------------------------------


def create_sync(
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: CallOptions = DEFAULT_OPTIONS,
) -> Any:
    """Wrapper of ``Messages.create`` / ``Messages.parse`` (sync)."""
    if in_llm_call():
        return wrapped(*args, **kwargs)
    kwargs, metadata_only = _common.prepare_kwargs(kwargs, _extract.ITERABLE_KWARGS, instance)
    call = start_call(instance, kwargs, options, kwargs.get("stream") is True, metadata_only)
    if call is None:
        return wrapped(*args, **kwargs)
    kwargs, token = _with_trace_headers(instance, kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        fail_call(call, exc)
        raise
    finally:
        _native.headers_added.reset(token)
        LLMCall.leave(call)
    return finish(call, result)


async def create_async(
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: CallOptions = DEFAULT_OPTIONS,
) -> Any:
    """Wrapper of ``AsyncMessages.create`` / ``AsyncMessages.parse``."""
    if in_llm_call():
        return await wrapped(*args, **kwargs)
    kwargs, metadata_only = _common.prepare_kwargs(kwargs, _extract.ITERABLE_KWARGS, instance)
    call = start_call(instance, kwargs, options, kwargs.get("stream") is True, metadata_only)
    if call is None:
        return await wrapped(*args, **kwargs)
    kwargs, token = _with_trace_headers(instance, kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        fail_call(call, exc)
        raise
    finally:
        _native.headers_added.reset(token)
        LLMCall.leave(call)
    return finish(call, result)


# --- stream() helper -----------------------------------------------------------------------------------------


def stream_helper(
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: CallOptions = DEFAULT_OPTIONS,
) -> Any:
    """Wrapper of ``Messages.stream`` / ``AsyncMessages.stream``: the manager's request starts the span."""
    if in_llm_call():
        return wrapped(*args, **kwargs)
    kwargs, metadata_only = _common.prepare_kwargs(kwargs, _extract.ITERABLE_KWARGS, instance)
    manager = wrapped(*args, **kwargs)
    with guard("anthropic stream helper"):
        _hook_manager(manager, functools.partial(start_call, instance, kwargs, options, True, metadata_only))
    return manager


def _hook_manager(manager: Any, starter: Callable[[], LLMCall | None]) -> None:
    """Replace the request a ``MessageStreamManager`` sends on enter with one that records the call."""
    attribute = next((name for name in vars(manager) if name.endswith("__api_request")), None)
    if attribute is None:
        report_internal_error("anthropic stream helper", LookupError(f"{type(manager).__name__} has no api request"))
        return
    original = getattr(manager, attribute)
    if inspect.isawaitable(original):
        setattr(manager, attribute, _TracedAwaitable(original, starter))
    else:
        setattr(manager, attribute, functools.partial(_traced_request, original, starter))


def _traced_request(original: Callable[[], Any], starter: Callable[[], LLMCall | None]) -> Any:
    call = None if in_llm_call() else starter()
    if call is None:
        return original()
    try:
        raw = original()
    except BaseException as exc:
        fail_call(call, exc)
        raise
    finally:
        LLMCall.leave(call)
    return finish(call, raw)


class _TracedAwaitable:
    """The async manager's request (a coroutine made by ``stream()``), recorded when it is awaited.

    An object rather than a coroutine, so a manager that is never entered warns only about the SDK's own
    coroutine, exactly as without carrot.
    """

    __slots__ = ("_original", "_starter")

    def __init__(self, original: Awaitable[Any], starter: Callable[[], LLMCall | None]) -> None:
        self._original = original
        self._starter = starter

    def __await__(self) -> Generator[Any, None, Any]:
        return self._run().__await__()

    async def _run(self) -> Any:
        call = None if in_llm_call() else self._starter()
        if call is None:
            return await self._original
        try:
            raw = await self._original
        except BaseException as exc:
            fail_call(call, exc)
            raise
        finally:
            LLMCall.leave(call)
        return finish(call, raw)


# --- binding to one instance (wrap) --------------------------------------------------------------------------


def bind(wrapper: Wrapper, original: Callable[..., Any], instance: Any, options: CallOptions) -> Callable[..., Any]:
    """``original`` (a bound method of ``instance``) with ``wrapper`` around it; a coroutine function stays one."""
    return _common.bind(wrapper, original, instance, options, is_async=wrapper is create_async)
