"""The ``carrot-ai`` command: ``serve`` (local server), ``tail`` (arriving traces as trees), ``demo`` (the README's).

``serve`` and ``demo`` need the ``server`` extra; ``demo`` also needs ``openai``:
``pip install 'carrot-ai[openai,server]'``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carrot_ai.server import TraceStore

DEFAULT_PORT = 8787
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
_SERVER_EXTRA = "pip install 'carrot-ai[server]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``carrot-ai`` command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _console_utf8()
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carrot-ai", description="carrot-ai: LLM and pipeline tracing.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the local ingest server, search API and trace viewer")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    serve.add_argument("--db", default="carrot-traces.db", help="SQLite file (default ./carrot-traces.db)")
    serve.add_argument(
        "--api-key",
        default=os.environ.get("CARROT_SERVER_API_KEY"),
        help="require 'Authorization: Bearer KEY' on /v1/ routes (default $CARROT_SERVER_API_KEY)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    serve.set_defaults(run=_serve)

    tail = commands.add_parser("tail", help="print traces as trees as they arrive at a server")
    tail.add_argument("--url", default=None, help=f"server URL (default $CARROT_BASE_URL if local, else {DEFAULT_URL})")
    tail.add_argument(
        "--api-key",
        default=os.environ.get("CARROT_SERVER_API_KEY"),
        help="the server's API key (default $CARROT_SERVER_API_KEY)",
    )
    tail.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    tail.add_argument("--settle", type=float, default=1.0, help="print a tree once it had no news for this long")
    tail.add_argument("--history", type=int, default=0, help="first print the newest N traces already stored")
    tail.add_argument("--once", action="store_true", help="print the newest --history (default 10) traces and exit")
    tail.add_argument("--details", action="store_true", help="show each record's input and output")
    tail.set_defaults(run=_tail)

    demo = commands.add_parser("demo", help="run the seed pipeline example against a local server (offline)")
    demo.add_argument("--db", default=None, help="SQLite file to keep the traces in (default: a temporary one)")
    demo.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT})")
    demo.add_argument("--offline", action="store_true", help="use the local stand-in model even with OPENAI_API_KEY")
    demo.add_argument("--no-wait", action="store_true", help="exit after printing instead of serving until Ctrl-C")
    demo.add_argument("--script", default=None, help="run this script instead of examples/pipeline.py")
    demo.set_defaults(run=_demo)
    return parser


def _console_utf8() -> None:
    # Tree lines use box-drawing characters; never fail on a console that cannot show them.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


# --- serve ----------------------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    try:
        from carrot_ai.server import TraceServer
        from carrot_ai.server._validate import _validator

        _validator()
    except ImportError as exc:
        print(f"carrot-ai serve: {exc} ({_SERVER_EXTRA})", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    store = _open_store(args.db, "serve")
    if store is None:
        return 1
    try:
        server = TraceServer(store, host=args.host, port=args.port, api_key=args.api_key)
    except OSError as exc:
        store.close()
        print(f"carrot-ai serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(
            "carrot-ai serve: WARNING: listening beyond this machine without --api-key; anyone who can reach it "
            "can read and write traces.",
            file=sys.stderr,
        )
    print(f"carrot-ai server: {server.url}  (database {os.path.abspath(args.db)}, {store.count()} records)")
    print(f"  send traces:  CARROT_BASE_URL={server.url}   (OTLP/HTTP: {server.url}/v1/traces)")
    print(f"  trace viewer: {server.url}/    API: {server.url}/openapi.json    Ctrl-C stops")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        store.close()
    return 0


def _open_store(path: str, command: str) -> TraceStore | None:
    """Open the database, or say in one line why it cannot be (no such directory, not SQLite, a newer schema)."""
    import sqlite3

    from carrot_ai.server._store import StoreError, TraceStore

    try:
        return TraceStore(path)
    except (sqlite3.Error, StoreError, OSError) as exc:
        print(f"carrot-ai {command}: cannot use the database {os.path.abspath(path)}: {exc}", file=sys.stderr)
        return None


# --- tail -----------------------------------------------------------------------------------------------------------


class _Api:
    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key

    def get(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        request = urllib.request.Request(self.url + path + ("?" + query if query else ""))
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _default_url() -> str:
    from carrot_ai._config import is_loopback_url

    env = os.environ.get("CARROT_BASE_URL", "")
    return env if env and is_loopback_url(env) else DEFAULT_URL


def _tail(args: argparse.Namespace) -> int:
    from carrot_ai.server._render import render_tree

    api = _Api(args.url or _default_url(), args.api_key)
    details = bool(args.details)
    try:
        if args.once or args.history:
            count = args.history or 10
            page = api.get("/v1/traces", root="true", limit=min(count, 1000))
            for record in reversed(page["traces"]):
                _print_tree(api.get(f"/v1/traces/{record['id']}"), details, render_tree)
            if args.once:
                return 0
        cursor = api.get("/v1/traces", order="received", cursor="latest")["next_cursor"]
        print(f"carrot-ai tail: following {api.url} (Ctrl-C stops)", flush=True)
        pending: dict[str, float] = {}  # root id -> when it last changed
        owner: dict[str, str] = {}  # record id -> root id
        while True:
            page = api.get("/v1/traces", order="received", cursor=cursor, limit=500)
            cursor = page["next_cursor"]
            now = time.monotonic()
            for record in page["traces"]:
                root = owner.get(record["id"]) or owner.get(record["metadata"].get("parent_trace_id", ""))
                if root is None:
                    tree = api.get(f"/v1/traces/{record['id']}")
                    root = tree["root_id"]
                    _own(tree["tree"], root, owner)
                owner[record["id"]] = root
                pending[root] = now
            for root, changed in list(pending.items()):
                if now - changed >= args.settle:
                    tree = api.get(f"/v1/traces/{root}")
                    if tree["root_id"] != root:  # an ancestor arrived meanwhile: the tree has a new root
                        _own(tree["tree"], tree["root_id"], owner)
                        del pending[root]
                        pending[tree["root_id"]] = now
                        continue
                    _print_tree(tree, details, render_tree)
                    del pending[root]
            if len(page["traces"]) < 500:
                time.sleep(args.interval)
    except urllib.error.HTTPError as exc:
        print(
            f"carrot-ai tail: {api.url} answered HTTP {exc.code}: {exc.read().decode(errors='replace')}",
            file=sys.stderr,
        )
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"carrot-ai tail: cannot reach {api.url}: {exc}", file=sys.stderr)
        return 1


def _own(node: dict[str, Any], root: str, owner: dict[str, str]) -> None:
    owner[node["id"]] = root
    for child in node.get("children") or ():
        _own(child, root, owner)


def _print_tree(tree: dict[str, Any], details: bool, render: Any) -> None:
    root = tree["tree"]
    totals = tree["totals"]
    header = f"── {root['started_at']}  {tree['record_count']} record(s)"
    if totals.get("total_tokens"):
        header += f"  {totals['total_tokens']} tokens"
    if totals.get("cost_usd"):
        header += f"  ${totals['cost_usd']:.6f}"
    if tree.get("parent_missing"):
        header += "  (parent not received yet)"
    print(header)
    print(render(root, details=details))
    print(flush=True)


# --- demo -----------------------------------------------------------------------------------------------------------


def find_example() -> Path | None:
    """examples/pipeline.py: from the source tree (editable install), else the copy inside the wheel."""
    candidates = [
        Path(__file__).resolve().parents[2] / "examples" / "pipeline.py",
        Path(__file__).resolve().parent / "_examples" / "pipeline.py",
    ]
    return next((path for path in candidates if path.is_file()), None)


def _demo(args: argparse.Namespace) -> int:
    try:
        from carrot_ai.server import StandInModel, TraceServer, render_tree
        from carrot_ai.server._validate import _validator

        _validator()
    except ImportError as exc:
        print(f"carrot-ai demo: {exc} ({_SERVER_EXTRA})", file=sys.stderr)
        return 1
    script = Path(args.script) if args.script else find_example()
    if script is None or not script.is_file():
        print("carrot-ai demo: examples/pipeline.py not found; pass --script PATH", file=sys.stderr)
        return 1
    temp_dir = None if args.db else tempfile.mkdtemp(prefix="carrot-ai-demo-")
    db = args.db or os.path.join(str(temp_dir), "traces.db")
    store = _open_store(db, "demo")
    if store is None:
        return 1
    stand_in: StandInModel | None = None
    server: TraceServer | None = None
    try:
        try:
            server = TraceServer(store, port=args.port)
        except OSError:
            server = TraceServer(store, port=0)  # the default port is taken: any free one will do
        server.start()
        env = dict(os.environ)
        env["CARROT_BASE_URL"] = server.url
        env.pop("CARROT_API_KEY", None)  # a local server needs no key
        if args.offline or not os.environ.get("OPENAI_API_KEY"):
            stand_in = StandInModel().start()
            env["OPENAI_BASE_URL"] = stand_in.base_url
            env["OPENAI_API_KEY"] = "stand-in-needs-no-key"
            print(f"Model:  LOCAL STAND-IN at {stand_in.base_url} (deterministic, not a real LLM; offline)")
            print("        with OPENAI_API_KEY set and no --offline, the same example talks to OpenAI")
        else:
            print("Model:  OpenAI (OPENAI_API_KEY is set; --offline uses the local stand-in instead)")
        print(f"Server: {server.url}  (database {db})")
        print(f"Running {script.name}:\n")
        sys.stdout.flush()
        start = store.last_seq()
        result = subprocess.run([sys.executable, str(script)], env=env, timeout=300, check=False)
        if result.returncode != 0:
            print(f"\ncarrot-ai demo: {script.name} exited with status {result.returncode}", file=sys.stderr)
            return result.returncode
        roots = _roots_since(store, start)
        if not roots:
            print("\ncarrot-ai demo: the server received no trace records", file=sys.stderr)
            return 1
        print("\nTrace tree, as the server stored it:\n")
        for root in roots:
            tree = store.tree(root)
            if tree is not None:
                print(render_tree(tree["tree"]))
                print()
        print(f"Open {server.url}/#/trace/{roots[-1]} to see it in the trace viewer.")
        if args.no_wait:
            kept = f"`carrot-ai serve --db {db}` serves it again" if args.db else "its temporary database is deleted"
            print(f"--no-wait: the server stops now, and that URL with it; {kept}.")
            return 0
        print("Serving until Ctrl-C.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print()
        return 0
    finally:
        if stand_in is not None:
            stand_in.stop()
        if server is not None:
            server.stop()
        store.close()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _roots_since(store: Any, seq: int) -> list[str]:
    """The root ids of the trees that records received after ``seq`` belong to, oldest first."""
    from carrot_ai.server import SearchQuery

    roots: list[str] = []
    texts, _ = store.search(SearchQuery(order="received", cursor=(seq,), limit=1000))
    for text in texts:
        tree = store.tree(json.loads(text)["id"])
        if tree is not None and tree["root_id"] not in roots:
            roots.append(tree["root_id"])
    return roots


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
