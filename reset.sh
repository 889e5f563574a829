#!/usr/bin/env bash
# ./reset.sh NODE_ID — wipes one node of a `boat deploy` cluster and brings
# it back empty, through a membership change: the node is removed from the
# cluster, stopped and wiped; the supervisor starts it again as a joiner;
# it is added back as a learner, catches up from the leader's snapshot, and
# is promoted to voter. The cluster directory is ./.boat unless BOAT_DIR
# says otherwise. A deployment in containers (`boat deploy --docker` or
# `--swarm`) is reset by `boat deploy --reset-node` through the Docker
# engine: a Swarm node comes back as the same voter.
#
# When the node is not running (its addresses cannot be read) or the
# cluster cannot change its membership (no quorum), the node is wiped and
# restarts as the same voter instead, which the nodes also handle (see
# ARCHITECTURE.md, "A wiped node").
set -euo pipefail
id="${1:-}"
if ! [[ "$id" =~ ^[0-9]+$ ]]; then
  echo "usage: ./reset.sh NODE_ID" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${BOAT_DIR:-$here/.boat}"
mkdir -p "$dir"
# A deployment in containers (`boat deploy --docker` or `--swarm`) records
# itself in deploy.json; boat does the reset through the engine.
if [ -f "$dir/deploy.json" ]; then
  bin="${BOAT_BIN:-$here/target/release/boat}"
  [ -x "$bin" ] || bin="$(command -v boat || true)"
  [ -n "$bin" ] || { echo "reset.sh: no boat binary (set BOAT_BIN)" >&2; exit 1; }
  exec "$bin" deploy --reset-node "$id" --dir "$dir"
fi
hold="$dir/node-$id.hold"
pidfile="$dir/node-$id.pid"
rejoin="$dir/node-$id.rejoin"
# While the hold file exists the supervisor does not restart the node.
touch "$hold"
trap 'rm -f "$hold"' EXIT

pid=""
bin="" raft="" http="" nodes="" others=""
if [ -f "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "node --id $id "; then
    mapfile -t argv < <(tr '\0' '\n' < "/proc/$pid/cmdline")
    bin="${argv[0]}"
    for ((i = 1; i < ${#argv[@]}; i++)); do
      case "${argv[$i]}" in
        --raft) raft="${argv[$((i + 1))]}" ;;
        --http) http="${argv[$((i + 1))]}" ;;
        --member)
          member="${argv[$((i + 1))]}"        # ID=RAFT/HTTP
          node_http="${member#*/}"
          nodes="${nodes:+$nodes,}$node_http"
          [ "${member%%=*}" != "$id" ] && others="${others:+$others,}$node_http"
          ;;
      esac
    done
  else
    pid=""
  fi
fi

learner=0
if [ -n "$bin" ] && [ -n "$raft" ] && [ -n "$http" ] && [ -n "$others" ] && [ -f "$dir/admin-token" ]; then
  if "$bin" cluster remove "$id" --node "$nodes" --token-file "$dir/admin-token" --timeout-s 30 >/dev/null; then
    echo "reset.sh: removed node $id from the cluster"
    touch "$rejoin"
    learner=1
  else
    echo "reset.sh: could not remove node $id; it will rejoin as the same voter" >&2
  fi
fi

if [ -n "$pid" ]; then
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
  fi
  echo "reset.sh: stopped node $id (pid $pid)"
fi
rm -rf "$dir/node-$id" "$dir/shared/logs/nodes/node-$id.log"
echo "reset.sh: wiped node $id"
rm -f "$hold"

if [ "$learner" = 1 ]; then
  # The supervisor starts it as a joiner; adding it waits for the catch-up.
  if "$bin" cluster add "$id" "$raft" "$http" --node "$others" --token-file "$dir/admin-token" --timeout-s 180 >/dev/null; then
    echo "reset.sh: node $id caught up as a learner and is a voter again"
  else
    echo "reset.sh: node $id did not come back; add it with: boat cluster add $id $raft $http" >&2
    exit 1
  fi
  rm -f "$rejoin"
else
  echo "reset.sh: node $id restarts empty and catches up from the leader"
fi
