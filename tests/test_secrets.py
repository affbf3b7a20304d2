"""Secrets never leak: the Carrot API key appears only in our own Authorization header; decorator arguments named
like secrets are redacted; credentials in the base URL are never logged. Canary values are searched for, raw and
base64 / URL-encoded, in every body the ingest server received, every captured log line, stderr and every repr.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

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

    login(
        user="ada",
        **canaries,
        cookie="canary-cookie-Zq81xw",
        x_api_key="canary-x-Zq81xw",
        cookies={"sessionid": "canary-cookies-Zq81xw"},  # (requests' and httpx's argument)
        note="visible",
    )
    assert carrot_ai.flush(5)
    [record] = carrot.wait_for(1)
    assert record["input"] == {
        "user": "ada",
        **dict.fromkeys(canaries, "[REDACTED]"),
        "cookie": "[REDACTED]",
        "x_api_key": "[REDACTED]",
        "cookies": "[REDACTED]",
        "note": "visible",
    }
    for value in [*canaries.values(), "canary-cookie-Zq81xw", "canary-x-Zq81xw", "canary-cookies-Zq81xw"]:
        assert_absent(value, {"request": everything_sent(carrot)})


SECRET_HEADERS = {
    "Authorization": "Bearer sk-proj-canary-HEADER",
    "Proxy-Authorization": "Basic canary-PROXY",
    "x-api-key": "sk-ant-canary-XAPI",
    "api-key": "canary-AZURE",
    "Cookie": "session=canary-COOKIE",
}


def test_secret_named_keys_nested_in_traced_inputs_and_outputs_are_redacted(carrot: IngestServer) -> None:
    @dataclasses.dataclass
    class Settings:
        openai_api_key: str
        model: str

    @carrot_ai.trace("fetch")
    def fetch(url: str, headers: dict[str, str], config: dict[str, Any], settings: Settings) -> dict[str, Any]:
        return {"status": 200, "request": {"headers": headers}, "items": [{"token": "canary-OUT", "id": 7}]}

    headers = {**SECRET_HEADERS, "Accept": "application/json"}
    config = {"openai_api_key": "sk-proj-canary-CFG", "nested": [{"password": "canary-PW", "user": "ann"}]}
    fetch("https://api.example.com/v1", headers, config, Settings("sk-proj-canary-DC", "gpt-4o"))
    assert carrot_ai.flush(5)
    [record] = carrot.wait_for(1)
    masked_headers = {**dict.fromkeys(SECRET_HEADERS, "[REDACTED]"), "Accept": "application/json"}
    assert record["input"] == {
        "url": "https://api.example.com/v1",
        "headers": masked_headers,
        "config": {"openai_api_key": "[REDACTED]", "nested": [{"password": "[REDACTED]", "user": "ann"}]},
        "settings": {"openai_api_key": "[REDACTED]", "model": "gpt-4o"},
    }
    assert record["output"] == {
        "status": 200,
        "request": {"headers": masked_headers},
        "items": [{"token": "[REDACTED]", "id": 7}],
    }
    assert headers["Authorization"] == "Bearer sk-proj-canary-HEADER"  # the caller's data is never changed
    for value in [*SECRET_HEADERS.values(), "sk-proj-canary-CFG", "canary-PW", "sk-proj-canary-DC", "canary-OUT"]:
        assert_absent(value, {"request": everything_sent(carrot)})


class _Delegating:
    """A config object reading attributes from a dict (a common pattern): any unknown attribute raises KeyError."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return self._values[name]

    def __repr__(self) -> str:
        return "Delegating(...)"


