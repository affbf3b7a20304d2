"""The content switch, per-call metadata-only, redaction end to end, media placeholders and truncation."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai import semconv
from carrot_ai._core import _content
from carrot_ai._core._redact import EMAIL_MASK, FAILED_MASK, PHONE_MASK
from tests.ingest_server import IngestServer
from tests.privacy_helpers import carrot_session, payload_text, records_after_flush, span_attribute_text

SECRET = "SECRET-CONTENT-7f3a"
EMAIL = "jane.roe@example.org"
PHONE = "+1 415 555 2671"
CARD = "4111 1111 1111 1111"


@pytest.fixture(autouse=True)
def _fresh_policy() -> Iterator[None]:
    _content.set_policy(_content.ContentPolicy())
    yield
    _content.set_policy(_content.ContentPolicy())


def _now_ms() -> float:
    return time.time() * 1000


def _llm_event(prompt: str, response: str, **extra: Any) -> dict[str, Any]:
    start = _now_ms() - 50
    return {
        "start_time_ms": start,
        "end_time_ms": start + 40,
        "status": {"state": "ok"},
        "instrumentation": {"source_provider": "openai"},
        "properties": {
            "llm": {
                "model": "gpt-4o",
                "input": {"system": "be brief", "prompt": prompt},
                "output": {"mode": "generate", "response": response},
                "usage": {"input_tokens": 1000, "output_tokens": 100},
            }
        },
        **extra,
    }


def _tool_event(arguments: str, result: str) -> dict[str, Any]:
    start = _now_ms() - 20
    return {
        "start_time_ms": start,
        "duration_ms": 5,
        "status": {"state": "ok"},
        "properties": {"tool": {"name": "lookup", "input": arguments, "output": result, "call_id": "call_1"}},
    }


def _run_every_capture_path(secret: str) -> None:
    """A traced function calling a tool, plus a manual LLM event and a manual tool event, all carrying ``secret``."""

    @carrot_ai.tool
    def lookup(query: str) -> dict[str, str]:
        return {"found": f"result for {query}"}

    @carrot_ai.trace("pipeline")
    def pipeline(question: str) -> str:
        lookup(f"{secret} query")
        carrot_ai.capture_llm_call(_llm_event(f"{secret} prompt", f"{secret} response"))
        return f"{secret} answer"

    pipeline(f"{secret} question")
    carrot_ai.capture_tool_call(_tool_event(json.dumps({"q": secret}), json.dumps({"hit": secret})))


# --- content off -------------------------------------------------------------------------------------------------


def _assert_metadata_only(ingest: IngestServer, spans: Any, records: list[dict[str, Any]]) -> None:
    assert SECRET not in payload_text(ingest)
    assert SECRET not in span_attribute_text(spans)
    for record in records:
        assert record["metadata"]["content_captured"] is False, record["name"]
        assert record["output"] == {}, record["name"]
    llm = next(r for r in records if r["metadata"]["type"] == "llm")
    assert llm["input"] == {}
    assert llm["metadata"]["input_tokens"] == 1000
    assert llm["metadata"]["output_tokens"] == 100
    assert llm["metadata"]["cost_usd"] == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6)


def test_content_off_by_environment_keeps_only_metadata_tokens_and_cost(
    ingest: IngestServer, tracer_provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARROT_TRACE_CONTENT", "false")
    with carrot_session(ingest, tracer_provider) as spans:
        _run_every_capture_path(SECRET)
        records = records_after_flush(ingest, 4)
        _assert_metadata_only(ingest, spans, records)


def test_content_off_by_init_keeps_only_metadata_tokens_and_cost(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    with carrot_session(ingest, tracer_provider, capture_content=False) as spans:
        _run_every_capture_path(SECRET)
        records = records_after_flush(ingest, 4)
        _assert_metadata_only(ingest, spans, records)


def test_metadata_only_block_withholds_content_only_inside_it(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    with carrot_session(ingest, tracer_provider) as spans:
        with carrot_ai.context(metadata_only=True):
            _run_every_capture_path(SECRET)

        @carrot_ai.trace("outside")
        def outside(text: str) -> str:
            return text

        outside("visible text")
        records = records_after_flush(ingest, 5)
        inside = [r for r in records if r["name"] != "outside"]
        _assert_metadata_only(ingest, spans, inside)
        visible = ingest.by_name("outside")
        assert visible["input"] == {"text": "visible text"}
        assert "content_captured" not in visible["metadata"]


def test_generator_started_in_metadata_only_block_stays_metadata_only(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    @carrot_ai.trace("gen")
    def numbers(prefix: str) -> Iterator[str]:
        yield f"{prefix}-1"
        yield f"{prefix}-2"

    with carrot_session(ingest, tracer_provider):
        with carrot_ai.context(metadata_only=True):
            stream = numbers(SECRET)
            assert next(stream) == f"{SECRET}-1"  # a generator's call starts at its first item
        assert list(stream) == [f"{SECRET}-2"]  # the rest is consumed outside the block
        [record] = records_after_flush(ingest, 1)
        assert SECRET not in payload_text(ingest)
        assert record["metadata"]["content_captured"] is False


def _submitted_record(text: str) -> dict[str, Any]:
    return {
        "name": "custom-ingest",
        "input": {"messages": [{"role": "user", "content": f"{text} prompt"}]},
        "output": {"message": {"role": "assistant", "content": f"{text} answer"}},
        "metadata": {"model": "gpt-4o", "input_tokens": 12, "contact": text},
        "status": "success",
        "tags": [text],
    }


def test_submitted_record_obeys_the_content_switch(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider, capture_content=False):
        carrot_ai.get_client().submit(_submitted_record(SECRET))
        failed = {**_submitted_record(SECRET), "status": "error"}
        failed["output"] = {"error": "rate limited", "error_type": "RateLimitError", "partial": SECRET}
        carrot_ai.get_client().submit(failed)
        records = {r["status"]: r for r in records_after_flush(ingest, 2)}
        for text in (f"{SECRET} prompt", f"{SECRET} answer", '"partial"'):
            assert text not in payload_text(ingest)
        for record in records.values():
            assert record["input"] == {}
            assert record["metadata"]["content_captured"] is False
            assert record["metadata"]["input_tokens"] == 12
        assert records["success"]["output"] == {}
        assert records["error"]["output"] == {"error": "rate limited", "error_type": "RateLimitError"}


def test_submitted_record_obeys_a_metadata_only_block(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider):
        with carrot_ai.context(metadata_only=True):
            carrot_ai.get_client().submit(_submitted_record(SECRET))
        [record] = records_after_flush(ingest, 1)
        assert (record["input"], record["output"]) == ({}, {})
        assert f"{SECRET} prompt" not in payload_text(ingest)


def test_submitted_record_is_redacted_and_truncated(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider, redact=True, max_string_length=1000):
        record = _submitted_record(EMAIL)
        record["input"]["document"] = "x" * 5000
        carrot_ai.get_client().submit(record)
        [got] = records_after_flush(ingest, 1)
        assert EMAIL not in payload_text(ingest)
        assert got["input"]["messages"] == [{"role": "user", "content": f"{EMAIL_MASK} prompt"}]
        assert got["input"]["document"] == "x" * 1000 + "...[truncated, 5000 chars]"
        assert got["output"] == {"message": {"role": "assistant", "content": f"{EMAIL_MASK} answer"}}
        assert got["metadata"]["contact"] == EMAIL_MASK
        assert got["metadata"]["model"] == "gpt-4o"
        assert got["tags"] == [EMAIL_MASK]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("capture_content", "metadata-only", "capture_content must be True or False"),
        ("capture_content", 2, "capture_content must be True or False"),
        ("redact", "maybe", "redact must be True or False"),
        ("redact", [True], "redact must be True or False"),
        ("redact_fn", "[MASKED]", "redact_fn must be a function"),
        ("max_string_length", "1000", "max_string_length must be a whole number"),
        ("max_string_length", 0, "max_string_length must be a whole number of characters >= 1"),
        ("max_string_length", 1.5, "max_string_length must be a whole number"),
    ],
)
def test_init_rejects_privacy_settings_of_the_wrong_type(
    ingest: IngestServer, tracer_provider: TracerProvider, option: str, value: Any, message: str
) -> None:
    """A string "false" is truthy: taken as given, it would turn capture on. init() says so instead."""
    with pytest.raises(ValueError, match=message):
        carrot_ai.init(
            api_key="ck-test-key", base_url=ingest.base_url, tracer_provider=tracer_provider, **{option: value}
        )
    assert _content.policy().capture is True and _content.policy().redactor is None  # nothing was installed


@pytest.mark.parametrize(
    ("value", "captured"), [("false", False), (" Off ", False), (0, False), ("yes", True), (1, True)]
)
def test_capture_content_given_as_a_word_or_a_number_is_read_as_the_variable_is(
    ingest: IngestServer, tracer_provider: TracerProvider, value: Any, captured: bool
) -> None:
    """``capture_content="false"`` (from a config file) means off, as ``CARROT_TRACE_CONTENT=false`` does: taken as
    given, the non-empty string would be true and capture everything."""

    @carrot_ai.trace("t")
    def handle(text: str) -> str:
        return text

    with carrot_session(ingest, tracer_provider, capture_content=value, redact="no"):
        handle("secret plan")
        [record] = records_after_flush(ingest, 1)
    assert (record["input"] == {"text": "secret plan"}) is captured
    assert ("secret plan" in json.dumps(record)) is captured


def test_max_string_length_may_be_written_as_a_float(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    @carrot_ai.trace("t")
    def handle(text: str) -> None:
        return None

    with carrot_session(ingest, tracer_provider, max_string_length=1e3):
        handle("x" * 2000)
        [record] = records_after_flush(ingest, 1)
    assert record["input"] == {"text": "x" * 1000 + "...[truncated, 2000 chars]"}


@pytest.mark.parametrize("variable", ["CARROT_TRACE_CONTENT", "CARROT_TRACE_REDACT"])
def test_unrecognised_privacy_switch_value_is_logged(
    variable: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``CARROT_TRACE_CONTENT=metadata-only`` is not a boolean: the default (capture) stays, and the log says so."""
    from carrot_ai._config import resolve_settings

    monkeypatch.setenv(variable, "metadata-only")
    with caplog.at_level(logging.WARNING, logger="carrot_ai"):
        settings = resolve_settings()
        resolve_settings()
    assert (settings.capture_content, settings.redact) == (True, False)
    [line] = [r.getMessage() for r in caplog.records if variable in r.getMessage()]  # once, not per resolution
    assert "'metadata-only'" in line and "true or false" in line


