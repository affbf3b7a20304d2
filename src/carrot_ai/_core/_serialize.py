"""Turn any Python value into JSON-safe data, without ever raising.

Rules (the decorator's and the wrappers' capture rules):

* ``None``, ``bool``, ``int``, ``str`` pass through (an int with more digits than the interpreter writes as text,
  4,300 by default, becomes ``"<int: N digits>"``); a ``float`` that JSON cannot carry (nan, inf) becomes its
  ``repr``; a string longer than ``max_string`` is cut, with a marker that gives the original length.
* ``dict`` keys become strings; ``list``, ``tuple``, ``set``, ``frozenset`` and other sequences become lists
  (at most ``max_items`` items, then a marker).
* pydantic models (``model_dump``), dataclasses, ``datetime``/``date``/``time`` (ISO 8601), ``UUID``, ``Decimal``,
  ``Enum`` (its value) and ``os.PathLike`` get their natural JSON form.
* ``bytes`` become a placeholder with their size, never the payload.
* A model call's request parameters (``request_body``: how the provider's SDK writes its request body) are recorded as
  the SDK sends them: a pydantic model (an earlier response's message, block or item passed back) as the SDK dumps it
  (only the fields that were set, :class:`RequestBody`), a mapping without its ``NotGiven`` / ``Omit`` entries (which
  the SDKs leave out).
* Any other object with public attributes in its ``__dict__`` (an instance of a class of your own, a
  ``SimpleNamespace``) becomes an object of those attributes, as carrot-ai 0.2.1 recorded it; classes, modules,
  functions and exceptions are not read that way.
* A container seen again inside itself becomes ``"<cyclic>"``; nesting deeper than ``max_depth`` becomes a
  ``"<max depth ...>"`` marker.
* Anything else (an object without public attributes too) becomes its ``repr`` (truncated); an object whose
  ``repr`` raises becomes ``"<unrepresentable T>"``.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import os
import sys
import types
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from carrot_ai._core._secret_keys import REDACTED, is_secret_key

CYCLIC = "<cyclic>"
DEFAULT_MAX_STRING = 100_000
DEFAULT_MAX_ITEMS = 10_000
DEFAULT_MAX_DEPTH = 32

_PRIMITIVES = (str, int, bool, type(None))
# Objects whose ``__dict__`` is not their data: a class's or a module's namespace, a function's attributes, an
# exception's (which may hold a whole HTTP response, request headers included).
_NOT_BY_ATTRIBUTES = (type, types.ModuleType, types.FunctionType, types.MethodType, BaseException)


def truncate_string(value: str, max_string: int) -> str:
    """Cut ``value`` to ``max_string`` characters, with a marker that keeps the original length."""
    if len(value) <= max_string:
        return value
    return cut_string(value, max_string, len(value))


def cut_string(value: str, keep: int, length: int) -> str:
    """The first ``keep`` characters of ``value`` and the truncation marker for an original of ``length``."""
    return f"{value[:keep]}...[truncated, {length} chars]"


class RequestBody:
    """How a provider SDK writes the pydantic models found in a request's parameters into the request body.

    Both SDKs send a model with ``model_dump(mode="json", exclude_unset=True, exclude=model.__api_exclude__)``: the
    fields that were set only (a response's block does not carry the optional fields its JSON lacked, such as
    ``caller`` or ``citations``), without those the SDK marks as never sent (``parsed_output``, ``parsed``).
    ``by_alias``: anthropic 2.x dumps by alias (``from``), openai's request transform does not (its default).
    """

    __slots__ = ("by_alias",)

    def __init__(self, by_alias: bool | None) -> None:
        self.by_alias = by_alias

    def dump(self, model: Any) -> Any:
        """``model`` as the SDK sends it; raises what ``model_dump`` raises."""
        exclude = getattr(model, "__api_exclude__", None)
        if self.by_alias is None:
            return model.model_dump(mode="json", exclude_unset=True, exclude=exclude, warnings=False)
        return model.model_dump(
            mode="json", exclude_unset=True, exclude=exclude, by_alias=self.by_alias, warnings=False
        )


def to_jsonable(
    value: Any,
    *,
    max_string: int = DEFAULT_MAX_STRING,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_depth: int = DEFAULT_MAX_DEPTH,
    mask_secrets: bool = False,
    request_body: RequestBody | None = None,
) -> Any:
    """Return a JSON-safe copy of ``value``; never raises. ``mask_secrets``: the value under a dict key (or a
    dataclass field) named like a secret is ``"[REDACTED]"``, at any depth (:func:`~._secret_keys.is_secret_key`).
    ``request_body``: ``value`` is a model call's request parameters, recorded as that SDK sends them (see the
    module's rules)."""
    try:
        kind = _Converter if request_body is None else _BodyConverter
        return kind(max_string, max_items, max_depth, mask_secrets, request_body).convert(value, 0)
    except Exception:
        return _safe_repr(value, max_string)


