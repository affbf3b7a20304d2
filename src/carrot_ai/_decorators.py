"""``@carrot_ai.trace``: a function, coroutine function, generator or async generator becomes a parent span.

Capture rules:

* **input**: the call's arguments bound to the signature, by parameter name, defaults included. A method's
  ``self`` / ``cls`` (first positional parameter of that name) is never captured; ``*args`` is a list under its
  own name and ``**kwargs`` entries are merged into the input by key. Arguments named like secrets
  (``password``, ``token``, ``api_key``, ``secret``, ``authorization``, ``cookie``, ...) are ``"[REDACTED]"``, and
  so is the value under a key so named at any depth of the input and output (:mod:`carrot_ai._core._secret_keys`).
* **output**: the return value; a dict is the output as is, anything else is ``{"result": value}``. A generator's
  output is ``{"result": [yielded items]}`` (at most 1,000 items, then a count), plus ``"return_value"`` when it
  returns one.
* **errors**: status error, ``{"error": message, "error_type": type name}``; the exception is re-raised
  unchanged. Closing a generator early is not an error.
* Values go through the content policy (JSON-safe, truncated, redacted, or left out when content is off); the
  decision to capture is taken once, when the call starts (a generator consumed later obeys it too).

Tools (``@tool`` / ``@trace(kind="tool")``): a GenAI ``execute_tool`` span whose arguments and result are also
recorded as ``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result``. The tool call id
(``gen_ai.tool.call.id``, ``metadata.tool_call_id``) is the argument of a parameter named ``tool_call_id`` when the
function has one, else the id given by an enclosing ``carrot_ai.tool_call_id(...)`` block.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar, overload

from opentelemetry.util.types import AttributeValue

from carrot_ai import _setup, semconv
from carrot_ai._context import pending_tool_call_id, scope_attributes
from carrot_ai._core import _content
from carrot_ai._core._guard import guard, report_internal_error
from carrot_ai._core._secret_keys import REDACTED, is_secret_key, is_secret_name
from carrot_ai._core._serialize import dumps
from carrot_ai._core._tags import checked_tags
from carrot_ai._core._tracing import SpanCall

F = TypeVar("F", bound=Callable[..., Any])

_PLAIN_TYPES = frozenset({str, int, float, bool, list, tuple})
MAX_GENERATOR_ITEMS = 1_000
_KINDS = ("function", "tool")
_CALL_ID_PARAMETER = "tool_call_id"


@overload
def trace(fn: F) -> F: ...


@overload
def trace(
    name: str | None = None,
    /,
    *,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    kind: str = "function",
) -> Callable[[F], F]: ...


@overload
def trace(
    *,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    kind: str = "function",
) -> Callable[[F], F]: ...


def trace(
    fn: Any = None,
    *,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    kind: str = "function",
) -> Any:
    """Trace a function as a parent span; wrapped LLM calls inside it become its children.

    Forms: ``@trace``, ``@trace("name")``, ``@trace(name=..., tags=[...], metadata={...})``, and ``trace(fn=f)`` as
    carrot-ai 0.2 allowed. ``kind="tool"`` records a tool execution (a GenAI ``execute_tool`` span); see also
    :func:`tool`.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    tags = checked_tags(tags, ValueError)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError("metadata must be a mapping")
    if isinstance(fn, str):
        name, fn = fn, None
    options = _Options(name, tuple(tags) if tags else (), dict(metadata) if metadata else None, kind)
    if fn is None:
        return lambda func: _decorate(func, options)
    return _decorate(fn, options)


def tool(fn: Any = None, *, name: str | None = None, **kwargs: Any) -> Any:
    """Trace a tool execution: ``@tool`` is ``@trace(kind="tool")``."""
    if fn is not None:
        return trace(name=name, kind="tool", **kwargs)(fn)
    return trace(name=name, kind="tool", **kwargs)


class _Options:
    __slots__ = ("name", "tags", "metadata", "kind")

    def __init__(self, name: str | None, tags: tuple[str, ...], metadata: dict[str, Any] | None, kind: str) -> None:
        self.name = name
        self.tags = tags
        self.metadata = metadata
        self.kind = kind


