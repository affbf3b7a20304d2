"""Stream accumulators (:class:`carrot_ai._core._stream.StreamAccumulator`) for OpenAI streams.

* :class:`ChatStreamAccumulator`: ``ChatCompletionChunk`` streams; text, refusal, tool-call deltas (assembled by
  ``index``; ``id`` / ``name`` arrive only in a call's first delta) and legacy ``function_call`` deltas, per choice.
  When the wrapper asked for ``stream_options.include_usage`` on the caller's behalf (``hide_usage``), the extra
  usage-only chunk (``choices == []`` with ``usage``) is folded in and hidden from the caller.
* :class:`CompletionStreamAccumulator`: legacy ``Completion`` streams, the same way.
* :class:`ResponseStreamAccumulator`: Responses API events; the terminal ``response.completed`` /
  ``response.incomplete`` / ``response.failed`` event carries the whole response, deltas keep a partial one.

The SDK builds chunks without validating them: any field may be missing or None, so everything is read
defensively. With content capture off, only ids, usage and finish reasons are kept.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai._core._serialize import loads_text
from carrot_ai._core._stream import View
from carrot_ai.instrumentation.openai._extract import (
    assistant_message,
    get,
    has_calls,
    output_from_items,
    output_from_messages,
    responses_finish_reason,
    responses_result,
    usage_attributes,
)


class _Choice:
    __slots__ = ("content", "refusal", "transcript", "tool_calls", "function_call", "finish_reason")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.transcript: list[str] = []  # an audio answer's transcript pieces (``delta.audio.transcript``)
        # index -> [id, type, name, argument pieces]
        self.tool_calls: dict[int, list[Any]] = {}
        self.function_call: list[Any] | None = None  # [name, argument pieces]
        self.finish_reason: str | None = None


def _take_usage(self: Any, data: dict[str, Any]) -> None:
    """Fold in the decoded usage-only chunk that :class:`UsageDiverter` kept from the SDK (chat and legacy
    completion accumulators: their ``take_usage``)."""
    self._usage = data["usage"]
    if self._id is None:
        chunk_id = data.get("id")
        if isinstance(chunk_id, str) and chunk_id:
            self._id = chunk_id
            model = data.get("model")
            self._model = model if isinstance(model, str) else None


def _index(obj: Any, name: str, default: int) -> int:
    """``obj``'s integer field ``name`` (a choice's or an output item's index), or ``default`` where it is absent,
    None or not an integer: decoded events (``View``) read absent keys as None, and a non-integer key would break
    the sorting of the results."""
    value = getattr(obj, name, None)
    return value if type(value) is int else default


# Which events may be the usage-only chunk (see EventTap): those with a "usage" key whose value is not null, however
# the JSON is spaced. OpenAI's own chunks carry "usage":null when usage was asked for; other servers' none at all.
USAGE_HINTS = ('"usage"', '"usage":null', '"usage": null')


def usage_chunk(data: str) -> dict[str, Any] | None:
    """The usage-only chunk that exists only because the wrapper asked for it (``"choices": []`` with a ``usage``
    object), decoded from an event's ``data``; None for anything else (which the SDK then gets unchanged). Taking it
    away from the SDK spares it about as much work, building it into a chunk, as the rest of a short stream (the
    caller would not see it anyway)."""
    try:
        decoded = loads_text(data)
    except ValueError:
        return None
    if type(decoded) is dict and not decoded.get("choices") and type(decoded.get("usage")) is dict:
        return decoded
    return None


def is_usage_chunk(data: str) -> bool:
    """The divert of a stream whose events are kept for the export worker (see ``carrot_ai._core._stream.EventTap``):
    whether ``data`` is the usage-only chunk. Its data is kept with the others, and the accumulator folds it in (and
    hides it) there: nothing decoded is held until then."""
    return usage_chunk(data) is not None


def _divert(self: Any, data: str) -> bool:
    """The divert of a stream whose chunks are folded in as the caller reads them (the chat and legacy completion
    accumulators' ``divert``): the usage-only chunk, folded in now and taken away from the SDK."""
    decoded = usage_chunk(data)
    if decoded is None:
        return False
    self.take_usage(decoded)
    return True


class ChunkView(View):
    """A chat chunk decoded on the export worker (:class:`~carrot_ai._core._stream.View`), whose often absent fields
    that :meth:`ChatStreamAccumulator.process` reads read as None at once: a text delta carries ``content`` alone, and
    ``usage`` is missing unless usage was asked for."""

    __slots__ = ()
    tool_calls = refusal = function_call = usage = audio = None


class ChatStreamAccumulator:
    """Chat completion chunks -> response attributes and the record's ``output``."""

    __slots__ = (
        "_capture",
        "_content_attributes",
        "_request_id",
        "_hide_usage",
        "_id",
        "_model",
        "_usage",
        "_choices",
        "_text",
    )

    view = ChunkView  # how the export worker decodes a tapped stream's events for this accumulator

    def __init__(
        self, capture: bool, request_id: str | None = None, hide_usage: bool = False, content_attributes: bool = True
    ) -> None:
        self._capture = capture
        self._content_attributes = content_attributes
        self._request_id = request_id
        self._hide_usage = hide_usage
        self._id: str | None = None
        self._model: str | None = None
        self._usage: Any = None
        self._choices: dict[int, _Choice] = {}
        self._text: list[str] | None = None  # choice 0's text pieces, for the fast path of text-only chunks

    def process(self, chunk: Any) -> bool:
        # Fast path, for nearly every chunk of a text answer: one choice (index 0) whose delta has text only. Plain
        # attribute reads (the SDK's models always have their fields); anything else takes the general path.
        text = self._text
        if text is not None:
            try:
                choices = chunk.choices
                if type(choices) is list and len(choices) == 1 and chunk.usage is None:
                    choice = choices[0]
                    delta = choice.delta
                    if (
                        choice.index == 0
                        and choice.finish_reason is None
                        and delta.tool_calls is None
                        and delta.refusal is None
                        and delta.function_call is None
                    ):
                        content = delta.content
                        if content:
                            text.append(content)
                            return True
                        # No text (the role chunk, an audio chunk): the general path reads the rest of the delta.
            except AttributeError:
                pass
        return self._process(chunk)

    def process_plain(self, chunk: dict[str, Any]) -> bool:
        """:meth:`process`'s fast path for a chunk as the export worker decodes it (plain JSON, no view): fold in a
        text-only delta of choice 0 as :meth:`process` would, and return True; return False, having done nothing, for
        anything else (the worker then processes it as a view). The same tests on the same data: an absent field
        reads as None, as on a view."""
        text = self._text
        if text is None:
            return False
        choices = chunk.get("choices")
        if type(choices) is not list or len(choices) != 1 or chunk.get("usage") is not None:
            return False
        choice = choices[0]
        if type(choice) is not dict:
            return False
        delta = choice.get("delta")
        if (
            type(delta) is dict
            and choice.get("index") == 0
            and choice.get("finish_reason") is None
            and delta.get("tool_calls") is None
            and delta.get("refusal") is None
            and delta.get("function_call") is None
        ):
            content = delta.get("content")
            if content:
                text.append(content)
                return True
        return False

    def _process(self, chunk: Any) -> bool:
        if self._id is None:
            chunk_id = getattr(chunk, "id", None)
            if isinstance(chunk_id, str) and chunk_id:
                self._id = chunk_id
                model = getattr(chunk, "model", None)
                self._model = model if isinstance(model, str) else None
        choices = getattr(chunk, "choices", None)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage
            if self._hide_usage and not choices:  # none, or no "choices" at all
                return False  # the usage-only chunk only we asked for
        if not choices:
            return True
        for choice in choices:
            index = _index(choice, "index", 0)
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = _Choice()
                if index == 0 and self._capture and self._id is not None:
                    self._text = state.content
            reason = getattr(choice, "finish_reason", None)
            if isinstance(reason, str):
                state.finish_reason = reason
            if self._capture:
                delta = getattr(choice, "delta", None)
                if delta is not None:
                    self._delta(state, delta)
        return True

    @staticmethod
    def _delta(state: _Choice, delta: Any) -> None:
        content = getattr(delta, "content", None)
        if content:
            state.content.append(content)
        refusal = getattr(delta, "refusal", None)
        if refusal:
            state.refusal.append(refusal)
        audio = getattr(delta, "audio", None)
        if audio is not None:
            transcript = get(audio, "transcript")  # (a dict on SDKs whose delta model has no ``audio``)
            if transcript:
                state.transcript.append(transcript)
        tool_calls = getattr(delta, "tool_calls", None)
        if tool_calls:
            for call in tool_calls:
                index = getattr(call, "index", None)
                if not isinstance(index, int):
                    index = len(state.tool_calls)
                entry = state.tool_calls.get(index)
                if entry is None:
                    entry = state.tool_calls[index] = [None, "function", None, []]
                call_id = getattr(call, "id", None)
                if call_id:
                    entry[0] = call_id
                kind = getattr(call, "type", None)
                if kind:
                    entry[1] = kind
                function = getattr(call, "function", None)
                if function is not None:
                    name = getattr(function, "name", None)
                    if name:
                        entry[2] = name
                    arguments = getattr(function, "arguments", None)
                    if arguments:
                        entry[3].append(arguments)
                elif kind == "custom" or entry[1] == "custom":  # a custom tool's call: name and input under "custom"
                    custom = getattr(call, "custom", None)  # a dict: the SDK's delta model has no such field
                    name = get(custom, "name")
                    if name:
                        entry[2] = name
                    text = get(custom, "input")
                    if text:
                        entry[3].append(text)
        function_call = getattr(delta, "function_call", None)
        if function_call is not None:
            if state.function_call is None:
                state.function_call = [None, []]
            name = getattr(function_call, "name", None)
            if name:
                state.function_call[0] = name
            arguments = getattr(function_call, "arguments", None)
            if arguments:
                state.function_call[1].append(arguments)

    take_usage = _take_usage
    divert = _divert

    def result(self) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
        attributes = _basics(self._id, self._model, self._request_id, self._usage)
        indexes = sorted(self._choices)
        reasons = [self._choices[i].finish_reason for i in indexes]
        if reasons and all(isinstance(r, str) for r in reasons):
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reasons)
        if not self._capture:
            return attributes, None
        messages = []
        for i in indexes:
            state = self._choices[i]
            calls = [
                {"id": c[0], "type": c[1], "function": {"name": c[2], "arguments": "".join(c[3])}}
                for _, c in sorted(state.tool_calls.items())
            ]
            function_call = None
            if state.function_call is not None:
                function_call = {"name": state.function_call[0], "arguments": "".join(state.function_call[1])}
            messages.append(
                assistant_message(
                    # None where the API's message has none: a refusal, audio or a call only (as a non-streamed
                    # answer, whose audio transcript is then the content).
                    "".join(state.content)
                    if state.content or not (calls or function_call or state.refusal or state.transcript)
                    else None,
                    calls,
                    refusal="".join(state.refusal),
                    function_call=function_call,
                    audio={"transcript": "".join(state.transcript)} if state.transcript else None,
                )
            )
        return attributes, output_from_messages(messages, reasons, attributes, self._content_attributes)


