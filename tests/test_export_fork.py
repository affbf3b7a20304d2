"""Fork safety (gunicorn --preload, multiprocessing): a forked child exports its own spans and never its parent's,
and does not deadlock on a lock that another thread held at fork time. Real ``os.fork()`` in a subprocess."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.export_helpers import run_python
from tests.ingest_server import Fault, IngestServer

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# The child arms an alarm so that a deadlock kills it instead of leaking a stuck process.
FORK_AND_CHECK = """
import os, signal

def fork_child(body):
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)
        try:
            code = 0 if body() else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child exit status {status}"
"""

DECORATED = (
    FORK_AND_CHECK
    + """
import carrot_ai

carrot_ai.init(flush_interval=600)  # nothing leaves before a flush

def record(name):
    carrot_ai.trace(name)(lambda: None)()
"""
)


def names(ingest: IngestServer) -> Counter[str]:
    return Counter(r["name"] for r in ingest.records)


def env_for(ingest: IngestServer) -> dict[str, str]:
    return {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url}


def test_forked_child_exports_only_its_own_spans(ingest: IngestServer) -> None:
    program = (
        DECORATED
        + """
record("parent-before-fork")  # queued in the parent when it forks

def child():
    record("child")
    return carrot_ai.flush(10)

fork_child(child)
record("parent-after-fork")
assert carrot_ai.flush(10)
"""
    )
    result = run_python(program, env_for(ingest), timeout=60)
    assert result.returncode == 0, result.stderr
    assert names(ingest) == {"parent-before-fork": 1, "child": 1, "parent-after-fork": 1}


def test_fork_while_another_thread_holds_the_exporter_locks_does_not_deadlock(ingest: IngestServer) -> None:
    program = (
        DECORATED
        + """
import threading
from carrot_ai import _setup

state = _setup._state
held, release = threading.Event(), threading.Event()

def hold_locks():
    with state.exporter._lock, state.processor._lock:
        held.set()
        release.wait()

holder = threading.Thread(target=hold_locks)
holder.start()
held.wait()

def child():
    record("child")
    return carrot_ai.flush(10)

fork_child(child)
release.set()
holder.join()
record("parent")
assert carrot_ai.flush(10)
"""
    )
    result = run_python(program, env_for(ingest), timeout=60)
    assert result.returncode == 0, result.stderr
    assert names(ingest) == {"child": 1, "parent": 1}


def test_fork_while_a_batch_is_in_flight_leaves_it_to_the_parent(ingest: IngestServer) -> None:
    ingest.script(Fault.slow(1.0))  # the parent's batch is still on the wire when it forks
    program = (
        FORK_AND_CHECK
        + """
import threading, carrot_ai
from carrot_ai import _setup

carrot_ai.init(flush_interval=600)
carrot_ai.trace("in-flight")(lambda: None)()
flusher = threading.Thread(target=carrot_ai.flush, args=(10,))
flusher.start()
exporter = _setup._state.exporter
while exporter._queue or not exporter._in_flight:
    pass  # until the worker has taken the batch

def child():
    carrot_ai.trace("child")(lambda: None)()
    return carrot_ai.flush(10)

fork_child(child)
flusher.join()
assert carrot_ai.flush(10)
"""
    )
    result = run_python(program, env_for(ingest), timeout=60)
    assert result.returncode == 0, result.stderr
    assert names(ingest) == {"in-flight": 1, "child": 1}


def test_forked_child_under_the_sdk_batch_processor_exports_only_its_own_spans(ingest: IngestServer) -> None:
    program = (
        FORK_AND_CHECK
        + """
from opentelemetry import trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
import carrot_ai

_OTelSDKConfigurator().configure()
tracer = trace.get_tracer("some.genai.instrumentation")

def record(name):
    with tracer.start_as_current_span(name, attributes={"gen_ai.operation.name": "chat"}):
        pass

def flush():
    return trace.get_tracer_provider().force_flush() and carrot_ai.flush(10)

record("parent-before-fork")

def child():
    record("child")
    return flush()

fork_child(child)
record("parent-after-fork")
assert flush()
"""
    )
    env = {**env_for(ingest), "OTEL_TRACES_EXPORTER": "carrot", "OTEL_METRICS_EXPORTER": "none"}
    env["OTEL_LOGS_EXPORTER"] = "none"
    result = run_python(program, env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert names(ingest) == {"parent-before-fork": 1, "child": 1, "parent-after-fork": 1}


def test_multiprocessing_fork_child_delivers_its_spans_when_it_ends(ingest: IngestServer) -> None:
    program = """
import multiprocessing
import carrot_ai

carrot_ai.init(flush_interval=600)

