#!/usr/bin/env bash
# Create .venv with the pinned CPU stack and vi-sweeps installed (editable). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements/ci.txt
# torch-fidelity's Inception for FID: without its torchvision dependency, which does not import
# beside the CPU torch (vi_sweeps.metrics.evaluators loads the Inception module on its own).
.venv/bin/python -m pip install -q --no-deps -r requirements/fid.txt
.venv/bin/python -m pip install -q -e .
