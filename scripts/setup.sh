#!/usr/bin/env bash
# Installs what building and running Boat needs on a fresh Debian machine:
# Debian packages (only those missing) and the ONNX Runtime library.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
if ! command -v cargo >/dev/null; then
  echo "setup.sh: cargo is missing; install a Rust toolchain (1.88 or newer)" >&2
  exit 1
fi
"$root/scripts/fetch-ort.sh" >/dev/null