# --- per-call header ---------------------------------------------------------------------------------------------


def test_trace_header_is_removed_without_touching_the_callers_dict() -> None:
    headers = {"X-Request-Id": "r1", "x-CARROT-trace": " Metadata-Only "}
    kwargs: dict[str, Any] = {"model": "m", "extra_headers": headers}
    assert _content.pop_trace_header(kwargs) is True
    assert kwargs["extra_headers"] == {"X-Request-Id": "r1"}
    assert headers == {"X-Request-Id": "r1", "x-CARROT-trace": " Metadata-Only "}


def test_trace_header_alone_removes_extra_headers_entirely() -> None:
    kwargs: dict[str, Any] = {"extra_headers": {"X-Carrot-Trace": "metadata-only"}}
    assert _content.pop_trace_header(kwargs) is True
    assert "extra_headers" not in kwargs


@pytest.mark.parametrize(
    "extra_headers",
    [None, {}, {"X-Carrot-Trace": "true"}, {"X-Other": "metadata-only"}, "not-a-mapping", {"X-Carrot-Trace": None}],
)
def test_other_trace_header_values_are_left_to_the_provider(extra_headers: Any) -> None:
    kwargs: dict[str, Any] = {"extra_headers": extra_headers}
    assert _content.pop_trace_header(kwargs) is False
    assert kwargs == {"extra_headers": extra_headers}


