"""Remote binding overhead, the Python side (see benches/bindings-remote.sh): sequential
`get_service` calls through `clank.connect` (asyncio) and `clank.sync.connect` against the
daemon at CLANK_BENCH_URL (token CLANK_BENCH_TOKEN), service `bench/api`. One JSON line a side."""

import asyncio
import json
import os
import sys
import time

import clank
import clank.sync

CALLS = int(os.environ.get("CALLS", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
URL, TOKEN = os.environ["CLANK_BENCH_URL"], os.environ["CLANK_BENCH_TOKEN"]


def report(side, rounds_us):
    print(json.dumps({"side": side, "calls": CALLS, "rounds_us": [round(r, 3) for r in rounds_us]}))


async def async_side():
    async with await clank.connect(URL, TOKEN) as p:
        rounds = []
        for r in range(ROUNDS + 1):
            start = time.perf_counter()
            for _ in range(CALLS):
                await p.get_service("bench/api")
            if r:
                rounds.append((time.perf_counter() - start) * 1e6 / CALLS)
        report("python asyncio remote: await get_service", rounds)


def sync_side():
    with clank.sync.connect(URL, TOKEN) as p:
        rounds = []
        for r in range(ROUNDS + 1):
            start = time.perf_counter()
            for _ in range(CALLS):
                p.get_service("bench/api")
            if r:
                rounds.append((time.perf_counter() - start) * 1e6 / CALLS)
        report("python sync remote: get_service", rounds)


asyncio.run(async_side())
sync_side()
sys.stdout.flush()
