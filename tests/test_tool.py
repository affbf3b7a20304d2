"""Tool spans: ``@carrot_ai.tool`` / ``@trace(kind="tool")`` as GenAI ``execute_tool`` spans with call id."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai import semconv
from tests.ingest_server import IngestServer
from tests.privacy_helpers import carrot_session, records_after_flush


@carrot_ai.tool
def get_weather(city: str, unit: str = "C") -> dict[str, Any]:
    return {"city": city, "temperature": 21, "unit": unit}


@carrot_ai.trace(name="lookup_order", kind="tool")
def lookup_order(order_id: str, tool_call_id: str | None = None) -> str:
    return f"order {order_id}: shipped"


def test_tool_span_follows_the_execute_tool_convention(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider) as spans:
        get_weather("Paris")
        [record] = records_after_flush(ingest, 1)
        [span] = spans.get_finished_spans()
    assert span.name == "execute_tool get_weather"
    attributes = dict(span.attributes or {})
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert attributes[semconv.GEN_AI_TOOL_NAME] == "get_weather"
    assert attributes[semconv.GEN_AI_TOOL_TYPE] == "function"
    assert json.loads(str(attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"city": "Paris", "unit": "C"}
    assert json.loads(str(attributes[semconv.GEN_AI_TOOL_CALL_RESULT])) == {
        "city": "Paris",
        "temperature": 21,
        "unit": "C",
    }
    assert semconv.GEN_AI_TOOL_CALL_ID not in attributes
    assert record["name"] == "get_weather"
    assert record["input"] == {"city": "Paris", "unit": "C"}
    assert record["output"] == {"city": "Paris", "temperature": 21, "unit": "C"}
    assert record["metadata"]["type"] == "tool"
    assert record["metadata"]["tool_name"] == "get_weather"
    assert record["metadata"]["source"] == "decorator"


def test_non_dict_tool_result_is_the_raw_value_in_the_span_and_wrapped_in_the_record(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    with carrot_session(ingest, tracer_provider) as spans:
        lookup_order("A-1")
        [record] = records_after_flush(ingest, 1)
        [span] = spans.get_finished_spans()
    assert json.loads(str((span.attributes or {})[semconv.GEN_AI_TOOL_CALL_RESULT])) == "order A-1: shipped"
    assert record["output"] == {"result": "order A-1: shipped"}
    assert record["name"] == "lookup_order"


def test_call_id_comes_from_a_tool_call_id_argument(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider) as spans:
        lookup_order("A-1", "call_kw")
        lookup_order("A-2", tool_call_id="call_pos")
        records = records_after_flush(ingest, 2)
        span_ids = sorted(str((s.attributes or {})[semconv.GEN_AI_TOOL_CALL_ID]) for s in spans.get_finished_spans())
    by_order = {r["input"]["order_id"]: r for r in records}
    assert by_order["A-1"]["metadata"]["tool_call_id"] == "call_kw"
    assert by_order["A-2"]["metadata"]["tool_call_id"] == "call_pos"
    assert by_order["A-2"]["input"] == {"order_id": "A-2", "tool_call_id": "call_pos"}
    assert span_ids == ["call_kw", "call_pos"]


def test_tool_signature_is_unchanged() -> None:
    assert str(inspect.signature(lookup_order)) == "(order_id: 'str', tool_call_id: 'str | None' = None) -> 'str'"
    assert str(inspect.signature(get_weather)) == "(city: 'str', unit: 'str' = 'C') -> 'dict[str, Any]'"


def test_call_id_block_names_only_the_tool_run_directly_inside_it(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    @carrot_ai.tool
    def inner_tool(x: int) -> int:
        return x

    @carrot_ai.tool
    def outer_tool(x: int) -> int:
        return inner_tool(x)

    with carrot_session(ingest, tracer_provider):
        with carrot_ai.tool_call_id("call_abc"):
            outer_tool(1)
            lookup_order("A-3", tool_call_id="call_explicit")  # an explicit argument wins
        outer_tool(2)
        records = records_after_flush(ingest, 5)
    calls = [
        (
            r["name"].rsplit(".", 1)[-1],
            r["input"].get("x", r["input"].get("order_id")),
            r["metadata"].get("tool_call_id"),
        )
        for r in records
    ]
    assert sorted(calls, key=str) == sorted(
        [
            ("outer_tool", 1, "call_abc"),
            ("inner_tool", 1, None),
            ("lookup_order", "A-3", "call_explicit"),
            ("outer_tool", 2, None),
            ("inner_tool", 2, None),
        ],
        key=str,
    )


def test_call_id_block_inside_a_traced_function(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    @carrot_ai.trace("agent")
    def agent() -> None:
        for call_id, city in (("call_1", "Oslo"), ("call_2", "Rome")):
            with carrot_ai.tool_call_id(call_id):
                get_weather(city)

    with carrot_session(ingest, tracer_provider):
        agent()
        records = records_after_flush(ingest, 3)
    parent = next(r for r in records if r["name"] == "agent")
    tools = {r["input"]["city"]: r for r in records if r["name"] == "get_weather"}
    assert tools["Oslo"]["metadata"]["tool_call_id"] == "call_1"
    assert tools["Rome"]["metadata"]["tool_call_id"] == "call_2"
    assert {t["metadata"]["parent_trace_id"] for t in tools.values()} == {parent["id"]}


def test_failing_tool_is_an_error_record_with_its_arguments_and_call_id(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    @carrot_ai.tool(name="charge")
    def charge(amount: int, tool_call_id: str) -> None:
        raise PermissionError("card declined")

    with carrot_session(ingest, tracer_provider) as spans:
        with pytest.raises(PermissionError, match="card declined"):
            charge(5, "call_9")
        [record] = records_after_flush(ingest, 1)
        [span] = spans.get_finished_spans()
    assert record["status"] == "error"
    assert record["output"] == {"error": "card declined", "error_type": "PermissionError"}
    assert record["input"] == {"amount": 5, "tool_call_id": "call_9"}
    assert record["metadata"]["tool_call_id"] == "call_9"
    assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS in (span.attributes or {})
    assert semconv.GEN_AI_TOOL_CALL_RESULT not in (span.attributes or {})


def test_async_tool_is_recorded(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    @carrot_ai.tool
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return "ok"

    with carrot_session(ingest, tracer_provider):
        with carrot_ai.tool_call_id("call_async"):
            assert asyncio.run(fetch("https://example.test")) == "ok"
        [record] = records_after_flush(ingest, 1)
    assert record["metadata"]["type"] == "tool"
    assert record["metadata"]["tool_call_id"] == "call_async"
    assert record["output"] == {"result": "ok"}


def test_tool_with_content_off_keeps_name_and_call_id_only(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    with carrot_session(ingest, tracer_provider, capture_content=False) as spans:
        lookup_order("SECRET-ORDER", tool_call_id="call_7")
        [record] = records_after_flush(ingest, 1)
        [span] = spans.get_finished_spans()
    attributes = span.attributes or {}
    assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS not in attributes
    assert semconv.GEN_AI_TOOL_CALL_RESULT not in attributes
    assert record["input"] == {} and record["output"] == {}
    assert record["metadata"]["tool_call_id"] == "call_7"
    assert record["metadata"]["tool_name"] == "lookup_order"


def test_function_records_say_they_are_functions(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    @carrot_ai.trace
    def plain() -> int:
        return 1

    with carrot_session(ingest, tracer_provider):
        plain()
        [record] = records_after_flush(ingest, 1)
    assert record["metadata"]["type"] == "function"


@pytest.mark.parametrize("call_id", ["", None, 3])
def test_invalid_call_id_block_is_a_value_error(call_id: Any) -> None:
    with pytest.raises(ValueError, match="call_id"), carrot_ai.tool_call_id(call_id):
        pass
