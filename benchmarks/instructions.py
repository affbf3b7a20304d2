"""Instructions carrot adds per call on the calling thread, counted by valgrind: a figure that does not move with the
machine's load.

The timed benchmarks (``openai_overhead.py``, ``anthropic_overhead.py``) measure what the targets are about, the
calling thread's CPU time, but on a shared machine their figures move by ±40 µs between runs of the same code, more
than most changes a pass makes. This counts instead: each configuration runs under ``valgrind --tool=callgrind``
(threads counted apart: the export worker's work is not the calling thread's) with the hash seed fixed and address
randomization off; instrumentation is switched on (``callgrind_control``) for the ``N`` counted calls only, after a
warm-up, and the main thread's count divided by ``N`` is its instructions per call; carrot's figure minus the bare
client's is what carrot adds. The same code gives the same count within ~0.1 % (0.5 % for the Anthropic stream),
on a quiet or a busy machine. A change to the code, though, also moves where objects land in memory, and with it
the collisions in CPython's type attribute cache (indexed by the attribute name's address and the type's version
tag): that alone moved an OpenAI stream's count by ~70 k instructions (benchmarks/README.md, tenth pass). Read a
difference of less than that per stream with the function-level profile (``callgrind_annotate``) beside it.

The garbage collector is off during the counted calls (a collection of the whole process landing in one run and
not in the other would swamp the difference): what records kept alive cost the collector is in
``diagnose_retention.py``'s figures, not here. Nor does it see how fast those instructions run: carrot's run once
per call between the SDK's thousands, cold, at about a third of the SDK's pace (benchmarks/README.md, seventh pass),
and the cost of the export worker running beside the calling thread is in no instruction of the calling thread. A
change that removes instructions helps; one that moves none may still help or hurt, which only the timed benchmarks
tell.

Records are queued as in production; the warm-up's are delivered to a local sink in another process (not under
valgrind) before the counted calls, whose own stay queued (the child exits without flushing): see ``child``.

Run: ``python benchmarks/instructions.py`` (all scenarios; ``--scenario openai-stream`` for one; ``--calls N``;
``--quick``: the smoke run CI makes, a few calls of one scenario; ``--cache``: callgrind's cache simulation too, L1
and a 1 MiB last level standing for this machine's per-core L2, and the misses carrot adds per call: how much of
carrot's time is cache misses rather than instructions, which the instruction count alone cannot tell).
Needs valgrind (on every machine kind here); takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = {  # name: (module, call maker, warm-up calls, timed calls N)
    "openai-create": ("openai_overhead", "create_call", 150, 100),
    "openai-stream": ("openai_overhead", "stream_call", 40, 20),
    "anthropic-create": ("anthropic_overhead", "create_call", 150, 100),
    "anthropic-stream": ("anthropic_overhead", "stream_call", 40, 20),
}


def child(scenario: str, mode: str, warm: int, calls: int) -> None:
    """Under valgrind: warm up, then ``calls`` calls; the counts are read from callgrind's output."""
    import gc
    import importlib

    sys.path.insert(0, HERE)
    module_name, maker, _, _ = SCENARIOS[scenario]
    bench = importlib.import_module(module_name)
    from _harness import sink_process

    import carrot_ai

    with sink_process() as url:
        client = bench.make_client()
        if mode == "carrot":
            # The export worker sleeps through the counted calls (it wakes on flush() only): when it runs beside them,
            # what it frees changes the allocator's work on the calling thread, by ~100 k instructions a stream from
            # one run to the next. Its effect on the calling thread is the timed benchmarks' to measure.
            carrot_ai.init(api_key="ck-bench", base_url=url, batch_size=10**6, flush_interval=1e6)
            client = carrot_ai.wrap(client)
        call = getattr(bench, maker)(client)
        for _ in range(warm):
            call()
        if mode == "carrot":
            carrot_ai.flush(120)  # the worker started and loaded genai-prices before the counted calls
        gc.collect()
        gc.disable()  # a collection landing in the counted calls or not would swamp the figure
        _handshake("ready")  # the parent switches valgrind's instrumentation on
        for _ in range(calls):
            call()
        _handshake("done")  # ... and off
    os._exit(0)  # no exit-time flush: its work is not per call


