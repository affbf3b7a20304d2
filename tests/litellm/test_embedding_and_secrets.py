"""litellm.embedding / aembedding, and the credentials LiteLLM takes as arguments never reaching a record."""

from __future__ import annotations

import asyncio
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer
from tests.litellm.conftest import ANTHROPIC_MODEL, OPENAI_KEY, OPENAI_MODEL, records, user, via_openai

litellm = pytest.importorskip("litellm", reason="litellm runs in its own environment: .ci/litellm_env.sh")
pytestmark = pytest.mark.litellm

EMBEDDING_MODEL = "openai/text-embedding-3-small"


def test_embedding_records_usage_not_vectors(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    response = litellm.embedding(model=EMBEDDING_MODEL, input=["a b c", "d e"], **via_openai(oai))
    assert len(response.data) == 2
    [record] = records(carrot, 1)
    assert record["name"] == "litellm.embedding"
    assert record["input"] == {"model": EMBEDDING_MODEL, "input": ["a b c", "d e"]}
    assert record["output"] == {"embeddings": 2, "embeddings_count": 2, "dimensions": 1536}
    assert record["metadata"]["operation"] == "embeddings"
    assert record["metadata"]["provider"] == "openai"
    assert record["metadata"]["model"] == "text-embedding-3-small"
    assert record["metadata"]["input_tokens"] == 5
    assert record["metadata"]["cost_usd"] > 0


def test_embedding_output_has_the_reference_sdks_embeddings_count(
    way: str, oai: FakeOpenAI, carrot: IngestServer
) -> None:
    """carrot-ai 0.2.1 recorded ``output: {"embeddings_count": N}``; its readers still find it."""
    asyncio.run(litellm.aembedding(model=EMBEDDING_MODEL, input=["one", "two", "three"], **via_openai(oai)))
    [record] = records(carrot, 1)
    assert record["output"]["embeddings_count"] == 3
    assert record["output"]["embeddings"] == 3


def test_aembedding_is_one_record(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    asyncio.run(litellm.aembedding(model=EMBEDDING_MODEL, input="x y", **via_openai(oai)))
    [record] = records(carrot, 1)
    assert record["name"] == "litellm.aembedding"
    assert record["metadata"]["input_tokens"] == 2


SECRETS = {
    "azure_ad_token": "CANARY-azure-ad-token",
    "aws_secret_access_key": "CANARY-aws-secret",
    "aws_session_token": "CANARY-aws-session",
    "vertex_credentials": "CANARY-vertex-credentials",
}


def test_secret_arguments_are_never_recorded(
    way: str,
    oai: FakeOpenAI,
    carrot: IngestServer,
    tracer_provider: TracerProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spans = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    caplog.set_level(logging.DEBUG, logger="carrot_ai")  # LiteLLM's own debug log is LiteLLM's business
    litellm.completion(
        model=OPENAI_MODEL,
        messages=user("keep my secrets"),
        extra_headers={"X-Custom-Auth": "CANARY-extra-header"},
        **via_openai(oai),
        **SECRETS,
    )
    [record] = records(carrot, 1)
    assert record["input"] == {"model": OPENAI_MODEL, "messages": user("keep my secrets")}
    canaries = [OPENAI_KEY, "CANARY-extra-header", *SECRETS.values()]
    sent = b"".join(request.body for request in carrot.requests)
    attributes = repr([dict(span.attributes or {}) for span in spans.get_finished_spans()])
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("carrot_ai"))
    for canary in canaries:
        assert canary.encode() not in sent
        assert canary not in attributes
        assert canary not in ours


def test_metadata_only_header_and_context_keep_no_content(way: str, oai: FakeOpenAI, carrot: IngestServer) -> None:
    import carrot_ai

    litellm.completion(
        model=OPENAI_MODEL,
        messages=user("private by header"),
        extra_headers={"X-Carrot-Trace": "metadata-only", "X-Other": "kept"},
        **via_openai(oai),
    )
    assert "x-carrot-trace" not in oai.last_request.headers  # never sent on
    assert oai.last_request.headers["x-other"] == "kept"
    with carrot_ai.context(metadata_only=True):
        list(litellm.completion(model=OPENAI_MODEL, messages=user("private stream"), stream=True, **via_openai(oai)))
    for record in records(carrot, 2):
        assert record["input"] == {"model": OPENAI_MODEL}
        assert record["output"] == {}
        assert record["metadata"]["content_captured"] is False
        assert record["metadata"]["provider"] == "openai"


def test_the_keys_of_fallback_models_are_never_recorded(
    way: str, oai: FakeOpenAI, ant: FakeAnthropic, carrot: IngestServer
) -> None:
    """``completion(fallbacks=[{"model": ..., "api_key": ...}])`` carries other deployments' credentials."""
    fallback = {"model": ANTHROPIC_MODEL, "max_tokens": 40, "api_base": ant.base_url, "api_key": "CANARY-fallback-key"}
    litellm.completion(model=OPENAI_MODEL, messages=user("with fallbacks"), fallbacks=[fallback], **via_openai(oai))
    [record] = records(carrot, 1)
    assert record["input"]["fallbacks"] == [{k: v for k, v in fallback.items() if k != "api_key"}]
    assert b"CANARY-fallback-key" not in b"".join(request.body for request in carrot.requests)
    assert fallback["api_key"] == "CANARY-fallback-key"  # the caller's own dict is left as it was