class CompletionStreamAccumulator:
    """Legacy completion chunks -> response attributes and the record's ``output``."""

    __slots__ = (
        "_capture",
        "_content_attributes",
        "_request_id",
        "_hide_usage",
        "_id",
        "_model",
        "_usage",
        "_texts",
        "_reasons",
    )

    def __init__(
        self, capture: bool, request_id: str | None = None, hide_usage: bool = False, content_attributes: bool = True
    ) -> None:
        self._capture = capture
        self._content_attributes = content_attributes
        self._request_id = request_id
        self._hide_usage = hide_usage
        self._id: str | None = None
        self._model: str | None = None
        self._usage: Any = None
        self._texts: dict[int, list[str]] = {}
        self._reasons: dict[int, str | None] = {}

    def process(self, chunk: Any) -> bool:
        if self._id is None:
            chunk_id = getattr(chunk, "id", None)
            if isinstance(chunk_id, str) and chunk_id:
                self._id = chunk_id
                model = getattr(chunk, "model", None)
                self._model = model if isinstance(model, str) else None
        choices = getattr(chunk, "choices", None)
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage
            if self._hide_usage and not choices:  # none, or no "choices" at all
                return False
        for choice in choices or ():
            index = _index(choice, "index", 0)
            pieces = self._texts.get(index)
            if pieces is None:
                pieces = self._texts[index] = []
                self._reasons[index] = None
            reason = getattr(choice, "finish_reason", None)
            if isinstance(reason, str):
                self._reasons[index] = reason
            text = getattr(choice, "text", None)
            if self._capture and text:
                pieces.append(text)
        return True

    take_usage = _take_usage
    divert = _divert

    def result(self) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
        attributes = _basics(self._id, self._model, self._request_id, self._usage)
        indexes = sorted(self._texts)
        reasons = [self._reasons[i] for i in indexes]
        if reasons and all(isinstance(r, str) for r in reasons):
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(reasons)
        if not self._capture:
            return attributes, None
        messages = [assistant_message("".join(self._texts[i]), None) for i in indexes]
        return attributes, output_from_messages(messages, reasons, attributes, self._content_attributes)


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Items whose arguments stream in deltas: one cut short is rebuilt from them (any other item is kept as it came).
_FUNCTION_ITEMS = frozenset({"function_call", "custom_tool_call"})


