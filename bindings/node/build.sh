#!/usr/bin/env bash
# Build the native addon with plain cargo (no npm needed) and put it where index.js loads it:
#   cargo build -p clank-node  ->  clank.node
# Usage: bindings/node/build.sh [--release]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
profile=debug
args=()
if [ "${1:-}" = "--release" ]; then profile=release; args+=(--release); fi
cargo build --manifest-path "$root/Cargo.toml" -p clank-node "${args[@]}"
target="${CARGO_TARGET_DIR:-$root/target}"
cp -f "$target/$profile/libclank_node.so" "$here/clank.node"
echo "built $here/clank.node ($profile)"
