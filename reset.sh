#!/usr/bin/env bash
# ./reset.sh NODE_ID — stops that node if it runs, wipes its data and log, and
# lets the `boat deploy` supervisor start it again, empty, so that it rejoins
# from the leader's snapshot. The cluster directory is ./.boat unless
# BOAT_DIR says otherwise.
set -euo pipefail
id="${1:-}"
if ! [[ "$id" =~ ^[0-9]+$ ]]; then
  echo "usage: ./reset.sh NODE_ID" >&2
  exit 2
fi
dir="${BOAT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.boat}"
mkdir -p "$dir"
hold="$dir/node-$id.hold"
pidfile="$dir/node-$id.pid"
# While the hold file exists the supervisor does not restart the node.
touch "$hold"
trap 'rm -f "$hold"' EXIT

if [ -f "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "node --id $id "; then
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
fi
rm -rf "$dir/node-$id" "$dir/logs/node-$id.log"
echo "reset.sh: wiped node $id; it restarts empty and catches up from the leader"
