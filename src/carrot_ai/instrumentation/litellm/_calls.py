"""The wrappers around ``litellm.completion`` / ``acompletion`` / ``embedding`` / ``aembedding``.

Each call is one LLM span, current while LiteLLM runs: the OpenAI / Anthropic SDK call LiteLLM makes underneath is
then the same call (``in_llm_call()``), so our own instrumentation of those SDKs passes it through and another
instrumentation's span below ours is dropped by the span processor: one record per call. A streaming call returns
LiteLLM's ``CustomStreamWrapper`` inside the shared stream proxy (``isinstance`` holds; chunks are unchanged); its
span ends with the stream.

A ``litellm.Router`` call is one record too, whatever it retries or falls back to: the Router's method is the call
(:class:`RouterWrapper`), and each attempt it makes through ``litellm.completion`` / ``acompletion`` / ``embedding``
/ ``aembedding`` is a part of it (:class:`_Routed`): the attempt names the model and provider the record shows (the
last one is the one that answered, or the last that failed), and the stream of the attempt the Router hands back ends
the call. That stream is the one we proxy, inside the Router's own stream wrapper, so the caller gets the Router's
``SyncFallbackStreamWrapper`` / ``FallbackStreamWrapper`` itself. A completion given ``fallbacks`` is such a call too:
LiteLLM makes each try through ``litellm.acompletion``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from carrot_ai import semconv
from carrot_ai._core._content import pop_trace_header
from carrot_ai._core._guard import guard, report_internal_error
from carrot_ai._core._llm import LLMCall
from carrot_ai._core._stream import AsyncStreamProxy, StreamState, SyncStreamProxy
from carrot_ai._core._tracing import LLM_CALL_KEY, current_context, in_llm_call, remember_litellm_call, running_here
from carrot_ai.instrumentation._common import CallOptions
from carrot_ai.instrumentation.litellm import _extract
from carrot_ai.instrumentation.litellm._accumulate import ChunkAccumulator

_routes: dict[tuple[str, Any, Any], tuple[str | None, str | None, str | None]] = {}
_MAX_ROUTES = 256


def _route(arguments: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(model, provider, api_base) as LiteLLM routes the call (``openai/gpt-4o`` -> ``gpt-4o``, ``openai``).

    Remembered per (model, custom_llm_provider, api_base), for up to 256 of them: LiteLLM's routing of the same
    names does not change from call to call, and asking it costs more than the rest of the call's start.
    """
    model = arguments.get("model")
    if not isinstance(model, str):
        return None, None, None
    provider_arg = arguments.get("custom_llm_provider")
    base_arg = arguments.get("api_base") or arguments.get("base_url")
    key = (model, provider_arg, base_arg)
    cacheable = (provider_arg is None or type(provider_arg) is str) and (base_arg is None or type(base_arg) is str)
    if cacheable:
        known = _routes.get(key)
        if known is not None:
            return known
    try:
        import litellm

        routed_model, provider, _key, api_base = litellm.get_llm_provider(
            model=model, custom_llm_provider=provider_arg, api_base=base_arg
        )
    except Exception:  # LiteLLM does not know the model: the call itself will say so
        return model, provider_arg, arguments.get("api_base")
    route = (routed_model or model, provider, arguments.get("api_base") or api_base)
    if cacheable:
        if len(_routes) >= _MAX_ROUTES:
            _routes.clear()
        _routes[key] = route
    return route


# carrot-ai 0.2.1's record name for a litellm completion (what patch_litellm(name=...) replaces); the functions it did
# not record (embedding, a Router's methods) are named after themselves.
_RECORD_NAMES = {"completion": "chat.completions", "acompletion": "chat.completions"}


def start_call(
    function: str,
    operation: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    options: CallOptions,
    metadata_only: bool = False,
    routed: bool = True,
) -> LLMCall | None:
    """Start the span of one LiteLLM call, or return None (tracing off, nested, or an internal error).

    ``routed``: ask LiteLLM where the model goes (False for a Router's call: its model is a model group, and its
    attempts say where they went)."""
    try:
        arguments = _extract.call_arguments(args, kwargs, "input" if operation == semconv.OP_EMBEDDINGS else "messages")
        params = _extract.request_params(arguments)
        if isinstance(params.get("response_format"), type):
            params["response_format"] = _response_format_sent(params["response_format"])
        if routed:
            model, litellm_provider, api_base = _route(arguments)
        else:
            model, litellm_provider, api_base = arguments.get("model"), None, None
        provider = _extract.provider_name(litellm_provider)
        attributes = _extract.request_attributes(operation, model, provider, params, api_base)
        return LLMCall.start(
            semconv.SCOPE_LITELLM,
            f"{operation} {model}" if model else operation,
            attributes,
            record_name=options.name or _RECORD_NAMES.get(function) or f"litellm.{function}",
            record_input=params,
            tags=options.tags,
            metadata_only=metadata_only,
            source="litellm",
        )
    except Exception as exc:
        report_internal_error("litellm call start", exc)
        return None


