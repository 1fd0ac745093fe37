#!/usr/bin/env bash
# The reproduction (docs/reproduction/README.md): every study of the verdicts, one after the
# other, each resumable (a re-run starts only unfinished trials), each exported to
# docs/reproduction/NAME/ (tables, contract, the snapshots its report draws) with its report,
# and the verdicts (docs/reproduction/CLAIMS.md) decided again from what is there.
# Hours on a laptop: run it in the background and re-run it after an interruption:
#   nohup bash scripts/reproduce.sh > results/reproduce.log 2>&1 &
# A study name as argument runs only those: bash scripts/reproduce.sh ali_losses
set -uo pipefail
cd "$(dirname "$0")/.."
studies=("$@")
[ ${#studies[@]} -gt 0 ] || studies=(bn_ablation ali_losses pacgan_baseline aae_ablation bn_ablation_digits stabilisers stabilisers_digits bn_long)
for name in "${studies[@]}"; do
  echo "== $name: $(date -u +%FT%TZ)"
  .venv/bin/vi-sweep run "studies/$name.yaml" --results "results/$name" --no-report
  code=$?
  if [ "$code" -ne 0 ]; then
    echo "== $name: exit $code; stopping here (re-run this script to resume)"
    exit "$code"
  fi
  # the new export is built beside the committed one and takes its place only when whole
  new="docs/reproduction/.$name.new"
  rm -rf "$new"
  .venv/bin/vi-sweep export "results/$name" --to "$new" &&
    .venv/bin/vi-sweep report "$new" --out "$new/report" --link-figures || { echo "== $name: export failed"; exit 1; }
  rm -rf "docs/reproduction/$name" && mv "$new" "docs/reproduction/$name"
  .venv/bin/python -m analysis claims docs/reproduction || exit 1
  echo "== $name: done $(date -u +%FT%TZ)"
done
