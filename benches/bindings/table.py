"""Pool the JSON lines the binding benches print (one per side and turn) and print the table:
per-call median and minimum, calls/s, and the ratio to the side named as the base.
Usage: python3 benches/bindings/table.py FILE BASE_SIDE RATIO_HEADER"""

import json
import statistics
import sys

path, base_side, ratio = sys.argv[1], sys.argv[2], sys.argv[3]
pooled = {}
for line in open(path):
    if line.strip():
        r = json.loads(line)
        pooled.setdefault(r["side"], {"side": r["side"], "calls": r["calls"], "rounds_us": []})
        pooled[r["side"]]["rounds_us"] += r["rounds_us"]
rows = list(pooled.values())
base = pooled[base_side]
base_med = statistics.median(base["rounds_us"])
print(f"{rows[0]['calls']:,} sequential get-service calls per round, {len(base['rounds_us'])} rounds per side\n")
print(f"| side | median µs/call | min µs/call | calls/s | {ratio} |")
print("|---|---|---|---|---|")
for r in rows:
    med = statistics.median(r["rounds_us"])
    print(f"| {r['side']} | {med:.2f} | {min(r['rounds_us']):.2f} | {1e6 / med:,.0f} | {med / base_med:.2f}× |")
