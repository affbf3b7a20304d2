"""Zero-code LiteLLM: ``opentelemetry-instrument python app.py``, no carrot_ai import in the app.

This environment has ``opentelemetry-instrumentation`` but not ``opentelemetry-distro`` (what
``pip install "carrot-ai[auto,litellm]"`` gives): carrot's distro builds the SDK itself.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.ingest_server import IngestServer

pytest.importorskip("litellm", reason="litellm runs in its own environment: .ci/litellm_env.sh")
pytestmark = pytest.mark.litellm

APP = """
import os
import litellm

base = os.environ["FAKE_OPENAI_URL"] + "/v1"
litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "zero code"}], api_base=base,
                   api_key="sk-zero-code")
for chunk in litellm.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "streamed"}],
                                api_base=base, api_key="sk-zero-code", stream=True):
    pass
print("app done")
"""


@pytest.mark.parametrize("otel", [{}, {"OTEL_TRACES_EXPORTER": "otlp,carrot"}])
def test_opentelemetry_instrument_records_litellm_calls(
    tmp_path: Path, oai: FakeOpenAI, ingest: IngestServer, otel: dict[str, str]
) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARROT_", "OTEL_"))}
    env.update(
        FAKE_OPENAI_URL=oai.base_url,
        CARROT_API_KEY="ck-test-key",
        CARROT_BASE_URL=ingest.base_url,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        **otel,
    )
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    result = subprocess.run(
        [str(instrument), sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout
    assert "Traceback" not in result.stderr
    got = ingest.wait_for(2)
    time.sleep(0.2)
    assert len(ingest.records) == 2
    assert {r["metadata"]["source"] for r in got} == {"litellm"}
    assert {r["output"]["message"]["content"] for r in got} == {"Echo: zero code", "Echo: streamed"}
    if importlib.util.find_spec("opentelemetry.distro") is None:
        assert "carrot_ai" not in result.stderr or "otlp" in otel.get("OTEL_TRACES_EXPORTER", "")