def _response_format_sent(model: type) -> Any:
    """The ``response_format`` LiteLLM sends for ``response_format=Model`` (a pydantic class): the model's JSON Schema,
    converted by LiteLLM's own function; the class itself would be recorded as its repr, which says nothing of what the
    model was asked for. LiteLLM rejects a class it cannot convert: the record then names it."""
    try:
        from litellm.utils import type_to_response_format_param

        return type_to_response_format_param(model)
    except Exception:
        return {"type": "json_schema", "json_schema": {"name": getattr(model, "__name__", str(model))}}


def fail_call(call: LLMCall, exc: BaseException) -> None:
    with guard("litellm call fail"):
        call.fail(exc, _extract.error_attributes(exc))


def finish(call: LLMCall, result: Any, operation: str, is_async: bool) -> Any:
    """End ``call`` with what LiteLLM returned, or hand back a stream that ends it later. Never raises."""
    try:
        if operation == semconv.OP_EMBEDDINGS:
            call.stop(*_extract.embedding_result(result, call.capture))
            return result
        if _is_stream(result):
            _remember_call_id(result)
            state = StreamState(call, ChunkAccumulator(call.capture))
            return AsyncStreamProxy(result, state) if is_async else SyncStreamProxy(result, state)
        call.stop(*_extract.completion_result(result, call.capture))
    except Exception as exc:
        report_internal_error("litellm call finish", exc)
        LLMCall.stop_quietly(call, {}, None)
    return result


def _remember_call_id(stream: Any) -> None:
    """LiteLLM's own OpenTelemetry callback makes its span of a stream once the stream has ended, outside our call:
    its call id marks that span as this call again (:data:`carrot_ai._core._tracing.litellm_calls`)."""
    remember_litellm_call(getattr(getattr(stream, "logging_obj", None), "litellm_call_id", None))


def _is_stream(result: Any) -> bool:
    # Iteration methods are looked up on the type (as Python does): asking a response model for a missing
    # attribute goes through pydantic's __getattr__ and a raised AttributeError, microseconds each.
    kind = type(result)
    return kind.__name__ == "CustomStreamWrapper" or (
        hasattr(kind, "__next__") and hasattr(kind, "__anext__") and not hasattr(result, "choices")
    )