def test_call_without_extra_headers_is_untouched() -> None:
    kwargs: dict[str, Any] = {"model": "m"}
    assert _content.pop_trace_header(kwargs) is False
    assert kwargs == {"model": "m"}


def test_capture_for_call_combines_header_switch_and_block() -> None:
    assert _content.capture_for_call({}) is True
    assert _content.capture_for_call({"extra_headers": {"X-Carrot-Trace": "metadata-only"}}) is False
    with carrot_ai.context(metadata_only=True):
        kwargs: dict[str, Any] = {"extra_headers": {"X-Carrot-Trace": "metadata-only"}}
        assert _content.capture_for_call(kwargs) is False
        assert kwargs == {}  # removed even when content is off anyway
    _content.set_policy(_content.ContentPolicy(capture=False))
    assert _content.capture_for_call({}) is False


def test_policy_comes_from_environment_until_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARROT_TRACE_CONTENT", "false")
    monkeypatch.setenv("CARROT_TRACE_REDACT", "true")
    monkeypatch.setattr(_content, "_policy", None)
    assert _content.capture_enabled() is False
    assert _content.redaction_enabled() is True
    assert _content.prepare_text(f"mail {EMAIL}") == f"mail {EMAIL_MASK}"


# --- redaction end to end ----------------------------------------------------------------------------------------


