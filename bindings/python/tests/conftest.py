"""Fixtures of the binding tests: the package from this tree, the test app's image on the real
Docker Engine (skipped loudly without one; a failure when ``CI`` is set), and cleanup of what a
test started."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Iterator, List

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent
REPO = PACKAGE_ROOT.parent.parent
sys.path.insert(0, str(REPO / "tests" / "support"))

from clank_testapp import image_or_skip  # noqa: E402

if os.environ.get("CLANK_TEST_INSTALLED"):
    # The installed wheel, never this tree (scripts/test runs the suite so after packaging).
    import clank  # noqa: E402

    if Path(clank.__file__).resolve().is_relative_to(PACKAGE_ROOT):  # pragma: no cover
        raise SystemExit(f"CLANK_TEST_INSTALLED, but clank comes from this tree: {clank.__file__}")
else:
    sys.path.insert(0, str(PACKAGE_ROOT))

    if not (PACKAGE_ROOT / "clank" / "_native.abi3.so").exists():  # pragma: no cover
        raise SystemExit(f"build the native module first: {PACKAGE_ROOT / 'build.sh'}")


@pytest.fixture(scope="session")
def docker_image() -> str:
    return image_or_skip("binding")


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
