from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
from dirty_equals import IsFloat, IsStr

import carrot_ai
from tests.export_helpers import run_python
from tests.ingest_server import IngestServer

UUID = IsStr(regex=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO = IsStr(regex=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def records_after_flush(ingest: IngestServer, count: int) -> list[dict[str, Any]]:
    assert carrot_ai.flush(5)
    return ingest.wait_for(count)


def test_bare_decorator_records_input_output_and_reference_keys(carrot: IngestServer) -> None:
    @carrot_ai.trace
    def answer_question(question: str, top_k: int = 3) -> str:
        return f"answer to {question}"

    assert answer_question("How do I reset my password?") == "answer to How do I reset my password?"
    [record] = records_after_flush(carrot, 1)
    assert record == {
        "id": UUID,
        "name": "test_bare_decorator_records_input_output_and_reference_keys.<locals>.answer_question",
        "input": {"question": "How do I reset my password?", "top_k": 3},
        "output": {"result": "answer to How do I reset my password?"},
        "metadata": {
            "type": "function",
            "source": "decorator",
            "latency_ms": IsFloat(ge=0),
            "trace_id": IsStr(regex=r"^[0-9a-f]{32}$"),
        },
        "status": "success",
        "started_at": ISO,
        "ended_at": ISO,
    }


def test_name_tags_and_metadata_forms(carrot: IngestServer) -> None:
    @carrot_ai.trace("my-pipeline")
    def one() -> dict[str, int]:
        return {"a": 1}

    @carrot_ai.trace(name="other", tags=["production"], metadata={"version": "2"})
    def two() -> None:
        return None

    one()
    two()
    records_after_flush(carrot, 2)
    first = carrot.by_name("my-pipeline")
    assert first["output"] == {"a": 1}
    second = carrot.by_name("other")
    assert second["tags"] == ["production"]
    assert second["metadata"]["version"] == "2"
    assert second["output"] == {"result": None}


def test_metadata_under_a_key_carrot_sets_itself_is_kept_beside_it(carrot: IngestServer) -> None:
    # carrot-ai 0.2.1 sent @trace(metadata=...) whole; a value under `source` or `latency_ms` used to be lost.
    @carrot_ai.trace("ingest", metadata={"source": "slack-bot", "latency_ms": 5, "version": "2"})
    def ingest() -> None:
        return None

    ingest()
    [record] = records_after_flush(carrot, 1)
    metadata = record["metadata"]
    assert (metadata["source"], metadata["latency_ms"]) == ("decorator", IsFloat(ge=0, lt=5))
    assert (metadata["user.source"], metadata["user.latency_ms"], metadata["version"]) == ("slack-bot", 5, "2")


def test_decorated_function_keeps_name_doc_signature_and_kind() -> None:
    @carrot_ai.trace
    def plain(a: int, b: str = "x") -> str:
        """Doc."""
        return b * a

    @carrot_ai.trace("n")
    async def coro(a: int) -> int:
        return a

    @carrot_ai.trace
    def gen(n: int) -> Any:
        yield from range(n)

    @carrot_ai.trace
    async def agen(n: int) -> Any:
        for i in range(n):
            yield i

    assert plain.__name__ == "plain" and plain.__doc__ == "Doc."
    assert str(inspect.signature(plain)) == "(a: 'int', b: 'str' = 'x') -> 'str'"
    assert inspect.iscoroutinefunction(coro)
    assert inspect.isgeneratorfunction(gen)
    assert inspect.isasyncgenfunction(agen)


def test_nested_calls_name_their_parent_at_every_depth(carrot: IngestServer) -> None:
    @carrot_ai.trace
    def leaf() -> int:
        return 1

    @carrot_ai.trace
    def middle() -> int:
        return leaf() + leaf()

    @carrot_ai.trace
    def root() -> int:
        return middle()

    assert root() == 2
    records = records_after_flush(carrot, 4)
    by_name = {r["name"].rsplit(".", 1)[-1]: r for r in records if not r["name"].endswith("leaf")}
    leaves = [r for r in records if r["name"].endswith("leaf")]
    assert "parent_trace_id" not in by_name["root"]["metadata"]
    assert by_name["middle"]["metadata"]["parent_trace_id"] == by_name["root"]["id"]
    assert [leaf["metadata"]["parent_trace_id"] for leaf in leaves] == [by_name["middle"]["id"]] * 2
    assert len({r["metadata"]["trace_id"] for r in records}) == 1


def test_method_self_and_cls_are_never_captured(carrot: IngestServer) -> None:
    class Agent:
        @carrot_ai.trace
        def run(self, task: str) -> str:
            return task

        @carrot_ai.trace
        @classmethod
        def build(cls, size: int) -> int:
            return size

        @carrot_ai.trace
        @staticmethod
        def helper(x: int) -> int:
            return x

    Agent().run("go")
    Agent.build(3)
    Agent.helper(4)
    records = records_after_flush(carrot, 3)
    inputs = sorted((r["name"].rsplit(".", 1)[-1], r["input"]) for r in records)
    assert inputs == [("build", {"size": 3}), ("helper", {"x": 4}), ("run", {"task": "go"})]


def test_exception_is_recorded_and_reraised_unchanged(carrot: IngestServer) -> None:
    class Boom(Exception):
        pass

    error = Boom("kaput")

    @carrot_ai.trace("failing")
    def failing(x: int) -> None:
        raise error

    with pytest.raises(Boom) as caught:
        failing(1)
    assert caught.value is error
    [record] = records_after_flush(carrot, 1)
    assert record["status"] == "error"
    assert record["output"] == {"error": "kaput", "error_type": "Boom"}
    assert record["input"] == {"x": 1}


def test_generator_called_with_arguments_that_do_not_bind_is_recorded_as_an_error(carrot: IngestServer) -> None:
    @carrot_ai.trace("numbers")
    def numbers(n: int) -> Any:
        yield n

    @carrot_ai.trace("anumbers")
    async def anumbers(n: int) -> Any:
        yield n

    async def consume() -> list[int]:
        return [i async for i in anumbers(1, 2)]  # type: ignore[call-arg]

    with pytest.raises(TypeError):
        list(numbers(1, 2))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        asyncio.run(consume())
    records = records_after_flush(carrot, 2)
    assert sorted(r["name"] for r in records) == ["anumbers", "numbers"]
    for record in records:
        assert record["status"] == "error"
        assert record["output"]["error_type"] == "TypeError"
        assert record["input"] == {"n": 1, "args": [2]}


def test_async_nesting_across_gather_and_create_task(carrot: IngestServer) -> None:
    @carrot_ai.trace
    async def step(i: int) -> int:
        await asyncio.sleep(0.001 * (3 - i))
        return i

    @carrot_ai.trace
    async def pipeline() -> list[int]:
        task = asyncio.create_task(step(10))
        results = await asyncio.gather(step(0), step(1), step(2))
        return [*results, await task]

    assert asyncio.run(pipeline()) == [0, 1, 2, 10]
    records = records_after_flush(carrot, 5)
    [root] = [r for r in records if r["name"].endswith("pipeline")]
    steps = [r for r in records if r["name"].endswith("step")]
    assert sorted(r["input"]["i"] for r in steps) == [0, 1, 2, 10]
    assert {r["metadata"]["parent_trace_id"] for r in steps} == {root["id"]}


def test_callable_object_with_an_async_call_is_traced_as_a_coroutine(carrot: IngestServer) -> None:
    @carrot_ai.trace
    async def lookup(key: str) -> str:
        return key.upper()

    class Agent:
        async def __call__(self, question: str) -> str:
            await asyncio.sleep(0.01)
            return await lookup(question)

    agent = carrot_ai.trace(Agent())
    assert inspect.iscoroutinefunction(agent)
    assert asyncio.run(agent("q")) == "Q"
    records = records_after_flush(carrot, 2)
    [parent] = [r for r in records if not r["name"].endswith("lookup")]
    [child] = [r for r in records if r["name"].endswith("lookup")]
    assert parent["input"] == {"question": "q"}
    assert parent["output"] == {"result": "Q"}
    assert parent["metadata"]["latency_ms"] >= 10
    assert child["metadata"]["parent_trace_id"] == parent["id"]


def test_generators_span_the_whole_iteration_and_record_items(carrot: IngestServer) -> None:
    @carrot_ai.trace
    def inner() -> int:
        return 7

    @carrot_ai.trace("numbers")
    def numbers(n: int) -> Any:
        for i in range(n):
            yield i + inner() * 0

    @carrot_ai.trace("anumbers")
    async def anumbers(n: int) -> Any:
        for i in range(n):
            yield i

    assert list(numbers(3)) == [0, 1, 2]

    async def consume() -> list[int]:
        return [i async for i in anumbers(2)]

    assert asyncio.run(consume()) == [0, 1]
    records = records_after_flush(carrot, 5)
    gen_record = carrot.by_name("numbers")
    assert gen_record["output"] == {"result": [0, 1, 2]}
    assert carrot.by_name("anumbers")["output"] == {"result": [0, 1]}
    inners = [r for r in records if r["name"].endswith("inner")]
    assert {r["metadata"]["parent_trace_id"] for r in inners} == {gen_record["id"]}


def test_generator_closed_early_is_a_success_with_partial_output(carrot: IngestServer) -> None:
    @carrot_ai.trace("stream")
    def stream() -> Any:
        yield from range(100)

    for item in stream():
        if item == 2:
            break
    [record] = records_after_flush(carrot, 1)
    assert record["status"] == "success"
    assert record["output"] == {"result": [0, 1, 2]}


def test_async_generators_left_open_when_asyncio_run_ends_close_as_without_carrot(carrot: IngestServer) -> None:
    # asyncio.run() closes every async generator still open, all at once; cleanup code that awaits (an `async with`
    # around a connection) must not find the traced function's own generator closed by asyncio at the same time.
    cleaned: list[int] = []
    errors: list[dict[str, Any]] = []

    @carrot_ai.trace("rows")
    async def rows(n: int) -> Any:
        try:
            for i in range(10):
                yield i
        finally:
            await asyncio.sleep(0)
            cleaned.append(n)

    left_open: list[Any] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        for n in range(3):
            generator = rows(n)
            assert await generator.__anext__() == 0
            left_open.append(generator)

    asyncio.run(main())
    assert errors == []
    assert sorted(cleaned) == [0, 1, 2]
    records = records_after_flush(carrot, 3)
    assert [(r["status"], r["output"]) for r in records] == [("success", {"result": [0]})] * 3


def test_thread_pool_and_threads_inherit_the_parent(carrot: IngestServer) -> None:
    @carrot_ai.trace
    def work(i: int) -> int:
        return i * 2

    @carrot_ai.trace
    def fan_out() -> list[int]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(work, [1, 2]))
        thread = threading.Thread(target=work, args=(3,))
        thread.start()
        thread.join()
        return results

    assert fan_out() == [2, 4]
    records = records_after_flush(carrot, 4)
    [root] = [r for r in records if r["name"].endswith("fan_out")]
    workers = [r for r in records if r["name"].endswith("work")]
    assert sorted(r["input"]["i"] for r in workers) == [1, 2, 3]
    assert {r["metadata"]["parent_trace_id"] for r in workers} == {root["id"]}


def test_unserializable_arguments_become_repr_and_never_raise(carrot: IngestServer) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    cyclic: list[Any] = [1]
    cyclic.append(cyclic)

    @carrot_ai.trace("weird")
    def weird(a: Any, b: Any, c: Any, d: bytes, e: float, f: str) -> Any:
        return {"same": c}

    weird(Opaque(), Hostile(), cyclic, b"\x00\x01", float("nan"), "x" * 200_000)
    [record] = records_after_flush(carrot, 1)
    assert record["input"]["a"] == "<Opaque>"
    assert (
        record["input"]["b"]
        == "<unrepresentable test_unserializable_arguments_become_repr_and_never_raise.<locals>.Hostile>"
    )
    assert record["input"]["c"] == [1, "<cyclic>"]
    assert record["input"]["d"] == "<bytes: 2 bytes>"
    assert record["input"]["e"] == "nan"
    assert record["input"]["f"].endswith("...[truncated, 200000 chars]")
    assert record["output"] == {"same": [1, "<cyclic>"]}


def test_plain_objects_are_recorded_by_their_public_attributes_as_in_0_2_1(carrot: IngestServer) -> None:
    class Document:
        def __init__(self, text: str, score: float) -> None:
            self.text = text
            self.score = score
            self.source = SimpleNamespace(url="https://docs.example", api_key="sk-live-123")
            self._cache = "private"
            self.itself = self

    class Hit:
        def __init__(self, doc: Document) -> None:
            self.doc = doc

    class Bare:  # no public attribute: its repr, not an empty object
        def __repr__(self) -> str:
            return "<Bare>"

    @carrot_ai.trace("rank")
    def rank(doc: Document, bare: Bare) -> Hit:
        return Hit(doc)

    rank(Document("reset your password", 0.9), Bare())
    [record] = records_after_flush(carrot, 1)
    document = {
        "text": "reset your password",
        "score": 0.9,
        "source": {"url": "https://docs.example", "api_key": "[REDACTED]"},
        "itself": "<cyclic>",
    }
    assert record["input"] == {"doc": document, "bare": "<Bare>"}
    assert record["output"] == {"doc": document}  # an object is the output as is, as a dict is


def test_secret_named_arguments_are_redacted(carrot: IngestServer) -> None:
    @carrot_ai.trace("login")
    def login(user: str, password: str, api_key: str, max_tokens: int, **extra: Any) -> bool:
        return True

    login("ann", "hunter2", "sk-live-123", 10, auth_token="tok", note="fine")
    [record] = records_after_flush(carrot, 1)
    assert record["input"] == {
        "user": "ann",
        "password": "[REDACTED]",
        "api_key": "[REDACTED]",
        "max_tokens": 10,
        "auth_token": "[REDACTED]",
        "note": "fine",
    }


def test_app_processor_on_the_same_provider_sees_our_spans_and_records_are_unchanged(
    ingest: IngestServer,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider(shutdown_on_exit=False)
    app_exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(app_exporter))
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0.05, tracer_provider=provider)
    try:

        @carrot_ai.trace("child")
        def child() -> int:
            return 1

        @carrot_ai.trace("parent")
        def parent() -> int:
            return child()

        parent()
        records = records_after_flush(ingest, 2)
    finally:
        carrot_ai.shutdown()
        provider.shutdown()
    by_name = {r["name"]: r for r in records}
    assert by_name["child"]["metadata"]["parent_trace_id"] == by_name["parent"]["id"]
    app_spans = {s.name: s for s in app_exporter.get_finished_spans()}
    assert set(app_spans) == {"child", "parent"}
    assert app_spans["child"].parent is not None
    assert app_spans["child"].parent.span_id == app_spans["parent"].context.span_id


