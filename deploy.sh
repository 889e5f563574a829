#!/usr/bin/env bash
# Builds boat, installs what it needs (ONNX Runtime from the PyPI wheel) and
# starts a local three-node cluster in ./.boat/. Ctrl-C stops it.
# Arguments are passed to `boat deploy` (see `boat deploy --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/setup.sh
echo "deploy.sh: building boat (release)..." >&2
cargo build --release --bin boat
ORT_DYLIB_PATH="$(scripts/fetch-ort.sh)"
export ORT_DYLIB_PATH
exec target/release/boat deploy "$@"
