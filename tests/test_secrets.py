"""Secrets never leak: the Carrot API key appears only in our own Authorization header; decorator arguments named
like secrets are redacted; credentials in the base URL are never logged. Canary values are searched for, raw and
base64 / URL-encoded, in every body the ingest server received, every captured log line, stderr and every repr.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from carrot_ai import _setup
from tests.export_helpers import encodings, shutdown_after, start  # noqa: F401
from tests.ingest_server import Fault, IngestServer

CARROT_KEY = "ck-canary-7Hq2x9Lp4Zt8Wv3N"


def assert_absent(secret: str, places: dict[str, Iterable[str | bytes]]) -> None:
    for form in encodings(secret):
        for where, texts in places.items():
            for text in texts:
                haystack = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
                assert form not in haystack, f"{secret!r} leaked (as {form!r}) into {where}: {haystack[:300]!r}"


def everything_sent(ingest: IngestServer, *, except_header: str = "authorization") -> list[str | bytes]:
    texts: list[str | bytes] = []
    for request in ingest.requests:
        texts += [request.raw, request.body, request.target]
        texts += [f"{k}: {v}" for k, v in request.headers.items() if k != except_header]
    return texts


def reprs() -> list[str]:
    state = _setup._state
    assert state is not None
    exporter = state.exporter
    return [repr(exporter), repr(exporter.settings), repr(exporter._transport), repr(state.processor)]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, ours and the HTTP client's included."""
    caplog.set_level(logging.DEBUG)
    return caplog


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]


def test_carrot_api_key_appears_only_in_our_authorization_header(
    tracer_provider: TracerProvider,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARROT_STRICT")  # a failing redactor is part of the scenario

    def redactor_that_quotes_its_input(text: str) -> str:
        if "explode" in text:
            raise ValueError(f"cannot redact {text}")
        return text

    with IngestServer(api_key=CARROT_KEY) as ingest:
        ingest.script(Fault.answer(503), Fault.answer(401), Fault.answer(500))
        start(
            ingest.base_url, tracer_provider, api_key=CARROT_KEY, redact=True, redact_fn=redactor_that_quotes_its_input
        )

        @carrot_ai.trace
        def configure(settings: dict[str, str]) -> str:
            return f"configured with {settings['carrot']}"

        @carrot_ai.trace
        def fail(note: str) -> None:
            raise RuntimeError(f"bad key {CARROT_KEY}")

        for _ in range(3):  # the first batches meet the scripted failures
            configure({"carrot": CARROT_KEY})
            carrot_ai.flush(5)
        with pytest.raises(RuntimeError):
            fail(f"explode {CARROT_KEY}")
        assert carrot_ai.flush(5)
        seen = reprs() + [str(carrot_ai.stats())]
        carrot_ai.shutdown()

    # The key did go out, in the one place it belongs.
    assert {r.headers["authorization"] for r in ingest.requests} == {f"Bearer {CARROT_KEY}"}
    assert ingest.records, "nothing was delivered: the test would prove nothing"
    assert any("[REDACTED]" in str(r["input"]) for r in ingest.records)
    out, err = capfd.readouterr()
    assert_absent(
        CARROT_KEY,
        {"request": everything_sent(ingest), "log": log_lines(debug_logs), "stderr": [err, out], "repr": seen},
    )


def test_decorator_arguments_named_like_secrets_are_redacted(carrot: IngestServer) -> None:
    canaries = {name: f"canary-{name}-Zq81xw" for name in ("password", "token", "api_key", "secret", "authorization")}

    @carrot_ai.trace
    def login(user: str, password: str, token: str, api_key: str, secret: str, authorization: str, **extra: str) -> str:
        return "ok"

    login(user="ada", **canaries, cookie="canary-cookie-Zq81xw", x_api_key="canary-x-Zq81xw", note="visible")
    assert carrot_ai.flush(5)
    [record] = carrot.wait_for(1)
    assert record["input"] == {
        "user": "ada",
        **dict.fromkeys(canaries, "[REDACTED]"),
        "cookie": "[REDACTED]",
        "x_api_key": "[REDACTED]",
        "note": "visible",
    }
    for value in [*canaries.values(), "canary-cookie-Zq81xw", "canary-x-Zq81xw"]:
        assert_absent(value, {"request": everything_sent(carrot)})


def test_credentials_in_the_base_url_are_never_logged(
    ingest: IngestServer,
    tracer_provider: TracerProvider,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    password, query_key = "urlpass-canary-Qm4r8", "querykey-canary-Vb7n2"
    host = ingest.base_url.removeprefix("http://")
    ingest.script(Fault.answer(500), Fault.answer(401), Fault.redirect("http://elsewhere/"))
    start(f"http://carrot:{password}@{host}/?key={query_key}", tracer_provider, batch_size=1)
    for _ in range(4):
        carrot_ai.trace("step")(lambda: None)()
        carrot_ai.flush(5)
    seen = reprs()
    ingest.fault = Fault.hang()
    carrot_ai.trace("lost at shutdown")(lambda: None)()
    carrot_ai.shutdown()
    assert ingest.by_name("step")  # delivered through the URL with its query
    assert ingest.requests[-1].target == f"/v1/traces/ingest?key={query_key}"
    out, err = capfd.readouterr()
    assert "not delivered to http://***@" in err
    places = {"log": log_lines(debug_logs), "stderr": [err, out], "repr": seen}
    assert any("HTTP Request: POST" in line for line in places["log"])  # the HTTP client's own lines were captured
    assert_absent(password, places)
    assert_absent(query_key, places)
    assert_absent(password, {"request": everything_sent(ingest, except_header="")})


def test_base_url_credentials_are_sent_as_basic_auth_when_there_is_no_api_key(
    tracer_provider: TracerProvider,
) -> None:
    with IngestServer(api_key=None) as ingest:
        host = ingest.base_url.removeprefix("http://")
        start(f"http://gateway:s3cret-pass@{host}", tracer_provider, api_key=None)
        carrot_ai.trace("step")(lambda: None)()
        assert carrot_ai.flush(5)
        carrot_ai.shutdown()
    [request] = ingest.requests
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"gateway:s3cret-pass").decode()
    assert "s3cret-pass" not in request.target


def test_settings_repr_masks_the_key_and_url_credentials() -> None:
    from carrot_ai._config import resolve_settings

    settings = resolve_settings(api_key=CARROT_KEY, base_url="https://u:p4ssw0rd-x@ingest.example/?token=t0ken-y")
    text = repr(settings)
    assert "api_key='***'" in text
    assert "base_url='https://***@ingest.example/?token=***'" in text
    for secret in (CARROT_KEY, "p4ssw0rd-x", "t0ken-y"):
        assert secret not in text
