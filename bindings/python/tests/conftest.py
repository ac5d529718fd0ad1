"""Fixtures of the binding tests: the package from this tree, the test app's image on the real
Docker Engine (skipped loudly without one; a failure when ``CI`` is set), and cleanup of what a
test started."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from typing import Iterator, List

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent
REPO = PACKAGE_ROOT.parent.parent
sys.path.insert(0, str(PACKAGE_ROOT))

if not (PACKAGE_ROOT / "clank" / "_native.abi3.so").exists():  # pragma: no cover
    raise SystemExit(f"build the native module first: {PACKAGE_ROOT / 'build.sh'}")


def _ensure_test_image() -> str:
    """Build `clank-testapp:latest` through the Rust test-support binary; '' when the engine is
    unreachable. `CLANK_TESTAPP_IMAGE_BIN` may name an already built binary."""
    cmd: List[str]
    prebuilt = os.environ.get("CLANK_TESTAPP_IMAGE_BIN")
    if prebuilt:
        cmd = [prebuilt]
    else:
        cmd = [
            "cargo", "run", "-q", "--manifest-path", str(REPO / "Cargo.toml"),
            "-p", "clank-testkit", "--features", "docker", "--bin", "clank-testapp-image",
        ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 2:
        return ""
    if proc.returncode != 0:
        raise RuntimeError(f"building the test image failed:\n{proc.stderr}")
    return "clank-testapp:latest"


@pytest.fixture(scope="session")
def docker_image() -> str:
    image = _ensure_test_image()
    if not image:
        message = (
            "\n" + "!" * 78 + "\n"
            "!! NO DOCKER ENGINE: the binding tests that deploy on Docker are SKIPPED.\n"
            "!! They run (and must pass) in CI, where the CI variable makes this a failure.\n"
            + "!" * 78
        )
        if os.environ.get("CI"):
            pytest.fail("CI is set but no Docker Engine is reachable" + message)
        warnings.warn(message, stacklevel=1)
        pytest.skip("no Docker Engine reachable (set CI to make this a failure)")
    return image


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "clank-data"


@pytest.fixture
def unique() -> str:
    """A suffix for slugs: container and network names derive from project slugs."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def docker_cleanup() -> Iterator[List[str]]:
    """Workspace ids whose containers and networks are removed after the test (the platform
    keeps workloads running after `close`, by design)."""
    workspaces: List[str] = []
    yield workspaces
    docker = shutil.which("docker")
    if not docker:
        sys.stderr.write("docker CLI missing: containers of this test are left running\n")
        return
    for ws in workspaces:
        label = f"label=clank.workspace={ws}"
        ids = subprocess.run(
            [docker, "ps", "-aq", "--filter", label], capture_output=True, text=True
        ).stdout.split()
        if ids:
            subprocess.run([docker, "rm", "-f", *ids], capture_output=True)
        nets = subprocess.run(
            [docker, "network", "ls", "-q", "--filter", label], capture_output=True, text=True
        ).stdout.split()
        if nets:
            subprocess.run([docker, "network", "rm", *nets], capture_output=True)
