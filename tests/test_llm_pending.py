"""What a model call on carrot's fast span leaves to the export worker: one object for its request and its body.

``_Pending`` is run by the export worker (``FastSpan.settle``) before the record is converted. These tests drive it
with plain functions standing in for a provider adapter's extractors (pure functions: no SDK, no I/O); the records it
produces through the real SDKs are checked in ``test_response_body.py`` and the provider suites.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry.util.types import AttributeValue

import carrot_ai
from carrot_ai import semconv
from carrot_ai._core._llm import _Pending
from carrot_ai.export import _processor
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.openai import conftest as openai_conftest

BODY = b'{"model": "gpt-4o-mini-2024-07-18", "text": "Hello!"}'


def _extract(data: Mapping[str, Any], capture: bool, content_attributes: bool) -> tuple[dict[str, Any], Any]:
    assert content_attributes is False  # a fast span's record is built from carrot.input / carrot.output
    return {semconv.GEN_AI_RESPONSE_MODEL: data["model"]}, {"message": {"role": "assistant", "content": data["text"]}}


def test_the_request_is_read_before_the_body_and_what_the_span_recorded_stays() -> None:
    order: list[str] = []

    def request(arguments: Mapping[str, Any], content_attributes: bool, endpoint: str) -> tuple[dict[str, Any], Any]:
        order.append(f"request {endpoint} {content_attributes}")
        return {semconv.GEN_AI_REQUEST_MODEL: arguments["model"], semconv.ERROR_TYPE: "not this"}, dict(arguments)

    def extract(data: Mapping[str, Any], capture: bool, content_attributes: bool) -> tuple[dict[str, Any], Any]:
        order.append("body")
        return _extract(data, capture, content_attributes)

    target: dict[str, AttributeValue] = {semconv.ERROR_TYPE: "RateLimitError"}  # recorded by the call itself
    pending = _Pending(request, ("chat",), {"model": "gpt-4o-mini"}, True, target)
    pending.extract, pending.body, pending.request_id = extract, BODY, "req_123"
    pending()

    assert order == ["request chat False", "body"]
    assert target[semconv.ERROR_TYPE] == "RateLimitError"
    assert target[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert target[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert target[semconv.CARROT_REQUEST_ID] == "req_123"
    assert json.loads(str(target[semconv.CARROT_INPUT])) == {"model": "gpt-4o-mini"}
    assert json.loads(str(target[semconv.CARROT_OUTPUT])) == {"message": {"role": "assistant", "content": "Hello!"}}


def test_a_failed_request_reading_still_records_the_response() -> None:
    def request(arguments: Mapping[str, Any], content_attributes: bool) -> tuple[dict[str, Any], Any]:
        raise ValueError("an adapter bug")

    target: dict[str, AttributeValue] = {}
    pending = _Pending(request, (), {"model": "gpt-4o-mini"}, True, target)
    pending.extract, pending.body = _extract, BODY
    with pytest.raises(ValueError, match="an adapter bug"):  # the worker reports it as an internal error
        pending()
    assert target[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert semconv.CARROT_OUTPUT in target and semconv.CARROT_INPUT not in target


def test_without_content_capture_only_the_model_is_kept_as_input_and_no_output() -> None:
    def request(arguments: Mapping[str, Any], content_attributes: bool) -> tuple[dict[str, Any], Any]:
        assert content_attributes is False
        return {}, dict(arguments)

    target: dict[str, AttributeValue] = {}
    pending = _Pending(
        request, (), {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "secret"}]}, False, target
    )
    pending.extract, pending.body = _extract, BODY
    pending()
    assert json.loads(str(target[semconv.CARROT_INPUT])) == {"model": "gpt-4o-mini"}
    assert semconv.CARROT_OUTPUT not in target
    assert target[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"


def test_a_call_that_ended_without_a_body_reads_its_request_only() -> None:
    target: dict[str, AttributeValue] = {}
    pending = _Pending(lambda arguments, content: ({semconv.GEN_AI_REQUEST_MODEL: "m"}, None), (), {}, True, target)
    pending()
    assert target == {semconv.GEN_AI_REQUEST_MODEL: "m"}


def test_a_streams_result_is_folded_in_after_the_request_and_what_the_span_recorded_stays() -> None:
    order: list[str] = []

    def request(arguments: Mapping[str, Any], content_attributes: bool) -> tuple[dict[str, Any], Any]:
        order.append("request")
        return {semconv.GEN_AI_REQUEST_MODEL: arguments["model"]}, dict(arguments)

    def result() -> tuple[dict[str, Any], Any]:
        order.append("result")
        attributes = {semconv.GEN_AI_RESPONSE_ID: "chatcmpl-1", semconv.ERROR_TYPE: "not this"}
        return attributes, {"message": {"content": "hi"}}

    target: dict[str, AttributeValue] = {semconv.ERROR_TYPE: "cancelled"}
    pending = _Pending(request, (), {"model": "gpt-4o-mini"}, True, target)
    pending.result = result
    pending()
    assert order == ["request", "result"]
    assert target[semconv.ERROR_TYPE] == "cancelled" and target[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-1"
    assert json.loads(str(target[semconv.CARROT_OUTPUT])) == {"message": {"content": "hi"}}


@contextlib.contextmanager
def carrot_ending_into(ingest: IngestServer) -> Iterator[list[Any]]:
    """carrot set up, the spans its processor is handed as they end kept in the list yielded instead of queued (to
    look at what they leave to the export worker); shut down after."""
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05)
    ended: list[Any] = []
    original = _processor.CarrotSpanProcessor.on_end_own
    try:
        _processor.CarrotSpanProcessor.on_end_own = lambda self, span: ended.append(span)  # type: ignore[method-assign]
        yield ended
    finally:
        _processor.CarrotSpanProcessor.on_end_own = original  # type: ignore[method-assign]
        carrot_ai.shutdown()


def test_a_stream_on_a_fast_span_leaves_its_result_to_the_pending_object(
    fake_openai: FakeOpenAI, ingest: IngestServer
) -> None:
    """The common case end to end: a stream's result joins the call's pending request (no other deferred work)."""
    with carrot_ending_into(ingest) as ended:
        client = carrot_ai.wrap(openai_conftest.make_client(fake_openai))
        chunks = list(
            client.chat.completions.create(
                model=openai_conftest.MODEL, messages=[{"role": "user", "content": "one two three"}], stream=True
            )
        )
    [span] = ended
    pending = span._later
    assert type(pending) is _Pending and pending.result is not None and pending.extract is None
    span.settle()
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert span.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert json.loads(str(span.attributes[semconv.CARROT_OUTPUT]))["message"]["content"] == text != ""


def test_a_batch_settled_first_gives_the_records_its_spans_give_one_by_one(
    fake_openai: FakeOpenAI, ingest: IngestServer
) -> None:
    """The export worker settles a batch's fast spans (``settle_spans``) before converting any: every record is the
    one its span gives when settled and converted on its own, and items that are not fast spans are left alone."""
    from carrot_ai.export._convert import encode_span, settle_spans

    with carrot_ending_into(ingest) as ended:
        client = carrot_ai.wrap(openai_conftest.make_client(fake_openai))
        for _ in range(2):  # one batch settled first, one span by span
            fake_openai.prompt_cache = type(fake_openai.prompt_cache)()  # (the same usage: no prompt seen before)
            client.chat.completions.create(model=openai_conftest.MODEL, messages=[{"role": "user", "content": "hi"}])
            list(
                client.chat.completions.create(
                    model=openai_conftest.MODEL, messages=[{"role": "user", "content": "one two"}], stream=True
                )
            )
    first, second = ended[:2], ended[2:]
    assert all(span._later is not None for span in ended)
    record = {"id": "a record", "metadata": {}}
    settle_spans([first[0], record, first[1]])
    assert all(span._later is None for span in first) and record == {"id": "a record", "metadata": {}}

    volatile = {
        "id",
        "started_at",
        "ended_at",
        "trace_id",
        "latency_ms",
        "time_to_first_token_ms",
        "response_id",
        "request_id",
    }

    def stable(data: bytes | None) -> Any:
        assert data is not None
        decoded = json.loads(data)
        decoded["metadata"] = {k: v for k, v in decoded["metadata"].items() if k not in volatile}
        return {k: v for k, v in decoded.items() if k not in volatile}

    assert [stable(encode_span(span)) for span in first] == [stable(encode_span(span)) for span in second]
