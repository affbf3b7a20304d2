"""The local server (``carrot-ai serve``): ingest, SQLite storage, search API and trace viewer.

Needs the ``server`` extra (``pip install 'carrot-ai[server]'``) for JSON Schema validation and OTLP protobuf.

>>> from carrot_ai.server import TraceServer, TraceStore
>>> with TraceServer(TraceStore("traces.db")) as server:
...     print(server.url)   # export with CARROT_BASE_URL=server.url
"""

from __future__ import annotations

from carrot_ai.server._http import TraceServer
from carrot_ai.server._query import QueryError, SearchQuery
from carrot_ai.server._render import render_tree
from carrot_ai.server._standin import StandInModel
from carrot_ai.server._store import TraceStore

__all__ = [
    "QueryError",
    "SearchQuery",
    "StandInModel",
    "TraceServer",
    "TraceStore",
    "render_tree",
]
