#!/usr/bin/env bash
# Build the native module into the source tree, so `PYTHONPATH=bindings/python python -c
# "import clank"` (and pytest) use it without a wheel or a virtualenv:
#   cargo build -p clank-python  ->  clank/_native.abi3.so
# Usage: bindings/python/build.sh [--release]
# For a wheel: `pip install maturin && maturin build --release` in this directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
profile=debug
args=()
if [ "${1:-}" = "--release" ]; then profile=release; args+=(--release); fi
# An extension module must not link libpython (the interpreter provides the symbols).
PYO3_BUILD_EXTENSION_MODULE=1 cargo build --manifest-path "$root/Cargo.toml" -p clank-python "${args[@]}"
target="${CARGO_TARGET_DIR:-$root/target}"
cp -f "$target/$profile/libclank_python.so" "$here/clank/_native.abi3.so"
echo "built $here/clank/_native.abi3.so ($profile)"
