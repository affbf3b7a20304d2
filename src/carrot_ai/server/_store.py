"""SQLite storage of trace records: one file in WAL mode, versioned migrations, search, stats and trees.

Records are stored as received (the JSON text) next to the columns the search filters on. Inserting is idempotent
on the record ``id``: the first delivery wins and a repeated one is counted as a duplicate. Parent links are the
records' ``metadata.parent_trace_id``; a tree is assembled when it is read, so records may arrive in any order.

One connection writes (behind a lock); reads use a small pool of their own connections, which WAL lets run
alongside the writer.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from carrot_ai.server._query import LATEST_POSITION, SearchQuery, encode_cursor
from carrot_ai.server._timeutil import parse_timestamp_us

MAX_TREE_RECORDS = 10_000
MAX_TREE_DEPTH = 1_000

# Each entry migrates the database from version N-1 to N (PRAGMA user_version). Never edit a released entry:
# append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE records (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            trace_id TEXT,
            parent_id TEXT,
            name TEXT NOT NULL,
            kind TEXT,
            status TEXT NOT NULL,
            model TEXT,
            provider TEXT,
            user_id TEXT,
            session_id TEXT,
            started_us INTEGER NOT NULL,
            ended_us INTEGER NOT NULL,
            latency_ms REAL,
            cost_usd REAL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            total_tokens INTEGER,
            received_us INTEGER NOT NULL,
            record TEXT NOT NULL
        )""",
        "CREATE INDEX records_started ON records (started_us, seq)",
        "CREATE INDEX records_parent ON records (parent_id)",
        "CREATE INDEX records_trace ON records (trace_id)",
        "CREATE INDEX records_model ON records (model, started_us)",
        "CREATE INDEX records_provider ON records (provider, started_us)",
        "CREATE INDEX records_status ON records (status, started_us)",
        "CREATE INDEX records_name ON records (name, started_us)",
        "CREATE INDEX records_user ON records (user_id, started_us)",
        "CREATE INDEX records_session ON records (session_id, started_us)",
        "CREATE TABLE record_tags (tag TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tag, seq)) WITHOUT ROWID",
    ),
    (
        # Top-level records in a time window, newest first, without scanning every root.
        "CREATE INDEX records_parent_started ON records (parent_id, started_us, seq)",
        "DROP INDEX records_parent",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMN_FILTERS = ("model", "provider", "status", "name", "user_id", "session_id", "kind")


class StoreError(RuntimeError):
    """The database cannot be used (newer schema than this version of carrot-ai knows, corrupt file, ...)."""


def fts5_available() -> bool:
    """Whether this Python's SQLite has the FTS5 full-text extension."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE VIRTUAL TABLE probe USING fts5(text)")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


def _create_private(path: str) -> None:
    """Create a new database file readable by its owner only: records hold prompts and responses.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's permissions.
    """
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # an existing database keeps the permissions its owner gave it


class TraceStore:
    """Trace records in one SQLite file. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], *, full_text: bool | None = None) -> None:
        """Open (creating or migrating) the database at ``path``.

        ``full_text=None`` uses SQLite FTS5 for ``q`` when available and falls back to ``LIKE``;
        ``False`` forces the ``LIKE`` fallback.
        """
        self.path = os.fspath(path)
        _create_private(self.path)
        self._write_lock = threading.Lock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = self._connect()
        self._migrate()
        self.full_text = fts5_available() if full_text is None else full_text
        if self.full_text:
            self._ensure_fts()

    # --- connections and schema ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a power loss may lose the last transactions, never corrupt the file.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=30000")
        self._all.append(connection)
        return connection

    def _migrate(self) -> None:
        with self._write_lock:
            version = int(self._writer.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}; this carrot-ai knows up to {SCHEMA_VERSION}. "
                    "Upgrade carrot-ai or use another --db file."
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    for statement in MIGRATIONS[number - 1]:
                        self._writer.execute(statement)
                    self._writer.execute(f"PRAGMA user_version={number}")
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
                self._writer.execute("COMMIT")

    def _ensure_fts(self) -> None:
        """Create the full-text index (contentless: it holds only the index) and fill it from existing records."""
        with self._write_lock:
            exists = self._writer.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='record_text'"
            ).fetchone()
            if exists:
                return
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                self._writer.execute("CREATE VIRTUAL TABLE record_text USING fts5(body, content='')")
                for seq, text in self._writer.execute("SELECT seq, record FROM records").fetchall():
                    record = json.loads(text)
                    self._writer.execute(
                        "INSERT INTO record_text(rowid, body) VALUES (?, ?)", (seq, searchable_text(record))
                    )
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            connection = self._readers.get_nowait()
        except queue.Empty:
            with self._write_lock:
                connection = self._connect()
        try:
            yield connection
        finally:
            self._readers.put(connection)

    def close(self) -> None:
        """Close every connection (checkpointing the WAL into the main file)."""
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            for connection in self._all:
                connection.close()
            self._all.clear()

    def schema_version(self) -> int:
        """The database's schema version (``PRAGMA user_version``)."""
        with self._reader() as connection:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])

    # --- writing -------------------------------------------------------------------------------------------------

    def insert(self, records: Sequence[dict[str, Any]]) -> tuple[int, int]:
        """Store valid records in one transaction; return ``(inserted, duplicates)``.

        A record whose ``id`` is already stored is a duplicate and changes nothing (the first delivery wins).
        """
        received_us = time.time_ns() // 1000
        stored = [_storable(record) for record in records]
        rows = [_row(record, text, received_us) for record, text in stored]
        inserted = 0
        with self._write_lock:
            writer = self._writer
            writer.execute("BEGIN IMMEDIATE")
            try:
                for (record, _), row in zip(stored, rows, strict=True):
                    cursor = writer.execute(_INSERT, row)
                    if cursor.rowcount != 1:
                        continue
                    inserted += 1
                    seq = cursor.lastrowid
                    tags = record.get("tags") or ()
                    if tags:
                        writer.executemany(
                            "INSERT OR IGNORE INTO record_tags(tag, seq) VALUES (?, ?)", [(t, seq) for t in tags]
                        )
                    if self.full_text:
                        writer.execute(
                            "INSERT INTO record_text(rowid, body) VALUES (?, ?)", (seq, searchable_text(record))
                        )
            except BaseException:
                writer.execute("ROLLBACK")
                raise
            writer.execute("COMMIT")
        return inserted, len(records) - inserted

    # --- reading -------------------------------------------------------------------------------------------------

    def count(self) -> int:
        """How many records are stored."""
        with self._reader() as connection:
            return int(connection.execute("SELECT count(*) FROM records").fetchone()[0])

    def search(self, query: SearchQuery) -> tuple[list[str], str | None]:
        """Return the matching records (JSON text, one per record) and the cursor of the next page, if any.

        ``order="started"``: newest first by ``started_at``; ``next_cursor`` is None on the last page.
        ``order="received"``: oldest first by arrival; ``next_cursor`` is always set (to resume polling from).
        """
        if query.order == "received" and query.cursor == LATEST_POSITION:
            return [], encode_cursor("received", (self.last_seq(),))
        where, params = self._where(query)
        if query.order == "received":
            if query.cursor is not None:
                where.append("r.seq > ?")
                params.append(query.cursor[0])
            order_by = "r.seq ASC"
        else:
            if query.cursor is not None:
                where.append("(r.started_us < ? OR (r.started_us = ? AND r.seq < ?))")
                started, seq = query.cursor
                params.extend((started, started, seq))
            order_by = "r.started_us DESC, r.seq DESC"
        sql = (
            "SELECT r.record, r.started_us, r.seq FROM records r"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {order_by} LIMIT ?"
        )
        params.append(query.limit + 1)
        with self._reader() as connection:
            rows = connection.execute(sql, params).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        if query.order == "received":
            last = rows[-1][2] if rows else (query.cursor[0] if query.cursor else self.last_seq())
            return [row[0] for row in rows], encode_cursor("received", (last,))
        next_cursor = encode_cursor("started", (rows[-1][1], rows[-1][2])) if more and rows else None
        return [row[0] for row in rows], next_cursor

    def last_seq(self) -> int:
        """The arrival number of the newest record (0 when empty): a position for ``order="received"``."""
        with self._reader() as connection:
            value = connection.execute("SELECT max(seq) FROM records").fetchone()[0]
        return int(value or 0)

    def stats(self, query: SearchQuery, buckets: int = 60) -> dict[str, Any]:
        """Cost, latency, count and errors of the matching records over time, in ``buckets`` equal intervals."""
        where, params = self._where(query)
        clause = " WHERE " + " AND ".join(where) if where else ""
        with self._reader() as connection:
            low, high, total = connection.execute(
                f"SELECT min(r.started_us), max(r.started_us), count(*) FROM records r{clause}", params
            ).fetchone()
            if not total:
                return {"bucket_seconds": 0, "total": 0, "buckets": []}
            start = query.since_us if query.since_us is not None else low
            end = query.until_us if query.until_us is not None else high + 1
            width = max((end - start + buckets - 1) // buckets, 1_000_000)
            rows = connection.execute(
                "SELECT (r.started_us - ?) / ? AS b, count(*), sum(r.status = 'error'), total(r.cost_usd), "
                "avg(r.latency_ms), max(r.latency_ms), total(r.total_tokens) "
                f"FROM records r{clause} GROUP BY b ORDER BY b",
                [start, width, *params],
            ).fetchall()
        return {
            "bucket_seconds": width / 1_000_000,
            "total": total,
            "buckets": [
                {
                    "start_us": start + b * width,
                    "count": count,
                    "errors": errors,
                    "cost_usd": cost,
                    "avg_latency_ms": avg_latency,
                    "max_latency_ms": max_latency,
                    "total_tokens": int(tokens),
                }
                for b, count, errors, cost, avg_latency, max_latency, tokens in rows
            ],
        }

    def _where(self, query: SearchQuery) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for column in _COLUMN_FILTERS:
            value = getattr(query, column)
            if value is not None:
                where.append(f"r.{column} = ?")
                params.append(value)
        for tag in query.tags:
            where.append("EXISTS (SELECT 1 FROM record_tags t WHERE t.tag = ? AND t.seq = r.seq)")
            params.append(tag)
        if query.since_us is not None:
            where.append("r.started_us >= ?")
            params.append(query.since_us)
        if query.until_us is not None:
            where.append("r.started_us < ?")
            params.append(query.until_us)
        if query.root:
            where.append("r.parent_id IS NULL")
        q = (query.q or "").replace("\x00", " ")  # a word separator: SQLite would end the text at a NUL
        if q.strip():
            if self.full_text:
                where.append("r.seq IN (SELECT rowid FROM record_text WHERE record_text MATCH ?)")
                params.append(fts_query(q))
            else:
                for word in q.split():
                    pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                    where.append(
                        "(json_extract(r.record, '$.input') LIKE ? ESCAPE '\\' "
                        "OR json_extract(r.record, '$.output') LIKE ? ESCAPE '\\')"
                    )
                    params.extend((pattern, pattern))
        return where, params

    def get(self, record_id: str) -> dict[str, Any] | None:
        """One record by id, or None."""
        with self._reader() as connection:
            row = connection.execute("SELECT record FROM records WHERE id = ?", (record_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def tree(self, record_id: str) -> dict[str, Any] | None:
        """The whole tree around a record: its root ancestor and every descendant, or None if it is unknown.

        The root is the highest ancestor received so far; when that one names a parent not received (yet),
        ``parent_missing`` gives the parent's id.
        """
        with self._reader() as connection:
            found = connection.execute("SELECT 1 FROM records WHERE id = ?", (record_id,)).fetchone()
            if not found:
                return None
            root_id, root_parent = connection.execute(
                """WITH RECURSIVE up(id, parent_id, depth) AS (
                       SELECT id, parent_id, 0 FROM records WHERE id = ?
                       UNION
                       SELECT r.id, r.parent_id, up.depth + 1 FROM records r JOIN up ON r.id = up.parent_id
                       WHERE up.depth < ?
                   ) SELECT id, parent_id FROM up ORDER BY depth DESC LIMIT 1""",
                (record_id, MAX_TREE_DEPTH),
            ).fetchone()
            rows = connection.execute(
                """WITH RECURSIVE down(id, depth) AS (
                       SELECT ?, 0
                       UNION
                       SELECT r.id, down.depth + 1 FROM records r JOIN down ON r.parent_id = down.id
                       WHERE down.depth < ?
                   ) SELECT r.record FROM records r JOIN down ON r.id = down.id
                   ORDER BY r.started_us, r.seq LIMIT ?""",
                (root_id, MAX_TREE_DEPTH, MAX_TREE_RECORDS),
            ).fetchall()
        nodes: dict[str, dict[str, Any]] = {}
        for (text,) in rows:
            node = json.loads(text)
            node["children"] = []
            nodes.setdefault(node["id"], node)
        for node in nodes.values():
            parent = nodes.get(node["metadata"].get("parent_trace_id", ""))
            if parent is not None and node["id"] != root_id:
                parent["children"].append(node)
        totals = {"cost_usd": 0.0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "errors": 0}
        for node in nodes.values():
            metadata = node["metadata"]
            for key in ("cost_usd", "input_tokens", "output_tokens", "total_tokens"):
                value = metadata.get(key)
                if isinstance(value, int | float):
                    totals[key] += value
            totals["errors"] += node["status"] == "error"
        return {
            "id": record_id,
            "root_id": root_id,
            "parent_missing": root_parent,
            "record_count": len(nodes),
            "truncated": len(rows) >= MAX_TREE_RECORDS,
            "totals": totals,
            "tree": nodes[root_id],
        }


_INSERT = (
    "INSERT INTO records (id, trace_id, parent_id, name, kind, status, model, provider, user_id, session_id, "
    "started_us, ended_us, latency_ms, cost_usd, input_tokens, output_tokens, total_tokens, received_us, record) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING"
)


def _storable(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Return the record and its JSON text as stored.

    A lone surrogate (JSON's ``"\\ud800"``, which UTF-8 cannot hold) becomes ``?``, as the exporter does when it sends.
    """
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
        return json.loads(text), text
    return record, text


def _row(record: dict[str, Any], record_json: str, received_us: int) -> tuple[Any, ...]:
    metadata = record.get("metadata") or {}

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return value if isinstance(value, str) else None

    def number(key: str) -> float | None:
        value = metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            # Beyond SQLite's integers: a float (the column's order kept), or nothing past a float's range. The
            # record's JSON keeps the exact value either way.
            try:
                return float(value)
            except OverflowError:
                return None
        return value

    return (
        record["id"],
        text("trace_id"),
        text("parent_trace_id"),
        record["name"],
        text("type"),
        record["status"],
        text("model"),
        text("provider"),
        text("user_id"),
        text("session_id"),
        parse_timestamp_us(record["started_at"]),
        parse_timestamp_us(record["ended_at"]),
        number("latency_ms"),
        number("cost_usd"),
        number("input_tokens"),
        number("output_tokens"),
        number("total_tokens"),
        received_us,
        record_json,
    )


def searchable_text(record: dict[str, Any]) -> str:
    """The words of a record's input and output: every string and number in them, not the JSON keys."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(str(value))

    walk(record.get("input"))
    walk(record.get("output"))
    return "\n".join(parts)


def fts_query(text: str) -> str:
    """A user's search words as an FTS5 query: every word must occur, as a word or a word's beginning.

    Each word is quoted, so none is taken as an FTS operator.
    """
    words = [word.replace('"', '""') for word in text.split()]
    return " ".join(f'"{word}"*' for word in words if word)
