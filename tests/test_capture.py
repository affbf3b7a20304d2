"""Manual capture: ``capture_llm_call`` / ``capture_tool_call`` / ``capture_events``, validated synchronously."""

from __future__ import annotations

import copy
import datetime
import functools
import logging
import string
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from dirty_equals import IsStr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import carrot_ai
from carrot_ai import _capture, _events
from tests.ingest_server import IngestServer
from tests.privacy_helpers import carrot_session, payload_text, records_after_flush, span_attribute_text


def _iso(ms: float) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).isoformat()


def seed_llm_event(start_ms: float | None = None) -> dict[str, Any]:
    """The manual-capture docs' LLM event example, in snake_case."""
    start = start_ms if start_ms is not None else float(int(time.time() * 1000) - 1_000)
    end = start + 850
    return {
        "type": "llm",
        "id": str(uuid.uuid4()),
        "start_time_ms": start,
        "end_time_ms": end,
        "duration_ms": end - start,
        "status": {"state": "ok"},
        "instrumentation": {"provider": "carbon", "source_provider": "openai", "source_package": "openai"},
        "context": {"user_id": "user-481"},
        "additional_properties": {},
        "properties": {
            "llm": {
                "model": "gpt-4o-mini",
                "input": {"system": "You are concise.", "prompt": "Name a prime.", "tools": []},
                "output": {"mode": "generate", "response": "7", "tool_calls": []},
                "usage": {
                    "input_tokens": 20,
                    "input_token_details": {"uncached_tokens": 20, "cache_read_tokens": 0, "cache_write_tokens": 0},
                    "output_tokens": 2,
                    "output_token_details": {"reasoning_tokens": 0, "response_tokens": 2},
                    "total_tokens": 22,
                },
            }
        },
    }


def seed_tool_event(trace_id: str | None = None, start_ms: float | None = None) -> dict[str, Any]:
    start = start_ms if start_ms is not None else float(int(time.time() * 1000) - 500)
    event: dict[str, Any] = {
        "type": "tool",
        "id": str(uuid.uuid4()),
        "start_time_ms": start,
        "end_time_ms": start + 120,
        "duration_ms": 120,
        "status": {"state": "ok"},
        "instrumentation": {"provider": "carbon", "source_provider": "vercel", "source_package": "ai"},
        "context": {"agent_id": "search-agent"},
        "additional_properties": {},
        "properties": {
            "tool": {"name": "search_index", "input": '{"query": "primes"}', "output": '[{"doc": "primes.md"}]'}
        },
    }
    if trace_id is not None:
        event["trace_id"] = trace_id
    return event


# --- what arrives ------------------------------------------------------------------------------------------------


def test_llm_event_becomes_a_record_with_its_own_id_times_usage_and_cost(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    event = seed_llm_event()
    with carrot_session(ingest, tracer_provider):
        assert carrot_ai.capture_llm_call(event) == event["id"]
        [record] = records_after_flush(ingest, 1)
    assert record == {
        "id": event["id"],
        "name": "chat.completions",
        "input": {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are concise."},
                {"role": "user", "content": "Name a prime."},
            ],
        },
        "output": {"message": {"role": "assistant", "content": "7"}},
        "metadata": {
            "type": "llm",
            "source": "manual",
            "model": "gpt-4o-mini",
            "provider": "openai",
            "operation": "chat",
            "input_tokens": 20,
            "output_tokens": 2,
            "total_tokens": 22,
            "cache_read_input_tokens": 0,
            "cache_write_input_tokens": 0,
            "reasoning_tokens": 0,
            "cost_usd": pytest.approx((20 * 0.15 + 2 * 0.6) / 1e6),
            "latency_ms": 850.0,
            "trace_id": IsStr(regex=r"^[0-9a-f]{32}$"),
            "user_id": "user-481",
            "source_provider": "openai",
            "source_package": "openai",
        },
        "status": "success",
        "started_at": _iso(event["start_time_ms"]),
        "ended_at": _iso(event["end_time_ms"]),
    }


