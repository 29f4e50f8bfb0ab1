#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the formatter check, linter, type checker and the whole
# test suite, real deployments included. Extra arguments go to pytest, e.g.
#   scripts/test.sh -m unit        only the fast unit tests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
source scripts/env.sh

PY_SOURCES=(components workloads scripts stacks tests)
[ -f fabfile.py ] && PY_SOURCES+=(fabfile.py)
echo "==> ruff format --check" && ruff format --check "${PY_SOURCES[@]}"
echo "==> ruff check" && ruff check "${PY_SOURCES[@]}"
echo "==> mypy" && mypy "${PY_SOURCES[@]}"
echo "==> pytest"
exec python -m pytest "$@"
