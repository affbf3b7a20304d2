"""What the provider adapters share: per-client options, the server a client talks to, binding to one instance."""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Callable, Collection, Sequence
from typing import Any

from carrot_ai._core._content import TRACE_HEADER
from carrot_ai._core._content import pop_trace_header as _pop_trace_header
from carrot_ai._core._llm import keep_body


class CallOptions:
    """What ``wrap(name=..., tags=...)`` / ``patch_litellm(...)`` add to every record of a client (and of clients
    derived from it)."""

    __slots__ = ("name", "tags")

    def __init__(self, name: str | None = None, tags: Sequence[str] = ()) -> None:
        self.name = name
        self.tags = tuple(tags)


DEFAULT_OPTIONS = CallOptions()

# wrapt's wrapper signature, plus the options: (wrapped, instance, args, kwargs, options) -> result
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any], CallOptions], Any]


def server_address(resource: Any) -> tuple[str, int] | None:
    """(host, port) of the API a resource's client talks to (``server.address`` / ``server.port``), cached."""
    client = getattr(resource, "_client", None)
    if client is None:
        return None
    cached: tuple[str, int] | None = client.__dict__.get("_carrot_server")
    if cached is None:
        url = client.base_url
        port = url.port or (443 if url.scheme == "https" else 80)
        cached = (str(url.host), int(port))
        client.__dict__["_carrot_server"] = cached
    return cached


def bind(
    wrapper: Wrapper, original: Callable[..., Any], instance: Any, options: CallOptions, *, is_async: bool
) -> Callable[..., Any]:
    """``original`` (a bound method of ``instance``) with ``wrapper`` around it: a method of ``instance`` as the
    original is (``__self__``, ``inspect.ismethod``, its signature), a coroutine function only where it is one (an
    async ``wrapper``'s coroutine is returned as is, as the SDKs' argument-checking decorator returns theirs)."""
    if is_async and inspect.iscoroutinefunction(original):

        async def async_method(_self: Any, /, *args: Any, **kwargs: Any) -> Any:
            return await wrapper(original, instance, args, kwargs, options)

        method: Any = async_method
    else:

        def sync_method(_self: Any, /, *args: Any, **kwargs: Any) -> Any:
            return wrapper(original, instance, args, kwargs, options)

        method = sync_method
    functools.update_wrapper(method, original)
    method._carrot_wrapped = True
    function = getattr(original, "__func__", None)
    if function is None:  # not a bound method (a function of the caller's set on the instance): no ``self`` to bind
        return functools.update_wrapper(functools.partial(method, instance), original)
    method.__wrapped__ = function  # the signature (with ``self``) that binding turns into the original's
    return types.MethodType(method, instance)


# --- the response body (openai and anthropic clients share the layout) --------------------------------------------
# Both SDKs' clients turn a successful HTTP response into what a call returns in ``_process_response(...,
# response=..., ...)``, called once per call (a stream's chunks do not pass through it). carrot hooks it to keep the
# response's body for the export worker (``LLMCall.take_body``), which then reads the record's output from those
# bytes rather than from the returned object, which the caller may change before export.


def hook_process_response(client: Any) -> None:
    """Hook ``client._process_response`` (an instance attribute over the class's method). Never raises.

    Not on a client with middleware (anthropic 2.x's ``middleware=``, fixed when the client is made): middleware may
    send a request more than once (each response goes through ``_process_response``) or change the result the caller
    gets, which is then read from the returned object instead.
    """
    try:
        original = getattr(client, "_process_response", None)
        if original is None or getattr(original, "_carrot_wrapped", False) or getattr(client, "_middleware", None):
            return
        if inspect.iscoroutinefunction(original):

            async def process_response_async(*args: Any, **kwargs: Any) -> Any:
                result = await original(*args, **kwargs)
                keep_body(kwargs.get("response"))
                return result

            hook: Any = process_response_async
        else:

            def process_response(*args: Any, **kwargs: Any) -> Any:
                result = original(*args, **kwargs)
                keep_body(kwargs.get("response"))
                return result

            hook = process_response
        hook._carrot_wrapped = True
        client.__dict__["_process_response"] = hook
    except Exception as exc:
        from carrot_ai._core._guard import report_internal_error

        report_internal_error("hook response processing", exc)