def is_sentinel(value: Any) -> bool:
    """Whether ``value`` is one of the SDKs' ``NotGiven`` / ``Omit`` sentinels (an argument not given; an entry the
    SDK leaves out of the request)."""
    return type(value).__name__ in _SENTINELS


_SENTINELS = frozenset({"NotGiven", "Omit"})
_JSON_TYPES = frozenset({str, int, float, bool, type(None), dict, list, tuple})


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _make_encoder() -> Any:
    """A compact, strict JSON encoder built once (``json.dumps`` with options builds a new one per call)."""
    from json import encoder

    make_encoder = getattr(encoder, "c_make_encoder", None)
    if make_encoder is None:  # no C accelerator (e.g. PyPy)
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    # No cycle markers: a cycle ends in RecursionError, which callers treat like any unencodable value.
    chunks = make_encoder(None, _refuse, encoder.encode_basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(chunks(value, 0))


fast_encode = _make_encoder()
# How the encoder writes a string (with its quotes; non-ASCII kept as is): the same function, called directly.
encode_string: Callable[[str], str] = json.encoder.encode_basestring


def loads(data: bytes) -> Any:
    """``json.loads(data)``, the same value or the same error. A UTF-8 JSON object (what the providers send, read on
    the export worker for every response body) goes to json's scanner directly, without the Python steps
    ``json.loads`` takes around it (encoding detection, the decoder's methods, two whitespace matches): ~1.3 µs less
    a body. Anything else, or an object followed by more than whitespace, takes ``json.loads`` itself."""
    if data[:1] == b"{" and data[1:2] != b"\x00":  # (a NUL second byte: UTF-16 or UTF-32, which json.loads detects)
        return loads_text(data.decode("utf-8", "surrogatepass"))  # (as json.loads decodes UTF-8)
    return json.loads(data)


def loads_text(text: str) -> Any:
    """``json.loads(text)`` for a ``str``, the same value or the same error: an object goes to json's scanner directly
    (:func:`loads`), anything else, or an object followed by more than whitespace, to ``json.loads`` itself. (The
    usage-only chunk of an OpenAI stream is decoded once a stream on the calling thread.)"""
    if text[:1] == "{":
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:  # the scanner's "no value here" (an object cut short): json.loads says where
            return json.loads(text)
        if end == len(text) or not text[end:].strip(" \t\n\r"):  # json's whitespace, not str.isspace()'s
            return value
    return json.loads(text)


# The scanner json.loads runs, shared the same way (every decoder has one; typeshed does not declare it): the value
# at an index, and where it ends.
_scan_once: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def dumps(value: Any) -> str:
    """Encode JSON-safe data compactly (non-ASCII kept as is); anything else is encoded as its ``str``."""
    try:
        text: str = fast_encode(value)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"), default=str)
    return text


# Ints below this write as text whatever the interpreter's digit limit (``sys.set_int_max_str_digits`` takes at
# least 640); larger ones are checked against the limit in force.
_SMALL_INT = 10**600


def _big_int(value: int) -> int | str:
    """Return ``value``, or ``"<int: N digits>"`` when it has more digits than ``str()`` may write."""
    limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)()
    if not limit or -_SMALL_INT < value < _SMALL_INT:
        return value
    magnitude = -value if value < 0 else value
    digits = int((magnitude.bit_length() - 1) * math.log10(2)) + 1  # exact, or one short
    if magnitude >= 10**digits:
        digits += 1
    if digits <= limit:
        return value
    return f"<int: {'-' if value < 0 else ''}{digits} digits>"


