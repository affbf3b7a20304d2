from __future__ import annotations

import datetime
import gzip
import json
import socket
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from dirty_equals import IsStr
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai.server import TraceServer, TraceStore
from carrot_ai.server._store import SCHEMA_VERSION, StoreError
from tests.server.conftest import Client, llm_record, make_record


@pytest.fixture
def traced(server: TraceServer, tracer_provider: TracerProvider) -> Iterator[TraceServer]:
    """carrot_ai exporting to the local server (the real exporter, over real HTTP)."""
    carrot_ai.init(base_url=server.url, flush_interval=0.05, tracer_provider=tracer_provider)
    yield server
    carrot_ai.shutdown()


def without_children(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != "children"}


def test_exporter_records_round_trip_through_ingest_search_and_detail(traced: TraceServer, client: Client) -> None:
    @carrot_ai.trace("search_knowledge_base")
    def search_knowledge_base(question: str) -> list[str]:
        return ["Reset it under Settings > Security."]

    @carrot_ai.trace(name="answer_question", tags=["demo"])
    def answer_question(question: str) -> str:
        return search_knowledge_base(question)[0]

    answer_question("How do I reset my password?")
    assert carrot_ai.flush(5)

    [root] = client.search(root="true")
    [child] = client.search(name="search_knowledge_base")
    assert root["name"] == "answer_question"
    assert root["input"] == {"question": "How do I reset my password?"}
    assert root["output"] == {"result": "Reset it under Settings > Security."}
    assert root["tags"] == ["demo"]
    assert child["metadata"]["parent_trace_id"] == root["id"]

    detail = client.get(f"/v1/traces/{child['id']}").json()
    assert detail["id"] == child["id"]
    assert detail["root_id"] == root["id"]
    assert detail["parent_missing"] is None
    assert detail["record_count"] == 2
    assert without_children(detail["tree"]) == root
    assert [without_children(c) for c in detail["tree"]["children"]] == [child]


def test_plain_and_gzip_bodies_are_both_accepted(client: Client) -> None:
    plain = client.ingest([make_record("plain")], compress=False)
    gzipped = client.ingest([make_record("gzipped")], compress=True)
    assert (plain.status_code, gzipped.status_code) == (200, 200)
    assert sorted(client.names()) == ["gzipped", "plain"]


def test_children_arriving_before_parents_assemble_into_one_tree(client: Client) -> None:
    root = make_record("answer_question", at=0)
    child = make_record("retrieve", parent=root["id"], at=0.1)
    grandchild = llm_record(parent=child["id"], at=0.2)
    sibling = make_record("rerank", parent=root["id"], at=0.3)

    assert client.ingest([grandchild]).status_code == 200
    early = client.get(f"/v1/traces/{grandchild['id']}").json()
    assert early["root_id"] == grandchild["id"]
    assert early["parent_missing"] == child["id"]

    assert client.ingest([sibling, child]).status_code == 200
    assert client.ingest([root]).status_code == 200

    tree = client.get(f"/v1/traces/{grandchild['id']}").json()
    assert tree["root_id"] == root["id"]
    assert tree["parent_missing"] is None
    assert tree["record_count"] == 4
    shape = [(c["name"], [g["name"] for g in c["children"]]) for c in tree["tree"]["children"]]
    assert shape == [("retrieve", ["chat.completions"]), ("rerank", [])]
    assert tree["totals"] == {
        "cost_usd": 0.000135,
        "input_tokens": 120,
        "output_tokens": 30,
        "total_tokens": 150,
        "errors": 0,
    }
    assert client.get(f"/v1/traces/{sibling['id']}").json()["root_id"] == root["id"]


def test_duplicate_delivery_is_stored_once(client: Client) -> None:
    first = make_record("first")
    second = make_record("second")
    assert client.ingest([first, second]).json() == {"accepted": 2, "stored": 2, "duplicates": 0, "rejected": []}
    changed = {**first, "name": "changed on retry"}
    again = client.ingest([changed, second, second])
    assert again.status_code == 200
    assert again.json() == {"accepted": 3, "stored": 0, "duplicates": 3, "rejected": []}
    assert sorted(client.names()) == ["first", "second"]