def _run_with_personal_data() -> None:
    @carrot_ai.tool
    def send_sms(number: str, body: str) -> str:
        return f"sent to {number}"

    @carrot_ai.trace("support", metadata={"customer_email": EMAIL})
    def support(message: str, card: str) -> dict[str, str]:
        send_sms(PHONE, f"hello {EMAIL}")
        carrot_ai.capture_llm_call(_llm_event(f"my card is {CARD}", f"we will email {EMAIL}"))
        return {"reply": f"we charged {CARD} and will call {PHONE}"}

    @carrot_ai.trace("fails")
    def fails() -> None:
        raise ValueError(f"no account for {EMAIL}")

    with carrot_ai.context(user_id=EMAIL, session_id=PHONE, metadata={"contact": PHONE}, tags=[EMAIL]):
        support(f"I am {EMAIL}", CARD)
        with pytest.raises(ValueError):
            fails()


def _assert_no_personal_data(ingest: IngestServer, spans: Any) -> None:
    for text in (payload_text(ingest), span_attribute_text(spans)):
        for value in (EMAIL, PHONE, CARD, CARD.replace(" ", "")):
            assert value not in text


def test_redaction_by_init_masks_every_captured_string(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider, redact=True) as spans:
        _run_with_personal_data()
        records_after_flush(ingest, 4)
        _assert_no_personal_data(ingest, spans)
        support = ingest.by_name("support")
        assert support["input"] == {"message": f"I am {EMAIL_MASK}", "card": "[CARD]"}
        assert support["metadata"]["user_id"] == EMAIL_MASK
        assert support["metadata"]["session_id"] == PHONE_MASK
        assert support["metadata"]["customer_email"] == EMAIL_MASK
        assert support["metadata"]["contact"] == PHONE_MASK
        assert support["tags"] == [EMAIL_MASK]
        assert ingest.by_name("fails")["output"] == {
            "error": f"no account for {EMAIL_MASK}",
            "error_type": "ValueError",
        }


