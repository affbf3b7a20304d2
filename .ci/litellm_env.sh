#!/usr/bin/env bash
# The LiteLLM tests, in their own environment: litellm pins its own dependencies (a certifi newer than some
# indexes serve, openai 2.x), so it never shares the main .venv. Creates .venv-litellm on first use, then runs
# `pytest -m litellm tests/litellm`, and the OpenAI adapter's tests on openai 2.x. Extra arguments go to the
# LiteLLM pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv-litellm
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e . \
  "litellm==1.105.0" "openai>=2,<3" "anthropic>=0.43" "genai-prices>=0.1.13" "opentelemetry-instrumentation>=0.51b0" \
  "pytest>=8" "pytest-timeout>=2.3" "pyyaml>=6" "jsonschema>=4.20" "dirty-equals>=0.8" "pydantic>=2"
echo "== pytest (litellm env: litellm $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))'), openai $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("openai"))'))"
# The OpenAI adapter's own suite on this environment's openai 2.x (the main environment has openai 3.x).
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/openai
echo "== benchmarks/litellm_overhead.py --quick (litellm env)"
"$VENV/bin/python" benchmarks/litellm_overhead.py --quick
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m litellm tests/litellm "$@"
