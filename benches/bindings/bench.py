"""Binding overhead, the Python side (see benches/bindings.sh): sequential `get_service` calls
through `clank.Platform` (asyncio; also with every read awaited) and `clank.sync.Platform`. One JSON line per side."""

import asyncio
import json
import os
import sys
import tempfile
import time

import clank
import clank.sync
from clank import _native

CALLS = int(os.environ.get("CALLS", "10000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def report(side, rounds_us):
    print(json.dumps({"side": side, "calls": CALLS, "rounds_us": [round(r, 3) for r in rounds_us]}))


async def async_side(data_dir):
    async with await clank.Platform.open(data_dir, runtime="process") as p:
        await p.create_project("Bench", slug="bench")
        await p.create_service("bench", "api", image="clank-testapp:latest")
        # Budget 0: every read answered through an awaitable completed from a tokio thread
        # (what every call did before reads were answered in place).
        for budget, side in (
            (0.001, "python asyncio: await Platform.get_service"),
            (0.0, "python asyncio: the same, every call awaited (read budget 0)"),
        ):
            _native.set_read_budget(budget)
            rounds = []
            for r in range(ROUNDS + 1):
                start = time.perf_counter()
                for _ in range(CALLS):
                    await p.get_service("bench/api")
                if r:
                    rounds.append((time.perf_counter() - start) * 1e6 / CALLS)
            report(side, rounds)
        _native.set_read_budget(0.001)


def sync_side(data_dir):
    with clank.sync.Platform.open(data_dir, runtime="process") as p:
        rounds = []
        for r in range(ROUNDS + 1):
            start = time.perf_counter()
            for _ in range(CALLS):
                p.get_service("bench/api")
            if r:
                rounds.append((time.perf_counter() - start) * 1e6 / CALLS)
        report("python sync: clank.sync.Platform.get_service", rounds)
        # The same without the public layer (request encode, answer decode): the FFI crossing.
        native, request = p._native, json.dumps({"op": "get_service", "service": "bench/api"})
        rounds = []
        for r in range(ROUNDS + 1):
            start = time.perf_counter()
            for _ in range(CALLS):
                native.call_blocking(request)
            if r:
                rounds.append((time.perf_counter() - start) * 1e6 / CALLS)
        report("python sync: _native.call_blocking (no json)", rounds)


with tempfile.TemporaryDirectory() as d:
    data = os.path.join(d, "data")
    asyncio.run(async_side(data))
    sync_side(data)
sys.stdout.flush()
