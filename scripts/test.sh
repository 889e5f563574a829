#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests, which start real
# boat processes on loopback ports. Installs what it needs first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
ORT_DYLIB_PATH="$(scripts/fetch-ort.sh)"
export ORT_DYLIB_PATH
cargo build --bin boat
BOAT_BIN="$(pwd)/target/debug/boat"
export BOAT_BIN
cargo nextest run --workspace --no-fail-fast "$@"