def process_response_sync(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """The instrumentors' wrapt wrapper of ``SyncAPIClient._process_response`` (see :func:`hook_process_response`:
    not for a client with middleware)."""
    result = wrapped(*args, **kwargs)
    if not getattr(instance, "_middleware", None):
        keep_body(kwargs.get("response"))
    return result


async def process_response_async(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    """The instrumentors' wrapt wrapper of ``AsyncAPIClient._process_response``."""
    result = await wrapped(*args, **kwargs)
    if not getattr(instance, "_middleware", None):
        keep_body(kwargs.get("response"))
    return result


BODY_HOOKS = frozenset({process_response_sync, process_response_async})


def body_hook_targets(package: str) -> list[tuple[str, str, str, Any]]:
    """The instrumentors' patches of ``package``'s clients' response processing (openai and anthropic)."""
    import importlib

    module_name = f"{package}._base_client"
    try:
        base: Any = importlib.import_module(module_name)
    except ImportError:
        return []
    found = []
    for class_name, hook in (("SyncAPIClient", process_response_sync), ("AsyncAPIClient", process_response_async)):
        if callable(getattr(getattr(base, class_name, None), "_process_response", None)):
            found.append((module_name, class_name, "_process_response", hook))
    return found


def given(value: Any) -> bool:
    """Whether a keyword argument was passed: not None, and not one of the SDKs' ``NotGiven`` / ``Omit`` sentinels."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def plain(value: Any) -> Any:
    """``value`` (an SDK model, a decoded stream event's view, a dict or list of them) as the plain data of its JSON.

    A model gives only the fields the payload had (``exclude_unset``): the SDK builds its models from the JSON, so a
    record made from the objects equals one made from the body or from a stream's events (where an optional field
    the API left out is absent, never ``None``). Used for values recorded as they came (a server tool's input and
    result), whose shape carrot does not know."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json", exclude_unset=True, warnings=False)
        except Exception:
            return value  # recorded by the serializer's own rules
    return value


def fields(value: Any) -> dict[str, Any]:
    """The top-level fields of a payload object (model, view or dict) as plain data, without those set to None."""
    data = plain(value)
    if not isinstance(data, dict):
        return {}
    return {key: item for key, item in data.items() if item is not None}


def materialize_iterables(kwargs: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Turn one-shot iterables among ``kwargs[keys]`` into lists, once, so the SDK still receives all of it.

    Returns ``kwargs`` itself when nothing needed it (the common case), else a copy.
    """
    if _SCALARS_AND_CONTAINERS.issuperset(map(type, kwargs.values())):
        return kwargs  # the common case, decided at C speed: nothing is a one-shot iterable
    copied: dict[str, Any] | None = None
    for key in keys:
        value = kwargs.get(key)
        if value is None or type(value) in _PLAIN or isinstance(value, list | tuple | str | dict | bytes):
            continue
        if not given(value) or not hasattr(value, "__iter__"):
            continue
        if copied is None:
            copied = dict(kwargs)
        copied[key] = list(value)  # the user's own iterator error propagates, as it would from the SDK
    return kwargs if copied is None else copied


_PLAIN = frozenset({list, tuple, str, dict, bytes})
_SCALARS_AND_CONTAINERS = _PLAIN | {type(None), bool, int, float}

Target = tuple[str, str, str, Any]  # (module, class, method, wrapper)


def patch_targets(targets: Sequence[Target]) -> None:
    """Install each wrapper on its class with wrapt; one that fails is reported and the others still go in.

    Each patch has an on/off switch (wrapt's ``enabled``, a C call per call): :func:`unpatch_targets` cannot take a
    wrapper out from under another instrumentation's (that one holds it), so it switches it off there, and patching
    again switches it back on instead of stacking a second one.
    """
    import importlib

    import wrapt

    from carrot_ai._core._guard import report_internal_error

    for module_name, class_name, method, wrapper in targets:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
            switch = _switch(cls.__dict__.get(method), (wrapper,))
            if switch is not None:
                switch[:] = [True]
                continue
            switch = [True]
            wrapt.wrap_object(cls, method, wrapt.FunctionWrapper, (wrapper,), {"enabled": switch.__len__})
        except Exception as exc:
            report_internal_error(f"instrument {module_name}.{class_name}.{method}", exc)


def unpatch_targets(targets: Sequence[Target], ours: Collection[Any]) -> None:
    """Remove exactly our wrappers (``ours``) from the targets, leaving any other instrumentation's in place; one
    below another instrumentation's wrapper stays in that chain, switched off (it passes calls straight through)."""
    import importlib

    for module_name, class_name, method, _ in targets:
        cls = getattr(importlib.import_module(module_name), class_name)
        patched = cls.__dict__.get(method)
        switch = _switch(patched, ours)
        if switch is not None:
            switch.clear()
        # wrapt's C FunctionWrapper is not a `wrapt.ObjectProxy` subclass in wrapt 2: look for ours by marker.
        if patched is not None and _is_ours(getattr(patched, "_self_wrapper", None), ours):
            setattr(cls, method, patched.__wrapped__)


def _is_ours(wrapper: Any, ours: Collection[Any]) -> bool:
    return any(wrapper is mine for mine in ours)  # (by identity: another's wrapper may be unhashable)


def _switch(function: Any, ours: Collection[Any]) -> list[bool] | None:
    """The on/off switch of our patch in ``function``'s chain of wrappers, or None when none of ``ours`` is there."""
    link = wrapper_in_chain(function, lambda wrapper: _is_ours(wrapper, ours))
    switch = getattr(getattr(link, "_self_enabled", None), "__self__", None)
    return switch if isinstance(switch, list) else None


def wrapper_in_chain(function: Any, is_ours: Callable[[Any], bool]) -> Any:
    """The wrapt wrapper in ``function``'s chain of wrappers (``__wrapped__``, through other instrumentations') whose
    wrapper function ``is_ours``, or None. Ours may sit below another instrumentation's, which holds it."""
    for _ in range(32):
        if function is None:
            return None
        if is_ours(getattr(function, "_self_wrapper", None)):
            return function
        function = getattr(function, "__wrapped__", None)
    return None


OPTIONS_KEY = "_carrot_wrap_options"


def resolve(client: Any, path: Sequence[str]) -> Any:
    """``client.a.b`` for ``path`` ``("a", "b")``, or None where an attribute is missing (older SDKs)."""
    resource: Any = client
    for attribute in path:
        resource = getattr(resource, attribute, None)
        if resource is None:
            return None
    return resource


def wrap_derived_clients(client: Any, options: CallOptions, wrap: Callable[[Any, CallOptions], None]) -> None:
    """Make ``client.copy()`` / ``client.with_options()`` return clients wrapped the same way (with ``wrap``)."""
    from carrot_ai._core._guard import guard

    copy = getattr(client, "copy", None)
    if not callable(copy):
        return

    def copy_wrapped(*args: Any, **kwargs: Any) -> Any:
        derived = copy(*args, **kwargs)
        with guard("wrap derived client"):
            if derived is not client and OPTIONS_KEY not in derived.__dict__:
                wrap(derived, options)
        return derived

    functools.update_wrapper(copy_wrapped, copy)  # the SDK method's name, docstring and signature
    client.__dict__["copy"] = copy_wrapped
    client.__dict__["with_options"] = copy_wrapped


def prepare_kwargs(
    kwargs: dict[str, Any], iterable_keys: Sequence[str], instance: Any = None
) -> tuple[dict[str, Any], bool]:
    """At the start of a call: strip our ``X-Carrot-Trace`` header (True: metadata only) and materialise one-shot
    iterables among ``iterable_keys``. ``kwargs`` is the call's own dict; the user's own iterator errors propagate.
    ``instance``: the SDK resource called (its client's default headers are looked at for a metadata-only call)."""
    metadata_only = _pop_trace_header(kwargs) if "extra_headers" in kwargs else False  # never raises
    if metadata_only and instance is not None:
        _omit_client_trace_header(kwargs, instance)
    return materialize_iterables(kwargs, iterable_keys), metadata_only


def _omit_client_trace_header(kwargs: dict[str, Any], instance: Any) -> None:
    """A metadata-only call on a client whose default headers carry ``X-Carrot-Trace`` (the Carrot inference API's
    ``true``, which makes it keep the whole call): with the per-call header gone, the client's default would be sent
    and the call's content kept after all. The call is sent without it (the SDK's ``Omit``, which both SDKs' header
    merge drops): the caller asked for this call's content not to be kept. Only on that rare path; never raises."""
    try:
        client = getattr(instance, "_client", None)
        defaults = getattr(client, "_custom_headers", None)
        if not defaults or not hasattr(defaults, "keys"):
            return
        names = [name for name in defaults if isinstance(name, str) and name.lower() == TRACE_HEADER]
        if not names:
            return
        package = sys.modules.get(type(client).__module__.split(".", 1)[0] + "._types")
        omit = getattr(package, "Omit", None)
        if omit is None:
            return
        headers = dict(kwargs.get("extra_headers") or {})
        for name in names:  # (spelled as the client's defaults spell it: the SDKs merge header dicts by exact key)
            headers[name] = omit()
        kwargs["extra_headers"] = headers
    except Exception as exc:
        from carrot_ai._core._guard import report_internal_error

        report_internal_error("trace header", exc)


SdkTypes = tuple[type[Any], type[Any], tuple[type[Any], ...]]
_sdk_types: dict[str, SdkTypes] = {}


def sdk_types(package: str) -> SdkTypes:
    """An SDK's ``Stream`` and ``AsyncStream`` classes and its raw-response classes (``openai`` and ``anthropic``
    share the layout). Imported when first needed (the SDKs are optional), then remembered."""
    known = _sdk_types.get(package)
    if known is not None:
        return known
    import importlib

    module = importlib.import_module(package)
    raw: list[type[Any]] = []
    # `_legacy_response.LegacyAPIResponse`: what `with_raw_response` returns.
    for module_name, class_name in (("_response", "BaseAPIResponse"), ("_legacy_response", "LegacyAPIResponse")):
        try:
            raw.append(getattr(importlib.import_module(f"{package}.{module_name}"), class_name))
        except (ImportError, AttributeError):
            continue
    known = _sdk_types[package] = (module.Stream, module.AsyncStream, tuple(raw))
    return known
