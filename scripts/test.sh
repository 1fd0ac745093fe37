#!/usr/bin/env bash
# Set up and run the whole test suite (the README's test command; CI runs exactly this), in
# VI_SWEEPS_TEST_WORKERS processes (default 2; each test file runs whole in one of them, so its
# module fixtures are built once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${VI_SWEEPS_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --durations=30 "$@"
