"""``carrot_ai.context(...)``: user, session, metadata and tags on every record inside, wherever it runs."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai import semconv
from tests.ingest_server import IngestServer
from tests.privacy_helpers import carrot_session, records_after_flush


@carrot_ai.trace("step")
def step(label: str) -> str:
    return label


def _by_input_label(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["input"]["label"]: r for r in records if r["name"] == "step"}


def test_context_applies_to_traced_functions_tools_and_manual_events(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    @carrot_ai.tool
    def search(query: str) -> list[str]:
        return [query]

    now = time.time() * 1000
    with carrot_session(ingest, tracer_provider):
        with carrot_ai.context(user_id="u_42", session_id="s_7af", metadata={"feature": "triage"}, tags=["beta"]):
            step("a")
            search("q")
            carrot_ai.capture_llm_call(
                {
                    "start_time_ms": now - 10,
                    "end_time_ms": now,
                    "status": {"state": "ok"},
                    "properties": {"llm": {"model": "gpt-4o-mini"}},
                }
            )
        records = records_after_flush(ingest, 3)
        assert {r["metadata"]["type"] for r in records} == {"function", "tool", "llm"}
        for record in records:
            assert record["metadata"]["user_id"] == "u_42"
            assert record["metadata"]["session_id"] == "s_7af"
            assert record["metadata"]["feature"] == "triage"
            assert record["tags"] == ["beta"]


def test_session_id_is_exported_as_gen_ai_conversation_id(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    with carrot_session(ingest, tracer_provider) as spans:
        with carrot_ai.context(session_id="conv-1"):
            step("a")
        [span] = spans.get_finished_spans()
        assert span.attributes is not None
        assert span.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-1"
        assert span.attributes[semconv.CARROT_SESSION_ID] == "conv-1"


def test_nested_contexts_merge_and_the_inner_one_wins(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider):
        with carrot_ai.context(user_id="u1", session_id="s1", metadata={"a": 1, "b": 1}, tags=["x"]):
            with carrot_ai.context(user_id="u2", metadata={"b": 2, "c": 3}, tags=["y", "x"]):
                step("inner")
            step("outer")
        step("none")
        records = _by_input_label(records_after_flush(ingest, 3))
        inner = records["inner"]
        assert inner["metadata"]["user_id"] == "u2"
        assert inner["metadata"]["session_id"] == "s1"
        assert {k: inner["metadata"][k] for k in "abc"} == {"a": 1, "b": 2, "c": 3}
        assert inner["tags"] == ["x", "y"]
        outer = records["outer"]
        assert outer["metadata"]["user_id"] == "u1"
        assert {k: outer["metadata"].get(k) for k in "abc"} == {"a": 1, "b": 1, "c": None}
        assert outer["tags"] == ["x"]
        none = records["none"]
        assert "user_id" not in none["metadata"] and "session_id" not in none["metadata"]
        assert "tags" not in none


def test_call_site_metadata_and_tags_merge_with_the_context(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    @carrot_ai.trace("tagged", tags=["site"], metadata={"version": "2", "feature": "site"})
    def tagged() -> None:
        return None

    with carrot_session(ingest, tracer_provider):
        with carrot_ai.context(metadata={"feature": "ctx", "ab": "B"}, tags=["ctx"]):
            tagged()
        [record] = records_after_flush(ingest, 1)
        assert record["tags"] == ["ctx", "site"]
        assert record["metadata"]["feature"] == "site"  # the call site is the innermost
        assert record["metadata"]["ab"] == "B"
        assert record["metadata"]["version"] == "2"


def test_context_follows_threads_and_thread_pools(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider):
        with carrot_ai.context(user_id="threaded", tags=["t"]):
            thread = threading.Thread(target=step, args=("thread",))
            thread.start()
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(step, ["pool-1", "pool-2"]))
                pool.submit(step, "submit").result()
        thread.join()
        records = _by_input_label(records_after_flush(ingest, 4))
        assert set(records) == {"thread", "pool-1", "pool-2", "submit"}
        for record in records.values():
            assert record["metadata"]["user_id"] == "threaded"
            assert record["tags"] == ["t"]


def test_a_finished_thread_is_freed_with_its_context_without_the_garbage_collector(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    """Carrying the context into a thread must not keep the thread alive once it is done: the ``run`` carrot put on
    it held the thread itself (a reference cycle), so every thread started in a service stayed in memory, with the
    context copied into it (the spans of its callers) and whatever its target held, until the garbage collector
    came round (found in review). Freed by its last reference, as without carrot; its ``run`` is its class's again;
    a thread given its own ``run`` keeps it."""
    import gc
    import weakref

    class Payload:
        pass

    def work(payload: Payload) -> None:
        step("in thread")

    def own_run() -> None:
        step("own run")

    with carrot_session(ingest, tracer_provider):
        gc.disable()  # (what the collector would free later is what this looks for)
        try:
            with carrot_ai.context(user_id="threaded"):
                payload = Payload()
                thread = threading.Thread(target=work, args=(payload,))
                thread.start()
                thread.join()
                assert "run" not in vars(thread)
                own = threading.Thread()
                own.run = own_run  # type: ignore[method-assign]
                own.start()
                own.join()
                assert own.run is own_run
            thread_ref, payload_ref = weakref.ref(thread), weakref.ref(payload)
            del thread, payload
            assert thread_ref() is None and payload_ref() is None
        finally:
            gc.enable()
        records = _by_input_label(records_after_flush(ingest, 2))
        assert records["in thread"]["metadata"]["user_id"] == "threaded"
        assert records["own run"]["metadata"]["user_id"] == "threaded"


def test_a_later_init_can_turn_thread_propagation_off(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider):  # the default: the context follows threads
        pass
    with carrot_session(ingest, tracer_provider, propagate_to_threads=False):
        with carrot_ai.context(user_id="not-carried"):
            thread = threading.Thread(target=step, args=("thread",))
            thread.start()
            with ThreadPoolExecutor(max_workers=1) as pool:
                assert pool.submit(step, "submit").result() == "submit"
            thread.join()
        records = _by_input_label(records_after_flush(ingest, 2))
        assert set(records) == {"thread", "submit"}
        assert all("user_id" not in record["metadata"] for record in records.values())
    with carrot_session(ingest, tracer_provider):  # and on again
        with carrot_ai.context(user_id="carried"):
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(step, "again").result()
        (record,) = [r for r in records_after_flush(ingest, 3) if r["input"].get("label") == "again"]
        assert record["metadata"]["user_id"] == "carried"


def test_context_follows_asyncio_tasks_and_stays_separate_per_task(
    ingest: IngestServer, tracer_provider: TracerProvider
) -> None:
    @carrot_ai.trace("step")
    async def async_step(label: str) -> str:
        await asyncio.sleep(0.01)
        return label

    async def user_session(user: str) -> None:
        with carrot_ai.context(user_id=user):
            await asyncio.gather(async_step(f"{user}-gather"), asyncio.create_task(async_step(f"{user}-task")))

    async def main() -> None:
        await asyncio.gather(user_session("alice"), user_session("bob"))

    with carrot_session(ingest, tracer_provider):
        asyncio.run(main())
        records = _by_input_label(records_after_flush(ingest, 4))
        assert {label: r["metadata"]["user_id"] for label, r in records.items()} == {
            "alice-gather": "alice",
            "alice-task": "alice",
            "bob-gather": "bob",
            "bob-task": "bob",
        }


def test_context_is_restored_when_the_block_raises(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider):
        with pytest.raises(RuntimeError), carrot_ai.context(user_id="temporary"):
            raise RuntimeError("boom")
        step("after")
        [record] = records_after_flush(ingest, 1)
        assert "user_id" not in record["metadata"]


def test_numeric_ids_are_recorded_as_text(ingest: IngestServer, tracer_provider: TracerProvider) -> None:
    with carrot_session(ingest, tracer_provider):
        with carrot_ai.context(user_id=42, session_id=7):  # type: ignore[arg-type]
            step("a")
        [record] = records_after_flush(ingest, 1)
        assert (record["metadata"]["user_id"], record["metadata"]["session_id"]) == ("42", "7")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"user_id": ["u"]}, "user_id"),
        ({"session_id": 1.5}, "session_id"),
        ({"user_id": True}, "user_id"),
        ({"tags": "single"}, "tags"),
        ({"tags": ["ok", 3]}, "tags"),
        ({"metadata": [("a", 1)]}, "metadata"),
        ({"metadata_only": "yes"}, "metadata_only"),
    ],
)
def test_invalid_context_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field), carrot_ai.context(**kwargs):
        pass
