#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine, with Ray's token authentication:
#   bash cluster/local.sh start [WORKERS]   # a head (1 CPU) and WORKERS worker nodes (1 CPU each)
#   RAY_AUTH_MODE=token vi-sweep run studies/quickstart.yaml --address 127.0.0.1:6379
#   bash cluster/local.sh stop
# The token is generated once into ~/.ray/auth_token; every node and driver on a real cluster
# needs the same token (copy the file, or set RAY_AUTH_TOKEN).
set -euo pipefail
export RAY_AUTH_MODE=token
RAY=${RAY:-ray}
PORT=${PORT:-6379}
case "${1:-}" in
  start)
    "$RAY" get-auth-token --generate >/dev/null
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus=1 \
      --include-dashboard=false --disable-usage-stats
    for _ in $(seq 1 "${2:-1}"); do
      "$RAY" start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus=1 --disable-usage-stats
    done
    echo "cluster up: RAY_AUTH_MODE=token vi-sweep run STUDY --address 127.0.0.1:$PORT"
    ;;
  stop)
    "$RAY" stop --force
    ;;
  *)
    echo "usage: $0 start [WORKERS] | stop" >&2
    exit 2
    ;;
esac
