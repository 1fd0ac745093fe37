#!/usr/bin/env bash
# The compiled step against eager for every built-in loss and architecture alone (about five
# minutes on a 2-core machine; tests/test_compiled_matrix.py), then the CI suite's compiled tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VI_SWEEPS_COMPILE_MATRIX=1 exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_compiled_matrix.py tests/test_compiled.py "$@"
