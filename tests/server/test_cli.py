from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from carrot_ai.server import SearchQuery, StandInModel, TraceServer, TraceStore
from tests.server.conftest import Client, llm_record, make_record

_SCRIPT = Path(sys.executable).with_name("carrot-ai")  # the console script the README runs
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "carrot_ai._cli"]
HAS_OPENAI_WRAPPER = (
    importlib.util.find_spec("carrot_ai.instrumentation") is not None
    and importlib.util.find_spec("carrot_ai.instrumentation.openai") is not None
)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CARROT_"))}
    env["CARROT_STRICT"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_demo_runs_the_pipeline_offline_and_prints_the_stored_tree(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = subprocess.run(
        [*CLI, "demo", "--no-wait", "--offline", "--port", "0", "--db", str(db)],
        env={**cli_env(), "OPENAI_API_KEY": "sk-real-looking-key-that-offline-must-ignore"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "LOCAL STAND-IN" in out
    assert "[stand-in model] This is a local, deterministic stand-in, not a real LLM." in out
    assert "To reset your password, go to Settings > Security" in out
    assert re.search(r"^answer_question  \[function\]  ok", out, re.M)
    assert re.search(r"^[└├]─ search_knowledge_base  \[function\]  ok", out, re.M)
    match = re.search(r"Open (http://127\.0\.0\.1:\d+)/#/trace/([0-9a-f-]{36}) ", out)
    assert match, out
    # The URL above is dead once the command returns: say so, and how to see the traces again.
    assert f"--no-wait: the server stops now, and that URL with it; `carrot-ai serve --db {db}` serves it again." in out

    store = TraceStore(db)
    try:
        tree = store.tree(match.group(2))
    finally:
        store.close()
    assert tree is not None
    root = tree["tree"]
    assert root["name"] == "answer_question"
    assert root["input"] == {"question": "How do I reset my password?"}
    assert root["output"]["result"].startswith("[stand-in model]")
    children = {c["name"]: c for c in root["children"]}
    assert children["search_knowledge_base"]["output"]["result"] == [
        "To reset your password, go to Settings > Security and choose Reset password."
    ]
    if HAS_OPENAI_WRAPPER:  # the wrapped client's call is a child too once carrot_ai.wrap() supports OpenAI
        assert children["chat.completions"]["metadata"]["model"] == "gpt-4o-mini"
        assert "chat.completions" in out
    else:
        assert set(children) == {"search_knowledge_base"}


def test_stand_in_model_answers_plain_and_streamed_through_the_openai_sdk() -> None:
    messages = [
        {"role": "system", "content": "Context:\nInvoices are under Settings > Billing."},
        {"role": "user", "content": "Where are my invoices?"},
    ]
    with StandInModel() as model:
        client = OpenAI(base_url=model.base_url, api_key="unused", max_retries=0)
        plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = plain.choices[0].message.content
    assert text == (
        "[stand-in model] This is a local, deterministic stand-in, not a real LLM. "
        'From the context: Invoices are under Settings > Billing. (You asked: "Where are my invoices?")'
    )
    assert plain.model == "gpt-4o-mini"
    assert plain.usage is not None and plain.usage.completion_tokens > 0
    assert len(chunks) > 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage == plain.usage


def test_tail_once_prints_the_newest_traces_as_trees(client: Client, server: TraceServer) -> None:
    root = make_record("answer_question")
    client.ingest([llm_record(root["id"], at=1), make_record("search_knowledge_base", parent=root["id"]), root])
    result = subprocess.run(
        [*CLI, "tail", "--once", "--url", server.url], env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("── 2025-05-01T12:00:00+00:00  3 record(s)  150 tokens  $0.000135")
    assert lines[1].startswith("answer_question  [function]  ok  500.0 ms")
    assert lines[2].startswith("├─ search_knowledge_base  [function]  ok")
    assert lines[3].startswith(
        "└─ chat.completions  [llm]  ok  500.0 ms  gpt-4o-mini  120 in / 30 out tokens  $0.000135"
    )


def test_tail_prints_control_characters_of_a_record_escaped_not_to_the_terminal(
    client: Client, server: TraceServer
) -> None:
    # A record's name reached the terminal raw: anyone who can ingest could retitle, clear or recolour it.
    evil = make_record("evil\x1b]0;owned\x07\x1b[2J\nname", model="m\x9b31m")
    assert client.ingest([evil]).status_code == 200
    result = subprocess.run(
        [*CLI, "tail", "--once", "--url", server.url], env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\x0aname  [function]  ok  500.0 ms  m\\x9b31m" in result.stdout
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", result.stdout)


@pytest.fixture
def tail_process(server: TraceServer) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [*CLI, "tail", "--url", server.url, "--interval", "0.05", "--settle", "0.3"],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    process.terminate()
    process.wait(10)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    process.stderr.close()


def read_lines_until(process: subprocess.Popen[str], pattern: str, timeout: float = 20.0) -> list[str]:
    lines: list[str] = []
    found = threading.Event()

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if re.search(pattern, line):
                found.set()
                return

    threading.Thread(target=reader, daemon=True).start()
    assert found.wait(timeout), f"{pattern!r} not printed; got {lines}"
    return lines


def test_tail_follows_new_traces_and_prints_each_tree_once_its_parts_arrived(
    client: Client, tail_process: subprocess.Popen[str]
) -> None:
    client.ingest([make_record("already stored")])
    read_lines_until(tail_process, r"^carrot-ai tail: following")
    root = make_record("answer_question", at=5)
    child = make_record("search_knowledge_base", parent=root["id"], at=5.1)
    client.ingest([child])  # children first, as exporters send them
    client.ingest([root])
    lines = read_lines_until(tail_process, r"search_knowledge_base")
    assert lines[-3].startswith("── 2025-05-01T12:00:05+00:00  2 record(s)")
    assert lines[-2].startswith("answer_question  [function]  ok")
    assert lines[-1].startswith("└─ search_knowledge_base  [function]  ok")
    assert not any("already stored" in line for line in lines)


def test_serve_command_stores_what_it_receives_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "served.db"
    process = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--db", str(db)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal, even when the test run itself was started in the background (where SIGINT is
        # ignored, children inherit that, and Python then installs no KeyboardInterrupt handler).
        preexec_fn=_default_sigint,
    )
    try:
        lines = read_lines_until(process, r"^carrot-ai server: http://")
        url = re.search(r"(http://127\.0\.0\.1:\d+)", lines[-1])
        assert url, lines
        assert Client(url.group(1)).ingest([make_record("served")]).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    store = TraceStore(db)
    try:
        texts, _ = store.search(SearchQuery())
    finally:
        store.close()
    assert len(texts) == 1 and '"name":"served"' in texts[0]


@pytest.mark.parametrize("command", ["serve", "demo"])
@pytest.mark.parametrize("problem", ["no such directory", "not a database"])
def test_a_database_that_cannot_be_opened_is_one_line_not_a_traceback(
    tmp_path: Path, command: str, problem: str
) -> None:
    db = tmp_path / "missing" / "traces.db"
    if problem == "not a database":
        db = tmp_path / "notes.txt"
        db.write_text("not SQLite, " * 100)
    result = subprocess.run(
        [*CLI, command, "--port", "0", "--db", str(db)], env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"carrot-ai {command}: cannot use the database {db}: "), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_without_a_command_prints_help_and_fails() -> None:
    result = subprocess.run(CLI, env=cli_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "serve" in result.stdout and "tail" in result.stdout and "demo" in result.stdout
