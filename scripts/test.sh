#!/usr/bin/env bash
# Set up and run the whole test suite (the README's test command; CI runs exactly this), in
# VI_SWEEPS_TEST_WORKERS processes (default 3; each test file runs whole in one of them, so its
# module fixtures are built once). Three on two cores: a worker mostly waits on Ray, processes and
# polls (tests/test_sequential_sweep.py and tests/test_reuse.py: 42 s of CPU in 104 s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${VI_SWEEPS_TEST_WORKERS:-3}" --dist loadfile --durations=30 "$@"
