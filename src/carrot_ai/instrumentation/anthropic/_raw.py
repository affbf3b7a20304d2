"""Raw responses of Messages calls (``with_raw_response`` / ``with_streaming_response``): see ``_core._raw``."""

from __future__ import annotations

from typing import Any

from carrot_ai._core import _raw
from carrot_ai._core._llm import LLMCall
from carrot_ai._core._stream import StreamState
from carrot_ai.instrumentation import _common
from carrot_ai.instrumentation.anthropic import _extract


class _AnthropicRaw:
    __slots__ = ()

    label = "anthropic"
    request_id_header = "request-id"

    def result(self, call: LLMCall, body: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
        attributes, output = _extract.message_result(body, call.capture, call.content_attributes)
        return dict(attributes), output

    def stream_types(self) -> tuple[type[Any], type[Any]]:
        sync_type, async_type, _ = _common.sdk_types("anthropic")
        return sync_type, async_type

    def stream_state(self, call: LLMCall, stream: Any) -> StreamState:
        from carrot_ai.instrumentation.anthropic._calls import stream_state

        return stream_state(call, stream)


_ADAPTER = _AnthropicRaw()


def track_raw_response(call: LLMCall, response: Any) -> Any:
    """End ``call`` now if the body is known, else when ``response`` is parsed, closed or dropped. Returns it."""
    return _raw.track_raw_response(_ADAPTER, call, response)
