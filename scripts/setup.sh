#!/usr/bin/env bash
# Create .venv with the pinned CPU stack and vi-sweeps installed (editable). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# --no-compile: Python compiles what it imports on first use (and caches it); compiling every module of
# torch, Ray and the rest at install took 55 of the 80 s of a fresh set-up here
.venv/bin/python -m pip install -q --no-compile -r requirements/ci.txt
# torch-fidelity's Inception for FID: without its torchvision dependency, which does not import
# beside the CPU torch (vi_sweeps.metrics loads the Inception module on its own).
.venv/bin/python -m pip install -q --no-compile --no-deps -r requirements/fid.txt
.venv/bin/python -m pip install -q -e .
