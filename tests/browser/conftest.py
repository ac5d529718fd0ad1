"""Fixtures of the browser tests: the released daemon binary on a fresh data directory (only
README configuration: `CLANK_DATA`, `CLANK_LISTEN`, `CLANK_RUNTIME`, `CLANK_PROXY_LISTEN`,
`CLANK_LOG`) on the Docker Engine with the test app's image (skipped loudly without an engine,
a failure when ``CI`` is set, as in ``bindings/python/tests/conftest.py``), its Owner's token
from ``POST /v1/init``, and Debian's Chromium driven by Playwright (never Playwright's own
browser download)."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "tests" / "support"))

from clank_daemon import TARGET, running_daemon  # noqa: E402
from clank_testapp import image_or_skip  # noqa: E402

SCREENSHOTS = TARGET / "screenshots"
CHROMIUM = os.environ.get("CLANK_CHROMIUM", "/usr/bin/chromium")
WS = "acme"


@pytest.fixture(scope="session")
def docker_image() -> str:
    return image_or_skip("browser")


@dataclass
class Daemon:
    """A running `clank-daemon` and its first workspace's Owner token."""

    base: str
    owner: str
    data: Path

    def call(
        self, method: str, path: str, body: Optional[Dict[str, Any]] = None, token: Optional[str] = None
    ) -> Tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("authorization", f"Bearer {token or self.owner}")
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read().decode()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text

    def ok(self, method: str, path: str, body: Optional[Dict[str, Any]] = None, token: Optional[str] = None) -> Any:
        status, v = self.call(method, path, body, token)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {v}"
        return v


@pytest.fixture
def daemon(docker_image: str, tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path, WS) as (base, owner, data):
        d = Daemon(base=base, owner=owner, data=data)
        yield d
        _purge_projects(d)


def _purge_projects(d: Daemon) -> None:
    """Remove what the test's projects started on the engine (workloads outlive the daemon)."""
    status, projects = d.call("GET", f"/v1/workspaces/{WS}/projects")
    if status != 200:
        return
    items = projects if isinstance(projects, list) else projects.get("items", [])
    for p in items:
        d.call("DELETE", f"/v1/workspaces/{WS}/projects/{p['slug']}?purge=true&volumes=true")


@pytest.fixture
def unique() -> str:
    """A suffix for project slugs: container and network names derive from them."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, under Playwright (no `playwright install`)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: scripts/test installs Debian's chromium")
    args: List[str] = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()


@pytest.fixture
def shots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
