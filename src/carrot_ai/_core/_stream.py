"""One stream proxy base for every provider, sync and async.

The proxy (a ``wrapt.ObjectProxy``) hands the caller the SDK's own chunks, in order, unchanged; ``isinstance``,
attributes such as ``.response``, helper methods and context-manager use behave as on the original. The
provider's :class:`StreamAccumulator` sees each chunk (and may hide a chunk that only exists because we asked
for it, such as OpenAI's usage-only chunk when the caller did not request usage): as the caller reads it, or, on
a fast span, from what an :class:`EventTap` kept, on the export worker. The call's span ends exactly once, on
whichever exit comes first: exhaustion, an error, ``close()`` / ``aclose()`` / ``__exit__``, or garbage
collection of an abandoned stream. Partial output and usage are kept on every path.
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import json
import opcode
import operator
import os
import re
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

import wrapt
from opentelemetry.util.types import AttributeValue

from carrot_ai._core._guard import guard, report_internal_error
from carrot_ai._core._llm import LLMCall, is_cancellation


class StreamAccumulator(Protocol):
    """A provider's pure view of a stream: fold chunks in, produce the response attributes and output."""

    def process(self, chunk: Any) -> bool:
        """Fold one chunk in; return False to hide it from the caller (only for chunks we caused)."""
        ...

    def result(self) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
        """The response attributes and the record's ``output`` from what was seen so far."""
        ...


# What a tapped stream's bytes, joined into one ``bytes`` for the queue, hold besides their length.
TEXT_BYTES = 64


def _report_chunk_error(exc: Exception) -> None:
    report_internal_error("stream chunk", exc)


class StreamState:
    """The span side of a stream: accumulates and finalizes exactly once."""

    __slots__ = (
        "call",
        "accumulator",
        "done",
        "tapped",
        "ended",
        "pulled",
        "counters",
        "_texts",
        "_process",
        "_first",
        "_inline",
        "_tap",
    )

    def __init__(self, call: LLMCall, accumulator: StreamAccumulator) -> None:
        self.call = call
        self.accumulator = accumulator
        self.done = False
        self.tapped = False
        #: A tapped stream's reading: whether the caller read it to its end, and how many items it was handed
        #: (``pulled`` one by one, plus what each loop's counter counted at C speed: :func:`_iterate`).
        self.ended = False
        self.pulled = 0
        self.counters: list[itertools.count[int]] = []
        self._texts: list[Any] = []  # a tapped stream's bytes, as read
        self._tap: EventTap | None = None
        self._process = accumulator.process  # bound once: this runs for every chunk
        self._first = True
        # The proxies inline chunk() for every chunk after the first, unless a subclass overrides it.
        self._inline = type(self).chunk is StreamState.chunk

    def tap(
        self, stream: Any, divert: Callable[[str], bool] | None = None, hints: tuple[str, str, str] | None = None
    ) -> bool:
        """Keep the bytes ``stream``'s SDK reads (an :class:`EventTap` at its decoder), if it can (the SDK's own SSE
        decoder, which the export worker reads like) and the call's span is carrot's alone (a fast span: nobody reads
        it before it ends); True when it did. ``divert`` and ``hints``: see :class:`EventTap`.

        The chunks the caller gets are then not looked at, only counted: the accumulator folds in the events of those
        the caller was handed when the stream ends, on the export worker while its queue has room
        (:meth:`LLMCall.stop_later`), else on the calling thread, so nothing of carrot runs per chunk on the caller's
        thread but the divert's test. Never raises.
        """
        if not self.call.fast or (tap := install_tap(stream, self._texts, divert, hints)) is None:
            return False
        self._tap = tap
        self.tapped = True
        return True

    def first_handed(self) -> None:
        """The stream's first item is in the caller's hands: its time to first chunk (for a tapped stream too: not at
        the first bytes read, which may hold no event yet, e.g. a proxy's keep-alive comment). Never raises."""
        self._first = False
        try:
            self.call.mark_first_chunk()
        except Exception as exc:
            report_internal_error("stream first chunk", exc)

    def mark_done(self) -> bool:
        """Mark the stream's call as ended here (a subclass ending it its own way); False if it already was."""
        if self.done:
            return False
        self.done = True
        _OPEN.pop(id(self), None)
        return True

    def hold(self) -> None:
        """Leave the call alone until :meth:`release`: chunks pass unseen and no exit of the stream ends it (a stream
        the caller may never get, such as a router's attempt the router may still discard for another)."""
        self.mark_done()

    def release(self) -> None:
        """Undo :meth:`hold`: the stream now ends the call (when it was not ended meanwhile)."""
        if self.done and not self.call.span.ended:
            self.done = False
            _OPEN[id(self)] = self

    def handed(self) -> int:
        """How many items the caller was handed of a tapped stream so far."""
        return self.pulled + sum(map(_counted, self.counters))

    @staticmethod
    def sdk_texts(events: list[tuple[str | None, str]]) -> list[str]:
        """The data of the events of a stream (:func:`sse_events`) its SDK made an item of, in order, up to where it
        stops reading. By default every event makes one; a provider's state says how its SDK reads its streams."""
        return [data for _, data in events]

    def _later(self) -> tuple[Callable[[], tuple[dict[str, AttributeValue], dict[str, Any] | None]], int]:
        """A tapped stream's result as a function of what was read so far, and the bytes it holds.

        The bytes its SDK read (:meth:`EventTap.iter_bytes`), joined into one ``bytes`` (a body read at once is that
        read itself), are decoded on the export worker; when the caller did not read the stream to its end, only the
        events of the items it was handed are folded in (the last read may hold more), and those the tap took away
        from the SDK before then (openai's usage-only event: the accumulator folds it in, and hides it)."""
        texts = self._texts
        raw = b"".join(texts)
        texts.clear()  # bytes read after the end (a stream read on) are not this call's to fold in
        if self.ended:
            limit = None
        else:
            limit = self.handed() + (self._tap.diverted if self._tap is not None else 0)
        return _Fold(self.accumulator, raw, self.sdk_texts, limit), TEXT_BYTES + len(raw)

    def chunk(self, chunk: Any) -> bool:
        """Process one chunk; return whether the caller should see it. Never raises."""
        if self.done or self.tapped:
            return True
        if self._first:
            self.first_handed()
        try:
            return self._process(chunk) is not False
        except Exception as exc:
            _report_chunk_error(exc)
            return True

    def finish(self) -> None:
        """End the span as a success with what was accumulated (exhaustion, close, exit, abandonment)."""
        if not self.mark_done():
            return
        try:  # (not ``guard``: this runs at the end of every stream)
            if self.tapped:
                self.call.stop_later(*self._later())
                return
            attributes, output = self.accumulator.result()
            self.call.stop(attributes, output)
        except Exception as exc:
            report_internal_error("stream finish", exc)

    def error_attributes(self, exc: BaseException) -> dict[str, AttributeValue]:
        """What a provider adds about an error that ends the stream (HTTP status, error type, request id)."""
        return {}

    def fail(self, exc: BaseException) -> None:
        """End the span as an error (or a cancellation), keeping partial output and usage."""
        if not self.mark_done():
            return
        with guard("stream fail"):
            if self.tapped:
                result, size = self._later()
                self.call.fail_later(exc, result, size, self.error_attributes(exc))
                return
            attributes, output = self.accumulator.result()
            attributes.update(self.error_attributes(exc))
            self.call.fail(exc, attributes, output)


