"""carrot-ai next to other tracing SDKs, in one run: app-thread overhead per call over the bare client.

The targets of issue 9 were set against figures measured on another day ("the reference SDK adds ~90 µs per chat
call, the official OTel instrumentation ~200, ..."), and this machine's absolute figures move by 30-50 % from day to
day (benchmarks/README.md). This benchmark measures the contenders back to back, with the same method as
``openai_overhead.py`` / ``anthropic_overhead.py`` (the same in-process fake provider, content capture on, export
to a local sink in another process, median over interleaved rounds of the calling thread's CPU time), so their
ratios can be compared with the issue's, whatever today's speed.

Each contender runs in a fresh interpreter (tracing set-ups are process-wide and cannot be undone):

  openai     carrot         ``carrot_ai.init()`` + ``wrap(OpenAI())`` (this checkout)
             reference      carrot-ai 0.2.1, ``init()`` + ``wrap()`` (needs its own venv: ``--setup-reference``)
             otel-genai     ``opentelemetry-instrumentation-genai-openai`` (the official one), content in spans
             openllmetry    ``opentelemetry-instrumentation-openai`` (Traceloop)
             openinference  ``openinference-instrumentation-openai`` (Arize)
  anthropic  carrot, reference as above
             native         anthropic's own spans (``ANTHROPIC_OPEN_TELEMETRY``), what a peer that leaves them in
                            place pays before adding its own

The OpenTelemetry contenders use the stock pipeline their users run: an SDK ``TracerProvider`` with a
``BatchSpanProcessor`` and the OTLP/HTTP exporter, sending to the same sink. A class-patching instrumentor is
switched off for the bare blocks and on for the traced ones, outside the timed blocks, by putting back the class
attributes its ``instrument()`` replaced (``uninstrument()`` cycles leave some of them slower each time); the
``wrap()`` contenders time a bare and a wrapped client.

Run: ``python benchmarks/peers.py`` (``--quick`` for a smoke run; ``--only openai:carrot anthropic:native`` to pick).
The reference SDK is also called ``carrot_ai``, so it lives in ``.venv-reference`` (``--setup-reference`` makes it:
``pip install carrot-ai==0.2.1 openai anthropic``); without it, the reference is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REFERENCE_VENV = os.path.join(ROOT, ".venv-reference")
REFERENCE_PACKAGES = ["carrot-ai==0.2.1", "openai", "anthropic"]
CONTENDERS = {
    "openai": ["carrot", "reference", "otel-genai", "openllmetry", "openinference"],
    "anthropic": ["carrot", "reference", "native"],
}
OTEL_INSTRUMENTORS = {
    "otel-genai": "opentelemetry.instrumentation.genai.openai",
    "openllmetry": "opentelemetry.instrumentation.openai",
    "openinference": "openinference.instrumentation.openai",
}
_ABSENT = object()
# What the issue measured on its day (µs per call over the bare client), for the ratio column.
ISSUE_FIGURES = {
    "openai:reference": 90,
    "openai:otel-genai": 200,
    "openai:openllmetry": 480,
    "openai:openinference": 350,
}


# --- the child: one contender, one interpreter ----------------------------------------------------------------------


def _otel_provider(port: int) -> Any:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")))
    trace.set_tracer_provider(provider)
    return provider


def _class_attributes(package: str) -> dict[tuple[type, str], Any]:
    """Every attribute of every class defined in ``package``'s loaded modules: compared before and after an
    instrumentor's ``instrument()``, what it patched. Switching those attributes between their two values turns it
    off and on without ``uninstrument()``/``instrument()`` cycles (which some instrumentors do not undo fully)."""
    found = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == package or module_name.startswith(package + ".")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__.startswith(package):
                for name, attribute in list(vars(value).items()):
                    found[value, name] = attribute
    return found


def child(provider_name: str, contender: str, port: int, rounds: int, calls: int) -> dict[str, Any]:
    sys.path.insert(0, HERE)
    base_url = f"http://127.0.0.1:{port}"
    if provider_name == "openai":
        import openai_overhead as bench
    else:
        import anthropic_overhead as bench  # type: ignore[no-redef]
    bare_client = bench.make_client(open_telemetry=False) if provider_name == "anthropic" else bench.make_client()
    switch = None
    flush: Callable[[], Any]
    if contender in ("carrot", "reference"):
        import carrot_ai

        carrot_ai.init(api_key="ck-bench", base_url=base_url)
        traced_client = carrot_ai.wrap(bench.make_client())
        flush = carrot_ai.flush
    elif contender == "native":
        provider = _otel_provider(port)
        traced_client = bench.make_client()
        flush = provider.force_flush
    else:
        import importlib

        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
        os.environ.setdefault("TRACELOOP_TRACE_CONTENT", "true")
        provider = _otel_provider(port)
        instrumentor = importlib.import_module(OTEL_INSTRUMENTORS[contender]).OpenAIInstrumentor()
        traced_client = bare_client
        flush = provider.force_flush
        bench.create_call(bare_client)()  # loads the modules a call goes through
        before = _class_attributes("openai")
        classes = {cls for cls, _ in before}
        instrumentor.instrument(tracer_provider=provider)
        patches = [  # (pydantic fills in dunder attributes lazily; classes the instrumentor loaded are not patched)
            (cls, name, before.get((cls, name), _ABSENT), value)
            for (cls, name), value in _class_attributes("openai").items()
            if cls in classes and before.get((cls, name), _ABSENT) is not value and not name.startswith("__")
        ]
        assert patches, f"{contender} patched nothing"

        def switch(on: bool) -> None:
            for cls, name, original, patched in patches:
                if on:
                    setattr(cls, name, patched)
                elif original is _ABSENT:
                    if name in vars(cls):
                        delattr(cls, name)
                else:
                    setattr(cls, name, original)

    from _harness import interleaved

    measured = interleaved(
        bench.create_call(bare_client), bench.create_call(traced_client), n=calls, rounds=rounds, switch=switch
    )
    result = {
        "bare_us": measured["bare_us"],
        "traced_us": measured["traced_us"],
        "overhead_us": measured["cpu_overhead_us"],
    }
    flush()
    if contender == "carrot":
        stats = carrot_ai.stats()
        checked = f"{stats.get('delivered')} delivered, {stats.get('dropped')} dropped"
    elif contender == "reference":
        checked = "(no counts in 0.2.1)"
    else:
        checked = _one_call_checked(provider, bench.create_call(traced_client), switch)
    return {"call": f"{provider_name}:{contender}", **result, "checked": checked}


def _one_call_checked(provider: Any, call: Callable[[], Any], switch: Callable[[bool], None] | None) -> str:
    """After the timed rounds: one more traced call, its spans collected in memory, to show what the contender made
    (spans, and whether the prompt's content is in them: content capture on, as for carrot)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if switch is not None:
        switch(True)
    call()
    spans = exporter.get_finished_spans()
    seen = " ".join(
        str(dict(span.attributes or {})) + str([dict(e.attributes or {}) for e in span.events]) for span in spans
    )
    return f"{len(spans)} span(s) a call, content {'in them' if 'Hello!' in seen else 'NOT in them'}"


# --- the parent: every contender in turn ----------------------------------------------------------------------------


def _reference_python() -> str | None:
    python = os.path.join(REFERENCE_VENV, "bin", "python")
    return python if os.path.exists(python) else None


def setup_reference() -> None:
    subprocess.run([sys.executable, "-m", "venv", REFERENCE_VENV], check=True)
    subprocess.run(
        [os.path.join(REFERENCE_VENV, "bin", "python"), "-m", "pip", "install", "-q", *REFERENCE_PACKAGES], check=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke run for CI")
    parser.add_argument("--rounds", type=int, default=201)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="provider:contender names (default: all)")
    parser.add_argument("--setup-reference", action="store_true", help=f"make {REFERENCE_VENV} first")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rounds, calls = (3, 10) if args.quick else (args.rounds, args.calls)
    if args.child:
        provider_name, contender = args.child.split(":")
        print(json.dumps(child(provider_name, contender, args.port, rounds, calls)), flush=True)
        return 0
    if args.setup_reference:
        setup_reference()

    sys.path.insert(0, HERE)
    from _harness import sink_process

    names = [f"{p}:{c}" for p, cs in CONTENDERS.items() for c in cs]
    if args.only:
        names = [n for n in names if n in args.only]
    failed = []
    with sink_process() as url:
        port = int(url.rsplit(":", 1)[1])
        print(
            f"{rounds} rounds x {calls} calls per contender, content capture on; overhead = traced - bare, thread CPU"
        )
        print(f"{'call':<26} {'bare µs':>9} {'traced µs':>10} {'overhead µs':>12} {'issue said':>11}  recorded")
        for name in names:
            python = sys.executable
            if name.endswith(":reference"):
                python = _reference_python()  # type: ignore[assignment]
                if python is None:
                    print(f"{name:<26} skipped: no {REFERENCE_VENV} (run with --setup-reference)")
                    continue
            command = [python, __file__, "--child", name, "--port", str(port), "--rounds", str(rounds)]
            command += ["--calls", str(calls)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode != 0 or not lines:
                failed.append(name)
                print(f"{name:<26} failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
                continue
            result = json.loads(lines[-1])
            said = ISSUE_FIGURES.get(name)
            print(
                f"{name:<26} {result['bare_us']:>9.1f} {result['traced_us']:>10.1f} {result['overhead_us']:>+12.1f}"
                f" {('~' + str(said)) if said else '':>11}  {result['checked']}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
