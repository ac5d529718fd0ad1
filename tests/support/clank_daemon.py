"""The released daemon for Python test suites (the browser tests, the bindings' remote mode):
``target/debug/clank-daemon`` on a fresh data directory, configured only as the README
documents (``CLANK_DATA``, ``CLANK_LISTEN``, ``CLANK_RUNTIME``, ``CLANK_PROXY_LISTEN``,
``CLANK_LOG``), initialised with ``POST /v1/init``, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Tuple

REPO = Path(__file__).resolve().parent.parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_daemon(
    tmp: Path, workspace: str, runtime: str = "docker"
) -> Iterator[Tuple[str, str, Path]]:
    """The daemon's base URL, the Owner token of ``workspace`` and the data directory; its log
    is ``tmp/daemon.log``."""
    binary = TARGET / "debug" / "clank-daemon"
    if not binary.exists():
        raise SystemExit(f"build the daemon first: cargo build -p clank-daemon ({binary})")
    # Not `clank-data`: a test may open an embedded platform of its own there.
    data = tmp / "daemon-data"
    port = free_port()
    env = dict(os.environ)
    env.update(
        CLANK_DATA=str(data),
        CLANK_LISTEN=f"127.0.0.1:{port}",
        CLANK_RUNTIME=runtime,
        CLANK_PROXY_LISTEN="off",
        CLANK_LOG="warn",
    )
    log_path = tmp / "daemon.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([str(binary)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            if proc.poll() is not None:
                raise RuntimeError(f"clank-daemon exited: {log_path.read_text()}")
            try:
                urllib.request.urlopen(base + "/v1/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.025)
        else:
            raise RuntimeError(f"clank-daemon did not come up on {base}")
        body = {"workspace": workspace, "name": "Ada", "email": "ada@example.com"}
        req = urllib.request.Request(
            base + "/v1/init",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            owner = json.loads(r.read())["token"]
        yield base, owner, data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
