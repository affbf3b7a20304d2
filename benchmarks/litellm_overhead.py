"""App-thread overhead of carrot-ai on ``litellm.completion``, over the unpatched function.

LiteLLM runs in its own environment (``.ci/litellm_env.sh`` creates ``.venv-litellm``), so run this one there:
``.venv-litellm/bin/python benchmarks/litellm_overhead.py`` (``--quick`` for a smoke run). In an environment without
litellm it says so and exits 0. LiteLLM routes ``openai/gpt-4o-mini`` to an OpenAI client whose HTTP transport is
in-process (no network); content capture is on and carrot exports to a local sink in another process. Measured as
in ``openai_overhead.py`` (thread CPU per call, median of interleaved rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from _harness import sink_process
from openai_overhead import COMPLETION, measure, report

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network: LiteLLM's bundled price map

try:
    import httpx
    import litellm
    import openai
except ImportError:
    litellm = None

import carrot_ai

# The provider's own host (the in-process transport answers; nothing leaves the process): a call to another host
# is priced by that host's provider, or not at all, and the export worker's figures should include the price.
BASE_URL = "https://api.openai.com/v1"
MODEL = "openai/gpt-4o-mini"


def make_client() -> Any:
    body = json.dumps(COMPLETION).encode()

    def handler(request: Any) -> Any:
        return httpx.Response(200, headers={"content-type": "application/json", "x-request-id": "req_b"}, content=body)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return openai.OpenAI(api_key="sk-bench", base_url=BASE_URL, http_client=http, max_retries=0)


def completion_call(function: Callable[..., Any], client: Any) -> Callable[[], Any]:
    messages = [{"role": "user", "content": "Hello!"}]

    def call() -> Any:
        return function(model=MODEL, messages=messages, client=client)

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke run for CI")
    parser.add_argument("--rounds", type=int, default=201)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    if litellm is None:
        print("litellm is not installed here: run `.venv-litellm/bin/python benchmarks/litellm_overhead.py`")
        return 0
    rounds, calls = (3, 10) if args.quick else (args.rounds, args.calls)
    with sink_process() as url:
        carrot_ai.init(api_key="ck-bench", base_url=url)
        bare = litellm.completion
        carrot_ai.patch_litellm()
        client = make_client()
        from importlib.metadata import version

        print(f"litellm {version('litellm')}, openai {openai.__version__}")
        print(f"{rounds} rounds x {calls} calls, content capture on")
        samples = measure(
            {"bare": completion_call(bare, client), "carrot": completion_call(litellm.completion, client)},
            rounds,
            calls,
        )
        result = report("litellm.completion (non-streaming, routed to openai)", samples, "bare")
        print(f"\nsummary: completion overhead {result['carrot']:.1f} us")
        carrot_ai.flush()
        stats = carrot_ai.stats()
        print(f"exporter: delivered {stats['delivered']}, dropped {stats['dropped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