def test_call_that_fails_to_bind_keeps_secrets_redacted_and_self_out(carrot: IngestServer) -> None:
    @carrot_ai.trace("login")
    def login(user: str, password: str) -> str:
        return "ok"

    class Service:
        def __repr__(self) -> str:
            return "Service(db_password=hunter2-internal)"

        @carrot_ai.trace("call")
        def call(self, api_key: str) -> str:
            return "ok"

    with pytest.raises(TypeError):
        login("bob", "hunter2", "surplus")
    with pytest.raises(TypeError):
        login("bob", password="hunter2", remember=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Service().call(api_key="sk-live-SECRET123", extra=1)  # type: ignore[call-arg]
    records = records_after_flush(carrot, 3)
    assert sorted(((r["name"], r["input"]) for r in records), key=repr) == [
        ("call", {"api_key": "[REDACTED]", "extra": 1}),
        ("login", {"user": "bob", "password": "[REDACTED]", "args": ["surplus"]}),
        ("login", {"user": "bob", "password": "[REDACTED]", "remember": True}),
    ]
    assert all(r["status"] == "error" for r in records)


def test_int_too_long_to_write_as_text_is_recorded_as_a_placeholder(carrot: IngestServer) -> None:
    @carrot_ai.trace("big")
    def big(n: int, small: int) -> dict[str, int]:
        return {"n": -n, "small": small}

    @carrot_ai.trace("returns_big")
    def returns_big() -> int:
        return 10**5000

    big(10**5000, 10**30)
    returns_big()
    records = records_after_flush(carrot, 2)
    by_name = {r["name"]: r for r in records}
    assert by_name["big"]["input"] == {"n": "<int: 5001 digits>", "small": 10**30}
    assert by_name["big"]["output"] == {"n": "<int: -5001 digits>", "small": 10**30}
    assert by_name["returns_big"]["output"] == {"result": "<int: 5001 digits>"}
    assert all(r["status"] == "success" for r in records)


# Objects in a reference cycle are freed by the garbage collector, which runs their finalizers wherever an allocation
# triggers it: on Python 3.10 / 3.11 also in the middle of another ContextVar.set() of the same thread.
FINALIZER_PROGRAM = """
import carrot_ai

@carrot_ai.trace
def close(handle):
    return handle

class Resource:
    def __init__(self):
        self.me = self

    def __del__(self):
        close(1)

@carrot_ai.trace
def work(index):
    Resource()
    return index

carrot_ai.init(batch_size=500)
for index in range(1000):
    work(index)
assert carrot_ai.flush(10)
print(carrot_ai.stats()["delivered"])
"""


def test_traced_function_called_from_finalizers_during_garbage_collection(ingest: IngestServer) -> None:
    result = run_python(FINALIZER_PROGRAM, {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2000"]
    closes = [r for r in ingest.records if r["name"] == "close"]
    assert len(closes) == 1000 and all(r["status"] == "success" for r in closes)
