#!/usr/bin/env bash
# Installs the ONNX Runtime shared library from the PyPI wheel into ./.ort/ and
# prints its absolute path. Idempotent: a second run only prints the path.
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.31.1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.ort"
lib="$dest/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$lib" ]; then
  mkdir -p "$dest"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps "onnxruntime==$ORT_VERSION" -d "$tmp" >&2
  wheel="$(ls "$tmp"/onnxruntime-*.whl | head -n 1)"
  python3 - "$wheel" "$lib" "$ORT_VERSION" <<'PY'
import sys, zipfile, shutil
wheel, out, ver = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    with z.open(f"onnxruntime/capi/libonnxruntime.so.{ver}") as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  mv "$lib.part" "$lib"
fi
echo "$lib"