def work(count):
    for index in range(count):
        carrot_ai.trace("in-child")(lambda: None)()
    # no flush: the child leaves through os._exit(), where atexit hooks do not run

if __name__ == "__main__":
    carrot_ai.trace("in-parent")(lambda: None)()
    child = multiprocessing.get_context("fork").Process(target=work, args=(3,))
    child.start()
    child.join(30)
    assert child.exitcode == 0, child.exitcode
    assert carrot_ai.flush(10)
"""
    result = run_python(program, env_for(ingest), timeout=60)
    assert result.returncode == 0, result.stderr
    assert names(ingest) == {"in-child": 3, "in-parent": 1}


SLOW_PRICE_TABLE = (
    FORK_AND_CHECK
    + """
import sys, threading, time, uuid
import importlib.abc

loading = threading.Event()

class SlowPriceTable(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "genai_prices.data" and threading.current_thread() is not threading.main_thread():
            loading.set()
            time.sleep(2)  # the import lock of genai_prices.data is held meanwhile
        return None  # the usual finders import it

sys.meta_path.insert(0, SlowPriceTable())
import carrot_ai
from carrot_ai.export import _cost

def llm_event(name):
    now = time.time() * 1000
    return {
        "type": "llm", "id": str(uuid.uuid4()), "start_time_ms": now - 100, "end_time_ms": now,
        "status": {"state": "ok"}, "additional_properties": {"label": name},
        "properties": {"llm": {"model": "gpt-4o-mini", "input": {"prompt": "hi"}, "output": {"response": "ok"},
                               "usage": {"input_tokens": 20, "output_tokens": 2, "total_tokens": 22}}},
    }

def start_loading():
    carrot_ai.init(flush_interval=600)
    assert loading.wait(10), "the worker did not load the price table"
    assert "genai_prices.data" not in sys.modules or not hasattr(sys.modules["genai_prices.data"], "providers")
"""
)


def test_fork_while_the_worker_loads_the_price_table_waits_for_it(ingest: IngestServer) -> None:
    # The export worker loads genai-prices as it starts. A child forked in the middle of that import would hang on
    # its own first use of the module (the import lock belongs to a thread the child does not have): the fork waits.
    program = (
        SLOW_PRICE_TABLE
        + """
start_loading()

def child():
    carrot_ai.capture_llm_call(llm_event("child"))
    return carrot_ai.flush(10)

fork_child(child)
carrot_ai.capture_llm_call(llm_event("parent"))
assert carrot_ai.flush(10)
"""
    )
    result = run_python(program, env_for(ingest), timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(ingest.records) == 2
    assert all(r["metadata"]["cost_usd"] > 0 for r in ingest.records)


def test_fork_whose_wait_for_the_price_table_runs_out_gives_a_child_without_cost_not_a_hang(
    ingest: IngestServer,
) -> None:
    program = (
        SLOW_PRICE_TABLE
        + """
_cost._FORK_WAIT = 0.2  # the table takes 2 s here
start_loading()

def child():
    carrot_ai.capture_llm_call(llm_event("child"))
    return carrot_ai.flush(10)

fork_child(child)
carrot_ai.capture_llm_call(llm_event("parent"))
assert carrot_ai.flush(10)
"""
    )
    result = run_python(program, env_for(ingest), timeout=60)
    assert result.returncode == 0, result.stderr
    by_label = {r["metadata"]["label"]: r for r in ingest.records}
    assert by_label["parent"]["metadata"]["cost_usd"] > 0
    assert "cost_usd" not in by_label["child"]["metadata"]


def test_exporters_and_processors_made_and_shut_down_leave_nothing_behind(ingest: IngestServer) -> None:
    """A process that makes exporters and processors over its life (``init()`` again with other settings, a
    ``CarrotClient(api_key=...)`` per job): each one gone leaves nothing behind. A fork hook per instance
    (``os.register_at_fork`` cannot take one back) kept ~270 bytes for each, for ever (found in review)."""
    import gc

    from carrot_ai.export import CarrotSpanExporter
    from carrot_ai.export._processor import CarrotSpanProcessor

    def make_and_drop(count: int) -> None:
        for _ in range(count):
            exporter = CarrotSpanExporter("ck-test-key", ingest.base_url)
            CarrotSpanProcessor(exporter).shutdown()

    def counts() -> Counter[str]:
        gc.collect()
        return Counter(type(item).__qualname__ for item in gc.get_objects())

    make_and_drop(5)
    before = counts()
    make_and_drop(200)
    grown = {kind: n - before[kind] for kind, n in counts().items() if n - before[kind] >= 100}
    assert not grown, grown
