#!/usr/bin/env python3
"""Idle footprint of the real `clank-agent` binary (release build).

Starts a release `clank-daemon` with the agent endpoint on (TLS, pinned), registers a server
through the REST API, starts `clank-agent` with the join token (Docker runtime, heartbeat every
5 s, no workloads), lets it idle connected for 30 s, and reads the agent's VmRSS and CPU time
from /proc. Loopback only.

Usage: benches/agents/agent_rss.py [target/release]   (needs a reachable Docker Engine)
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release")
IDLE_S = int(os.environ.get("CLANK_AGENT_IDLE_S", "30"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def call(port, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    c.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = c.getresponse()
    data = r.read()
    assert 200 <= r.status < 300, (method, path, r.status, data)
    return json.loads(data)


def proc(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    data = tempfile.mkdtemp(prefix="clank-agent-rss-")
    api, agents = free_port(), free_port()
    env = dict(os.environ, CLANK_DATA=f"{data}/cp", CLANK_LISTEN=f"127.0.0.1:{api}",
               CLANK_PROXY_LISTEN="off", CLANK_AGENT_LISTEN=f"127.0.0.1:{agents}",
               CLANK_LOG="warn")
    daemon = subprocess.Popen([f"{BIN}/clank-daemon"], env=env)
    try:
        for _ in range(200):
            try:
                call(api, "GET", "/v1/health")
                break
            except OSError:
                time.sleep(0.05)
        token = call(api, "POST", "/v1/init",
                     {"workspace": "bench", "name": "B", "email": "b@example.com"})["token"]
        added = call(api, "POST", "/v1/workspaces/bench/servers", {"name": "idle"}, token)
        agent = subprocess.Popen(
            [f"{BIN}/clank-agent", "--control-plane", f"https://127.0.0.1:{agents}",
             "--fingerprint", added["control_plane_fingerprint"],
             "--join-token", added["join_token"], "--state-dir", f"{data}/agent"],
            env=dict(os.environ, CLANK_LOG="warn"))
        try:
            for _ in range(200):
                if call(api, "GET", "/v1/workspaces/bench/servers/idle", None, token)["connected"]:
                    break
                time.sleep(0.05)
            else:
                raise SystemExit("the agent did not connect")
            time.sleep(5)
            t0, c0 = time.monotonic(), cpu_ticks(agent.pid)
            peak = 0
            while time.monotonic() - t0 < IDLE_S:
                peak = max(peak, proc(agent.pid, "VmRSS"))
                time.sleep(1)
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = 100.0 * (cpu_ticks(agent.pid) - c0) / ticks / (time.monotonic() - t0)
            rss = proc(agent.pid, "VmRSS")
            view = call(api, "GET", "/v1/workspaces/bench/servers/idle", None, token)
            print(json.dumps({
                "agent_idle_rss_kib": rss, "agent_peak_rss_kib": peak,
                "agent_idle_cpu_percent": round(cpu, 2), "idle_window_s": IDLE_S,
                "still_connected": view["connected"],
            }))
        finally:
            agent.terminate()
            agent.wait(10)
    finally:
        daemon.terminate()
        daemon.wait(30)


if __name__ == "__main__":
    main()
