#!/usr/bin/env bash
# Create .venv with the pinned CPU stack and vi-sweeps installed (editable). Idempotent, and
# quick when nothing changed: a stamp of the requirements and pyproject.toml skips the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(cat requirements/ci.txt requirements/fid.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ "$(cat .venv/.vi-sweeps-setup 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements/ci.txt
# torch-fidelity's Inception for FID: without its torchvision dependency, which does not import
# beside the CPU torch (vi_sweeps.metrics loads the Inception module on its own).
.venv/bin/python -m pip install -q --no-deps -r requirements/fid.txt
# the editable install's build prints setuptools' banner: kept in a log, shown only on failure
if ! .venv/bin/python -m pip install -q -e . > .venv/editable-install.log 2>&1; then
    cat .venv/editable-install.log >&2
    exit 1
fi
echo "$stamp" > .venv/.vi-sweeps-setup