def test_backfilled_event_keeps_its_timestamps(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    start = 1_700_000_000_123.0  # 2023-11-14
    event = seed_llm_event(start_ms=start)
    with carrot_session(ingest, tracer_provider):
        carrot_ai.capture_llm_call(event)
        [record] = records_after_flush(ingest, 1)
    assert record["started_at"] == "2023-11-14T22:13:20.123000+00:00"
    assert record["ended_at"] == "2023-11-14T22:13:20.973000+00:00"
    assert record["metadata"]["latency_ms"] == 850.0


def test_metadata_named_like_the_records_own_fields_is_kept_and_the_record_stays_valid(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    # Found by the property test below: a user key such as `finish_reasons: None` used to make the record invalid.
    event = seed_llm_event()
    event["additional_properties"] = {
        "finish_reasons": None,
        "input_tokens": -1,
        "cancelled": "no",
        "tool_name": "lookup",
        "release": "2.0",
    }
    with carrot_session(ingest, tracer_provider):
        carrot_ai.capture_llm_call(event)
        [record] = records_after_flush(ingest, 1)  # the ingest fixture validates it against the JSON Schema
    metadata = record["metadata"]
    assert metadata["user.finish_reasons"] is None
    assert metadata["user.input_tokens"] == -1
    assert metadata["user.cancelled"] == "no"
    assert metadata["tool_name"] == "lookup"  # fits its field: kept under its own name, as the reference SDK does
    assert metadata["release"] == "2.0"
    assert "cancelled" not in metadata


def test_error_status_carries_code_http_status_and_message(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    event = seed_llm_event()
    event["status"] = {
        "state": "error",
        "error": {"code": "rate_limit_exceeded", "http_status": 429, "message": "Provider rate limit hit"},
    }
    with carrot_session(ingest, tracer_provider):
        carrot_ai.capture_llm_call(event)
        [record] = records_after_flush(ingest, 1)
    assert record["status"] == "error"
    # The output the event gave is kept beside the error, as a failed stream's partial output is.
    assert record["output"] == {
        "error": "Provider rate limit hit",
        "error_type": "rate_limit_exceeded",
        "message": {"role": "assistant", "content": "7"},
    }
    assert record["metadata"]["error_code"] == "rate_limit_exceeded"
    assert record["metadata"]["http_status"] == 429


def test_error_status_without_details_is_still_an_error(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    event = seed_tool_event()
    event["status"] = {"state": "error"}
    with carrot_session(ingest, tracer_provider):
        carrot_ai.capture_tool_call(event)
        [record] = records_after_flush(ingest, 1)
    assert record["status"] == "error"
    assert record["output"] == {"error": "error", "error_type": "error"}


def test_tool_event_attaches_to_the_trace_it_names(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    trace_id = uuid.uuid4().hex
    llm = seed_llm_event()
    llm["trace_id"] = trace_id
    tool = seed_tool_event(trace_id=str(uuid.UUID(trace_id)))  # a UUID spelling of the same id works too
    tool["parent_id"] = llm["id"]
    with carrot_session(ingest, tracer_provider):
        carrot_ai.capture_llm_call(llm)
        assert carrot_ai.capture_tool_call(tool) == tool["id"]
        records = records_after_flush(ingest, 2)
    by_type = {r["metadata"]["type"]: r for r in records}
    assert by_type["llm"]["metadata"]["trace_id"] == trace_id
    assert "parent_trace_id" not in by_type["llm"]["metadata"]
    assert by_type["tool"]["metadata"]["trace_id"] == trace_id
    assert by_type["tool"]["metadata"]["parent_trace_id"] == llm["id"]
    assert by_type["tool"]["name"] == "search_index"
    assert by_type["tool"]["input"] == {"query": "primes"}
    assert by_type["tool"]["output"] == {"result": [{"doc": "primes.md"}]}
    assert by_type["tool"]["metadata"]["agent_id"] == "search-agent"
    assert by_type["tool"]["metadata"]["tool_name"] == "search_index"


def test_event_inside_a_traced_function_is_its_child(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    @carrot_ai.trace("agent")
    def agent() -> None:
        carrot_ai.capture_llm_call(seed_llm_event())

    with carrot_session(ingest, tracer_provider):
        agent()
        records = records_after_flush(ingest, 2)
    parent = next(r for r in records if r["name"] == "agent")
    child = next(r for r in records if r["metadata"]["type"] == "llm")
    assert child["metadata"]["parent_trace_id"] == parent["id"]
    assert child["metadata"]["trace_id"] == parent["metadata"]["trace_id"]


def test_event_context_wins_over_the_ambient_context(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    event = seed_llm_event()
    event["context"] = {"user_id": "from-event", "session_id": "s-event", "tenant": "acme"}
    event["additional_properties"] = {"ab_variant": "B"}
    event["tags"] = ["backfill"]
    with carrot_session(ingest, tracer_provider):
        with carrot_ai.context(user_id="ambient", metadata={"feature": "x"}, tags=["ctx"]):
            carrot_ai.capture_llm_call(event)
        [record] = records_after_flush(ingest, 1)
    metadata = record["metadata"]
    assert (metadata["user_id"], metadata["session_id"]) == ("from-event", "s-event")
    assert (metadata["tenant"], metadata["ab_variant"], metadata["feature"]) == ("acme", "B", "x")
    assert record["tags"] == ["ctx", "backfill"]


def test_output_tool_calls_become_record_tool_calls(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    event = seed_llm_event()
    event["properties"]["llm"]["output"] = {
        "mode": "generate",
        "response": None,
        "tool_calls": [
            {"tool_call_id": "call_1", "tool_name": "search_index", "input": {"query": "primes"}},
            {"tool_name": "noop", "input": "{}"},
        ],
    }
    with carrot_session(ingest, tracer_provider):
        carrot_ai.capture_llm_call(event)
        [record] = records_after_flush(ingest, 1)
    assert record["output"] == {
        "message": {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "search_index", "arguments": '{"query":"primes"}'},
                },
                {"id": None, "type": "function", "function": {"name": "noop", "arguments": "{}"}},
            ],
        }
    }


def test_mixed_batch_arrives_in_full(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    events = [seed_llm_event(), seed_tool_event(), seed_llm_event(), {**seed_tool_event(), "id": None}]
    with carrot_session(ingest, tracer_provider):
        ids = carrot_ai.capture_events(events)
        records = records_after_flush(ingest, 4)
    assert ids[:3] == [e["id"] for e in events[:3]]
    assert uuid.UUID(ids[3])  # generated
    assert sorted(r["id"] for r in records) == sorted(ids)


def test_event_dropped_by_the_sampler_is_still_delivered(ingest: IngestServer) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)

    @carrot_ai.trace("sampled_out")
    def sampled_out() -> None:
        return None

    try:
        with carrot_session(ingest, provider):
            sampled_out()
            event_id = carrot_ai.capture_llm_call(seed_llm_event())
            [record] = records_after_flush(ingest, 1)
    finally:
        provider.shutdown()
    assert record["id"] == event_id
    assert record["metadata"]["cost_usd"] > 0


def test_capture_before_init_is_counted_and_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    before = _capture.undelivered()
    with caplog.at_level(logging.WARNING, logger="carrot_ai"):
        carrot_ai.capture_llm_call(seed_llm_event())
    assert _capture.undelivered() == before + 1


def test_capture_after_shutdown_is_counted_and_says_so(
    ingest: IngestServer,
    tracer_provider: TracerProvider,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_capture, "_warned_not_initialized", False)
    with carrot_session(ingest, tracer_provider):
        pass
    before = _capture.undelivered()
    with caplog.at_level(logging.WARNING, logger="carrot_ai"):
        assert carrot_ai.capture_llm_call(seed_llm_event())
    assert _capture.undelivered() == before + 1
    assert "after carrot_ai.shutdown()" in caplog.text


def test_capture_is_a_no_op_when_the_sdk_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    before = _capture.undelivered()
    assert carrot_ai.capture_llm_call(seed_llm_event())
    assert _capture.undelivered() == before
    with pytest.raises(ValueError, match="start_time_ms"):  # still validated
        carrot_ai.capture_llm_call({**seed_llm_event(), "start_time_ms": None})


# --- validation --------------------------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = event
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = event
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


USAGE = "properties.llm.usage"
LLM_MUTATIONS: list[tuple[str, Mutation, str, str]] = [
    ("missing start", _delete("start_time_ms"), "start_time_ms", "missing"),
    ("start not a number", _set("start_time_ms", "yesterday"), "start_time_ms", "must be a number"),
    ("start in seconds", _set("start_time_ms", 1_700_000_000), "start_time_ms", "milliseconds since the Unix epoch"),
    ("missing end and duration", lambda e: (e.pop("end_time_ms"), e.pop("duration_ms")), "end_time_ms", "missing"),
    (
        "end before start",
        lambda e: e.update(end_time_ms=e["start_time_ms"] - 1, duration_ms=None),
        "end_time_ms",
        "ends before",
    ),
    ("negative duration", lambda e: e.update(end_time_ms=None, duration_ms=-5), "duration_ms", "negative"),
    ("duration disagrees", _set("duration_ms", 5), "duration_ms", "disagrees"),
    ("missing status", _delete("status"), "status", "must be an object"),
    ("missing state", _set("status", {}), "status.state", "missing"),
    ("unknown state", _set("status.state", "timeout"), "status.state", "unknown status"),
    ("error detail on ok", _set("status.error", {"code": "x"}), "status.error", "only allowed"),
    (
        "http status out of range",
        _set("status", {"state": "error", "error": {"http_status": 700}}),
        "status.error.http_status",
        "HTTP status",
    ),
    (
        "error code not text",
        _set("status", {"state": "error", "error": {"code": 5}}),
        "status.error.code",
        "must be a string",
    ),
    ("missing model", _delete("properties.llm.model"), "properties.llm.model", "missing"),
    ("empty model", _set("properties.llm.model", "  "), "properties.llm.model", "must not be empty"),
    ("model not text", _set("properties.llm.model", 4), "properties.llm.model", "must be a string"),
    ("missing properties", _delete("properties"), "properties", "missing"),
    ("tool properties on llm", _set("properties", {"tool": {"name": "x"}}), "properties.tool", "unknown field"),
    ("negative input tokens", _set(f"{USAGE}.input_tokens", -1), f"{USAGE}.input_tokens", "must not be negative"),
    ("fractional tokens", _set(f"{USAGE}.output_tokens", 1.5), f"{USAGE}.output_tokens", "whole number"),
    ("tokens as text", _set(f"{USAGE}.output_tokens", "2"), f"{USAGE}.output_tokens", "whole number"),
    ("boolean tokens", _set(f"{USAGE}.output_tokens", True), f"{USAGE}.output_tokens", "whole number"),
    (
        "negative cache read",
        _set(f"{USAGE}.input_token_details.cache_read_tokens", -3),
        f"{USAGE}.input_token_details.cache_read_tokens",
        "negative",
    ),
    (
        "cache exceeds input",
        _set(f"{USAGE}.input_token_details", {"cache_read_tokens": 30}),
        f"{USAGE}.input_token_details",
        "exceed input_tokens",
    ),
    (
        "uncached mismatch",
        _set(f"{USAGE}.input_token_details.uncached_tokens", 5),
        f"{USAGE}.input_token_details.uncached_tokens",
        "must equal input_tokens",
    ),
    (
        "reasoning exceeds output",
        _set(f"{USAGE}.output_token_details", {"reasoning_tokens": 9}),
        f"{USAGE}.output_token_details.reasoning_tokens",
        "exceed output_tokens",
    ),
    (
        "response mismatch",
        _set(f"{USAGE}.output_token_details.response_tokens", 9),
        f"{USAGE}.output_token_details.response_tokens",
        "must equal output_tokens",
    ),
    ("total mismatch", _set(f"{USAGE}.total_tokens", 23), f"{USAGE}.total_tokens", "must equal input_tokens"),
    ("details without input", _delete(f"{USAGE}.input_tokens"), f"{USAGE}.input_tokens", "missing"),
    ("usage not an object", _set(USAGE, [20, 2]), USAGE, "must be an object"),
    ("camelCase key", _set("startTimeMs", 1), "startTimeMs", "snake_case: 'start_time_ms'"),
    ("camelCase nested key", _set(f"{USAGE}.inputTokens", 1), f"{USAGE}.inputTokens", "snake_case: 'input_tokens'"),
    ("camelCase context key", _set("context.agentId", "a"), "context.agentId", "snake_case: 'agent_id'"),
    ("unknown key", _set("colour", "red"), "colour", "unknown field"),
    ("cost given", _set("cost", 0.1), "cost", "not accepted"),
    ("space id given", _set("space_id", "s"), "space_id", "not accepted"),
    ("id not a uuid", _set("id", "evt-1"), "id", "must be a UUID"),
    ("trace id not hex", _set("trace_id", "xyz"), "trace_id", "32 hex digits"),
    ("zero trace id", _set("trace_id", "0" * 32), "trace_id", "32 hex digits"),
    ("parent id not a uuid", _set("parent_id", 12), "parent_id", "must be a string"),
    ("wrong type", _set("type", "tool"), "type", "must be 'llm' here"),
    ("unknown type", _set("type", "embedding"), "type", 'must be "llm" or "tool"'),
    ("context not an object", _set("context", ["u"]), "context", "must be an object"),
    ("user id not text", _set("context.user_id", {"id": 1}), "context.user_id", "must be a string"),
    ("context value nested", _set("context.team", {"a": 1}), "context.team", "string, number or boolean"),
    ("tags not a list", _set("tags", "t"), "tags", "list of strings"),
    ("tag not text", _set("tags", ["ok", 1]), "tags[1]", "must be a string"),
    (
        "prompt not text or messages",
        _set("properties.llm.input.prompt", 42),
        "properties.llm.input.prompt",
        "text or a list of messages",
    ),
    (
        "message without role",
        _set("properties.llm.input.messages", [{"content": "hi"}]),
        "properties.llm.input.messages[0].role",
        "missing",
    ),
    (
        "response not text",
        _set("properties.llm.output.response", {"text": "7"}),
        "properties.llm.output.response",
        "must be a string",
    ),
    (
        "tool call without name",
        _set("properties.llm.output.tool_calls", [{"input": "{}"}]),
        "properties.llm.output.tool_calls[0].tool_name",
        "missing",
    ),
    (
        "instrumentation not text",
        _set("instrumentation.source_provider", 3),
        "instrumentation.source_provider",
        "must be a string",
    ),
    (
        "additional properties not an object",
        _set("additional_properties", 3),
        "additional_properties",
        "must be an object",
    ),
    ("user id beyond str()'s digit limit", _set("context.user_id", 10**5000), "context.user_id", "too long"),
    ("context value not finite", _set("context.score", float("nan")), "context.score", "finite"),
    ("start beyond any float", _set("start_time_ms", 10**400), "start_time_ms", "out of range"),
    ("end beyond any float", _set("end_time_ms", -(10**5000)), "end_time_ms", "out of range"),
    ("duration beyond any float", _set("duration_ms", 10**400), "duration_ms", "out of range"),
    ("tokens beyond 64 bits", _set(f"{USAGE}.input_tokens", 10**5000), f"{USAGE}.input_tokens", "out of range"),
    ("tokens far below zero", _set(f"{USAGE}.input_tokens", -(10**5000)), f"{USAGE}.input_tokens", "negative"),
    (
        "tool call input nested too deeply",
        _set(
            "properties.llm.output.tool_calls",
            [{"tool_name": "x", "input": functools.reduce(lambda x, _: [x], range(5000), [])}],
        ),
        "properties.llm.output.tool_calls[0].input",
        "nested too deeply",
    ),
]


@pytest.mark.parametrize(
    ("mutation", "path", "reason"), [m[1:] for m in LLM_MUTATIONS], ids=[m[0] for m in LLM_MUTATIONS]
)
def test_invalid_llm_event_names_the_field_path_and_reason(mutation: Mutation, path: str, reason: str) -> None:
    event = seed_llm_event()
    mutation(event)
    with pytest.raises(ValueError) as raised:
        carrot_ai.capture_llm_call(event)
    message = str(raised.value)
    assert message.startswith(f"event.{path}: "), message
    assert reason in message, message


@pytest.mark.parametrize(
    ("mutation", "path", "reason"),
    [
        (_delete("properties.tool.name"), "properties.tool.name", "missing"),
        (_set("properties.tool.call_id", 7), "properties.tool.call_id", "must be a string"),
        (_set("properties.tool.args", "{}"), "properties.tool.args", "unknown field"),
        (_set("properties", {"llm": {"model": "m"}}), "properties.llm", "unknown field"),
    ],
)
def test_invalid_tool_event_names_the_field_path_and_reason(mutation: Mutation, path: str, reason: str) -> None:
    event = seed_tool_event()
    mutation(event)
    with pytest.raises(ValueError, match=rf"^event\.{path.replace('.', chr(92) + '.')}: .*{reason}"):
        carrot_ai.capture_tool_call(event)


def test_end_or_duration_after_2100_is_rejected() -> None:
    event = seed_llm_event()
    del event["end_time_ms"]
    event["duration_ms"] = 1e300
    with pytest.raises(ValueError, match=r"^event\.duration_ms: ends after the year 2100"):
        carrot_ai.capture_llm_call(event)
    del event["duration_ms"]
    event["end_time_ms"] = 1e300
    with pytest.raises(ValueError, match=r"^event\.end_time_ms: .*years 2000-2100"):
        carrot_ai.capture_llm_call(event)


def test_tool_text_that_is_not_json_or_nested_too_deeply_is_kept_as_text(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    unbalanced = "[" * 100_000
    deep = "[" * 5_000 + "]" * 5_000
    with carrot_session(ingest, tracer_provider):
        event = seed_tool_event()
        event["properties"]["tool"].update(input=unbalanced, output=deep)
        carrot_ai.capture_tool_call(event)
        [record] = records_after_flush(ingest, 1)
    assert record["input"] == {"input": unbalanced}
    assert record["output"] == {"result": deep}


@pytest.mark.parametrize("event", [None, [], "event", 3])
def test_event_that_is_not_an_object_is_rejected(event: Any) -> None:
    with pytest.raises(ValueError, match=r"^event: must be an object"):
        carrot_ai.capture_llm_call(event)


def test_batch_must_be_a_list_and_each_event_needs_a_type() -> None:
    with pytest.raises(ValueError, match=r"^events: must be a list"):
        carrot_ai.capture_events(seed_llm_event())  # type: ignore[arg-type]
    event = seed_llm_event()
    del event["type"]
    with pytest.raises(ValueError, match=r"^events\[0\]\.type: missing"):
        carrot_ai.capture_events([event])


def test_invalid_batch_sends_nothing_at_all(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    bad = seed_tool_event()
    bad["end_time_ms"] = bad["start_time_ms"] - 10
    bad["duration_ms"] = None
    with carrot_session(ingest, tracer_provider):
        with pytest.raises(ValueError, match=r"^events\[2\]\.end_time_ms: ends before"):
            carrot_ai.capture_events([seed_llm_event(), seed_tool_event(), bad])
        assert carrot_ai.flush(5)
    assert ingest.records == [] and ingest.requests == []


def test_duplicate_ids_in_a_batch_are_rejected() -> None:
    first = seed_llm_event()
    second = seed_tool_event()
    second["id"] = first["id"].upper()
    with pytest.raises(ValueError, match=r"^events\[1\]\.id: duplicate of events\[0\]\.id"):
        carrot_ai.capture_events([first, second])


def test_event_that_names_itself_as_parent_is_rejected() -> None:
    event = seed_llm_event()
    event["parent_id"] = event["id"].upper()
    with pytest.raises(ValueError, match=r"^event\.parent_id: must not be the event's own id"):
        carrot_ai.capture_llm_call(event)


def test_event_passed_in_is_not_modified(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    event = seed_llm_event()
    original = copy.deepcopy(event)
    with carrot_session(ingest, tracer_provider):
        carrot_ai.capture_llm_call(event)
        records_after_flush(ingest, 1)
    assert event == original


def test_content_policy_applies_to_manual_events(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    event = seed_llm_event()
    event["properties"]["llm"]["input"]["prompt"] = "reach me at ann@example.com"
    with carrot_session(ingest, tracer_provider, redact=True):
        carrot_ai.capture_llm_call(event)
        [record] = records_after_flush(ingest, 1)
    assert record["input"]["messages"][1]["content"] == "reach me at [EMAIL]"
    assert "ann@example.com" not in payload_text(ingest)


def test_tool_description_obeys_the_content_switch_and_redaction(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    event = seed_tool_event()
    event["properties"]["tool"]["description"] = "Search the index; questions go to ann@example.com"
    with carrot_session(ingest, tracer_provider, redact=True) as spans:
        carrot_ai.capture_tool_call(event)
        records_after_flush(ingest, 1)
        assert "ann@example.com" not in span_attribute_text(spans)
        assert "questions go to [EMAIL]" in span_attribute_text(spans)
    with carrot_session(ingest, tracer_provider, capture_content=False) as spans:
        carrot_ai.capture_tool_call(event)
        records_after_flush(ingest, 2)
        assert "Search the index" not in span_attribute_text(spans)


# --- property-based ----------------------------------------------------------------------------------------------

_text = st.text(max_size=40)
_name = st.text(alphabet=string.ascii_letters + string.digits + "-_./ ", min_size=1, max_size=30).filter(str.strip)
_json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False) | _text
)
_json = st.recursive(
    _json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=8
)
_snake = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda k: k not in ("user_id", "session_id"))


@st.composite
def _times(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(st.integers(min_value=1_000_000_000_000, max_value=4_000_000_000_000) | st.floats(1e12, 4e12))
    duration = draw(st.integers(min_value=0, max_value=600_000))
    form = draw(st.sampled_from(["end", "duration", "both"]))
    times: dict[str, Any] = {"start_time_ms": start}
    if form in ("end", "both"):
        times["end_time_ms"] = start + duration
    if form in ("duration", "both"):
        times["duration_ms"] = duration
    return times


@st.composite
def _usage(draw: st.DrawFn) -> dict[str, Any]:
    cache_read, cache_write, uncached = (draw(st.integers(0, 10**6)) for _ in range(3))
    reasoning, response = draw(st.integers(0, 10**5)), draw(st.integers(0, 10**5))
    usage: dict[str, Any] = {
        "input_tokens": cache_read + cache_write + uncached,
        "output_tokens": reasoning + response,
    }
    if draw(st.booleans()):
        usage["input_token_details"] = {"cache_read_tokens": cache_read, "cache_write_tokens": cache_write}
        if draw(st.booleans()):
            usage["input_token_details"]["uncached_tokens"] = uncached
    if draw(st.booleans()):
        usage["output_token_details"] = {"reasoning_tokens": reasoning, "response_tokens": response}
    if draw(st.booleans()):
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    return usage


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["llm", "tool"]))
    event: dict[str, Any] = {"type": kind, **draw(_times())}
    if draw(st.booleans()):
        event["status"] = {"state": "ok"}
    else:
        error = draw(
            st.fixed_dictionaries({}, optional={"code": _text, "http_status": st.integers(100, 599), "message": _text})
        )
        event["status"] = {"state": "error", "error": error} if draw(st.booleans()) else {"state": "error"}
    optional = {
        "id": st.uuids().map(str),
        "trace_id": st.uuids().map(lambda u: u.hex if u.int else "1" * 32),
        "parent_id": st.uuids().map(str),
        "name": _name,
        "tags": st.lists(_name, max_size=3),
        "context": st.dictionaries(_snake, _text | st.integers(-1000, 1000) | st.booleans(), max_size=3)
        | st.fixed_dictionaries({"user_id": _name, "session_id": _name}),
        "additional_properties": st.dictionaries(_text, _json, max_size=3),
        "instrumentation": st.fixed_dictionaries(
            {}, optional={"provider": _text, "source_provider": _name, "source_package": _text}
        ),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            event[key] = draw(strategy)
    if kind == "llm":
        llm: dict[str, Any] = {"model": draw(_name)}
        if draw(st.booleans()):
            llm["input"] = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "system": _text,
                        "prompt": _text
                        | st.lists(st.fixed_dictionaries({"role": _name, "content": _text}), max_size=2),
                        "tools": st.lists(st.dictionaries(_text, _json, max_size=2), max_size=2),
                    },
                )
            )
        if draw(st.booleans()):
            llm["output"] = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "mode": st.just("generate"),
                        "response": _text,
                        "tool_calls": st.lists(
                            st.fixed_dictionaries(
                                {"tool_name": _name}, optional={"tool_call_id": _text, "input": _text | _json}
                            ),
                            max_size=2,
                        ),
                    },
                )
            )
        if draw(st.booleans()):
            llm["usage"] = draw(_usage())
        event["properties"] = {"llm": llm}
    else:
        tool: dict[str, Any] = {"name": draw(_name)}
        tool.update(
            draw(
                st.fixed_dictionaries({}, optional={"input": _text | _json, "output": _text | _json, "call_id": _text})
            )
        )
        event["properties"] = {"tool": tool}
    return event


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(events=st.lists(valid_events(), min_size=1, max_size=3, unique_by=lambda e: e.get("id")))
def test_random_valid_events_always_arrive(
    ingest: IngestServer, tracer_provider: TracerProvider, events: list[dict[str, Any]]
) -> None:
    ingest.records.clear()
    with carrot_session(ingest, tracer_provider):
        ids = carrot_ai.capture_events(events)
        records = records_after_flush(ingest, len(events))
    assert sorted(r["id"] for r in records) == sorted(ids)
    for event, event_id in zip(events, ids, strict=True):
        if "id" in event:
            assert event_id == event["id"]


@settings(max_examples=150, deadline=None)
@given(event=valid_events(), data=st.data())
def test_random_invalid_events_always_raise_with_a_field_path(event: dict[str, Any], data: st.DataObject) -> None:
    kind = event["type"]
    mutations: list[tuple[Mutation, str]] = [
        (_delete("start_time_ms"), "start_time_ms"),
        (_set("start_time_ms", data.draw(st.text(max_size=5) | st.none() | st.lists(st.integers()))), "start_time_ms"),
        (
            lambda e: e.update(end_time_ms=e["start_time_ms"] - data.draw(st.integers(1, 10**6)), duration_ms=None),
            "end_time_ms",
        ),
        (
            _set("status", {"state": data.draw(st.text(max_size=8).filter(lambda s: s not in ("ok", "error")))}),
            "status.state",
        ),
        (_set("status", data.draw(_json_scalars | st.lists(st.integers(), max_size=1))), "status"),
        (
            _set(
                data.draw(st.from_regex(r"[a-zA-Z]{1,10}", fullmatch=True).filter(lambda k: k not in _events.TOP_KEYS)),
                1,
            ),
            "",
        ),
        (_delete("properties"), "properties"),
        (_set("id", data.draw(st.text(max_size=10))), "id"),
        (_set("type", data.draw(st.text(max_size=8).filter(lambda s: s not in ("llm", "tool")))), "type"),
    ]
    if kind == "llm":
        mutations += [
            (_set("properties.llm.model", data.draw(st.integers() | st.none() | st.just(" "))), "properties.llm.model"),
            (
                _set("properties.llm.usage", {"input_tokens": data.draw(st.integers(max_value=-1))}),
                "properties.llm.usage.input_tokens",
            ),
            (
                _set(
                    "properties.llm.usage",
                    {"output_tokens": 1, "output_token_details": {"reasoning_tokens": data.draw(st.integers(2, 100))}},
                ),
                "properties.llm.usage.output_token_details.reasoning_tokens",
            ),
        ]
    else:
        mutations += [
            (_set("properties.tool.name", data.draw(st.integers() | st.none() | st.just(""))), "properties.tool.name")
        ]
    mutation, path = data.draw(st.sampled_from(mutations))
    mutation(event)
    capture = carrot_ai.capture_llm_call if kind == "llm" else carrot_ai.capture_tool_call
    with pytest.raises(ValueError) as raised:
        capture(event) if data.draw(st.booleans()) else carrot_ai.capture_events([event])
    message = str(raised.value)
    prefix = message.split(": ", 1)[0]
    assert prefix.startswith(("event", "events[0]")), message
    if path:
        assert prefix.endswith(path), message
    assert ": " in message and message.split(": ", 1)[1], message
