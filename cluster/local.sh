#!/usr/bin/env bash
# A multi-node Ray cluster on this one machine, with Ray's token authentication:
#   bash cluster/local.sh start [WORKERS]   # a head (1 CPU) and WORKERS worker nodes (1 CPU each)
#   bash cluster/local.sh env               # prints the exports a driver needs
#   eval "$(bash cluster/local.sh env)"; vi-sweep run studies/quickstart.yaml --address 127.0.0.1:6379
#   bash cluster/local.sh stop              # ends only the processes this script started
#
# Everything lives in one private folder, VI_SWEEPS_CLUSTER_DIR (default ~/.vi-sweeps/cluster,
# mode 0700): the token (auth_token, mode 0600; every node and driver needs the same one) and
# Ray's temporary folder, whose path is on the command line of every process of this cluster,
# so `stop` ends exactly those and never another user's or another cluster's Ray.
# Ray listens on every interface (0.0.0.0) for several of its ports even with
# --node-ip-address=127.0.0.1; see cluster/README.md for restricting that with a firewall.
set -euo pipefail
DIR=${VI_SWEEPS_CLUSTER_DIR:-$HOME/.vi-sweeps/cluster}
PORT=${PORT:-6379}
RAY=${RAY:-ray}
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$DIR/auth_token"

case "${1:-}" in
  start)
    mkdir -p "$DIR" && chmod 700 "$DIR"
    if [ ! -s "$DIR/auth_token" ]; then
      (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32), end="")' > "$DIR/auth_token")
    fi
    chmod 600 "$DIR/auth_token"
    "$RAY" start --head --node-ip-address=127.0.0.1 --port="$PORT" --num-cpus=1 --temp-dir="$DIR/tmp" \
      --include-dashboard=false --disable-usage-stats
    for _ in $(seq 1 "${2:-1}"); do
      "$RAY" start --address="127.0.0.1:$PORT" --node-ip-address=127.0.0.1 --num-cpus=1 --disable-usage-stats
    done
    echo "cluster up: eval \"\$(bash $0 env)\"; vi-sweep run STUDY --address 127.0.0.1:$PORT"
    ;;
  env)
    echo "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH='$DIR/auth_token'"
    ;;
  stop)
    # The cluster's processes, and only them: their command lines name this cluster's folder,
    # or (Ray's agents, which rename themselves) they hold files open in it.
    ours() {
      for p in /proc/[0-9]*; do
        if { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -qF -- "$DIR/tmp/" \
           || { ls -l "$p/fd"; } 2>/dev/null | grep -qF -- "$DIR/tmp/"; then
          echo "${p#/proc/}"
        fi
      done
    }
    # TERM, then KILL, each sent again to whatever is still (or newly) there, until none is
    # left; a process that outlives both is named and the exit is 1
    for signal in TERM KILL; do
      for _ in $(seq 1 20); do
        pids=$(ours)
        [ -z "$pids" ] && exit 0
        kill -"$signal" $pids 2>/dev/null || true
        sleep 0.5
      done
    done
    pids=$(ours)
    [ -z "$pids" ] && exit 0
    echo "stop: still running after TERM and KILL: $pids" >&2
    exit 1
    ;;
  *)
    echo "usage: $0 start [WORKERS] | env | stop" >&2
    exit 2
    ;;
esac
