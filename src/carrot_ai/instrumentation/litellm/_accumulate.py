"""The stream accumulator of ``litellm.completion(stream=True)``: folds ``ModelResponseStream`` chunks into a message.

Chunks are OpenAI-shaped whatever the provider (LiteLLM normalises them). Usage comes from the chunk that carries
it (``stream_options={"include_usage": True}``), else from the usage LiteLLM computes for the last chunk and keeps
in its ``_hidden_params``. Every chunk reaches the caller.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from carrot_ai import semconv
from carrot_ai.instrumentation.litellm._extract import get, usage_attributes


class _Choice:
    __slots__ = ("role", "text", "reasoning", "tool_calls", "finish_reason")

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None


class ChunkAccumulator:
    """What a LiteLLM stream delivered so far: text, tool calls, finish reasons, model, id and usage."""

    __slots__ = ("capture", "choices", "model", "response_id", "usage", "hidden")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.choices: dict[int, _Choice] = {}
        self.model: str | None = None
        self.response_id: str | None = None
        self.usage: Any = None  # from a chunk that carries usage (the caller asked for it)
        self.hidden: dict[str, Any] | None = None  # the last chunk's _hidden_params: LiteLLM's own usage

    def process(self, chunk: Any) -> bool:
        if self.model is None and isinstance(get(chunk, "model"), str):
            self.model = get(chunk, "model")
        if self.response_id is None and isinstance(get(chunk, "id"), str):
            self.response_id = get(chunk, "id")
        usage = get(chunk, "usage")
        if usage is not None and get(usage, "prompt_tokens") is not None:
            self.usage = usage
        hidden = getattr(chunk, "_hidden_params", None)
        if isinstance(hidden, dict) and "usage" in hidden:
            self.hidden = hidden
        for choice in get(chunk, "choices") or ():
            index = get(choice, "index") or 0
            state = self.choices.get(index)
            if state is None:
                state = self.choices[index] = _Choice()
            reason = get(choice, "finish_reason")
            if reason:
                state.finish_reason = str(reason)
            delta = get(choice, "delta")
            if delta is None:
                continue
            role = get(delta, "role")
            if isinstance(role, str) and role:
                state.role = role
            if self.capture:
                content = get(delta, "content")
                if isinstance(content, str) and content:
                    state.text.append(content)
                reasoning = get(delta, "reasoning_content")
                if isinstance(reasoning, str) and reasoning:
                    state.reasoning.append(reasoning)
                for call in get(delta, "tool_calls") or ():
                    _fold_tool_call(state.tool_calls, call)
        return True

    def result(self) -> tuple[dict[str, AttributeValue], dict[str, Any] | None]:
        attributes: dict[str, AttributeValue] = {}
        if self.model:
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = self.model
        if self.response_id:
            attributes[semconv.GEN_AI_RESPONSE_ID] = self.response_id
        usage_attributes(self.usage if self.usage is not None else self._hidden_usage(), attributes)
        ordered = [self.choices[i] for i in sorted(self.choices)]
        reasons = tuple(c.finish_reason for c in ordered if c.finish_reason)
        if reasons:
            attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
        if not self.capture:
            return attributes, None
        messages = []
        for choice in ordered or [_Choice()]:
            message: dict[str, Any] = {"role": choice.role, "content": "".join(choice.text) or None}
            if choice.tool_calls:
                message["tool_calls"] = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
            if choice.reasoning:
                message["reasoning"] = "".join(choice.reasoning)
            messages.append(message)
        output: dict[str, Any] = {"message": messages[0]}
        if len(messages) > 1:
            output["choices"] = [{"index": i, "message": m} for i, m in enumerate(messages)]
        return attributes, output

    def _hidden_usage(self) -> Any:
        # LiteLLM sums the chunks' usage into the last chunk's hidden params, and replaces it at the end of the
        # stream with the usage it rebuilt from the whole stream (read when the stream ends, not when chunks pass).
        usage = self.hidden.get("usage") if self.hidden is not None else None
        if usage is None or not (get(usage, "prompt_tokens") or get(usage, "completion_tokens")):
            return None  # all zeros: the provider sent no usage, and zero would be a wrong count
        return usage


def _fold_tool_call(calls: dict[int, dict[str, Any]], delta: Any) -> None:
    index = get(delta, "index") or 0
    call = calls.get(index)
    if call is None:
        call = calls[index] = {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    if get(delta, "id"):
        call["id"] = get(delta, "id")
    function = get(delta, "function")
    if function is not None:
        name = get(function, "name")
        if name:
            call["function"]["name"] += name
        arguments = get(function, "arguments")
        if arguments:
            call["function"]["arguments"] += arguments
