#!/usr/bin/env bash
# Set up and run the main job: the quickstart study on an embedded local Ray, on the CPU,
# ending with a report in results/quickstart/report/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/vi-sweep run studies/quickstart.yaml --results results/quickstart "$@"
