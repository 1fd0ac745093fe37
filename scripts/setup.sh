#!/usr/bin/env bash
# Create .venv with the pinned CPU stack and vi-sweeps installed (editable). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements/ci.txt
.venv/bin/python -m pip install -q -e .