def _decorate(fn: Any, options: _Options) -> Any:
    if isinstance(fn, staticmethod):
        return staticmethod(_decorate(fn.__func__, options))
    if isinstance(fn, classmethod):
        return classmethod(_decorate(fn.__func__, options))
    if not callable(fn):
        raise TypeError(f"@carrot_ai.trace needs a function, not {type(fn).__name__}")
    traced = _TracedFunction(fn, options)
    # A callable object's kind is its __call__'s (inspect looks at functions, methods and partials only).
    kind = fn if inspect.isroutine(fn) or isinstance(fn, type | functools.partial) else type(fn).__call__
    if inspect.isasyncgenfunction(kind):
        wrapper: Any = _async_generator_wrapper(fn, traced)
    elif inspect.iscoroutinefunction(kind):
        wrapper = _coroutine_wrapper(fn, traced)
    elif inspect.isgeneratorfunction(kind):
        wrapper = _generator_wrapper(fn, traced)
    else:
        wrapper = _function_wrapper(fn, traced)
    return wrapper


class _TracedFunction:
    """What is fixed per decorated function: its name, signature and static attributes."""

    __slots__ = (
        "fn",
        "name",
        "options",
        "signature",
        "skip_first",
        "static_attributes",
        "simple",
        "simple_names",
        "call_id_index",
    )

    def __init__(self, fn: Callable[..., Any], options: _Options) -> None:
        self.fn = fn
        self.options = options
        self.name: str = str(options.name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "function"))
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None
        params = list(self.signature.parameters.values()) if self.signature else []
        self.skip_first = bool(
            params
            and params[0].name in ("self", "cls")
            and params[0].kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        )
        # A signature without *args / **kwargs / positional-only parameters binds without inspect (it is hot).
        self.simple: tuple[tuple[str, Any, bool], ...] | None = None
        self.simple_names: frozenset[str] = frozenset()
        if self.signature is not None and all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params):
            self.simple = tuple((p.name, p.default, is_secret_name(p.name)) for p in params)
            self.simple_names = frozenset(p.name for p in params)
        attributes: dict[str, AttributeValue] = {
            semconv.CARROT_KIND: options.kind,
            semconv.CARROT_NAME: self.name,
            semconv.CARROT_SOURCE: "decorator",
        }
        self.call_id_index: int | None = None
        if options.kind == "tool":
            attributes[semconv.GEN_AI_OPERATION_NAME] = semconv.OP_EXECUTE_TOOL
            attributes[semconv.GEN_AI_TOOL_NAME] = self.name
            attributes[semconv.GEN_AI_TOOL_TYPE] = "function"
            for index, param in enumerate(params):
                if param.name == _CALL_ID_PARAMETER and param.kind is not inspect.Parameter.VAR_KEYWORD:
                    self.call_id_index = index if param.kind is not inspect.Parameter.KEYWORD_ONLY else -1
        self.static_attributes = attributes

    def tool_call_id(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The tool call id of one call: its ``tool_call_id`` argument, else an enclosing ``tool_call_id()`` block."""
        value = kwargs.get(_CALL_ID_PARAMETER)
        index = self.call_id_index
        if value is None and index is not None and 0 <= index < len(args):
            value = args[index]
        if isinstance(value, str) and value:
            return value
        return pending_tool_call_id()

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanCall | None:
        """Start the span for one call, or return None when tracing is off; never raises."""
        try:
            if not _setup.ensure_started():
                return None
            attributes = dict(self.static_attributes)
            scope_attributes(attributes, self.options.tags, self.options.metadata)
            tool = self.options.kind == "tool"
            if tool:
                call_id = self.tool_call_id(args, kwargs)
                if call_id is not None:
                    attributes[semconv.GEN_AI_TOOL_CALL_ID] = call_id
            if _content.capture_enabled():
                captured_input = _content.prepare_json(self.bind(args, kwargs), mask_secrets=True)
                attributes[semconv.CARROT_INPUT] = captured_input
                if tool:
                    attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = captured_input
            else:
                attributes[semconv.CARROT_CONTENT_CAPTURED] = False
            span_name = f"{semconv.OP_EXECUTE_TOOL} {self.name}" if self.options.kind == "tool" else self.name
            call = SpanCall(semconv.SCOPE_DECORATOR, span_name, attributes)
            call.activate()
            return call
        except Exception as exc:
            report_internal_error("@trace start", exc)
            return None

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Return the call's arguments by parameter name (see the module's capture rules)."""
        simple = self.simple
        if simple is not None and len(args) <= len(simple) and self.simple_names.issuperset(kwargs):
            captured: dict[str, Any] = {}
            count = len(args)
            for index, (name, default, secret) in enumerate(simple):
                if index < count:
                    if name in kwargs:
                        break  # given twice: the call fails; let inspect describe it
                    value = args[index]
                elif name in kwargs:
                    value = kwargs[name]
                elif default is not inspect.Parameter.empty:
                    value = default
                else:
                    break  # missing: the call fails; let inspect describe it
                if index or not self.skip_first:
                    captured[name] = REDACTED if secret else value
            else:
                return captured
        return self._bind_slow(args, kwargs)

    def _bind_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.signature is None:
            return self._bind_failed(args, kwargs)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return self._bind_failed(args, kwargs)
        bound.apply_defaults()
        captured = {}
        for index, (key, value) in enumerate(bound.arguments.items()):
            if index == 0 and self.skip_first:
                continue
            kind = self.signature.parameters[key].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                for k, v in value.items():
                    captured[k] = REDACTED if is_secret_key(k) else v
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                captured[key] = list(value)
            else:
                captured[key] = REDACTED if is_secret_key(key) else value
        return captured

    def _bind_failed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments of a call that does not bind (it is about to fail), under the same rules as far as they go.

        Positional arguments are named after the positional parameters they fill (``self`` / ``cls`` left out),
        the rest go to ``"args"``; every value whose name says it is a secret is ``"[REDACTED]"``.
        """
        positional = [
            p.name
            for p in (self.signature.parameters.values() if self.signature is not None else ())
            if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        captured: dict[str, Any] = {}
        extra: list[Any] = []
        for index, value in enumerate(args):
            if index < len(positional):
                if index or not self.skip_first:
                    name = positional[index]
                    captured[name] = REDACTED if is_secret_key(name) else value
            else:
                extra.append(value)
        if extra:
            captured["args"] = extra
        for key, value in kwargs.items():
            if not (self.skip_first and key == positional[0]):
                captured[key] = REDACTED if is_secret_key(key) else value
        return captured


def _captures(call: SpanCall | None) -> bool:
    """Whether the call captures content: decided when it started (``carrot.content_captured`` is set if not)."""
    if call is None:
        return False
    attributes = getattr(call.span, "attributes", None) or {}
    return attributes.get(semconv.CARROT_CONTENT_CAPTURED) is not False


def _output_attributes(call: SpanCall, value: Any, prepared: bool = False) -> dict[str, AttributeValue]:
    if not _captures(call):
        return {}
    tool = (getattr(call.span, "attributes", None) or {}).get(semconv.CARROT_KIND) == "tool"
    if not prepared and not tool:
        if type(value) is dict:
            return {semconv.CARROT_OUTPUT: _content.prepare_json(value, mask_secrets=True)}
        if value is None or type(value) in _PLAIN_TYPES:
            return {semconv.CARROT_OUTPUT: _content.prepare_json({"result": value}, mask_secrets=True)}
    # A model that becomes a dict is the output as is.
    data = value if prepared else _content.prepare(value, mask_secrets=True)
    output = data if isinstance(data, dict) else {"result": data}
    attributes: dict[str, AttributeValue] = {semconv.CARROT_OUTPUT: dumps(output)}
    if tool:
        attributes[semconv.GEN_AI_TOOL_CALL_RESULT] = dumps(data)
    return attributes


def _stop(call: SpanCall | None, value: Any, prepared: bool = False) -> None:
    if call is None:
        return
    failure: Exception | None = None
    attributes: dict[str, AttributeValue] = {}
    try:
        call.deactivate()
        attributes = _output_attributes(call, value, prepared)
    except Exception as exc:
        failure = exc  # the span still ends, without its output: an unended span would never be exported
    with guard("@trace stop"):
        call.stop(attributes)
    if failure is not None:
        report_internal_error("@trace output", failure)


def _fail(call: SpanCall | None, exc: BaseException) -> None:
    if call is None:
        return
    with guard("@trace fail"):
        call.deactivate()
        attributes: dict[str, AttributeValue] = {}
        if isinstance(exc, _cancelled_types()):
            attributes[semconv.CARROT_CANCELLED] = True
        call.fail(exc, attributes)


@functools.cache
def _cancelled_types() -> tuple[type[BaseException], ...]:
    import asyncio
    import concurrent.futures

    return (asyncio.CancelledError, concurrent.futures.CancelledError)


def _function_wrapper(fn: Callable[..., Any], traced: _TracedFunction) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = traced.start(args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _fail(call, exc)
            raise
        _stop(call, result)
        return result

    return wrapper


def _coroutine_wrapper(fn: Callable[..., Any], traced: _TracedFunction) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = traced.start(args, kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _fail(call, exc)
            raise
        _stop(call, result)
        return result

    return wrapper


class _Collected:
    """The items a traced generator yielded (bounded)."""

    __slots__ = ("items", "count", "capture")

    def __init__(self, call: SpanCall | None) -> None:
        self.items: list[Any] = []
        self.count = 0
        self.capture = _captures(call)

    def add(self, item: Any) -> None:
        self.count += 1
        if self.count <= MAX_GENERATOR_ITEMS and self.capture:
            with guard("@trace generator item"):
                self.items.append(_content.prepare(item, mask_secrets=True))

    def output(self, return_value: Any) -> dict[str, Any]:
        result: list[Any] = list(self.items)
        if self.count > MAX_GENERATOR_ITEMS:
            result.append(f"<truncated: {self.count - MAX_GENERATOR_ITEMS} more items>")
        output: dict[str, Any] = {"result": result}
        if return_value is not None and self.capture:
            output["return_value"] = _content.prepare(return_value, mask_secrets=True)
        return output


def _generator_wrapper(fn: Callable[..., Any], traced: _TracedFunction) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        call = traced.start(args, kwargs)
        if call is not None:
            call.deactivate()  # active only while the generator's own code runs
        collected = _Collected(call)
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            gen = fn(*args, **kwargs)  # (arguments that do not bind fail here: the span ends with the error)
            while True:
                _activate(call)
                try:
                    item = gen.throw(to_throw) if to_throw is not None else gen.send(to_send)
                finally:
                    _deactivate(call)
                to_throw = None
                collected.add(item)
                try:
                    to_send = yield item
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as exc:  # thrown in by the caller: pass it on to the generator
                    to_throw = exc
        except StopIteration as stop:
            _stop(call, collected.output(stop.value), prepared=True)
            return stop.value
        except GeneratorExit:
            _stop(call, collected.output(None), prepared=True)
            raise
        except BaseException as exc:
            _fail(call, exc)
            raise

    return wrapper


def _async_generator_wrapper(fn: Callable[..., Any], traced: _TracedFunction) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        call = traced.start(args, kwargs)
        if call is not None:
            call.deactivate()
        collected = _Collected(call)
        try:
            agen = fn(*args, **kwargs)
            step = _first_step(agen)
            while True:
                _activate(call)
                try:
                    item = await step
                finally:
                    _deactivate(call)
                collected.add(item)
                try:
                    to_send = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as exc:
                    step = agen.athrow(exc)
                else:
                    step = agen.asend(to_send)
        except StopAsyncIteration:
            _stop(call, collected.output(None), prepared=True)
        except GeneratorExit:
            _stop(call, collected.output(None), prepared=True)
            raise
        except BaseException as exc:
            _fail(call, exc)
            raise

    return wrapper


def _first_step(agen: Any) -> Any:
    """``agen.asend(None)``, made with the event loop's ``firstiter`` hook off: the traced function's own async
    generator stays out of the loop's list of open ones (its finalizer stays), and the wrapper, which is listed, closes
    it. ``asyncio.run()`` and ``loop.shutdown_asyncgens()`` close every listed generator at once: a listed one whose
    cleanup awaits was found running by the other's ``aclose()`` ("asynchronous generator is already running")."""
    hooks = sys.get_asyncgen_hooks()
    if hooks.firstiter is None:
        return agen.asend(None)
    sys.set_asyncgen_hooks(firstiter=None, finalizer=hooks.finalizer)
    try:
        return agen.asend(None)  # (making the first awaitable is what sets a generator's hooks)
    finally:
        sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=hooks.finalizer)


def _activate(call: SpanCall | None) -> None:
    if call is not None:
        with guard("@trace activate"):
            call.activate()


def _deactivate(call: SpanCall | None) -> None:
    if call is not None:
        call.deactivate()
