"""Raw responses of OpenAI calls (``with_raw_response`` / ``with_streaming_response``): see ``_core._raw``."""

from __future__ import annotations

from typing import Any

from carrot_ai._core import _raw
from carrot_ai._core._llm import LLMCall
from carrot_ai._core._stream import StreamState
from carrot_ai.instrumentation._common import sdk_types
from carrot_ai.instrumentation.openai._calls import Endpoint, stream_state


class _OpenAIRaw:
    __slots__ = ("endpoint",)

    label = "openai"
    request_id_header = "x-request-id"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def result(self, call: LLMCall, body: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
        attributes, output = self.endpoint.result(body, call.capture, call.content_attributes)
        return dict(attributes), output

    def stream_types(self) -> tuple[type[Any], type[Any]]:
        sync_type, async_type, _ = sdk_types("openai")
        return sync_type, async_type

    def stream_state(self, call: LLMCall, stream: Any) -> StreamState:
        return stream_state(self.endpoint, call, stream)


def track_raw_response(endpoint: Endpoint, call: LLMCall, response: Any) -> Any:
    """End ``call`` now if the body is known, else when ``response`` is parsed, closed or dropped. Returns it."""
    return _raw.track_raw_response(_OpenAIRaw(endpoint), call, response)
