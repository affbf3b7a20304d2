"""Run every benchmark in this folder: ``python benchmarks/run_all.py`` (``--quick`` for CI's smoke run).

Each benchmark is a script with a ``--quick`` mode; this runs them one after another in fresh interpreters (so
one's tracer setup cannot affect another's) and fails if any of them fails. Benchmarks report figures; they
assert nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("only", nargs="*", help="run only these scripts (file names)")
    args = parser.parse_args()
    scripts = sorted(
        name for name in os.listdir(HERE) if name.endswith(".py") and not name.startswith(("_", "run_all"))
    )
    if args.only:
        scripts = [s for s in scripts if s in args.only or s.removesuffix(".py") in args.only]
    failed = []
    for script in scripts:
        print(f"== {script}", flush=True)
        start = time.monotonic()
        command = [sys.executable, os.path.join(HERE, script)] + (["--quick"] if args.quick else [])
        result = subprocess.run(command, cwd=os.path.dirname(HERE))
        print(f"   ({time.monotonic() - start:.1f} s, exit {result.returncode})", flush=True)
        if result.returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