class ResponseStreamAccumulator:
    """Responses API stream events -> response attributes and the record's ``output``."""

    __slots__ = (
        "_capture",
        "_content_attributes",
        "_request_id",
        "_response",
        "_final",
        "_items",
        "_texts",
        "_arguments",
        "_summaries",
        "error",
    )

    def __init__(
        self, capture: bool, request_id: str | None = None, hide_usage: bool = False, content_attributes: bool = True
    ) -> None:
        self._capture = capture
        self._content_attributes = content_attributes
        self._request_id = request_id
        # (code, message) of an `error` event or a `response.failed` response: the stream ends as an error.
        self.error: tuple[str | None, str] | None = None
        self._response: Any = None  # the latest response snapshot (created / in_progress)
        self._final: Any = None
        self._items: dict[int, Any] = {}  # output_index -> item (added, then done)
        self._texts: dict[int, list[str]] = {}
        self._arguments: dict[int, list[str]] = {}
        # output_index -> summary_index -> the reasoning summary's text deltas (kept for a stream cut short before
        # its reasoning item is done: the item added carries no summary yet).
        self._summaries: dict[int, dict[int, list[str]]] = {}

    def process(self, chunk: Any) -> bool:
        kind = getattr(chunk, "type", None)
        if kind == "response.output_text.delta":
            if self._capture:
                delta = getattr(chunk, "delta", None)
                if isinstance(delta, str):
                    self._texts.setdefault(_index(chunk, "output_index", 0), []).append(delta)
        elif kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
            if self._capture:
                delta = getattr(chunk, "delta", None)
                if isinstance(delta, str):
                    self._arguments.setdefault(_index(chunk, "output_index", 0), []).append(delta)
        elif kind == "response.reasoning_summary_text.delta":
            if self._capture:
                delta = getattr(chunk, "delta", None)
                if isinstance(delta, str):
                    parts = self._summaries.setdefault(_index(chunk, "output_index", 0), {})
                    parts.setdefault(_index(chunk, "summary_index", 0), []).append(delta)
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = getattr(chunk, "item", None)
            if item is not None:
                self._items[_index(chunk, "output_index", len(self._items))] = item
        elif kind in _TERMINAL:
            self._final = getattr(chunk, "response", None)
            if kind == "response.failed" and self.error is None:
                self.error = response_error(self._final) or (None, "response failed")
        elif kind == "error":
            code = getattr(chunk, "code", None)
            message = getattr(chunk, "message", None)
            self.error = (code if isinstance(code, str) else None, message if isinstance(message, str) else "error")
        elif kind is None and getattr(chunk, "event", None) == "error":
            # openai < 2 hands an `event: error` over as {"data": {...}, "event": "error"}
            data = getattr(chunk, "data", None)
            code = data.get("code") if isinstance(data, dict) else None
            message = data.get("message") if isinstance(data, dict) else None
            self.error = (code if isinstance(code, str) else None, message if isinstance(message, str) else "error")
        elif kind in ("response.created", "response.in_progress", "response.queued"):
            self._response = getattr(chunk, "response", None)
        return True

    def result(self) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
        if self._final is not None:
            attributes, output = responses_result(self._final, self._capture, self._content_attributes)
            if self._request_id:
                attributes[semconv.CARROT_REQUEST_ID] = self._request_id
            return attributes, output
        # Cut short: what the snapshot and the deltas say.
        response = self._response
        attributes = _basics(getattr(response, "id", None), getattr(response, "model", None), self._request_id, None)
        if not self._capture:
            return attributes, None
        items: list[Any] = []
        for index in sorted(set(self._items) | set(self._texts) | set(self._arguments) | set(self._summaries)):
            item = self._items.get(index)
            kind = getattr(item, "type", None)
            summarized = index in self._summaries and (item is None or kind == "reasoning")
            if summarized and not getattr(item, "summary", None):
                parts = self._summaries[index]
                summary = [{"type": "summary_text", "text": "".join(parts[i])} for i in sorted(parts)]
                items.append({"type": "reasoning", "summary": summary})
            elif kind in _FUNCTION_ITEMS and getattr(item, "status", None) != "completed":
                items.append(
                    {
                        "type": kind,
                        "call_id": getattr(item, "call_id", None),
                        "name": getattr(item, "name", None),
                        "arguments" if kind == "function_call" else "input": "".join(self._arguments.get(index, ())),
                    }
                )
            elif (item is None or kind == "message") and index in self._texts:
                text = "".join(self._texts[index])
                items.append({"type": "message", "content": [{"type": "output_text", "text": text}]})
            elif item is not None:
                items.append(item)
        reason = responses_finish_reason(response, has_calls(items)) if response is not None else None
        reason = None if reason == "in_progress" else reason
        return attributes, output_from_items(items, reason, attributes, self._content_attributes)


def response_error(response: Any) -> tuple[str | None, str] | None:
    """(code, message) of a Responses API ``response`` whose status is ``failed``, else None."""
    if getattr(response, "status", None) != "failed" and not (
        isinstance(response, dict) and response.get("status") == "failed"
    ):
        return None
    error = response.get("error") if isinstance(response, dict) else getattr(response, "error", None)
    code = error.get("code") if isinstance(error, dict) else getattr(error, "code", None)
    message = error.get("message") if isinstance(error, dict) else getattr(error, "message", None)
    return (code if isinstance(code, str) else None, message if isinstance(message, str) else "response failed")


def _basics(response_id: Any, model: Any, request_id: str | None, usage: Any) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    if isinstance(response_id, str) and response_id:
        attributes[semconv.GEN_AI_RESPONSE_ID] = response_id
    if isinstance(model, str) and model:
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    if request_id:
        attributes[semconv.CARROT_REQUEST_ID] = request_id
    usage_attributes(usage, attributes)
    return attributes
