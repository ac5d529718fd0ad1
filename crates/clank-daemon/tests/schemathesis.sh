#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI) generates requests from the daemon's own OpenAPI
# document and checks that none is answered with a 5xx. The daemon runs on loopback with the
# native-process runtime and a fresh data directory, holding one workspace, project and service
# so the generated paths hit real records as well as missing ones.
# Usage: crates/clank-daemon/tests/schemathesis.sh [path/to/clank-daemon] [max examples]
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN="${1:-${CARGO_TARGET_DIR:-$PWD/target}/debug/clank-daemon}"
EXAMPLES="${2:-30}"
python3 -c 'import schemathesis' 2>/dev/null || python3 -m pip install -q schemathesis
# Call the `st` script next to this interpreter: a fresh install may not be on PATH yet.
ST="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/st"
DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
CLANK_RUNTIME=process CLANK_DATA="$DATA" CLANK_LISTEN="127.0.0.1:$PORT" CLANK_PROXY_LISTEN=127.0.0.1:0 CLANK_AGENT_LISTEN=127.0.0.1:0 CLANK_LOG=warn "$BIN" &
PID=$!
# The daemon's proxy runs as its own process and outlives the daemon: stop it too.
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; [ -f "$DATA/proxy/proxy.pid" ] && kill "$(cat "$DATA/proxy/proxy.pid")" 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -fs "$URL/v1/health" >/dev/null && break; sleep 0.1; done
TOKEN="$(curl -fs -X POST "$URL/v1/init" -H 'content-type: application/json' \
  -d '{"workspace":"acme","name":"Ada","email":"ada@example.com"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
curl -fs -o /dev/null -X POST "$URL/v1/workspaces/acme/projects" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d '{"name":"shop"}'
curl -fs -o /dev/null -X POST "$URL/v1/workspaces/acme/projects/shop/environments/production/services" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"slug":"web","source":{"type":"docker_image","image":"clank-unused:latest"}}'
# From the scratch directory: schemathesis leaves a `.schemathesis/` cache in its working dir.
(cd "$DATA" && "$ST" run "$URL/v1/openapi.json" -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error --max-examples "$EXAMPLES" --request-timeout 10)
# The daemon must still be up after all that.
curl -fs "$URL/v1/health" >/dev/null
