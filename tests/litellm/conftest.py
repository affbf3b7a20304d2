from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

# LiteLLM fetches its model price map from the network on import unless told to use the bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import carrot_ai
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer

# Recognisable provider credentials: the secrets tests check they never reach a record or a log line.
OPENAI_KEY = "sk-litellm-CANARY-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-litellm-CANARY-0123456789"
OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-opus-4-5"


@pytest.fixture
def oai(fake_openai: FakeOpenAI) -> FakeOpenAI:
    return fake_openai


@pytest.fixture
def ant(fake_anthropic: FakeAnthropic) -> FakeAnthropic:
    return fake_anthropic


def via_openai(oai: FakeOpenAI) -> dict[str, Any]:
    return {"api_base": oai.base_url + "/v1", "api_key": OPENAI_KEY}


def via_anthropic(ant: FakeAnthropic) -> dict[str, Any]:
    return {"api_base": ant.base_url, "api_key": ANTHROPIC_KEY}


@pytest.fixture(params=["instrumentor", "patch_litellm"])
def way(request: pytest.FixtureRequest, carrot: IngestServer) -> Iterator[str]:
    """Both ways in: the OpenTelemetry instrumentor, and ``carrot_ai.patch_litellm()``."""
    from carrot_ai.instrumentation.litellm import LiteLLMInstrumentor
    from carrot_ai.instrumentation.litellm._patch import unpatch

    if request.param == "instrumentor":
        inst = LiteLLMInstrumentor()
        inst.instrument()
        yield request.param
        inst.uninstrument()
    else:
        carrot_ai.patch_litellm()
        yield request.param
        unpatch()


def records(ingest: IngestServer, count: int) -> list[dict[str, Any]]:
    """Flush, wait for ``count`` records, and check that no more than that arrive."""
    assert carrot_ai.flush(5)
    got = ingest.wait_for(count)
    gc.collect()
    time.sleep(0.1)
    assert carrot_ai.flush(5)
    assert len(ingest.records) == count, [r["name"] for r in ingest.records]
    return got


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