class _BrokenItems(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("items() fails")


def test_a_value_that_fails_to_convert_is_its_repr_and_the_rest_is_still_masked(carrot: IngestServer) -> None:
    # One such value anywhere made the whole input one repr string, where no secret-named key could be masked.
    @carrot_ai.trace("call")
    def call(headers: dict[str, str], config: Any, extra: Any) -> dict[str, Any]:
        return {"headers": headers, "config": config}

    deep: Any = {"password": "canary-DEEP"}
    for _ in range(40):
        deep = {"k": deep}
    headers = {"Authorization": "Bearer canary-A", "Accept": "*/*"}
    call(headers, _Delegating({}), [_BrokenItems(a=1), deep, dataclasses.field])
    assert carrot_ai.flush(5)
    [record] = carrot.wait_for(1)
    assert record["input"]["headers"] == {"Authorization": "[REDACTED]", "Accept": "*/*"}
    assert record["input"]["config"] == "Delegating(...)"
    masked = {"Authorization": "[REDACTED]", "Accept": "*/*"}
    assert record["output"] == {"headers": masked, "config": "Delegating(...)"}
    for value in ["canary-A", "canary-DEEP"]:  # (nor deeper than the converter goes: no repr of what it cuts)
        assert_absent(value, {"request": everything_sent(carrot)})


def test_secret_named_keys_in_tool_results_generator_items_and_manual_tool_events_are_redacted(
    carrot: IngestServer,
) -> None:
    @carrot_ai.tool(name="call_api")
    def call_api(request: dict[str, Any]) -> list[dict[str, str]]:
        return [{"set-cookie": "canary-SETCOOKIE", "body": "ok"}]

    @carrot_ai.trace("pages")
    def pages() -> Any:
        yield {"page": 1, "auth": {"access_token": "canary-GEN"}}

    call_api({"headers": {"Authorization": "Bearer canary-TOOL"}, "path": "/x"})
    list(pages())
    carrot_ai.capture_tool_call(
        {
            "start_time_ms": 1_700_000_000_000,
            "end_time_ms": 1_700_000_000_050,
            "status": {"state": "ok"},
            "properties": {
                "tool": {"name": "http", "input": {"headers": {"X-Api-Key": "canary-MANUAL"}}, "output": "done"}
            },
        }
    )
    assert carrot_ai.flush(5)
    records = carrot.wait_for(3)
    by_name = {r["name"]: r for r in records}
    assert by_name["call_api"]["input"] == {"request": {"headers": {"Authorization": "[REDACTED]"}, "path": "/x"}}
    assert by_name["call_api"]["output"] == {"result": [{"set-cookie": "[REDACTED]", "body": "ok"}]}
    assert by_name["pages"]["output"] == {"result": [{"page": 1, "auth": "[REDACTED]"}]}
    assert by_name["http"]["input"] == {"headers": {"X-Api-Key": "[REDACTED]"}}
    for value in ("canary-SETCOOKIE", "canary-GEN", "canary-TOOL", "canary-MANUAL"):
        assert_absent(value, {"request": everything_sent(carrot)})


def test_secret_named_keys_in_user_metadata_are_redacted(carrot: IngestServer) -> None:
    @carrot_ai.trace("handler", metadata={"service": "api", "db_password": "canary-DECORATOR"})
    def handler() -> str:
        return "ok"

    request = {"path": "/chat", "headers": {"Authorization": "Bearer canary-HEADER", "Cookie": "canary-COOKIE"}}
    with carrot_ai.context(metadata={"request": request, "openaiApiKey": "canary-CONTEXT", "max_tokens": 7}):
        handler()
        carrot_ai.capture_llm_call(
            {
                "start_time_ms": 1_700_000_000_000,
                "end_time_ms": 1_700_000_000_050,
                "status": {"state": "ok"},
                "additional_properties": {"client": {"api_key": "canary-MANUAL"}},
                "properties": {"llm": {"model": "gpt-4o"}},
            }
        )
    submitted = {"name": "submitted", "input": {}, "output": {}, "status": "success"}
    carrot_ai.get_client().submit({**submitted, "metadata": {"headers": {"X-Api-Key": "canary-SUBMIT"}}})
    assert carrot_ai.flush(5)
    records = {r["name"]: r for r in carrot.wait_for(3)}
    assert records["submitted"]["metadata"]["headers"] == {"X-Api-Key": "[REDACTED]"}
    masked = {"path": "/chat", "headers": {"Authorization": "[REDACTED]", "Cookie": "[REDACTED]"}}
    assert records["handler"]["metadata"]["request"] == masked
    assert records["handler"]["metadata"]["openaiApiKey"] == "[REDACTED]"
    assert records["handler"]["metadata"]["db_password"] == "[REDACTED]"
    assert records["handler"]["metadata"]["service"] == "api"
    assert records["handler"]["metadata"]["max_tokens"] == 7
    assert records["chat gpt-4o"]["metadata"]["client"] == {"api_key": "[REDACTED]"}
    assert_absent("canary", {"the request bodies": everything_sent(carrot)})


def test_llm_message_content_is_not_redacted_by_key_name() -> None:
    from carrot_ai._core import _content

    message = {"role": "user", "content": "my token is in the next message", "name": "password"}
    assert _content.prepare({"messages": [message], "token": "kept"}) == {"messages": [message], "token": "kept"}


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


@pytest.mark.parametrize(
    "name",
    [
        "password", "passwd", "secret", "token", "api_key", "apikey", "API-KEY", "authorization", "auth", "cookie",
        "credential", "credentials", "private_key", "Proxy-Authorization", "x-api-key", "Set-Cookie", "db_password",
        "openai_api_key", "X-Auth-Token", "client_secret", "api_\u212aey",
        "accessToken", "refreshToken", "clientSecret", "openaiApiKey", "apiKey", "dbPassword", "privateKey",
        "aws_secret_access_key", "aws_access_key_id", "access_key", "secret_key", "awsSecretAccessKey",
        "signing_key", "encryption_key", "account_key", "AZURE_STORAGE_ACCOUNT_KEY", "master_key", "pwd", "db_pwd",
        "session_token", "aws_session_token", "cookies", "Cookies", "passphrase", "ssh_passphrase",
        "subscription_key", "Ocp-Apim-Subscription-Key",
    ],
)  # fmt: skip
def test_every_secret_name_is_seen_by_the_fast_path_hint(name: str) -> None:
    from carrot_ai._core._secret_keys import is_secret_key, is_secret_name, may_name_secret
    from carrot_ai._core._serialize import fast_encode

    assert is_secret_name(name)
    assert is_secret_key(name)
    assert may_name_secret(fast_encode({name: 1}))


def test_ordinary_keys_are_not_secret_names() -> None:
    from carrot_ai._core._secret_keys import is_secret_key

    for name in (
        "question", "top_k", "max_tokens", "maxTokens", "tokens", "author", "authorId", "oauth", "keyboard",
        "cache_key", "cacheKey", "HTTPStatus", "primary_key", "sort_key", "partition_key", "key", "key_id",
        "access_key_count", "keywords", 3, None,
    ):  # fmt: skip
        assert not is_secret_key(name), name


def test_secret_named_fields_of_a_namedtuple_are_redacted_in_its_list(carrot: IngestServer) -> None:
    """A namedtuple is recorded as a list of its values (as JSON writes a tuple); a field named like a secret (a
    database URL's ``password``, reached through an engine object recorded by its attributes) is masked there."""
    import collections

    DSN = collections.namedtuple("DSN", ["user", "password", "host"])

    class Engine:
        def __init__(self) -> None:
            self.url = DSN("app", "canary-DB-PW-91x", "db.internal")
            self.echo = False

    @carrot_ai.trace
    def query(engine: Engine, dsn: DSN) -> str:
        return "ok"

    query(Engine(), DSN("ro", "canary-DB-PW-92y", "replica.internal"))
    assert carrot_ai.flush(5)
    [record] = carrot.wait_for(1)
    assert record["input"] == {
        "engine": {"url": ["app", "[REDACTED]", "db.internal"], "echo": False},
        "dsn": ["ro", "[REDACTED]", "replica.internal"],
    }
    for value in ("canary-DB-PW-91x", "canary-DB-PW-92y"):
        assert_absent(value, {"request": everything_sent(carrot)})
