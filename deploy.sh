#!/usr/bin/env bash
# Builds boat, installs what it needs (ONNX Runtime from the PyPI wheel) and
# starts a three-node cluster. Ctrl-C stops it. Arguments are passed to
# `boat deploy` (see `boat deploy --help`):
#   (none)           local processes, data in ./.boat/
#   --docker         one container per node on this machine's Docker engine,
#                    on a private network, published on 127.0.0.1:8080-8082;
#                    Ctrl-C removes the containers (--wipe: the volumes too)
#   --swarm          the same as a Docker Swarm stack (deploy/boat-stack.yml),
#                    making this engine a Swarm manager first if it is not;
#                    it keeps running: `./deploy.sh --swarm --down` removes it
#   --swarm-workers  local processes whose train-job trials run as Swarm
#                    services (builds Boat's worker image)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/setup.sh
echo "deploy.sh: building boat (release)..." >&2
cargo build --release --bin boat
ORT_DYLIB_PATH="$(scripts/fetch-ort.sh)"
export ORT_DYLIB_PATH
args=()
workers=0
swarm=0
for a in "$@"; do
  case "$a" in
    --swarm-workers) workers=1 ;;
    --swarm) swarm=1; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
if [ "$swarm" = 1 ] || [ "$workers" = 1 ]; then
  target/release/boat swarm init
fi
if [ "$workers" = 1 ]; then
  target/release/boat images build --tag boat-worker:latest
  has_node_args=0
  for a in "${args[@]}"; do [ "$a" = "--" ] && has_node_args=1; done
  [ "$has_node_args" = 1 ] || args+=("--")
  args+=("--worker-runtime" "swarm" "--worker-image" "boat-worker:latest")
fi
exec target/release/boat deploy "${args[@]}"