_OPEN: dict[int, StreamState] = {}  # the streams not yet ended, by id
if hasattr(os, "register_at_fork"):
    # A forked child's exit must not end (and send again) the streams its parent was reading.
    os.register_at_fork(after_in_child=_OPEN.clear)


def end_open_streams() -> None:
    """End every stream not yet ended, as if closed where it stands (at shutdown and exit: a stream left open in a
    variable that outlives them, or held in a cycle, is otherwise ended by its collection, too late to be sent)."""
    for state in list(_OPEN.values()):
        state.finish()


def close_ending(state: StreamState) -> None:
    """End ``state``'s call where its stream is closed, with the exception being handled there if any (an ``async
    with`` around the stream left by it calls ``close()`` without it): see :func:`_left`."""
    _left(state, sys.exc_info()[1])


def _left(state: StreamState, exc: BaseException | None) -> None:
    """End ``state``'s call where its stream was left (closed, or its ``with`` block exited) with ``exc`` on the way:
    the stream's own errors ended the call where they were raised, so ``exc`` is the caller's code's, and the stream
    was left early (as by ``break`` and ``close()``), unless a cancellation cut it short."""
    if exc is not None and is_cancellation(exc):
        state.fail(exc)
    else:
        state.finish()


_HELPERS_OBSERVED: set[type] = set()


def end_with_helper(kind: type) -> None:
    """Make ``close()`` of a stream helper class (openai's ``ChatCompletionStream``, ``ResponseStream``: objects reading
    a stream of ours as ``_raw_stream``) end that stream's call too. Their ``close()`` (and so their ``with`` block's
    end) closes the HTTP response, not the stream, which would otherwise end only when collected. Instances reading a
    stream that is not ours are unchanged. Once per class; never raises."""
    if kind in _HELPERS_OBSERVED:
        return
    _HELPERS_OBSERVED.add(kind)
    original = kind.__dict__.get("close")
    if original is None or not callable(original):
        return
    if inspect.iscoroutinefunction(original):

        async def close_async(self: Any) -> Any:
            try:
                return await original(self)
            finally:
                _helper_closed(self)

        close: Callable[..., Any] = close_async
    else:

        def close_sync(self: Any) -> Any:
            try:
                return original(self)
            finally:
                _helper_closed(self)

        close = close_sync
    functools.update_wrapper(close, original)
    try:
        kind.close = close  # type: ignore[attr-defined]
    except Exception as exc:
        report_internal_error("stream helper close", exc)


