#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests, which start real
# boat processes on loopback ports. Installs what it needs first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
# The web admin's tests drive a real headless Chromium through chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "test.sh: installing chromium and chromium-driver" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >&2
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
ORT_DYLIB_PATH="$(scripts/fetch-ort.sh)"
export ORT_DYLIB_PATH
# Every target at once: the binary the tests start is then built with the
# same features as the tests, so the dependencies compile once, not twice.
cargo build --workspace --all-targets
BOAT_BIN="$(pwd)/target/debug/boat"
export BOAT_BIN
cargo nextest run --workspace --no-fail-fast "$@"