def test_redaction_by_environment_masks_every_captured_string(
    ingest: IngestServer, tracer_provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARROT_TRACE_REDACT", "true")
    with carrot_session(ingest, tracer_provider) as spans:
        _run_with_personal_data()
        records_after_flush(ingest, 4)
        _assert_no_personal_data(ingest, spans)


def test_user_masking_function_applies_after_built_in_patterns(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    @carrot_ai.trace("t")
    def handle(text: str) -> str:
        return text

    with carrot_session(ingest, tracer_provider, redact_fn=lambda s: s.replace("Project Falcon", "[CODENAME]")):
        handle(f"Project Falcon, ask {EMAIL}")
        [record] = records_after_flush(ingest, 1)
        assert record["input"] == {"text": f"[CODENAME], ask {EMAIL_MASK}"}


def test_failing_user_masking_function_never_sends_the_raw_value(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("mask failed")

    @carrot_ai.trace("t")
    def handle(text: str) -> str:
        return text

    with carrot_session(ingest, tracer_provider, redact=True, redact_fn=broken):
        handle(SECRET)
        [record] = records_after_flush(ingest, 1)
        assert record["input"] == {"text": FAILED_MASK}
        assert record["output"] == {"result": FAILED_MASK}
        assert SECRET not in payload_text(ingest)


def test_foreign_genai_spans_obey_redaction_and_content_switch(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    """Spans of other instrumentations never went through our policy: the exporter applies it."""
    tracer = tracer_provider.get_tracer("some.other.instrumentation")

    def foreign_call() -> None:
        with tracer.start_as_current_span("chat gpt-4o") as span:
            span.set_attributes(
                {
                    semconv.GEN_AI_OPERATION_NAME: "chat",
                    semconv.GEN_AI_PROVIDER_NAME: "openai",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                    semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
                    semconv.GEN_AI_INPUT_MESSAGES: json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": f"mail {EMAIL}"}]}]
                    ),
                    semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": f"call {PHONE}"}]}]
                    ),
                }
            )

    with carrot_session(ingest, tracer_provider, redact=True):
        foreign_call()
        [record] = records_after_flush(ingest, 1)
        assert record["input"]["messages"] == [{"role": "user", "content": f"mail {EMAIL_MASK}"}]
        assert record["output"] == {"message": {"role": "assistant", "content": f"call {PHONE_MASK}"}}
    ingest.records.clear()
    with carrot_session(ingest, tracer_provider, capture_content=False):
        foreign_call()
        [record] = records_after_flush(ingest, 1)
        assert record["input"] == {"model": "gpt-4o", "temperature": 0.2}
        assert record["output"] == {}


# --- media and truncation ----------------------------------------------------------------------------------------

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40).decode()
PNG_SIZE = 8 + 256 * 40
WAV = base64.b64encode(b"RIFF\x24\x08\x00\x00WAVEfmt " + bytes(range(200)) * 10).decode()
WAV_SIZE = 16 + 2000


def test_data_url_image_becomes_a_placeholder_with_type_and_size() -> None:
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}
    assert _content.prepare(message)["content"][0]["image_url"]["url"] == f"<media: image/png, {PNG_SIZE} bytes>"


def test_anthropic_base64_source_becomes_a_placeholder() -> None:
    block = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}}
    assert _content.prepare(block)["source"] == {
        "type": "base64",
        "media_type": "image/jpeg",
        "data": f"<media: image/jpeg, {PNG_SIZE} bytes>",
    }


def test_input_audio_becomes_a_placeholder_with_audio_type() -> None:
    part = {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}}
    assert _content.prepare(part)["input_audio"]["data"] == f"<media: audio/wav, {WAV_SIZE} bytes>"