def _helper_closed(helper: Any) -> None:
    try:
        raw = vars(helper).get("_raw_stream")
        if issubclass(type(raw), _StreamProxy):
            close_ending(raw._self_state)
    except Exception as exc:
        report_internal_error("stream helper close", exc)


def _misuse(exc: BaseException) -> bool:
    """Whether ``exc`` is the error a generator raises when read by two callers at once: it says nothing of the
    stream, which the other caller goes on reading."""
    return (type(exc) is ValueError and exc.args == ("generator already executing",)) or (
        type(exc) is RuntimeError and str(exc).endswith("asynchronous generator is already running")
    )


class _Fold:
    """A tapped stream's result, made on the export worker: the bytes it read, decoded into events the way its SDK
    reads them (``read``: :meth:`StreamState.sdk_texts`, the first ``limit`` items), their JSON decoded and folded
    into the accumulator. (One object: what a queued call holds is also what the garbage collector has to track.)"""

    __slots__ = ("accumulator", "kept", "read", "limit")

    def __init__(
        self,
        accumulator: StreamAccumulator,
        kept: bytes,
        read: Callable[[list[tuple[str | None, str]]], list[str]],
        limit: int | None = None,
    ) -> None:
        self.accumulator = accumulator
        self.kept = kept
        self.read = read
        self.limit = limit

    def __call__(self) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
        texts = self.read(sse_events(self.kept))
        if self.limit is not None:
            del texts[self.limit :]  # the caller left early: the events of the items it was handed
        accumulator = self.accumulator
        process = accumulator.process
        view = getattr(accumulator, "view", View)
        # The accumulator folds in the usual event from its plain decoded JSON (``process_plain``, when it has one:
        # nothing done when it returns False); any other is made the view it would have been decoded into
        # (:func:`decode_events`), and processed as one.
        plain = getattr(accumulator, "process_plain", _not_plain)
        for item in decode_events(texts, dict):
            try:
                if not plain(item):
                    process(_viewed(item, view))
            except Exception as exc:  # one odd chunk costs itself only, as on the path that folds chunks as read
                _report_chunk_error(exc)
        return accumulator.result()


def _not_plain(item: Any) -> bool:
    """The ``process_plain`` of an accumulator without one: every event is processed as a view."""
    return False


def _viewed(value: Any, view: type[View]) -> Any:
    """``value`` (decoded JSON) with every object in it a ``view``: what decoding it with ``view`` as the object hook
    makes (:func:`decode_events`)."""
    if type(value) is dict:
        return view({key: _viewed(item, view) for key, item in value.items()})
    if type(value) is list:
        return [_viewed(item, view) for item in value]
    return value


def _counted(counter: itertools.count[int]) -> int:
    """How far ``counter`` (an ``itertools.count()`` from 0) has counted: its next value, read from its ``repr``
    (``count(5)``) without advancing it."""
    return int(repr(counter)[6:-1])


_LINE_ENDS = re.compile("\r\n|\r|\n")
_DATA_PREFIXES = itertools.repeat("data: ")
_NO_NAMES = itertools.repeat(None)
_after_prefix = operator.itemgetter(slice(6, None))


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """The server-sent events in ``raw`` (a stream's bytes), as ``(event, data)``, in order: what the openai and
    anthropic SDKs' decoders make of the same bytes (lines end at CR, LF or CRLF; an empty line dispatches the event
    when it has an event name, data, a last event id or a retry time; ``data`` lines are joined with LF; comments
    and unknown fields are skipped; a last line with no end dispatches nothing). Bytes that are not UTF-8 (on which
    the SDK's stream failed) are read with replacement characters."""
    text = raw.decode("utf-8", "replace")
    if "\r" not in text:
        lines = text.split("\n")
        # The usual stream, every event one ``data: `` line and a blank one (so the lines alternate, and the text ends
        # with a blank line): read at C speed, the same events.
        fields = lines[0:-1:2]
        if (
            len(lines) & 1
            and not lines[-1]
            and not any(lines[1::2])
            and all(map(str.startswith, fields, _DATA_PREFIXES))
        ):
            return list(zip(_NO_NAMES, map(_after_prefix, fields), strict=False))
    else:
        lines = _LINE_ENDS.split(text)
    lines.pop()  # what follows the last line end: no line end, so nothing it holds is dispatched
    events: list[tuple[str | None, str]] = []
    event: str | None = None
    data: list[str] = []
    last_id: str | None = None
    retry: int | None = None
    for line in lines:
        if not line:
            if event or data or last_id or retry is not None:
                events.append((event or None, "\n".join(data)))
                event = None
                data = []
                retry = None
            continue
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry":
            try:
                retry = int(value)
            except ValueError:
                pass
    return events