def _handshake(word: str) -> None:
    """Tell the parent where the child is, and wait for its answer."""
    sys.stdout.write(word + "\n")
    sys.stdout.flush()
    sys.stdin.readline()


# With --cache: callgrind's cache simulation, a last level of 1 MiB standing for this machine's per-core L2 (what the
# SDK's own work between carrot's steps evicts carrot's code and data from; the L3 behind it is shared and large).
CACHE_OPTIONS = ["--cache-sim=yes", "--LL=1048576,16,64"]
# The events reported with --cache, each the sum of callgrind's events named: (label, events).
CACHE_EVENTS = (
    ("I1 misses", ("I1mr",)),
    ("D1 misses", ("D1mr", "D1mw")),
    ("L2 misses", ("ILmr", "DLmr", "DLmw")),
)


def main_thread_counts(path_prefix: str) -> dict[str, int]:
    """The events callgrind counted on the main thread (its ``-01`` file): ``Ir`` (instructions), and with the cache
    simulation its misses."""
    events: list[str] = ["Ir"]
    with open(f"{path_prefix}-01") as handle:
        for line in handle:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:"):  # ("summary:" is 0 when instrumentation starts off)
                return dict(zip(events, map(int, line.split()[1:]), strict=False))
    raise RuntimeError(f"no totals in {path_prefix}-01")


def count(scenario: str, mode: str, warm: int, calls: int, workdir: str, cache: bool = False) -> dict[str, float]:
    """The main thread's events per call over ``calls`` calls, counted with instrumentation on for them only."""
    out = os.path.join(workdir, f"cg.{scenario}.{mode}")
    command = [
        "valgrind",
        "--tool=callgrind",
        *(CACHE_OPTIONS if cache else []),
        "--separate-threads=yes",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        scenario,
        mode,
        str(warm),
        str(calls),
    ]
    if shutil.which("setarch"):
        command = ["setarch", os.uname().machine, "-R", *command]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    child = subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        for word, switch in (("ready", "on"), ("done", "off")):
            line = child.stdout.readline().strip()
            if line != word:
                raise RuntimeError(f"{scenario} {mode}: expected {word!r} from the child, got {line!r}")
            subprocess.run(["callgrind_control", "-i", switch, str(child.pid)], capture_output=True, check=True)
            child.stdin.write("go\n")
            child.stdin.flush()
        if child.wait(600) != 0:
            raise RuntimeError(f"{scenario} {mode}: valgrind exited {child.returncode}")
    finally:
        if child.poll() is None:
            child.kill()
    return {event: value / calls for event, value in main_thread_counts(out).items()}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append", help="(repeatable) default: all")
    parser.add_argument("--calls", type=int, default=None, help="timed calls N (default per scenario)")
    parser.add_argument("--quick", action="store_true", help="a smoke run for CI: OpenAI create, a few calls")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="simulate the caches too (L1 and a 1 MiB L2): the misses carrot adds per call (several times slower)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (with callgrind_control) is not installed: nothing to count")
        return 0 if args.quick else 1
    scenarios = args.scenario or list(SCENARIOS)
    if args.quick:
        scenarios, args.calls = ["openai-create"], 3
    print("instructions per call on the calling thread (callgrind; PYTHONHASHSEED=0, no address randomization)")
    with tempfile.TemporaryDirectory(prefix="carrot-instructions-") as workdir:
        for scenario in scenarios:
            _, _, warm, default_calls = SCENARIOS[scenario]
            warm = 20 if args.quick else warm
            n = args.calls or default_calls
            per_call = {mode: count(scenario, mode, warm, n, workdir, args.cache) for mode in ("bare", "carrot")}
            bare, traced = per_call["bare"], per_call["carrot"]
            added = traced["Ir"] - bare["Ir"]
            print(
                f"  {scenario:<17} bare {bare['Ir']:>12,.0f}   carrot {traced['Ir']:>12,.0f}   "
                f"added {added:>+10,.0f} ({added / bare['Ir']:+.2%})",
                flush=True,
            )
            if args.cache:
                for label, events in CACHE_EVENTS:
                    was = sum(bare.get(event, 0) for event in events)
                    now = sum(traced.get(event, 0) for event in events)
                    print(
                        f"  {'':<17} {label:<10} bare {was:>10,.0f}   carrot {now:>10,.0f}   added {now - was:>+9,.0f}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
