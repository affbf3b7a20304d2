"""Helpers shared by the export reliability tests."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

import carrot_ai
from carrot_ai._setup import current_exporter

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def shutdown_after() -> Iterator[None]:
    """Every test that calls :func:`start` ends with ``carrot_ai.shutdown()`` (import this into the module)."""
    yield
    carrot_ai.shutdown()


def start(base_url: str, provider: TracerProvider, **options: Any) -> None:
    """``carrot_ai.init()`` against ``base_url`` on the test's provider, flushing every 50 ms."""
    options.setdefault("api_key", "ck-test-key")
    options.setdefault("flush_interval", 0.05)
    carrot_ai.init(base_url=base_url, tracer_provider=provider, **options)


def final_stats() -> dict[str, int]:
    """Shut carrot down and return the final counters of the exporter it ran."""
    exporter = current_exporter()
    carrot_ai.shutdown()
    return dict(exporter.snapshot())


def call_traced(count: int, payload: str = "", name: str = "work", random_bytes: int = 0) -> None:
    """Make ``count`` records: calls of a function traced as ``name`` with ``payload`` as its argument.

    ``random_bytes``: append that many random bytes (hex) to each call's payload, so records do not compress.
    """

    @carrot_ai.trace(name)
    def work(index: int, payload: str) -> int:
        return index

    for index in range(count):
        text = payload + os.urandom(random_bytes).hex() if random_bytes else payload
        assert work(index, text) == index


def encodings(secret: str) -> list[str]:
    """``secret`` as it could leak: raw, URL-encoded, and base64 (standard and URL-safe) at every alignment."""
    found = {secret, quote(secret, safe=""), quote_plus(secret)}
    raw = secret.encode()
    for prefix in (b"", b"x", b"xx"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(prefix + raw).decode().rstrip("=")
            # Drop the characters that mix the prefix in, and the last (possibly partial) group.
            skip = {0: 0, 1: 2, 2: 3}[len(prefix)]
            core = encoded[skip : len(encoded) - 4]
            if len(core) >= 8:
                found.add(core)
    return sorted(found)


def run_python(code: str, env: dict[str, str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with ``env`` added to a clean CARROT_* environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CARROT_", "OTEL_"))}
    full_env.update(env)
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def json_attribute(span: ReadableSpan, name: str) -> Any:
    """A span attribute holding JSON (``gen_ai.input.messages`` ...), decoded."""
    return json.loads((span.attributes or {})[name])  # type: ignore[arg-type]
