#!/usr/bin/env bash
# The test suite on the oldest Python the package supports (3.10) and the newest on this machine (3.13), beside the
# main run on python3 (3.11 here). Generators, `with` errors and the packages pip resolves differ between them
# (genai-prices 0.2 needs 3.11). Each version gets its own .venv-pyX.Y, created on first use; both run at once (one
# core each). A version with no interpreter here is skipped, saying so. Interpreters: `pythonX.Y` on PATH, else
# pyenv's installed versions. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS=${CARROT_OTHER_PYTHONS:-"3.10 3.13"}

find_python() {
  local version=$1 candidate
  if candidate=$(command -v "python$version" 2>/dev/null) && "$candidate" -c "" >/dev/null 2>&1; then
    echo "$candidate"
    return
  fi
  local root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for candidate in "$root"/versions/"$version".*/bin/python"$version"; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return
    fi
  done
}

run_one() {
  local version=$1 python=$2 venv=".venv-py$1"
  shift 2
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
}

pids=()
names=()
for version in $VERSIONS; do
  python=$(find_python "$version")
  if [ -z "$python" ]; then
    echo "== pytest on Python $version: skipped (no python$version on this machine)"
    continue
  fi
  log=$(mktemp)
  run_one "$version" "$python" "$@" >"$log" 2>&1 &
  pids+=("$!")
  names+=("$version $log")
done

status=0
for i in "${!pids[@]}"; do
  read -r version log <<<"${names[$i]}"
  if wait "${pids[$i]}"; then result="passed" lines=2; else result="FAILED" lines=60 status=1; fi
  echo "== pytest on Python $version: $result"
  grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n "$lines" || true
  rm -f "$log"
done
exit $status