def test_genai_blob_part_and_image_api_payloads_become_placeholders() -> None:
    blob = {"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG}
    assert _content.prepare(blob)["content"] == f"<media: image/png, {PNG_SIZE} bytes>"
    image = {"data": [{"b64_json": PNG, "revised_prompt": "a cat"}]}
    assert _content.prepare(image)["data"][0] == {
        "b64_json": f"<media: image/png, {PNG_SIZE} bytes>",
        "revised_prompt": "a cat",
    }


def test_bare_base64_is_sniffed_and_replaced_but_long_text_is_not() -> None:
    assert _content.prepare({"audio": WAV * 2}) == {"audio": f"<media: audio/wav, {WAV_SIZE * 2} bytes>"}
    hex_digest = "0123456789abcdef" * 100
    assert _content.prepare({"digest": hex_digest}) == {"digest": hex_digest}
    assert _content.prepare({"word": "x" * 5000}) == {"word": "x" * 5000}


def test_data_url_inside_text_becomes_a_placeholder() -> None:
    """Markdown or HTML that inlines an image (a page to summarise, a rendered answer) keeps its text, not the image."""
    html = f'<p>Our logo:</p><img alt="logo" src="data:image/png;base64,{PNG}"> and ![chart](data:;base64,{PNG}).'
    assert _content.prepare({"text": html}) == {
        "text": f'<p>Our logo:</p><img alt="logo" src="<media: image/png, {PNG_SIZE} bytes>"> and '
        f"![chart](<media: image/png, {PNG_SIZE} bytes>)."
    }
    mentioned = "A data URL looks like data:image/png;base64,iVBORw0KGgo= " + "and so on " * 200
    assert _content.prepare(mentioned) == mentioned.replace(
        "data:image/png;base64,iVBORw0KGgo=", "<media: image/png, 8 bytes>"
    )


def test_media_under_the_configured_size_is_kept() -> None:
    url = f"data:image/png;base64,{PNG}"
    assert _content.strip_media({"url": url}, max_media_bytes=PNG_SIZE) == {"url": url}
    assert _content.strip_media({"url": url}, max_media_bytes=PNG_SIZE - 1) == {
        "url": f"<media: image/png, {PNG_SIZE} bytes>"
    }


@pytest.mark.parametrize("secret", [EMAIL, CARD, PHONE, "Project Falcon"])
def test_value_cut_by_truncation_is_still_masked(
    ingest: IngestServer, tracer_provider: TracerProvider, secret: str
) -> None:
    """A value the string limit cuts in two must not escape its pattern and leave its first half in the record."""

    @carrot_ai.trace("t")
    def handle(text: str) -> None:
        return None

    texts = [
        "x " * 497 + f"{secret} and more" + " y" * 5000,  # the cut (at 1,000) falls inside the secret
        "x " * 497 + f"{secret}" + " y" * 200,  # the same, in text shorter than the limit and the margin read past it
    ]
    mask = lambda s: s.replace("Project Falcon", "[CODENAME]")  # noqa: E731
    with carrot_session(ingest, tracer_provider, redact=True, redact_fn=mask, max_string_length=1000):
        for text in texts:
            handle(text)
        records = records_after_flush(ingest, 2)
    assert secret[:5] not in payload_text(ingest)
    for record in records:
        kept, marker = record["input"]["text"].split("...[truncated, ")
        assert len(kept) <= 1000
        assert marker in {f"{len(text)} chars]" for text in texts}


def test_cut_keeps_clear_of_a_value_split_past_the_redacted_margin() -> None:
    from carrot_ai._core._redact import make_string_redactor

    policy = _content.ContentPolicy(max_string=1000, redactor=make_string_redactor())
    text = "ann@example.com " * 400  # every address masked: the masked text is half as long as the original
    cleaned = policy.clean_string(text)
    assert "ann@" not in cleaned
    assert cleaned.endswith("...[truncated, 6400 chars]")


def test_media_and_truncation_end_to_end(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    @carrot_ai.trace("describe")
    def describe(messages: list[dict[str, Any]], notes: str) -> str:
        return "a chart"

    with carrot_session(ingest, tracer_provider, max_string_length=1_000):
        describe(
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}],
                }
            ],
            "n" * 5_000,
        )
        [record] = records_after_flush(ingest, 1)
        assert record["input"]["messages"][0]["content"][0]["image_url"]["url"] == (
            f"<media: image/png, {PNG_SIZE} bytes>"
        )
        assert record["input"]["notes"] == "n" * 1_000 + "...[truncated, 5000 chars]"
        assert PNG[:100] not in payload_text(ingest)


def test_media_limit_is_configurable_by_init(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    @carrot_ai.trace("keep")
    def keep(url: str) -> None:
        return None

    url = f"data:image/png;base64,{PNG}"
    with carrot_session(ingest, tracer_provider, max_media_bytes=1_000_000):
        keep(url)
        [record] = records_after_flush(ingest, 1)
        assert record["input"] == {"url": url}  # kept whole: media are never cut in the middle


def test_prepare_never_returns_raw_value_when_cleaning_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, data: Any, parent_key: Any = None) -> Any:
        raise RuntimeError("bug")

    monkeypatch.delenv("CARROT_STRICT")
    _content.set_policy(_content.ContentPolicy(redactor=lambda s: s))
    monkeypatch.setattr(_content.ContentPolicy, "clean", broken)
    assert _content.prepare({"text": SECRET}) == FAILED_MASK
