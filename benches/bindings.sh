#!/usr/bin/env bash
# Binding overhead in one run: 10,000 sequential "get service" calls from Rust (direct and
# through the JSON request path the bindings use), from Python (asyncio and sync) and from Node,
# each on its own embedded platform (native-process runtime; the call touches only the store).
# Builds everything in release mode, then prints per-call medians and the ratio to Rust.
# Usage: benches/bindings.sh   (CALLS, ROUNDS, REPEAT override the defaults 10000, 5 and 3)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

echo "==> building (release)" >&2
bindings/python/build.sh --release >&2
bindings/node/build.sh --release >&2
cargo bench -p clank-benches --bench bindings --no-run >&2

# The machine is shared: the three languages take turns, REPEAT times, and each side's rounds
# from every turn are pooled, so a burst of other load hits all sides alike.
bench="$(cargo bench -q -p clank-benches --bench bindings --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bindings" and m.get("executable"):
        print(m["executable"])')"
for turn in $(seq "${REPEAT:-3}"); do
  echo "==> running, turn $turn" >&2
  "$bench" | grep '^{' >>"$out"
  PYTHONPATH="$root/bindings/python" python3 benches/bindings/bench.py >>"$out"
  node benches/bindings/bench.js >>"$out"
done

python3 - "$out" <<'PY'
import json, statistics, sys
pooled = {}
for line in open(sys.argv[1]):
    if line.strip():
        r = json.loads(line)
        pooled.setdefault(r["side"], {"side": r["side"], "calls": r["calls"], "rounds_us": []})
        pooled[r["side"]]["rounds_us"] += r["rounds_us"]
rows = list(pooled.values())
base = pooled["rust: Platform::service"]
base_med = statistics.median(base["rounds_us"])
print(f"{rows[0]['calls']:,} sequential get-service calls per round, {len(base['rounds_us'])} rounds per side\n")
print("| side | median µs/call | min µs/call | calls/s | × Rust direct |")
print("|---|---|---|---|---|")
for r in rows:
    med = statistics.median(r["rounds_us"])
    print(f"| {r['side']} | {med:.2f} | {min(r['rounds_us']):.2f} | {1e6 / med:,.0f} | {med / base_med:.2f}× |")
PY