def _safe_repr(value: Any, max_string: int) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"
    if not isinstance(text, str):
        return f"<unrepresentable {type(value).__qualname__}>"
    return truncate_string(text, max_string)


class _Converter:
    __slots__ = ("max_string", "max_items", "max_depth", "mask", "active", "body")

    def __init__(
        self, max_string: int, max_items: int, max_depth: int, mask: bool = False, body: RequestBody | None = None
    ) -> None:
        self.max_string = max_string
        self.max_items = max_items
        self.max_depth = max_depth
        self.mask = mask  # secret-named keys' values masked, in the same walk
        self.active: set[int] = set()  # ids of the containers on the current path (cycle detection)
        self.body = body  # a request's parameters: written as the SDK sends them (with a _BodyConverter)

    def convert(self, value: Any, depth: int) -> Any:
        cls = type(value)
        if cls is str:
            return value if len(value) <= self.max_string else truncate_string(value, self.max_string)
        if cls is int:
            return value if -_SMALL_INT < value < _SMALL_INT else _big_int(value)
        if cls in _PRIMITIVES:
            return value
        if cls is float:
            return value if math.isfinite(value) else repr(value)
        if isinstance(value, str):  # str subclasses (StrEnum, ...)
            return truncate_string(str.__str__(value), self.max_string)
        if isinstance(value, bool | int) and not isinstance(value, enum.Enum):
            return _big_int(int(value)) if not isinstance(value, bool) else bool(value)
        if isinstance(value, float) and not isinstance(value, enum.Enum):
            return float(value) if math.isfinite(value) else repr(float(value))
        if depth >= self.max_depth:
            # Not the value's repr: a secret under a key this deep would be in it, where no key can be masked.
            return f"<max depth {self.max_depth}: {type(value).__qualname__}>"
        try:
            return self._object(value, depth)
        except Exception:
            # This value alone (an attribute that raises, a mapping whose items() fails) is its repr; the rest of
            # the data is converted, its secret-named keys masked, as usual.
            return _safe_repr(value, self.max_string)

    def _object(self, value: Any, depth: int) -> Any:
        if isinstance(value, Mapping):
            return self._container(value, depth, self.mapping)
        if isinstance(value, list | tuple | set | frozenset):
            return self._container(value, depth, self._sequence)
        if isinstance(value, bytes | bytearray | memoryview):
            return f"<bytes: {len(value)} bytes>"
        if isinstance(value, enum.Enum):
            return self.convert(value.value, depth + 1)
        if isinstance(value, datetime.datetime | datetime.date | datetime.time):
            return value.isoformat()
        if isinstance(value, uuid.UUID | decimal.Decimal):
            return str(value)
        if isinstance(value, os.PathLike):
            return os.fspath(value) if isinstance(os.fspath(value), str) else _safe_repr(value, self.max_string)
        model_dump = getattr(value, "model_dump", None)
        if callable(model_dump) and not isinstance(value, type):
            return self._container(value, depth, self._pydantic)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._container(value, depth, self._dataclass)
        if not isinstance(value, _NOT_BY_ATTRIBUTES) and isinstance(getattr(value, "__dict__", None), dict):
            return self._container(value, depth, self._attributes)
        return _safe_repr(value, self.max_string)

    def _container(self, value: Any, depth: int, convert: Any) -> Any:
        key = id(value)
        if key in self.active:
            return CYCLIC
        self.active.add(key)
        try:
            return convert(value, depth)
        finally:
            self.active.discard(key)

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for index, (k, v) in enumerate(value.items()):
            if index >= self.max_items:
                out["<truncated>"] = f"{len(value) - self.max_items} more items"
                break
            key = k if type(k) is str else _key(k)
            out[key] = REDACTED if self.mask and is_secret_key(key) else self.convert(v, depth + 1)
        return out

    # How a mapping is converted (a request's parameters: :class:`_BodyConverter`'s). Chosen by the class, so that
    # other values' mappings are not checked for sentinels item by item; not by a bound method kept on the instance,
    # which made every converter a reference cycle (converter, bound method, its set): garbage for the collector,
    # three objects a conversion (each @trace call's input and output, each request on the export worker), where
    # reference counting frees them as the conversion returns.
    mapping = _mapping

    def _sequence(self, value: Any, depth: int) -> list[Any]:
        items = value if isinstance(value, list | tuple) else _sorted_if_possible(value)
        fields = getattr(value, "_fields", None) if self.mask and type(value) is not tuple else None
        if type(fields) is tuple and any(map(is_secret_key, fields)):
            # A namedtuple (a database URL's): a list, as JSON writes a tuple, with its secret-named fields masked.
            secret = [is_secret_key(name) for name in fields]
            out = [
                REDACTED if index < len(secret) and secret[index] else self.convert(v, depth + 1)
                for index, v in enumerate(items[: self.max_items])
            ]
        else:
            out = [self.convert(v, depth + 1) for v in items[: self.max_items]]
        if len(items) > self.max_items:
            out.append(f"<truncated: {len(items) - self.max_items} more items>")
        return out

    def _pydantic(self, value: Any, depth: int) -> Any:
        if self.body is not None:
            try:
                return self.convert(self.body.dump(value), depth)
            except Exception:
                pass  # (not a pydantic model of the SDK's kind: dumped whole, as anywhere else)
        try:
            dumped = value.model_dump(mode="json", warnings=False)
        except Exception:
            try:
                dumped = value.model_dump()
            except Exception:
                return _safe_repr(value, self.max_string)
        return self.convert(dumped, depth)

    def _dataclass(self, value: Any, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in dataclasses.fields(value):
            name = field.name
            secret = self.mask and is_secret_key(name)
            out[name] = REDACTED if secret else self.convert(getattr(value, name, None), depth + 1)
        return out

    def _attributes(self, value: Any, depth: int) -> Any:
        out: dict[str, Any] = {}
        for name, item in list(value.__dict__.items()):
            if type(name) is not str or name.startswith("_"):
                continue
            if len(out) >= self.max_items:
                out["<truncated>"] = "more attributes"
                break
            out[name] = REDACTED if self.mask and is_secret_key(name) else self.convert(item, depth + 1)
        return out if out else _safe_repr(value, self.max_string)


class _BodyConverter(_Converter):
    """A model call's request parameters: ``NotGiven`` / ``Omit`` entries are left out, as the SDK sends them."""

    __slots__ = ()

    def mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        values = value.values()
        # (Decided at C speed for the usual mapping of strings, numbers, dicts and lists: no sentinel among them.)
        if not _JSON_TYPES.issuperset(map(type, values)) and any(map(is_sentinel, values)):
            value = {k: v for k, v in value.items() if not is_sentinel(v)}
        return self._mapping(value, depth)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, enum.Enum):
        return str(key.value)
    try:
        return str(key)
    except Exception:
        return f"<unrepresentable {type(key).__qualname__}>"


def _sorted_if_possible(value: Any) -> list[Any]:
    items = list(value)
    try:
        items.sort()
    except Exception:
        pass
    return items
