"""The trace viewer page in headless Chromium: what it shows, and what clicks do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carrot_ai.server import TraceServer, TraceStore
from tests.server.cdp import Browser, find_chromium
from tests.server.conftest import Client, llm_record, make_record

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs it)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    chromium = Browser(CHROMIUM)
    yield chromium
    chromium.close()


@pytest.fixture
def pipeline(client: Client) -> dict[str, dict[str, Any]]:
    root = make_record(
        "answer_question",
        at=0,
        input={"question": "How do I reset my password?"},
        output={"result": "Go to Settings > Security."},
        tags=["prod"],
    )
    records = {
        "root": root,
        "search": make_record("search_knowledge_base", parent=root["id"], at=0.1),
        "llm": llm_record(root["id"], at=0.2, metadata={"latency_ms": 1234.5}),
        "other": llm_record(
            None, at=600, model="claude-sonnet-4", metadata={"provider": "anthropic", "cost_usd": 0.002}
        ),
        "failed": make_record(
            "lookup_order", at=1200, status="error", output={"error": "order 42 not found", "error_type": "KeyError"}
        ),
    }
    assert client.ingest(list(records.values())).status_code == 200
    return records


def row(record: dict[str, Any]) -> str:
    return f'#trace-list tbody tr[data-id="{record["id"]}"]'


def wait_for_rows(browser: Browser, *records: dict[str, Any]) -> None:
    """Wait until the list shows exactly these records, newest first."""
    expected = sorted(records, key=lambda r: r["started_at"], reverse=True)
    ids = json.dumps([r["id"] for r in expected], separators=(",", ":"))
    shown = "JSON.stringify([...document.querySelectorAll('#trace-list tbody tr')].map(r => r.dataset.id))"
    browser.wait_for(f"{shown} === {json.dumps(ids)}")


def shown_rows(browser: Browser) -> list[str]:
    value = browser.evaluate("[...document.querySelectorAll('#trace-list tbody tr')].map(r => r.dataset.id)")
    return list(value)


def test_clicking_a_record_shows_its_tree_and_details(
    browser: Browser, server: TraceServer, pipeline: dict[str, dict[str, Any]]
) -> None:
    browser.navigate(server.url + "/")
    wait_for_rows(browser, *pipeline.values())
    assert browser.evaluate("document.querySelector('#detail').hidden") is True
    assert browser.text(row(pipeline["llm"]) + " td:nth-child(6)") == "120 in / 30 out"

    browser.click(row(pipeline["llm"]))
    browser.wait_for("!document.querySelector('#detail').hidden && document.querySelector('#node-name').textContent")
    assert browser.evaluate("location.hash") == f"#/trace/{pipeline['llm']['id']}"
    assert browser.text("#detail-title") == "answer_question"
    assert browser.text("#detail-summary") == "3 record(s) · 500.0 ms · 150 tokens · $0.000135"
    tree = browser.evaluate(
        "[...document.querySelectorAll('#tree .node')].map(n => "
        "[n.dataset.id, n.querySelector('span').textContent, "
        "n.closest('ul').closest('li')?.querySelector('.node').dataset.id ?? null])"
    )
    root_id = pipeline["root"]["id"]
    assert tree == [
        [root_id, "answer_question", None],
        [pipeline["search"]["id"], "search_knowledge_base", root_id],
        [pipeline["llm"]["id"], "chat.completions", root_id],
    ]
    # The record clicked in the list is the one detailed.
    assert browser.text("#tree .node.selected span") == "chat.completions"
    assert browser.text("#node-name") == "chat.completions"
    assert browser.text("#node-model") == "gpt-4o-mini · openai"
    assert browser.text("#node-tokens") == "120 in / 30 out (150 total)"
    assert browser.text("#node-cost") == "$0.000135"
    assert browser.text("#node-latency") == "1.23 s"
    assert '"content": "How do I reset my password?"' in browser.text("#node-input")
    assert '"content": "Go to Settings > Security."' in browser.text("#node-output")
    assert browser.evaluate("document.querySelector('#node-error').hidden") is True

    browser.click(f'#tree .node[data-id="{root_id}"]')
    browser.wait_for("document.querySelector('#node-name').textContent === 'answer_question'")
    assert browser.text("#node-input") == '{\n  "question": "How do I reset my password?"\n}'
    assert browser.text("#node-output") == '{\n  "result": "Go to Settings > Security."\n}'
    assert browser.text("#node-tags") == "prod"

    browser.click("#close-detail")
    browser.wait_for("document.querySelector('#detail').hidden")


def test_filters_narrow_the_list_and_an_error_shows_its_message(
    browser: Browser, server: TraceServer, pipeline: dict[str, dict[str, Any]]
) -> None:
    everything = list(pipeline.values())
    browser.navigate(server.url + "/")
    wait_for_rows(browser, *everything)

    browser.type_into("#f-model", "claude-sonnet-4")
    browser.click("#apply")
    wait_for_rows(browser, pipeline["other"])

    browser.click("#clear")
    wait_for_rows(browser, *everything)
    browser.choose("#f-status", "error")
    browser.click("#apply")
    wait_for_rows(browser, pipeline["failed"])
    assert browser.text(row(pipeline["failed"]) + " td:nth-child(4)") == "error"

    browser.click(row(pipeline["failed"]))
    browser.wait_for("!document.querySelector('#node-error').hidden")
    assert browser.text("#node-error") == "KeyError: order 42 not found"

    browser.click("#clear")
    wait_for_rows(browser, *everything)
    browser.type_into("#f-q", "password")
    browser.click("#apply")
    wait_for_rows(browser, pipeline["root"], pipeline["llm"], pipeline["other"])

    browser.click("#clear")
    wait_for_rows(browser, *everything)
    browser.click("#f-root")
    browser.click("#apply")
    wait_for_rows(browser, pipeline["root"], pipeline["other"], pipeline["failed"])


def test_charts_plot_cost_and_latency_per_time_bucket(
    browser: Browser, server: TraceServer, pipeline: dict[str, dict[str, Any]]
) -> None:
    browser.navigate(server.url + "/")
    browser.wait_for("document.querySelectorAll('#chart-latency circle.dot').length > 0")
    # Three moments (0 s, 600 s, 1200 s) in 40 buckets: three bars and three average-latency points.
    assert browser.evaluate("document.querySelectorAll('#chart-cost rect.bar').length") == 3
    assert browser.evaluate("document.querySelectorAll('#chart-latency circle.dot').length") == 3
    tooltips = browser.evaluate("[...document.querySelectorAll('#chart-cost rect.bar title')].map(t => t.textContent)")
    assert [t.split(": ", 1)[1] for t in tooltips] == [
        "$0.00014 (3 records)",
        "$0.0020 (1 records)",
        "$0.0 (1 records)",
    ]
    bar_heights = browser.evaluate(
        "[...document.querySelectorAll('#chart-cost rect.bar')].map(r => +r.getAttribute('height'))"
    )
    assert bar_heights[1] > bar_heights[0] > bar_heights[2] == 0


def test_page_asks_for_the_api_key_when_the_server_needs_one(browser: Browser, store: TraceStore) -> None:
    with TraceServer(store, api_key="local-secret") as secured:
        Client(secured.url, api_key="local-secret").ingest([make_record("secured record")])
        browser.navigate(secured.url + "/")
        browser.evaluate("sessionStorage.clear()")
        browser.navigate(secured.url + "/?fresh")
        browser.wait_for("!document.querySelector('#key-form').hidden")
        assert browser.evaluate("document.querySelectorAll('#trace-list tbody tr').length") == 0
        browser.type_into("#api-key", "local-secret")
        browser.click("#key-form button")
        browser.wait_for("document.querySelectorAll('#trace-list tbody tr').length === 1")
        assert browser.text("#trace-list tbody tr td.name") == "secured record"


def test_a_malformed_trace_link_says_so_instead_of_throwing(
    browser: Browser, server: TraceServer, pipeline: dict[str, dict[str, Any]]
) -> None:
    browser.navigate(server.url + "/")
    wait_for_rows(browser, *pipeline.values())
    # A hand-edited link with a stray "%" (decodeURIComponent throws URIError on it).
    browser.evaluate("history.replaceState(null, '', '#/trace/50%'); route(); true")
    assert browser.evaluate("document.querySelector('#detail').hidden") is True
    assert browser.text("#status-line") == "Error: not a trace link: #/trace/50%"
    # The list still works, and a good link still opens its trace.
    browser.evaluate(f"history.replaceState(null, '', '#/trace/{pipeline['llm']['id']}'); route(); true")
    browser.wait_for("document.querySelector('#node-name').textContent === 'chat.completions'")