def test_invalid_records_are_rejected_naming_the_field_while_valid_ones_are_kept(client: Client) -> None:
    valid = make_record("valid")
    no_name = make_record("x")
    del no_name["name"]
    negative_tokens = llm_record(metadata={"input_tokens": -1})
    unknown_key = {**make_record("y"), "bogus": 1}
    bad_time = {**make_record("z"), "started_at": "yesterday"}
    response = client.ingest([valid, no_name, negative_tokens, unknown_key, bad_time, "not a record"])

    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 1
    assert body["stored"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [
        (1, "name"),
        (2, "metadata.input_tokens"),
        (3, "bogus"),
        (4, "started_at"),
        (5, "(record)"),
    ]
    assert body["rejected"][1]["id"] == negative_tokens["id"]
    assert body["rejected"][1]["error"] == "-1 is less than the minimum of 0"
    assert body["error"] == IsStr(regex=r"^5 record\(s\) rejected; first: traces\[1\]\.name: .*'name'.*")
    assert client.names() == ["valid"]


def test_a_rejection_quotes_a_large_offending_value_shortened(client: Client) -> None:
    # The whole value came back in the answer (twice for the first record): a 1 MB field, a 2 MB answer.
    huge = {**make_record("x"), "input": "a" * 1_000_000}
    response = client.ingest([huge, {**make_record("y"), "ended_at": "b" * 1_000_000}])

    assert response.status_code == 422
    assert len(response.content) < 2_000
    first, second = response.json()["rejected"]
    assert (first["field"], second["field"]) == ("input", "ended_at")
    assert first["error"] == IsStr(regex=r"^'aaaa.* \.\.\. a+' is not of type 'object'$")


# The docs' "Custom trace ingestion" curl example (seed 000), as it is written: no id, no timestamps.
SEED_CUSTOM_RECORD = {
    "name": "my-agent",
    "input": {"messages": [{"role": "user", "content": "Hello"}]},
    "output": {"message": {"role": "assistant", "content": "Hi!"}},
    "metadata": {"model": "gpt-4o", "input_tokens": 10, "output_tokens": 5},
    "status": "success",
}


def test_the_docs_custom_ingestion_record_is_stored_with_its_id_and_times_filled_in(client: Client) -> None:
    timed = {**SEED_CUSTOM_RECORD, "name": "timed", "metadata": {"latency_ms": 1500.0}}
    response = client.ingest([SEED_CUSTOM_RECORD, timed], compress=False)

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "stored": 2, "duplicates": 0, "rejected": []}
    stored = {r["name"]: r for r in client.get("/v1/traces").json()["traces"]}
    record = stored["my-agent"]
    assert {k: record[k] for k in SEED_CUSTOM_RECORD} == SEED_CUSTOM_RECORD
    assert record["id"] == IsStr(regex=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    assert record["started_at"] == record["ended_at"]
    started = datetime.datetime.fromisoformat(stored["timed"]["started_at"])
    ended = datetime.datetime.fromisoformat(stored["timed"]["ended_at"])
    assert ended - started == datetime.timedelta(milliseconds=1500)


def test_a_record_missing_what_ingest_does_not_fill_is_still_rejected(client: Client) -> None:
    no_status = {k: v for k, v in SEED_CUSTOM_RECORD.items() if k != "status"}
    bad_end = {**SEED_CUSTOM_RECORD, "ended_at": "later"}
    response = client.ingest([no_status, bad_end])

    assert response.status_code == 422
    assert [(r["index"], r["field"]) for r in response.json()["rejected"]] == [(0, "status"), (1, "started_at")]


def test_numbers_beyond_the_stores_integers_are_kept_and_the_batch_stored(client: Client) -> None:
    # Schema-valid, but past SQLite's 64-bit integers: the batch failed with a 500 and nothing of it was stored.
    huge = {**SEED_CUSTOM_RECORD, "name": "huge", "metadata": {"input_tokens": 2**63, "latency_ms": 10**400}}
    response = client.ingest([huge, {**SEED_CUSTOM_RECORD, "name": "plain"}], compress=False)
    assert response.status_code == 200, response.text
    stored = {r["name"]: r for r in client.get("/v1/traces").json()["traces"]}
    assert sorted(stored) == ["huge", "plain"]
    assert stored["huge"]["metadata"]["input_tokens"] == 2**63  # exact in the record


def test_lone_surrogates_are_stored_as_question_marks_with_the_rest_of_the_batch(client: Client) -> None:
    # JSON may escape a lone surrogate, UTF-8 (and so SQLite) cannot hold one: a 500, and the whole batch was lost.
    record = json.dumps({**SEED_CUSTOM_RECORD, "name": "odd", "input": {"text": "a\ud800b"}, "tags": ["t\udc00"]})
    body = ('{"traces": [' + record + ", " + json.dumps(SEED_CUSTOM_RECORD) + "]}").encode()
    response = client.post("/v1/traces/ingest", body, {"Content-Type": "application/json"})

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 2
    [odd] = client.search(q="a?b")
    assert (odd["name"], odd["input"], odd["tags"]) == ("odd", {"text": "a?b"}, ["t?"])
    assert client.names(tag="t?") == ["odd"]


@pytest.mark.parametrize("moment", ["inf", "-inf", "nan", "1e300", "-1e20"])
def test_epoch_seconds_out_of_range_are_rejected_naming_the_field(client: Client, moment: str) -> None:
    # inf raised OverflowError and 1e300 overflowed the store's column: a 500, and the whole batch was lost.
    response = client.ingest([{**SEED_CUSTOM_RECORD, "started_at": moment}, {**SEED_CUSTOM_RECORD, "name": "plain"}])

    assert response.status_code == 422, response.text
    assert [(r["index"], r["field"]) for r in response.json()["rejected"]] == [(0, "started_at")]
    assert client.names() == ["plain"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (b'{"records": []}', "traces"),
        (b'{"traces": {}}', "traces"),
        (b"[]", "traces"),
        (b'{"traces": [{"name": "x", "metadata": {"latency_ms": NaN}}]}', None),  # not JSON
    ],
)
def test_malformed_ingest_body_is_a_400(client: Client, body: bytes, field: str | None) -> None:
    response = client.post("/v1/traces/ingest", body, {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json().get("field") == field


@pytest.mark.parametrize("path", ["/v1/traces/ingest", "/v1/traces"])
def test_body_nested_too_deeply_is_a_400(client: Client, path: str) -> None:
    # json.loads raised RecursionError: a 500.
    deep = b'{"traces": [{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    response = client.post(path, deep, {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "nested too deeply" in response.text


def test_body_larger_than_the_limit_after_decompression_is_a_413(store: TraceStore) -> None:
    with TraceServer(store, max_body_bytes=10_000) as small:
        client = Client(small.url)
        bomb = gzip.compress(b'{"traces": ["' + b"a" * 50_000 + b'"]}')
        assert len(bomb) < 10_000
        response = client.post("/v1/traces/ingest", bomb, {"Content-Encoding": "gzip"})
        assert response.status_code == 413
        assert client.ingest([make_record("small")]).status_code == 200


def test_a_negative_chunk_size_is_a_400_at_once(store: TraceStore) -> None:
    # int("-1", 16) passed, and rfile.read(-1) read to the end of the connection: past the body limit, into memory.
    with TraceServer(store, max_body_bytes=10_000) as small:
        port = int(small.url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = b"POST /v1/traces/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head + b"-1\r\n" + b"a" * 50_000)
        try:
            answer = sock.recv(1000)
        finally:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b'{"error":"malformed chunked body"}')


def test_api_key_is_required_on_every_api_route_when_configured(
    store: TraceStore, tracer_provider: TracerProvider
) -> None:
    with TraceServer(store, api_key="local-secret") as secured:
        anonymous = Client(secured.url)
        wrong = Client(secured.url, api_key="guess")
        assert anonymous.ingest([make_record("x")]).status_code == 401
        assert wrong.ingest([make_record("x")]).status_code == 401
        assert anonymous.get("/v1/traces").status_code == 401
        assert anonymous.get("/v1/stats").status_code == 401
        assert anonymous.get("/").status_code == 200  # the page asks for the key itself

        carrot_ai.init(
            api_key="local-secret", base_url=secured.url, flush_interval=0.05, tracer_provider=tracer_provider
        )
        try:

            @carrot_ai.trace("step")
            def step() -> int:
                return 1

            step()
            assert carrot_ai.flush(5)
        finally:
            carrot_ai.shutdown()
        assert Client(secured.url, api_key="local-secret").names() == ["step"]


def test_a_web_page_of_another_site_can_neither_write_nor_read_traces(client: Client) -> None:
    # Any page the user visits could POST text/plain to 127.0.0.1 (no preflight) and have its records stored.
    body = json.dumps({"traces": [SEED_CUSTOM_RECORD]}).encode()
    foreign = {"Content-Type": "text/plain", "Origin": "https://attacker.example"}
    assert client.post("/v1/traces/ingest", body, foreign).status_code == 403
    assert httpx2.get(client.url + "/v1/traces", headers={"Origin": "null"}).status_code == 403
    assert client.search() == []

    own = {"Content-Type": "application/json", "Origin": client.url}
    assert client.post("/v1/traces/ingest", body, own).status_code == 200


@pytest.mark.parametrize(("host", "status"), [("attacker.example", 403), ("localhost", 200), ("127.0.0.1", 200)])
def test_a_host_name_rebound_to_loopback_is_refused(client: Client, host: str, status: int) -> None:
    # DNS rebinding: attacker.example resolving to 127.0.0.1 let a page read every trace of the local server.
    client.ingest([SEED_CUSTOM_RECORD])
    port = client.url.rsplit(":", 1)[1]
    response = httpx2.get(client.url + "/v1/traces", headers={"Host": f"{host}:{port}"})
    assert response.status_code == status, response.text


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_the_server_listens_on_the_ipv6_loopback(store: TraceStore) -> None:
    # `carrot-ai serve --host ::1` failed: "Address family for hostname not supported".
    with TraceServer(store, host="::1") as server:
        assert server.url.startswith("http://[::1]:")
        client = Client(server.url)
        assert client.ingest([make_record("over ipv6")]).status_code == 200
        assert client.names() == ["over ipv6"]


def test_unknown_trace_id_is_a_404(client: Client) -> None:
    response = client.get("/v1/traces/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404


def test_wrong_method_is_a_405(client: Client) -> None:
    assert client.get("/v1/traces/ingest").status_code == 405
    assert client.post("/openapi.json", b"", {}).status_code == 405


def test_openapi_document_describes_every_route_and_the_record_schema(client: Client) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {"/v1/traces/ingest", "/v1/traces", "/v1/traces/{id}", "/v1/stats"}
    assert set(document["paths"]["/v1/traces"]) == {"get", "post"}
    parameters = {p["name"] for p in document["paths"]["/v1/traces"]["get"]["parameters"]}
    assert parameters >= {"model", "provider", "status", "tag", "name", "user_id", "session_id", "since", "until", "q"}
    assert parameters >= {"limit", "cursor"}
    assert document["components"]["schemas"]["TraceRecord"]["required"] == [
        "id",
        "name",
        "input",
        "output",
        "metadata",
        "status",
        "started_at",
        "ended_at",
    ]


def test_database_is_one_wal_file_at_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = TraceStore(path)
    store.insert([make_record("kept")])
    assert store.schema_version() == SCHEMA_VERSION
    store.close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()
    reopened = TraceStore(path)
    assert reopened.count() == 1
    reopened.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_new_database_and_its_wal_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    # Created with the umask's 0644: any user of the machine could read every stored prompt and response.
    store = TraceStore(tmp_path / "traces.db")
    try:
        store.insert([make_record("private")])
        files = sorted(tmp_path.iterdir())
        assert [f.name for f in files] == ["traces.db", "traces.db-shm", "traces.db-wal"]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == dict.fromkeys(
            ["traces.db", "traces.db-shm", "traces.db-wal"], 0o600
        )
    finally:
        store.close()


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(StoreError, match="schema version"):
        TraceStore(path)


def test_full_text_index_is_built_for_records_stored_without_it(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    plain = TraceStore(path, full_text=False)
    plain.insert([make_record("a", input={"question": "lighthouse keeper"})])
    plain.close()
    indexed = TraceStore(path)
    from carrot_ai.server import SearchQuery

    texts, _ = indexed.search(SearchQuery(q="lighthouse"))
    assert [json.loads(t)["name"] for t in texts] == ["a"]
    indexed.close()


def test_database_of_an_older_schema_version_is_migrated_keeping_its_records(tmp_path: Path) -> None:
    from carrot_ai.server._store import MIGRATIONS

    path = tmp_path / "v1.db"
    old = TraceStore(path)
    old.insert([make_record("from version 1")])
    old.close()
    connection = sqlite3.connect(path)  # take it back to version 1, as an older carrot-ai left it
    connection.execute("DROP INDEX records_parent_started")
    connection.execute("CREATE INDEX records_parent ON records (parent_id)")
    connection.execute("PRAGMA user_version=1")
    connection.commit()
    connection.close()
    assert len(MIGRATIONS) == SCHEMA_VERSION > 1

    migrated = TraceStore(path)
    try:
        assert migrated.schema_version() == SCHEMA_VERSION
        indexes = {row[0] for row in migrated._writer.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "records_parent_started" in indexes and "records_parent" not in indexes
        assert migrated.count() == 1
    finally:
        migrated.close()


def test_an_idle_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_kept(store: TraceStore) -> None:
    # Each connection holds one of the server's threads: one that sends nothing must not hold it forever.
    with TraceServer(store, idle_timeout=0.3) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as idle:
            idle.settimeout(30)  # a bound on the test, far above the server's 0.3 s
            assert idle.recv(1) == b""  # closed by the server, not by this socket's own timeout
        # A kept-alive connection serves request after request within the timeout.
        with httpx2.Client(base_url=server.url) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/healthz").status_code == 200
    with TraceServer(store) as server:
        assert server.idle_timeout == 120.0
