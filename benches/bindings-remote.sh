#!/usr/bin/env bash
# Remote binding overhead in one run: sequential "get service" calls against one released
# daemon (native-process runtime; the call touches only the store) from curl (one process,
# one kept-alive connection: the HTTP floor), from Python (`clank.connect`, asyncio and sync)
# and from Node (`Platform.connect`). Builds everything in release mode, then prints per-call
# medians and the ratio to curl.
# Usage: benches/bindings-remote.sh   (CALLS, ROUNDS, REPEAT override 2000, 5 and 3)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
CALLS="${CALLS:-2000}"; ROUNDS="${ROUNDS:-5}"; export CALLS ROUNDS
out="$(mktemp)"; data="$(mktemp -d)"
target="${CARGO_TARGET_DIR:-$root/target}"

echo "==> building (release)" >&2
bindings/python/build.sh --release >&2
bindings/node/build.sh --release >&2
cargo build -q --release -p clank-daemon >&2

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
CLANK_RUNTIME=process CLANK_DATA="$data/daemon" CLANK_LISTEN="127.0.0.1:$port" \
  CLANK_PROXY_LISTEN=off CLANK_LOG=warn "$target/release/clank-daemon" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$out" "$data"' EXIT
for _ in $(seq 200); do curl -fs "$url/v1/health" >/dev/null && break; sleep 0.05; done
token="$(curl -fs -X POST "$url/v1/init" -H 'content-type: application/json' \
  -d '{"workspace":"bench","name":"Ada","email":"ada@example.com"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
auth=(-H "authorization: Bearer $token" -H 'content-type: application/json')
curl -fs -o /dev/null "${auth[@]}" -X POST "$url/v1/workspaces/bench/projects" -d '{"name":"Bench","slug":"bench"}'
curl -fs -o /dev/null "${auth[@]}" -X POST \
  "$url/v1/workspaces/bench/projects/bench/environments/production/services" \
  -d '{"slug":"api","source":{"type":"docker_image","image":"clank-testapp:latest"}}'
export CLANK_BENCH_URL="$url" CLANK_BENCH_TOKEN="$token"

# curl: one process, CALLS URLs on one kept-alive connection, one round per run.
curl_rounds() {
  local config="$data/curl.cfg" rounds=()
  { printf 'header = "authorization: Bearer %s"\n' "$token"
    for _ in $(seq "$CALLS"); do
      printf 'url = "%s/v1/workspaces/bench/projects/bench/environments/production/services/api"\noutput = "/dev/null"\n' "$url"
    done; } >"$config"
  for r in $(seq 0 "$ROUNDS"); do
    local start end
    start="$(date +%s%N)"; curl -fs -K "$config"; end="$(date +%s%N)"
    [ "$r" -gt 0 ] && rounds+=("$(python3 -c "print(round(($end - $start) / 1000 / $CALLS, 3))")")
  done
  local IFS=,
  echo "{\"side\": \"curl (one process, keep-alive)\", \"calls\": $CALLS, \"rounds_us\": [${rounds[*]}]}"
}

for turn in $(seq "${REPEAT:-3}"); do
  echo "==> running, turn $turn" >&2
  curl_rounds >>"$out"
  PYTHONPATH="$root/bindings/python" python3 benches/bindings/remote.py >>"$out"
  node benches/bindings/remote.js >>"$out"
done

python3 benches/bindings/table.py "$out" 'curl (one process, keep-alive)' '× curl'
