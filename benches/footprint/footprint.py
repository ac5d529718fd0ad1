#!/usr/bin/env python3
"""Footprint benchmark of the real `clank-daemon` binary (release build).

1. Fresh data dir, CLANK_RUNTIME=process (no containers). Create 100 services and 1,000
   deployment records through the HTTP API (images that do not exist: with the process runtime
   every deployment fails fast, so the records are FAILED/CANCELLED - realistic history).
2. Idle 10 s, read VmRSS from /proc/<pid>/status.
3. Grow to 10,000 services (one environment), then measure p50/p99 of `GET service`,
   `GET services?limit=100` (one page) and the unpaginated `GET services` (all 10k) over
   loopback with one keep-alive connection.

Usage: benches/footprint/footprint.py [path/to/clank-daemon]   (default target/release/clank-daemon)
Only loopback traffic. Prints a Markdown table.
"""
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/clank-daemon")
N_SMALL, N_DEPLOYS, N_BIG = 100, 1000, 10_000
ENV = "/v1/workspaces/bench/projects/bench/environments/production"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Api:
    def __init__(self, port):
        self.port = port
        self.token = None
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None, ok=(200, 201, 202)):
        headers = {}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        if r.status not in ok:
            raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
        return r.status, raw

    def timed(self, path, n):
        lat = []
        for i in range(n):
            p = path(i) if callable(path) else path
            t = time.perf_counter()
            self.call("GET", p)
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        return lat


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def pct(lat, q):
    return lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))]


def create_services(api, start, end):
    for i in range(start, end):
        api.call("POST", f"{ENV}/services", {
            "slug": f"svc-{i:05d}",
            "source": {"type": "docker_image", "image": "clank-bench-unused:latest"},
        })


def main():
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: cargo build --release -p clank-daemon")
    data = tempfile.mkdtemp(prefix="clank-footprint-")
    port = free_port()
    env = dict(os.environ, CLANK_RUNTIME="process", CLANK_DATA=data,
               CLANK_LISTEN=f"127.0.0.1:{port}", CLANK_LOG="warn")
    proc = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        api = Api(port)
        for _ in range(200):
            try:
                api.call("GET", "/v1/health")
                break
            except OSError:
                api.conn.close()
                api.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                time.sleep(0.05)
        rss_start = rss_kib(proc.pid)
        _, raw = api.call("POST", "/v1/init", {"workspace": "bench", "name": "Bench", "email": "bench@example.com"})
        api.token = json.loads(raw)["token"]
        api.call("POST", "/v1/workspaces/bench/projects", {"name": "bench"})
        t = time.time()
        create_services(api, 0, N_SMALL)
        for i in range(N_DEPLOYS):
            api.call("POST", f"{ENV}/services/svc-{i % N_SMALL:05d}/deployments")
        setup_s = time.time() - t
        # Let every deployment reach a terminal state, then idle.
        deadline = time.time() + 120
        while time.time() < deadline:
            _, raw = api.call("GET", f"{ENV}/services/svc-{N_SMALL - 1:05d}/deployments?limit=1")
            if json.loads(raw)[0]["status"] in ("FAILED", "CANCELLED", "ACTIVE"):
                break
            time.sleep(0.5)
        time.sleep(10)
        rss_small = rss_kib(proc.pid)
        statuses = {}
        for i in range(0, N_SMALL, 10):
            _, raw = api.call("GET", f"{ENV}/services/svc-{i:05d}/deployments?limit=100")
            for d in json.loads(raw):
                statuses[d["status"]] = statuses.get(d["status"], 0) + 1

        t = time.time()
        create_services(api, N_SMALL, N_BIG)
        grow_s = time.time() - t
        time.sleep(2)
        rng = random.Random(7)
        slugs = [f"svc-{rng.randrange(N_BIG):05d}" for _ in range(5000)]
        api.timed(lambda i: f"{ENV}/services/{slugs[i]}", 200)  # warm-up
        get_lat = api.timed(lambda i: f"{ENV}/services/{slugs[i]}", 5000)
        page_lat = api.timed(f"{ENV}/services?limit=100", 2000)
        full_lat = api.timed(f"{ENV}/services", 30)
        _, full_raw = api.call("GET", f"{ENV}/services")
        time.sleep(5)
        rss_big = rss_kib(proc.pid)

        print(f"daemon: {BIN}")
        print(f"setup: {N_SMALL} services + {N_DEPLOYS} deployments in {setup_s:.1f} s; "
              f"grow to {N_BIG} services in {grow_s:.1f} s")
        print(f"deployment statuses (sample of 10 services): {statuses}")
        print()
        print("| measurement | value |")
        print("|---|---|")
        print(f"| RSS at start (empty store) | {rss_start / 1024:.1f} MiB |")
        print(f"| RSS idle, {N_SMALL} services + {N_DEPLOYS} deployments (after 10 s idle) | {rss_small / 1024:.1f} MiB |")
        print(f"| RSS after the latency runs, {N_BIG} services | {rss_big / 1024:.1f} MiB |")
        for name, lat in [("GET service (5,000 random of 10k)", get_lat),
                          ("GET services?limit=100 (2,000)", page_lat),
                          (f"GET services, all 10k unpaginated ({len(full_raw) / 1e6:.1f} MB, 30)", full_lat)]:
            print(f"| {name} p50 / p99 | {pct(lat, 0.5):.2f} / {pct(lat, 0.99):.2f} ms |")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        subprocess.run(["rm", "-rf", data])


if __name__ == "__main__":
    main()
