from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carrot_ai.server import TraceServer, TraceStore
from tests.server.conftest import Client, llm_record, make_record


@pytest.fixture
def corpus(client: Client) -> dict[str, dict[str, Any]]:
    """Records that differ in every searchable field."""
    root = make_record("answer_question", at=0, tags=["prod", "v2"], user_id="u1", session_id="s1")
    records = {
        "root": root,
        "mini": llm_record(root["id"], at=10, tags=["prod"], user_id="u1", session_id="s1"),
        "claude": llm_record(
            None, at=20, model="claude-sonnet-4", metadata={"provider": "anthropic"}, tags=["v2"], user_id="u2"
        ),
        "failed": make_record(
            "lookup", at=30, status="error", output={"error": "boom", "error_type": "KeyError"}, session_id="s2"
        ),
        "tool": make_record("get_weather", at=40, type="tool", input={"city": "Lisbon lighthouse"}),
    }
    assert client.ingest(list(records.values())).status_code == 200
    return records


def ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["tool", "failed", "claude", "mini", "root"]),
        ({"model": "gpt-4o-mini"}, ["mini"]),
        ({"provider": "anthropic"}, ["claude"]),
        ({"status": "error"}, ["failed"]),
        ({"kind": "tool"}, ["tool"]),
        ({"name": "answer_question"}, ["root"]),
        ({"user_id": "u1"}, ["mini", "root"]),
        ({"session_id": "s2"}, ["failed"]),
        ({"tag": "prod"}, ["mini", "root"]),
        ({"tag": ["prod", "v2"]}, ["root"]),
        ({"since": "2025-05-01T12:00:20Z"}, ["tool", "failed", "claude"]),
        ({"until": "2025-05-01T12:00:20+00:00"}, ["mini", "root"]),
        ({"since": "1746100810", "until": "1746100831"}, ["failed", "claude", "mini"]),
        ({"root": "true", "model": "claude-sonnet-4"}, ["claude"]),
        ({"root": "true"}, ["tool", "failed", "claude", "root"]),
        ({"model": "gpt-4o-mini", "status": "error"}, []),
    ],
)
def test_search_filters(
    client: Client, corpus: dict[str, dict[str, Any]], params: dict[str, Any], expected: list[str]
) -> None:
    assert ids(client.search(**params)) == [corpus[name]["id"] for name in expected]


@pytest.mark.parametrize("full_text", [True, False], ids=["fts5", "like"])
def test_full_text_search_over_input_and_output(tmp_path: Path, full_text: bool) -> None:
    store = TraceStore(tmp_path / "t.db", full_text=full_text)
    try:
        with TraceServer(store) as server:
            client = Client(server.url)
            corpus = [
                make_record("a", input={"question": "How do I reset my password?"}),
                make_record("b", output={"message": {"role": "assistant", "content": "Reset under Settings"}}),
                make_record("c", input={"question": "billing"}, output={"result": "invoices"}),
                make_record("question", input={"x": 1}, output={"result": 2}),
            ]
            client.ingest(corpus)
            assert sorted(client.names(q="reset")) == ["a", "b"]
            assert client.names(q="RESET password") == ["a"]
            assert client.names(q="invoices") == ["c"]
            if full_text:  # FTS indexes the values only; the LIKE fallback also matches JSON keys
                assert client.names(q="question") == []
            assert client.names(q='"quoted" OR') == []
            assert client.names(q="reset\x00password") == ["a"]  # a NUL ended FTS5's query text: a 500
    finally:
        store.close()


def test_cursor_pagination_visits_every_record_once_newest_first(client: Client) -> None:
    records = [make_record(f"r{i}", at=i // 2) for i in range(25)]  # pairs share a start time
    client.ingest(records)
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/traces", **params).json()
        seen.extend(page["traces"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(ids(seen)) == sorted(ids(records))
    starts = [r["started_at"] for r in seen]
    assert starts == sorted(starts, reverse=True)


def test_received_order_with_latest_cursor_follows_new_arrivals_only(client: Client) -> None:
    client.ingest([make_record("old")])
    cursor = client.get("/v1/traces", order="received", cursor="latest").json()["next_cursor"]
    client.ingest([make_record("new 1", at=-100), make_record("new 2", at=100)])
    page = client.get("/v1/traces", order="received", cursor=cursor).json()
    assert [r["name"] for r in page["traces"]] == ["new 1", "new 2"]
    again = client.get("/v1/traces", order="received", cursor=page["next_cursor"]).json()
    assert again["traces"] == []
    assert again["next_cursor"] == page["next_cursor"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "maybe"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "last week"}, "since"),
        ({"since": "inf"}, "since"),
        ({"until": "1e300"}, "until"),
        ({"cursor": "c3RhcnRlZDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTox"}, "cursor"),  # started:99999999999999999999999:1
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "latest"}, "cursor"),
        ({"modle": "gpt-4o"}, "modle"),
        ({"model": ["a", "b"]}, "model"),
    ],
)
def test_invalid_search_parameter_is_a_400_naming_it(client: Client, params: dict[str, Any], field: str) -> None:
    response = client.get("/v1/traces", **params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_stats_give_cost_latency_and_errors_per_time_bucket(client: Client) -> None:
    client.ingest(
        [
            llm_record(at=0, metadata={"latency_ms": 100.0, "cost_usd": 0.5}),
            llm_record(at=1, metadata={"latency_ms": 300.0, "cost_usd": 0.25}),
            llm_record(at=90, status="error", metadata={"latency_ms": 50.0, "cost_usd": 0.0}),
        ]
    )
    stats = client.get("/v1/stats", buckets=2, model="gpt-4o-mini").json()
    assert stats["total"] == 3
    assert [
        (b["count"], b["errors"], b["cost_usd"], b["avg_latency_ms"], b["max_latency_ms"]) for b in stats["buckets"]
    ] == [
        (2, 0, 0.75, 200.0, 300.0),
        (1, 1, 0.0, 50.0, 50.0),
    ]
    assert client.get("/v1/stats", model="nothing").json() == {"bucket_seconds": 0, "total": 0, "buckets": []}