class Wrapper:
    """The wrapt wrapper of one LiteLLM function; ``options`` may be replaced while it is installed."""

    def __init__(self, function: str, operation: str, is_async: bool, options: CallOptions) -> None:
        self.function = function
        self.operation = operation
        self.is_async = is_async
        self.options = options
        self.active = True  # False: unpatched, but left below another instrumentation's wrapper (passes through)

    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self.is_async:
            return self._call_async(wrapped, args, kwargs)
        if not self.active:
            return wrapped(*args, **kwargs)
        if in_llm_call():
            routed = _Routed.here()
            if routed is None:
                return wrapped(*args, **kwargs)
            routed.attempt(args, kwargs)
            return routed.adopt(wrapped(*args, **kwargs))
        # kwargs is this call's own dict (wrapt made it): X-Carrot-Trace: metadata-only is taken out of it.
        metadata_only = pop_trace_header(kwargs)
        call = start_call(self.function, self.operation, args, kwargs, self.options, metadata_only)
        if call is None:
            return wrapped(*args, **kwargs)
        if self.operation == semconv.OP_CHAT and _falls_back(kwargs):
            return _run_routed(call, wrapped, args, kwargs, self.operation)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            fail_call(call, exc)
            raise
        finally:
            LLMCall.leave(call)
        return finish(call, result, self.operation, False)

    async def _call_async(self, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self.active:
            return await wrapped(*args, **kwargs)
        if in_llm_call():
            routed = _Routed.here()
            if routed is None:
                return await wrapped(*args, **kwargs)
            routed.attempt(args, kwargs)
            return routed.adopt(await wrapped(*args, **kwargs))
        metadata_only = pop_trace_header(kwargs)
        call = start_call(self.function, self.operation, args, kwargs, self.options, metadata_only)
        if call is None:
            return await wrapped(*args, **kwargs)
        if self.operation == semconv.OP_CHAT and _falls_back(kwargs):
            return await _run_routed_async(call, wrapped, args, kwargs, self.operation)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            fail_call(call, exc)
            raise
        finally:
            LLMCall.leave(call)
        return finish(call, result, self.operation, True)


class _Routed:
    """A Router call, or a completion with fallbacks, under way (current in :data:`_ROUTED` while it runs): its
    attempts are parts of it."""

    __slots__ = ("call", "is_async", "stream")

    def __init__(self, call: LLMCall, is_async: bool) -> None:
        self.call = call
        self.is_async = is_async  # the call's, which its caller reads a stream as (an attempt's may differ)
        self.stream: StreamState | None = None  # the last attempt's stream, held until the Router returns it

    @staticmethod
    def here() -> _Routed | None:
        """The Router call this LiteLLM call is an attempt of: the LLM call running here is a Router's."""
        routed = _ROUTED.get()
        if routed is None:
            return None
        span = routed.call.span
        return routed if current_context().get(LLM_CALL_KEY) is span and running_here(span) else None

    def attempt(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """An attempt starts: the record's model, provider and server become the ones it goes to. Never raises."""
        with guard("litellm router attempt"):
            arguments = _extract.call_arguments(args, kwargs, "messages")
            model, litellm_provider, api_base = _route(arguments)
            provider = _extract.provider_name(litellm_provider)
            self.call.span.set_attributes(_extract.route_attributes(model, provider, api_base))

    def adopt(self, result: Any) -> Any:
        """An attempt's result: a stream comes back proxied for the Router call, held until the Router returns it
        (the Router may still drop it for another attempt: :meth:`finish`). Never raises."""
        if not _is_stream(result):
            return result
        try:
            call = self.call
            _remember_call_id(result)
            state = StreamState(call, ChunkAccumulator(call.capture))
            state.hold()
            proxy = AsyncStreamProxy(result, state) if self.is_async else SyncStreamProxy(result, state)
            self.stream = state
            return proxy
        except Exception as exc:
            report_internal_error("litellm router stream", exc)
            return result

    def finish(self, result: Any, operation: str) -> Any:
        """End the call with what it returned (a stream: the Router's wrapping the attempt's, or the attempt's own
        proxy a completion with fallbacks hands back, when the attempt's stream ends)."""
        stream = self.stream
        proxied = isinstance(result, SyncStreamProxy | AsyncStreamProxy)
        if stream is not None and operation != semconv.OP_EMBEDDINGS and (proxied or _is_stream(result)):
            with guard("litellm router stream release"):
                stream.release()
                return result
        return finish(self.call, result, operation, self.is_async)


_ROUTED: ContextVar[_Routed | None] = ContextVar("carrot_ai.litellm.router_call", default=None)


def _falls_back(kwargs: dict[str, Any]) -> bool:
    """Whether LiteLLM tries other models for this completion if its model fails (``fallbacks=``, or
    ``litellm.model_fallbacks``): it then makes each try through ``litellm.acompletion``, an attempt of the call."""
    if kwargs.get("fallbacks"):
        return True
    import litellm

    return bool(getattr(litellm, "model_fallbacks", None))


def _run_routed(
    call: LLMCall, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], operation: str
) -> Any:
    """Make ``call`` (a Router's, or a completion with fallbacks), whose attempts are parts of it."""
    routed = _Routed(call, False)
    token = _ROUTED.set(routed)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        fail_call(call, exc)
        raise
    finally:
        _ROUTED.reset(token)
        LLMCall.leave(call)
    return routed.finish(result, operation)


async def _run_routed_async(
    call: LLMCall, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], operation: str
) -> Any:
    """:func:`_run_routed` of an async function."""
    routed = _Routed(call, True)
    token = _ROUTED.set(routed)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        fail_call(call, exc)
        raise
    finally:
        _ROUTED.reset(token)
        LLMCall.leave(call)
    return routed.finish(result, operation)


class RouterWrapper(Wrapper):
    """The wrapt wrapper of one ``litellm.Router`` method: one record for the call, however many attempts it makes.

    The record's input is the Router call's own arguments (the model group and the messages, as the application
    asked); its model and provider are those of the attempt that answered.
    """

    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self.is_async:
            return self._route_async(wrapped, args, kwargs)
        if not self.active or in_llm_call():
            return wrapped(*args, **kwargs)
        metadata_only = pop_trace_header(kwargs)
        call = start_call(self.function, self.operation, args, kwargs, self.options, metadata_only, routed=False)
        if call is None:
            return wrapped(*args, **kwargs)
        return _run_routed(call, wrapped, args, kwargs, self.operation)

    async def _route_async(self, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self.active or in_llm_call():
            return await wrapped(*args, **kwargs)
        metadata_only = pop_trace_header(kwargs)
        call = start_call(self.function, self.operation, args, kwargs, self.options, metadata_only, routed=False)
        if call is None:
            return await wrapped(*args, **kwargs)
        return await _run_routed_async(call, wrapped, args, kwargs, self.operation)
