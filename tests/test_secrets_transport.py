"""The connection itself: TLS verified by default (a custom CA bundle supported), redirects never followed,
HTTPS_PROXY / HTTP_PROXY / NO_PROXY honoured. Certificates are made for the test with the ``openssl`` command."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

import carrot_ai
from tests.export_helpers import call_traced, shutdown_after, start  # noqa: F401
from tests.ingest_server import Fault, IngestServer, TLSFiles, make_certificates

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test CA")
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_ingest(certificates: TLSFiles) -> Iterator[IngestServer]:
    with IngestServer(tls=certificates) as server:
        yield server


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return monkeypatch


def test_tls_certificate_is_verified_by_default(
    tls_ingest: IngestServer,
    tracer_provider: TracerProvider,
    no_proxy_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="carrot_ai")
    start(tls_ingest.base_url, tracer_provider)
    call_traced(4)
    assert carrot_ai.flush(5) is False
    stats = carrot_ai.stats()
    assert (stats["network"], stats["retries"]) == (4, 0)  # a certificate that does not verify is not retried
    assert tls_ingest.records == []
    [message] = [r.getMessage() for r in caplog.records if r.name == "carrot_ai"]
    assert "TLS certificate" in message
    assert "did not verify" in message
    assert "CARROT_CA_BUNDLE" in message


def test_custom_ca_bundle_is_trusted(
    tls_ingest: IngestServer, tracer_provider: TracerProvider, certificates: TLSFiles, no_proxy_env: pytest.MonkeyPatch
) -> None:
    start(tls_ingest.base_url, tracer_provider, ca_bundle=str(certificates.ca))
    call_traced(3)
    assert carrot_ai.flush(5)
    assert len(tls_ingest.wait_for(3)) == 3


def test_ca_bundle_is_read_from_the_environment(
    tls_ingest: IngestServer, tracer_provider: TracerProvider, certificates: TLSFiles, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("CARROT_CA_BUNDLE", str(certificates.ca))
    start(tls_ingest.base_url, tracer_provider)
    call_traced(2)
    assert carrot_ai.flush(5)
    assert len(tls_ingest.wait_for(2)) == 2


def test_ca_bundle_does_not_trust_anyone_else(
    tls_ingest: IngestServer, tracer_provider: TracerProvider, tmp_path: Path, no_proxy_env: pytest.MonkeyPatch
) -> None:
    other = make_certificates(tmp_path / "other")
    start(tls_ingest.base_url, tracer_provider, ca_bundle=str(other.ca))
    call_traced(1)
    assert carrot_ai.flush(5) is False
    assert carrot_ai.stats()["network"] == 1


def test_redirect_is_not_followed_and_is_explained_once(
    ingest: IngestServer,
    tracer_provider: TracerProvider,
    no_proxy_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="carrot_ai")
    with IngestServer() as elsewhere:
        ingest.fault = Fault.redirect(elsewhere.base_url + "/v1/traces/ingest", status=308)
        start(ingest.base_url, tracer_provider, batch_size=1)
        call_traced(3)
        assert carrot_ai.flush(5) is False
        assert elsewhere.requests == []
    assert carrot_ai.stats()["rejected"] == 3
    [message] = [r.getMessage() for r in caplog.records if r.name == "carrot_ai"]
    assert f"redirect (HTTP 308 to {elsewhere.base_url}/v1/traces/ingest)" in message
    assert "redirects are not followed" in message


def test_https_proxy_is_honoured(
    tls_ingest: IngestServer, tracer_provider: TracerProvider, no_proxy_env: pytest.MonkeyPatch
) -> None:
    with IngestServer() as proxy:
        no_proxy_env.setenv("HTTPS_PROXY", proxy.base_url)
        start(tls_ingest.base_url, tracer_provider, export_deadline=0.2)
        call_traced(1)
        assert carrot_ai.flush(5) is False  # this proxy refuses to tunnel
    assert proxy.requests[0].method == "CONNECT"
    assert proxy.requests[0].target == f"127.0.0.1:{tls_ingest.port}"
    assert tls_ingest.requests == []


def test_http_proxy_is_honoured(tracer_provider: TracerProvider, no_proxy_env: pytest.MonkeyPatch) -> None:
    with IngestServer() as proxy:  # it also accepts the records it is asked to forward
        no_proxy_env.setenv("HTTP_PROXY", proxy.base_url)
        start("http://carrot-ingest.invalid", tracer_provider)
        call_traced(2)
        assert carrot_ai.flush(5)
    assert len(proxy.records) == 2
    assert proxy.requests[0].target == "http://carrot-ingest.invalid/v1/traces/ingest"


def test_no_proxy_bypasses_the_proxy(
    ingest: IngestServer, tracer_provider: TracerProvider, no_proxy_env: pytest.MonkeyPatch
) -> None:
    with IngestServer() as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.base_url)
        no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        start(ingest.base_url, tracer_provider)
        call_traced(2)
        assert carrot_ai.flush(5)
        assert proxy.requests == []
    assert len(ingest.records) == 2