class View:
    """A decoded JSON object read like the SDK's model of it: the accumulators read chunks with ``getattr``, and the
    openai and anthropic models' fields are named as the JSON keys. The object's keys are the view's attributes (its
    ``__dict__`` is the decoded object), and a key the JSON lacks reads as None, as an absent optional field of the
    SDKs' models does: every read runs in C, which matters on the export worker, where every event of a stream is
    folded in (:func:`decode_events`).

    A subclass may name, as class attributes set to None, the fields its reader asks for that the JSON often leaves
    out: they then read as None without the failed lookup that precedes ``__getattr__`` (on Python 3.11 it raises
    and clears an ``AttributeError`` each time: ~2 µs an OpenAI chunk, most of folding a stream in). An accumulator
    names its subclass in its ``view`` attribute."""

    __slots__ = ("__dict__",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__ = data

    # Called (as ``{}.get(name)``: a bound builtin is no descriptor) only for a name the object lacks.
    __getattr__: Any = {}.get

    def model_dump(self, **_: Any) -> dict[str, Any]:
        """The JSON object as plain data (how carrot's serializer turns a view that ends up in a record into data)."""
        return _plain(self)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"View({self.__dict__!r})"


def _plain(value: Any) -> Any:
    """``value`` with every :class:`View` in it turned back into the ``dict`` it was decoded from."""
    if isinstance(value, View):
        return {key: _plain(item) for key, item in value.__dict__.items()}
    if type(value) is list:
        return [_plain(item) for item in value]
    return value


# Per view class: a JSON decoder making its objects (``dict``: plain objects, json's own decoder).
_DECODERS: dict[type[Any], Callable[[str], Any]] = {dict: json.JSONDecoder().decode}


def decode_events(texts: list[Any], view: type[Any] = View) -> list[Any]:
    """The JSON objects among a stream's event data (``texts``), in order, as ``view`` objects (:class:`View` or a
    subclass, or ``dict``: the objects as json decodes them); anything else (``[DONE]``, data the SDK failed on: the
    stream then failed with its error) is skipped.

    The export worker's part of a tapped stream, so one decode for the whole stream: the objects joined into one JSON
    array, whose length must come out as theirs; otherwise, or when any text is neither an object nor ``[DONE]``, one
    at a time."""
    decode = _DECODERS.get(view)
    if decode is None:
        decode = _DECODERS[view] = json.JSONDecoder(object_hook=view).decode
    objects = [text for text in texts if type(text) is str and text[:1] == "{"]
    if len(objects) == len(texts) or (len(objects) == len(texts) - 1 and texts[-1] == "[DONE]"):
        try:
            decoded = decode("[" + ",".join(objects) + "]")
            if len(decoded) == len(objects) and all(type(item) is view for item in decoded):
                return decoded  # type: ignore[no-any-return]
        except ValueError:
            pass
    out = []
    for text in texts:
        try:
            item = decode(text)
        except (ValueError, TypeError):
            continue
        if type(item) is view:
            out.append(item)
    return out


class EventTap:
    """Stands in for a ``Stream`` / ``AsyncStream``'s SSE decoder (the openai and anthropic SDKs share the layout).

    The bytes the SDK reads are appended to ``texts`` read by read (when given), and its own decoder reads them
    (:meth:`iter_bytes`): the export worker decodes them as the SDKs' decoders do (:func:`sse_events`), so nothing is
    kept per event. With a divert, every event the decoder makes passes on to the SDK unchanged, unless its data is one
    the ``hints`` point at and ``divert`` takes it away from the SDK (True): openai's usage-only chunk that exists only
    because carrot asked for it (:attr:`diverted` counts them). Its bytes are kept all the same: the accumulator folds
    it in with the others (and hides it), so the divert of a kept stream only decides, while an untapped stream's
    (``texts`` None) folds it in itself. ``hints`` is ``(hint, *not_hints)``: an event is offered when its data
    contains ``hint`` and none of ``not_hints``. (The time to first chunk is the stream proxy's to mark, when it hands
    the first item: :meth:`StreamState.first_handed`.) Errors pass through; anything unexpected is left to the SDK.

    (Keeping each event's data instead of the reads, as an earlier version did, cost a stream whose body comes in a
    few reads ~20-40 µs of the calling thread: a list append an event, the data held through the stream and joined at
    its end. Cutting the usage-only event out of the bytes instead of offering events to the divert was built and
    measured too: with one read an event, as a model's tokens come, the checks it takes a read cost more than the
    event tap's an event. Not kept.)
    """

    __slots__ = ("_decoder", "_append", "_divert", "_hints", "read", "diverted")

    def __init__(
        self,
        decoder: Any,
        texts: list[Any] | None,
        divert: Callable[[str], bool] | None,
        hints: tuple[str, str, str] | None,
    ) -> None:
        self._decoder = decoder
        self._append: Callable[[Any], None] | None = texts.append if texts is not None else None
        self._divert = divert
        self._hints = hints if divert is not None else None
        #: How to read an event's data (``str``): set from the first event (:func:`_reader`).
        self.read: Callable[[Any], Any] = _data
        #: How many events the divert took away from the SDK so far.
        self.diverted = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._decoder, name)

    def iter_bytes(self, iterator: Any) -> Iterator[Any]:
        if self._append is not None:
            iterator = _reads(iterator, self._append)
        if self._hints is None:
            return self._decoder.iter_bytes(iterator)  # type: ignore[no-any-return]
        return self._tapped(self._decoder.iter_bytes(iterator))

    def aiter_bytes(self, iterator: Any) -> AsyncIterator[Any]:
        if self._append is not None:
            iterator = _areads(iterator, self._append)
        if self._hints is None:
            return self._decoder.aiter_bytes(iterator)  # type: ignore[no-any-return]
        return self._atapped(self._decoder.aiter_bytes(iterator))

    def _tapped(self, events: Iterator[Any]) -> Iterator[Any]:
        """The events, each offered to the divert when the hints point at it, the others passed on."""
        for event in events:  # up to the first event the SDK gets: the one the others' data is read like
            if self._take(event):
                yield event
                break
        read = self.read
        hint, plain, spaced = self._hints  # type: ignore[misc]  # set: see iter_bytes
        # The loop below runs for every event: the same steps as _take, without learning how to read the data.
        for event in events:
            data = read(event)
            if hint in data and plain not in data and spaced not in data and self._diverted(data):
                continue
            yield event

    async def _atapped(self, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for event in events:
            if self._take(event):
                yield event
                break
        read = self.read
        hint, plain, spaced = self._hints  # type: ignore[misc]  # set: see aiter_bytes
        async for event in events:
            data = read(event)
            if hint in data and plain not in data and spaced not in data and self._diverted(data):
                continue
            yield event

    def _take(self, event: Any) -> bool:
        """Whether ``event`` goes on to the SDK (not diverted); if so, learn from it how to read the data of the
        events that follow."""
        data = event.data
        hints = self._hints
        if hints is not None and _offered(data, hints) and self._diverted(data):
            return False
        self.read = _reader(event)
        return True

    def _diverted(self, data: Any) -> bool:
        try:
            if type(data) is str and self._divert(data) is True:  # type: ignore[misc]
                self.diverted += 1
                return True
        except Exception as exc:
            report_internal_error("stream event", exc)
        return False


def _reads(iterator: Iterator[Any], append: Callable[[Any], None]) -> Iterator[Any]:
    """A stream's bytes, each read kept (``append``) and passed on. The SDK's decoder reads from here when it needs
    bytes for its next event, so the bytes kept are those of the events it has made, and at most the rest of the last
    read. One step a read, not an event: a read often holds several events (a fast model, a proxy, a busy network),
    and a body read at once (an in-process transport) is one."""
    for chunk in iterator:
        append(chunk)
        yield chunk


async def _areads(iterator: AsyncIterator[Any], append: Callable[[Any], None]) -> AsyncIterator[Any]:
    async for chunk in iterator:
        append(chunk)
        yield chunk


def _offered(data: str, hints: tuple[str, str, str]) -> bool:
    """Whether an event's ``data`` is offered to the divert: it contains ``hints[0]`` and none of ``hints[1:]``."""
    return hints[0] in data and hints[1] not in data and hints[2] not in data


_data = operator.attrgetter("data")
_READERS: dict[type, Callable[[Any], Any]] = {}  # per event class: how to read an event's data (_reader)


def _reader(event: Any) -> Callable[[Any], Any]:
    """How to read the data of the events that follow ``event`` (the stream's first): the SDKs' ``ServerSentEvent``
    (openai's and anthropic's alike) keeps it in ``_data`` behind a ``data`` property, which costs a Python call per
    event; read directly when ``event`` is one and holds it there, else through ``data``. Decided once per event
    class, from its first event."""
    reader = _READERS.get(type(event))
    if reader is None:
        kind = type(event)
        getter = getattr(getattr(kind, "data", None), "fget", None)
        sdk = (
            kind.__name__ == "ServerSentEvent"
            and kind.__module__.endswith("._streaming")
            and getattr(getter, "__qualname__", None) == "ServerSentEvent.data"
        )
        direct = sdk and getattr(event, "__dict__", {}).get("_data", _data) is event.data
        reader = _READERS[kind] = _direct_data if direct else _data
    return reader


_direct_data = operator.attrgetter("_data")
_first_item = operator.itemgetter(0)


def install_tap(
    stream: Any,
    texts: list[Any] | None,
    divert: Callable[[str], bool] | None = None,
    hints: tuple[str, str, str] | None = None,
) -> EventTap | None:
    """Put an :class:`EventTap` in front of ``stream``'s SSE decoder; the tap, or None. Only on an SDK stream of the
    usual layout whose event generator (``_iterator``) will read ``stream._decoder`` when it first runs: openai makes
    it in ``Stream.__init__`` from the stream itself, and it must not have started; anthropic makes it on first use
    (a ``cached_property``, from a copy of the stream), and it must not have been made. Never raises."""
    try:
        decoder = getattr(stream, "_decoder", None)
        if decoder is None or isinstance(decoder, EventTap) or not hasattr(decoder, "iter_bytes"):
            return None
        if texts is not None and not _standard_decoder(type(decoder)):
            return None  # its bytes would be decoded on the export worker as the SDKs' own decoder reads them
        iterator = vars(stream).get("_iterator")
        if iterator is None:
            if not isinstance(getattr(type(stream), "_iterator", None), functools.cached_property):
                return None
        else:
            frame = getattr(iterator, "gi_frame", None) or getattr(iterator, "ag_frame", None)
            if frame is None or not _not_started(frame) or frame.f_locals.get("self") is not stream:
                return None
        tap = stream._decoder = EventTap(decoder, texts, divert, hints)
        return tap
    except Exception as exc:
        report_internal_error("stream tap", exc)
        return None


def _standard_decoder(kind: type) -> bool:
    """Whether ``kind`` is the openai or anthropic SDK's own ``SSEDecoder`` (which :func:`sse_events` reads like)."""
    return kind.__name__ == "SSEDecoder" and kind.__module__ in ("openai._streaming", "anthropic._streaming")


def _not_started(frame: types.FrameType) -> bool:
    """Whether the generator (or async generator) running in ``frame`` has not started: it has not yet passed the
    first ``RESUME`` of its code (Python 3.11+; where the frame of a new generator stops differs: 0 on 3.11 and 3.12,
    after ``RETURN_GENERATOR`` on 3.13, later in a closure), or, on 3.10, has run no instruction (``f_lasti`` -1)."""
    code = frame.f_code
    resume = _FIRST_RESUME.get(code)
    if resume is None:
        raw = code.co_code
        resume = _FIRST_RESUME[code] = next((i for i in range(0, len(raw), 2) if raw[i] == _RESUME), 0)
    return frame.f_lasti < resume


_RESUME = opcode.opmap.get("RESUME", -1)  # -1 (no such opcode) on 3.10
_FIRST_RESUME: dict[types.CodeType, int] = {}  # per generator code (the SDKs' few): the offset of its first RESUME


def _no_protocol(stream: Any, method: str, protocol: str) -> Exception:
    """What ``with`` / ``async with`` raises for an object without ``method``: a TypeError naming the protocol since
    Python 3.11, an AttributeError naming the method before."""
    if sys.version_info < (3, 11):
        return AttributeError(method)
    return TypeError(f"'{type(stream).__name__}' object does not support {protocol}")


class _StreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """What both stream proxies share: the state, and copies (of the SDK's stream: a copy is not recorded)."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        if not state.done:
            _OPEN[id(state)] = state  # until it ends: a stream still open at exit is ended then (end_open_streams)

    def __repr__(self) -> str:
        return repr(self.__wrapped__)  # the stream's own (wrapt's names the proxy)

    def __copy__(self) -> Any:
        duplicate = copy.copy(self.__wrapped__)
        decoder = getattr(duplicate, "_decoder", None)
        if type(decoder) is EventTap:  # the copy reads its events for nobody
            duplicate._decoder = decoder._decoder
        return duplicate

    # The context-manager protocols as the stream has them (where it has none, the error ``with`` raises for the
    # stream itself), ending the span on the way out.

    def __enter__(self) -> Any:
        enter = getattr(type(self.__wrapped__), "__enter__", None)
        if enter is None:
            raise _no_protocol(self.__wrapped__, "__enter__", "the context manager protocol")
        enter(self.__wrapped__)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            return exit_(exc_type, exc, tb) if exit_ is not None else None
        finally:
            _left(self._self_state, exc)

    async def __aenter__(self) -> Any:
        enter = getattr(type(self.__wrapped__), "__aenter__", None)
        if enter is None:
            raise _no_protocol(self.__wrapped__, "__aenter__", "the asynchronous context manager protocol")
        await enter(self.__wrapped__)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            return (await exit_(exc_type, exc, tb)) if exit_ is not None else None
        finally:
            _left(self._self_state, exc)

    @property
    def close(self) -> Callable[..., Any]:
        """The stream's own ``close`` (an AttributeError when it has none), ending the span once it ran."""
        return self._ending(self.__wrapped__.close)

    def _ending(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        """``inner``, one of the stream's own methods (a coroutine function stays one), ending the span after it."""
        state = self._self_state
        if inspect.iscoroutinefunction(inner):

            async def ending_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await inner(*args, **kwargs)
                finally:
                    close_ending(state)

            return ending_async

        def ending(*args: Any, **kwargs: Any) -> Any:
            try:
                return inner(*args, **kwargs)
            finally:
                close_ending(state)

        return ending

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.__wrapped__, memo)

    # Pickled as the stream itself would be (the SDKs' raise a TypeError: a lock, a client), not with the proxy's
    # NotImplementedError.

    def __reduce__(self) -> Any:
        return self.__wrapped__.__reduce__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__wrapped__.__reduce_ex__(protocol)


class SyncStreamProxy(_StreamProxy):
    """Transparent proxy of a sync stream (``openai.Stream``, ``anthropic.Stream``, ...)."""

    def __iter__(self) -> Iterator[Any]:
        # A generator, as the SDKs' own ``Stream.__iter__`` returns: a ``for`` loop then resumes it for each chunk,
        # which costs less than a call of ``__next__`` (``next(stream)`` still works, and both can be mixed).
        return _iterate(self, self._self_state, _source(self.__wrapped__))

    def __next__(self) -> Any:
        state = self._self_state
        next_ = self.__wrapped__.__next__
        while True:
            try:
                chunk = next_()
            except StopIteration:
                state.ended = True
                state.finish()
                raise
            except BaseException as exc:
                if not _misuse(exc):
                    state.fail(exc)
                raise
            if state.tapped:
                state.pulled += 1
                if state._first:
                    state.first_handed()
                return chunk
            # StreamState.chunk, inlined for the common case (this runs for every chunk).
            if state.done or state._first or not state._inline:
                if state.chunk(chunk):
                    return chunk
                continue
            try:
                if state._process(chunk) is not False:
                    return chunk
            except Exception as exc:
                _report_chunk_error(exc)
                return chunk

    def __del__(self) -> None:
        state = getattr(self, "_self_state", None)
        if state is not None and not state.done:
            state.finish()


def _source(stream: Any) -> Any:
    """What to pull a sync stream's chunks from: when the SDKs' ``Stream.__next__`` does nothing but call
    ``self._iterator``'s (openai), that generator is read directly, saving a Python call per chunk; anthropic 2.x's
    also hands each item to the stream's ``_observer`` (its own span's, when that records), so it is read directly
    only when the stream has none. Any other stream through its own ``__next__``."""
    iterator = getattr(stream, "_iterator", None)
    if type(iterator) is types.GeneratorType:
        kind = type(stream)
        sdk = _SDK_STREAMS.get(kind)
        if sdk is None:
            sdk = _SDK_STREAMS[kind] = _next_kind(kind)
        if sdk is _PLAIN or (sdk is _OBSERVED and stream._observer is None):
            return iterator
    return _pull(stream.__next__)


def _next_kind(kind: type) -> str | None:
    """What an SDK stream class's ``__next__`` does, from the names its code uses: only ``self._iterator.__next__()``
    (``_PLAIN``), that and ``self._observer.item(item)`` (``_OBSERVED``), or anything else (None)."""
    method = getattr(kind, "__next__", None)
    code = getattr(method, "__code__", None)
    if code is None or not getattr(method, "__module__", "").endswith("._streaming"):
        return None
    names = set(code.co_names)
    if names <= {"_iterator", "__next__"}:
        return _PLAIN
    if names <= {"_iterator", "__next__", "_observer", "item"} and isinstance(
        getattr(kind, "_observer", None), property
    ):
        return _OBSERVED
    return None


_PLAIN = "plain"
_OBSERVED = "observed"
_SDK_STREAMS: dict[type, str | None] = {}  # per stream class: what its __next__ does (_next_kind)


def _pull(next_: Any) -> Iterator[Any]:
    while True:
        try:
            chunk = next_()
        except StopIteration:
            return
        yield chunk


def _iterate(proxy: SyncStreamProxy, state: StreamState, source: Any) -> Iterator[Any]:
    """The chunks of a sync stream, as :meth:`SyncStreamProxy.__next__` hands them out one by one.

    ``proxy`` is held for as long as the loop runs: in ``for chunk in client...create(stream=True)`` nothing else
    holds it, and its ``__del__`` would end the span as an abandoned stream.
    """
    if state.tapped:
        # Nothing to do per chunk but count it: the SDK's own generator hands them over (``yield from`` at C speed),
        # each zipped with the next number of a counter the state reads at the end (:meth:`StreamState.handed`; the
        # chunk is pulled first, so a failed pull counts nothing). Through ``map`` and ``zip``, which have no
        # ``close()``: a loop left early must leave the SDK's stream open, as a ``for`` loop does, so that
        # ``next(stream)`` can go on reading it. (Not ``iter(next, sentinel)``: it compares every chunk with the
        # sentinel, which runs pydantic's ``__eq__``.)
        counter = itertools.count()
        state.counters.append(counter)
        items = map(_first_item, zip(source, counter, strict=False))
        try:
            if state._first:
                for item in items:  # the first item: its time to first chunk
                    state.first_handed()
                    yield item
                    break
            yield from items
        except GeneratorExit:
            raise
        except BaseException as exc:
            if not _misuse(exc):
                state.fail(exc)
            raise
        state.ended = True
        state.finish()
        return
    process = state._process
    inline = state._inline
    try:
        for chunk in source:
            if state.done or state._first or not inline:
                if state.chunk(chunk):
                    yield chunk
                continue
            try:
                keep = process(chunk) is not False
            except Exception as exc:
                _report_chunk_error(exc)
                keep = True
            if keep:
                yield chunk  # a loop left here (break) leaves the stream open, as without carrot
    except GeneratorExit:  # the caller's loop is gone (break, then garbage collection): not an error
        raise
    except BaseException as exc:
        if not _misuse(exc):
            state.fail(exc)
        raise
    state.ended = True
    state.finish()


class AsyncStreamProxy(_StreamProxy):
    """Transparent proxy of an async stream (``openai.AsyncStream``, ``anthropic.AsyncStream``, ...)."""

    def __aiter__(self) -> AsyncIterator[Any]:
        # An async generator, as the SDKs' own ``AsyncStream.__aiter__`` returns (a new one each time, over the same
        # stream): closing it leaves the stream open, and ``anext(stream)`` still works.
        return _aiterate(self, self._self_state, self.__wrapped__)

    async def __anext__(self) -> Any:
        state = self._self_state
        while True:
            try:
                chunk = await self.__wrapped__.__anext__()
            except StopAsyncIteration:
                state.ended = True
                state.finish()
                raise
            except BaseException as exc:
                if not _misuse(exc):
                    state.fail(exc)
                raise
            if state.tapped:
                state.pulled += 1
                if state._first:
                    state.first_handed()
                return chunk
            if state.done or state._first or not state._inline:
                if state.chunk(chunk):
                    return chunk
                continue
            try:
                if state._process(chunk) is not False:
                    return chunk
            except Exception as exc:
                _report_chunk_error(exc)
                return chunk

    @property
    def aclose(self) -> Callable[[], Awaitable[None]]:
        """The stream's own ``aclose`` (an AttributeError when it has none, as the SDKs' streams), ending the span."""
        return self._ending(self.__wrapped__.aclose)

    def __del__(self) -> None:
        state = getattr(self, "_self_state", None)
        if state is not None and not state.done:
            state.finish()


async def _aiterate(proxy: AsyncStreamProxy, state: StreamState, stream: Any) -> AsyncIterator[Any]:
    """The chunks of an async stream, through the stream's own ``__aiter__`` (the SDK's own per-item work
    included), as :meth:`AsyncStreamProxy.__anext__` hands them out one by one. ``proxy`` is held for as long as the
    loop runs, as in :func:`_iterate`.

    A cancellation that comes in where a chunk was handed out is the closing of a loop left early being cancelled
    (asyncio closes an abandoned async generator in a task of its own, which ``asyncio.run()`` cancels as it ends):
    the stream was left early, a success, not cancelled."""
    handing: BaseException | None = None
    try:
        if state.tapped:
            async for chunk in stream:
                state.pulled += 1
                if state._first:
                    state.first_handed()
                try:
                    yield chunk
                except BaseException as exc:
                    handing = exc
                    raise
        else:
            async for chunk in stream:
                if state.chunk(chunk):
                    try:
                        yield chunk
                    except BaseException as exc:
                        handing = exc
                        raise
    except GeneratorExit:  # the caller's loop is gone (break, then finalization): not an error, the stream stays open
        raise
    except BaseException as exc:
        left = exc is handing and is_cancellation(exc)
        handing = None
        if left:
            state.finish()  # left early (the exception may keep this frame, and the stream, alive for a while)
        elif not _misuse(exc):
            state.fail(exc)
        raise
    state.ended = True
    state.finish()
