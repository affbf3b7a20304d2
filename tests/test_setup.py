from __future__ import annotations

import datetime
import os
import subprocess
import sys
import textwrap

import openai
import pytest

import carrot_ai
from carrot_ai import _setup
from carrot_ai._config import is_loopback_url
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import Fault, IngestServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_program(source: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CARROT_", "OTEL_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        env=clean,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_auto_init_from_environment_and_flush_at_exit(ingest: IngestServer) -> None:
    result = run_program(
        """
        import carrot_ai

        @carrot_ai.trace
        def answer_question(question: str) -> str:
            return "Go to Settings > Security"

        print(answer_question("How do I reset my password?"))
        """,
        {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Go to Settings > Security"
    [record] = ingest.wait_for(1)
    assert record["name"] == "answer_question"
    assert record["input"] == {"question": "How do I reset my password?"}
    assert record["output"] == {"result": "Go to Settings > Security"}
    assert ingest.requests[0].headers["authorization"] == "Bearer ck-test-key"
    assert ingest.requests[0].headers["content-encoding"] == "gzip"


def test_set_up_on_first_use_takes_the_batch_size_from_the_environment(ingest: IngestServer) -> None:
    result = run_program(
        """
        import carrot_ai

        @carrot_ai.trace
        def step(i: int) -> int:
            return i

        for i in range(5):
            step(i)
        carrot_ai.flush()
        """,
        {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url, "CARROT_BATCH_SIZE": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert len(ingest.wait_for(5)) == 5
    assert [len(request.json["traces"]) for request in ingest.requests] == [2, 2, 1]


def test_calls_of_other_threads_while_set_up_on_first_use_runs_are_recorded(ingest: IngestServer) -> None:
    result = run_program(
        """
        import threading
        import carrot_ai

        start = threading.Barrier(8)

        @carrot_ai.trace
        def step(worker, index):
            return index

        def work(worker):
            start.wait()
            for index in range(10):
                step(worker, index)

        threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        """,
        {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url},
    )
    assert result.returncode == 0, result.stderr
    records = ingest.wait_for(80)
    assert sorted((r["input"]["worker"], r["input"]["index"]) for r in records) == [
        (worker, index) for worker in range(8) for index in range(10)
    ]


def test_set_up_on_first_use_carrot_leaves_the_global_provider_to_the_application(ingest: IngestServer) -> None:
    # A traced call before the application sets up OpenTelemetry (at import, a warm-up): the application's
    # set_tracer_provider() afterwards must still take effect (OpenTelemetry refuses a second global provider).
    result = run_program(
        """
        import carrot_ai
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        @carrot_ai.trace
        def warm_up():
            return "ok"

        warm_up()  # carrot sets itself up here, from CARROT_API_KEY
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        with trace.get_tracer("app").start_as_current_span("GET /orders"):
            warm_up()  # still recorded, as a child of the application's span
        print(trace.get_tracer_provider() is provider, [s.name for s in exporter.get_finished_spans()])
        """,
        {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['GET /orders']"
    assert "Overriding" not in result.stderr
    first, second = ingest.wait_for(2)
    assert first["name"] == second["name"] == "warm_up"
    assert first["metadata"]["trace_id"] != second["metadata"]["trace_id"]  # the second, in the application's trace


def test_without_key_traced_code_runs_untraced_and_quietly() -> None:
    result = run_program(
        """
        import carrot_ai

        @carrot_ai.trace
        def f(x):
            return x + 1

        print(f(1))
        print(carrot_ai.flush(1))
        """,
        {},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "True"]
    assert result.stderr == ""


def test_init_without_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARROT_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CARROT_API_KEY"):
        carrot_ai.init(base_url="https://api.carrotlabs.ai")


@pytest.mark.parametrize("host", ["127.example.com", "127.0.0.1.example.com", "localhost.example.com", "10.0.0.1"])
def test_init_without_api_key_refuses_a_host_that_only_looks_local(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    # A name that starts like a loopback address is an ordinary remote host: it needs the API key like any other.
    monkeypatch.delenv("CARROT_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CARROT_API_KEY"):
        carrot_ai.init(base_url=f"http://{host}:8787")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "[::1]"])
def test_loopback_urls_need_no_api_key(host: str) -> None:
    assert is_loopback_url(f"http://{host}:8787")


@pytest.mark.parametrize(
    "url",
    [
        "localhost:8787",
        "127.0.0.1:8787",
        "ftp://127.0.0.1:8787",
        "http//127.0.0.1",
        "http://",
        "http://127.0.0.1:99999",
    ],
)
def test_init_with_a_base_url_it_cannot_send_to_is_a_clear_error(url: str) -> None:
    # Taken as given, every record was then lost (an internal error per batch, or refused connections until each
    # batch's deadline); without a scheme, "localhost:8787" even asked for an API key.
    with pytest.raises(ValueError, match=r"^carrot_ai.init\(\): base_url must be an http:// or https:// URL"):
        carrot_ai.init(base_url=url)


def test_init_base_url_error_never_shows_credentials() -> None:
    with pytest.raises(ValueError) as raised:
        carrot_ai.init(base_url="ftp://user:hunter2secret@127.0.0.1/?key=ck-query-secret")
    assert "hunter2secret" not in str(raised.value)
    assert "ck-query-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("request_timeout", 0),
        ("request_timeout", -1),
        ("request_timeout", float("nan")),
        ("export_deadline", 0),
        ("export_deadline", "30"),
        ("exit_timeout", "2"),
        ("exit_timeout", -1),
        ("exit_timeout", float("inf")),
        ("flush_interval", "5"),
        ("batch_size", "5"),
        ("batch_size", 2.5),
        ("max_batch_bytes", 0),
        ("max_queue_bytes", 0),
        ("max_queue_bytes", True),
        ("stats_log_interval", "60"),
    ],
)
def test_init_with_a_delivery_setting_it_cannot_use_is_a_clear_error(option: str, value: object) -> None:
    # Taken as given, these lost every batch (a timeout of 0, a deadline of 0), raised a TypeError instead
    # (flush_interval="5"), or broke shutdown and the exit hook with a traceback at exit (exit_timeout="2").
    with pytest.raises(ValueError, match=f"^{option} must be"):
        carrot_ai.init(api_key="ck-test-key", base_url="http://127.0.0.1:8787", **{option: value})  # type: ignore[arg-type]
    assert _setup._state is None


def test_init_takes_delivery_settings_at_their_limits(carrot: IngestServer) -> None:
    carrot_ai.init(
        api_key="ck-test-key",
        base_url=carrot.base_url,
        flush_interval=0,  # as soon as possible (every 50 ms), as carrot-ai 0.2.1 took it
        batch_size=10.0,
        exit_timeout=0,
        max_batch_bytes=1,
        stats_log_interval=0,
    )
    settings = _setup.current_exporter().settings
    assert (settings.flush_interval, settings.batch_size, settings.exit_timeout) == (0.05, 10, 0)
    assert type(settings.batch_size) is int


def test_init_rejects_unknown_options() -> None:
    with pytest.raises(TypeError, match="bogus"):
        carrot_ai.init(api_key="k", bogus=1)


def test_init_twice_is_harmless_and_sends_once(carrot: IngestServer, tracer_provider: object) -> None:
    carrot_ai.init(
        api_key="ck-test-key", base_url=carrot.base_url, flush_interval=0.05, tracer_provider=tracer_provider
    )  # type: ignore[arg-type]

    @carrot_ai.trace("once")
    def once() -> int:
        return 1

    once()
    assert carrot_ai.flush(5)
    carrot.wait_for(1)
    assert len(carrot.records) == 1


def test_otel_sdk_disabled_makes_everything_a_no_op(ingest: IngestServer) -> None:
    result = run_program(
        """
        import carrot_ai
        carrot_ai.init()

        @carrot_ai.trace
        def f(x):
            return x * 2

        print(f(21), carrot_ai.flush(1), carrot_ai.stats())
        """,
        {"OTEL_SDK_DISABLED": "true", "CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["42", "True"]
    assert ingest.requests == []


def test_existing_tracer_provider_keeps_its_exporter_and_carrot_only_gets_its_spans(ingest: IngestServer) -> None:
    result = run_program(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        app_exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(app_exporter))
        trace.set_tracer_provider(provider)

        import carrot_ai
        carrot_ai.init()
        assert trace.get_tracer_provider() is provider

        tracer = trace.get_tracer("app")

        @carrot_ai.trace
        def pipeline():
            with tracer.start_as_current_span("db.query"):
                return leaf()

        @carrot_ai.trace
        def leaf():
            return "ok"

        with tracer.start_as_current_span("GET /answer"):
            pipeline()
        assert carrot_ai.flush(5)
        print(sorted(s.name for s in app_exporter.get_finished_spans()))
        """,
        {"CARROT_API_KEY": "ck-test-key", "CARROT_BASE_URL": ingest.base_url},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['GET /answer', 'db.query', 'leaf', 'pipeline']"
    records = ingest.wait_for(2)
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"pipeline", "leaf"}
    # The HTTP server span and the db span are not exported: pipeline is a root, leaf's parent skips db.query.
    assert "parent_trace_id" not in by_name["pipeline"]["metadata"]
    assert by_name["leaf"]["metadata"]["parent_trace_id"] == by_name["pipeline"]["id"]


def test_get_client_submit_like_the_reference_sdk(carrot: IngestServer) -> None:
    client = carrot_ai.get_client()
    assert carrot_ai.get_client() is client  # one client, as 0.2.1's global one
    client.submit(
        {
            "name": "my-agent",
            "input": {"messages": [{"role": "user", "content": "Hello"}]},
            "output": {"message": {"role": "assistant", "content": "Hi!"}},
            "metadata": {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 5},
            "status": "success",
            "started_at": "2026-11-23T10:00:00+00:00",
            "ended_at": "2026-11-23T10:00:01+00:00",
        }
    )
    client.flush()
    [record] = carrot.wait_for(1)
    assert record["name"] == "my-agent"
    assert record["metadata"]["input_tokens"] == 10


def test_get_client_submit_of_the_docs_custom_ingestion_record_completes_it(carrot: IngestServer) -> None:
    seed = {
        "name": "my-agent",
        "input": {"messages": [{"role": "user", "content": "Hello"}]},
        "output": {"message": {"role": "assistant", "content": "Hi!"}},
        "metadata": {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 5, "latency_ms": 250.0},
        "status": "success",
    }
    carrot_ai.get_client().submit(seed)
    assert carrot_ai.flush(5)
    [record] = carrot.wait_for(1)  # the ingest fixture checks it against the JSON Schema
    assert {k: record[k] for k in seed} == seed
    started = datetime.datetime.fromisoformat(record["started_at"])
    ended = datetime.datetime.fromisoformat(record["ended_at"])
    assert ended - started == datetime.timedelta(milliseconds=250)
    assert abs(ended - datetime.datetime.now(datetime.timezone.utc)) < datetime.timedelta(seconds=30)
    assert "id" not in seed  # the caller's dict is left as it was


def test_trace_with_fn_by_keyword_like_the_reference_sdk(carrot: IngestServer) -> None:
    def plain(x: int) -> int:
        return x * 2

    traced = carrot_ai.trace(fn=plain)
    assert traced(3) == 6
    assert carrot_ai.tool(fn=plain)(4) == 8
    assert carrot_ai.flush(5)
    records = carrot.wait_for(2)
    assert sorted(r["input"]["x"] for r in records) == [3, 4]


def test_the_reference_sdks_module_paths_still_import() -> None:
    # carrot-ai 0.2.1 left CarrotClient out of __all__: a type-checked program imported it from its module.
    from carrot_ai._client import CarrotClient
    from carrot_ai._litellm import patch_litellm
    from carrot_ai._trace import trace
    from carrot_ai._wrap import wrap

    assert (CarrotClient, patch_litellm, trace, wrap) == (
        carrot_ai.CarrotClient,
        carrot_ai.patch_litellm,
        carrot_ai.trace,
        carrot_ai.wrap,
    )


def test_current_trace_id_is_the_id_children_name_as_parent_like_the_reference_sdk(
    carrot: IngestServer, fake_openai: FakeOpenAI
) -> None:
    from carrot_ai._context import current_trace_id

    client = carrot_ai.wrap(openai.OpenAI(base_url=fake_openai.base_url + "/v1", api_key="sk-test", max_retries=0))
    seen: dict[str, str | None] = {}

    @carrot_ai.trace("inner")
    def inner() -> None:
        seen["inner"] = current_trace_id.get()

    @carrot_ai.trace("outer")
    def outer() -> None:
        seen["outer"] = current_trace_id.get()
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        inner()
        seen["outer after inner"] = current_trace_id.get()

    outer()
    assert current_trace_id.get() is None
    assert current_trace_id.get("none here") == "none here"
    assert carrot_ai.flush(5)
    records = {r["name"]: r for r in carrot.wait_for(3)}
    ids = {"outer": records["outer"]["id"], "inner": records["inner"]["id"]}
    assert seen == {**ids, "outer after inner": ids["outer"]}
    assert records["chat.completions"]["metadata"]["parent_trace_id"] == seen["outer"]


def test_init_flush_interval_zero_sends_soon_like_the_reference_sdk(
    ingest: IngestServer, tracer_provider: object
) -> None:
    # 0.2.1's worker sent what it had every 50 ms with flush_interval=0; carrot raised ValueError.
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, flush_interval=0, tracer_provider=tracer_provider)
    try:
        assert _setup._state is not None and _setup._state.settings.flush_interval == 0.05

        @carrot_ai.trace("soon")
        def soon() -> None:
            return None

        soon()
        [record] = ingest.wait_for(1, timeout=5)  # no flush()
        assert record["name"] == "soon"
    finally:
        carrot_ai.shutdown()


def test_tags_given_as_one_string_are_one_tag(carrot: IngestServer, fake_openai: FakeOpenAI) -> None:
    # 0.2.1 took tags="prod" (and sent it split into letters); carrot raised at decoration / wrap() time.
    client = carrot_ai.wrap(
        openai.OpenAI(base_url=fake_openai.base_url + "/v1", api_key="sk-test", max_retries=0), tags="prod"
    )

    @carrot_ai.trace("tagged", tags="nightly")
    def tagged() -> None:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    tagged()
    assert carrot_ai.flush(5)
    records = {r["name"]: r for r in carrot.wait_for(2)}
    assert records["tagged"]["tags"] == ["nightly"]
    assert records["chat.completions"]["tags"] == ["prod"]


def test_carrot_client_built_with_settings_like_the_reference_sdk_sends_on_its_own() -> None:
    with IngestServer(api_key="ck-own-key") as ingest:
        _submit_through_own_client(ingest)
        assert ingest.requests[0].headers["authorization"] == "Bearer ck-own-key"
    assert _setup._state is None  # init() was not called: the client is its own


def test_carrot_client_given_only_a_queue_size_is_its_own_and_submit_takes_only_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with IngestServer(api_key="ck-env-key") as ingest:
        monkeypatch.setenv("CARROT_API_KEY", "ck-env-key")
        monkeypatch.setenv("CARROT_BASE_URL", ingest.base_url)
        client = carrot_ai.CarrotClient(max_queue=100)  # 0.2.1 built a client of its own from the environment
        try:
            assert client._exporter is not None
            with pytest.raises(TypeError, match="takes a trace record dict, not str"):
                client.submit("not a record")  # type: ignore[arg-type]
        finally:
            client.shutdown()
    assert _setup._state is None


def _submit_through_own_client(ingest: IngestServer) -> None:
    client = carrot_ai.CarrotClient(
        api_key="ck-own-key", base_url=ingest.base_url, flush_interval=0.5, batch_size=10, max_queue=100
    )
    try:
        client.submit(
            {
                "name": "standalone",
                "input": {"q": "x"},
                "output": {"result": "y"},
                "metadata": {},
                "status": "success",
                "started_at": "2026-11-23T10:00:00+00:00",
                "ended_at": "2026-11-23T10:00:01+00:00",
            }
        )
        client.flush()
        [record] = ingest.wait_for(1)
    finally:
        client.shutdown()
    assert record["name"] == "standalone"


def test_init_with_new_settings_moves_to_the_new_exporter_without_waiting_for_the_old(
    carrot: IngestServer, tracer_provider: object
) -> None:
    from tests.ingest_server import Fault

    @carrot_ai.trace("step")
    def step(n: int) -> int:
        return n

    carrot.script(Fault.hang())  # the old exporter's delivery hangs until released
    step(1)
    with IngestServer() as second:
        # Returns while the old exporter is still stuck on its request (init() never waits for it).
        carrot_ai.init(api_key="ck-test-key", base_url=second.base_url, flush_interval=0.05, exit_timeout=5)
        step(2)
        assert carrot_ai.flush(5)
        assert [r["input"]["n"] for r in second.wait_for(1)] == [2]
        carrot.release_hangs()
        # The old exporter retries what was in flight and delivers it to the old server, once.
        assert [r["input"]["n"] for r in carrot.wait_for(1, timeout=15)] == [1]


def test_shutdown_stops_recording_on_the_private_provider(ingest: IngestServer) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from carrot_ai._core import _tracing

    provider = TracerProvider(shutdown_on_exit=False)
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, tracer_provider=provider)
    assert _tracing._tracer_provider is provider
    carrot_ai.shutdown()
    assert _tracing._tracer_provider is None
    provider.shutdown()


def test_stats_after_shutdown_still_count_what_shutdown_could_not_deliver(ingest: IngestServer) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    ingest.fault = Fault.hang()
    provider = TracerProvider(shutdown_on_exit=False)
    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, tracer_provider=provider, exit_timeout=0.2)

    @carrot_ai.trace
    def step() -> int:
        return 1

    step()
    carrot_ai.shutdown()
    ingest.release_hangs()
    provider.shutdown()
    assert carrot_ai.stats()["shutdown"] == 1


def test_init_after_shutdown_on_the_same_provider_takes_over_the_processor_left_there(
    ingest: IngestServer, tracer_provider: object, caplog: pytest.LogCaptureFixture
) -> None:
    # An SDK provider cannot drop a span processor: shutdown() leaves carrot's there, its exporter closed. A second
    # processor beside it took every span too, counted it as lost in the closed exporter and said so, and cost every
    # call carrot's fast path (taken only when carrot's processor is the provider's one).
    from carrot_ai._core import _fastspan
    from carrot_ai.export import CarrotSpanProcessor

    @carrot_ai.trace("step")
    def step(n: int) -> int:
        return n

    for n in (1, 2):
        carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, tracer_provider=tracer_provider)  # type: ignore[arg-type]
        assert _fastspan.fast_path() is not None
        with caplog.at_level("WARNING", logger="carrot_ai"):
            step(n)
        assert carrot_ai.flush(5)
        exporter = _setup.current_exporter()
        carrot_ai.shutdown()
        processors = tracer_provider._active_span_processor._span_processors  # type: ignore[attr-defined]
        assert [type(p) for p in processors] == [CarrotSpanProcessor]
        assert processors[0].exporter is exporter
    assert sorted(r["input"]["n"] for r in ingest.records) == [1, 2]
    assert [r.getMessage() for r in caplog.records if r.name == "carrot_ai"] == []
    assert exporter.stats.dropped == 0


def test_init_again_with_new_settings_points_the_fast_path_at_the_new_exporter(
    ingest: IngestServer, tracer_provider: object
) -> None:
    # The fast path decides from the exporter's queue whether a call's work may wait for the export worker (a backlog
    # makes calls extract at once, so the queue keeps its room for records). After init() with new settings it read
    # the replaced exporter's queue, emptied and shut down, so the new one's backlog was never seen.
    from carrot_ai._core import _fastspan

    carrot_ai.init(api_key="ck-test-key", base_url=ingest.base_url, tracer_provider=tracer_provider)  # type: ignore[arg-type]
    carrot_ai.init(
        api_key="ck-test-key",
        base_url=ingest.base_url,
        tracer_provider=tracer_provider,  # type: ignore[arg-type]
        max_queue_bytes=4096,
    )
    fast = _fastspan.fast_path()
    assert fast is not None
    exporter = _setup.current_exporter()
    assert exporter is not None and exporter._max_queue_bytes == 4096
    assert fast.roomy()
    exporter._queued_bytes = 2048  # half the new budget queued: past the quarter the fast path defers below
    try:
        assert not fast.roomy()
    finally:
        exporter._queued_bytes = 0
    carrot_ai.shutdown()


@pytest.mark.parametrize(
    ("name", "raw", "field", "default"),
    [
        ("CARROT_REQUEST_TIMEOUT", "0", "request_timeout", 10.0),
        ("CARROT_EXPORT_DEADLINE", "0", "export_deadline", 30.0),
        ("CARROT_EXIT_TIMEOUT", "inf", "exit_timeout", 2.0),
        ("CARROT_FLUSH_INTERVAL", "nan", "flush_interval", 5.0),
        ("CARROT_EXPORT_DEADLINE", "-3", "export_deadline", 30.0),
        ("CARROT_REQUEST_TIMEOUT", "ten", "request_timeout", 10.0),
    ],
)
def test_an_environment_setting_no_exporter_can_run_with_keeps_the_default_and_says_so(
    name: str, raw: str, field: str, default: float, caplog: pytest.LogCaptureFixture
) -> None:
    # Taken as given, a request timeout or deadline of 0 lost every batch and an exit timeout of inf made exit wait
    # for ever; the environment never raises (an init() argument does: see the delivery-settings test above).
    from carrot_ai._config import resolve_settings

    with caplog.at_level("WARNING", logger="carrot_ai"):
        settings = resolve_settings(environ={name: raw})
        resolve_settings(environ={name: raw})
    assert getattr(settings, field) == default
    bound = "> 0" if field in ("request_timeout", "export_deadline") else ">= 0"
    assert [r.getMessage() for r in caplog.records if r.name == "carrot_ai"] == [
        f"carrot_ai: {name}={raw!r} is not a number {bound}; the default ({default}) applies"
    ]
    assert resolve_settings(environ={name: "0.5"}).__getattribute__(field) == 0.5
