#!/usr/bin/env bash
# Builds boat, installs what it needs (ONNX Runtime from the PyPI wheel) and
# starts a local three-node cluster in ./.boat/. Ctrl-C stops it.
# Arguments are passed to `boat deploy` (see `boat deploy --help`), except
# --swarm: it builds Boat's worker image, makes the local Docker engine a
# Swarm manager (if it is not one) and runs train-job trials as Swarm
# services.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/setup.sh
echo "deploy.sh: building boat (release)..." >&2
cargo build --release --bin boat
ORT_DYLIB_PATH="$(scripts/fetch-ort.sh)"
export ORT_DYLIB_PATH
args=()
swarm=0
for a in "$@"; do
  if [ "$a" = "--swarm" ]; then swarm=1; else args+=("$a"); fi
done
if [ "$swarm" = 1 ]; then
  target/release/boat images build --tag boat-worker:latest
  target/release/boat swarm init
  has_node_args=0
  for a in "${args[@]}"; do [ "$a" = "--" ] && has_node_args=1; done
  [ "$has_node_args" = 1 ] || args+=("--")
  args+=("--worker-runtime" "swarm" "--worker-image" "boat-worker:latest")
fi
exec target/release/boat deploy "${args[@]}"
