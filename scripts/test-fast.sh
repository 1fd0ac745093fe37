#!/usr/bin/env bash
# Set up and run the fast tier: every test not marked `slow` (none starts Ray, trains fully or runs
# a command as a process of its own), in VI_SWEEPS_TEST_WORKERS processes (default 2), one test
# file per process. scripts/test.sh runs everything (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${VI_SWEEPS_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --durations=15 \
    -m "not slow" "$@"
