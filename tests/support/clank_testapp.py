"""The test app's image for the Python suites that deploy on Docker (the bindings' and the
dashboard's browser tests): built once through the Rust test-support binary, skipped loudly
without an engine, a failure when ``CI`` is set."""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
IMAGE = "clank-testapp:latest"


def ensure_test_image() -> str:
    """Build `clank-testapp:latest`; '' when the engine is unreachable.
    `CLANK_TESTAPP_IMAGE_BIN` (set by scripts/test) names an already built binary."""
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
    return IMAGE


def image_or_skip(suite: str) -> str:
    """The image, or (no engine) a skip with a loud warning; a failure when ``CI`` is set.
    `suite` names the tests skipped (`binding`, `browser`)."""
    image = ensure_test_image()
    if not image:
        message = (
            "\n" + "!" * 78 + "\n"
            f"!! NO DOCKER ENGINE: the {suite} tests that deploy on Docker are SKIPPED.\n"
            "!! They run (and must pass) in CI, where the CI variable makes this a failure.\n"
            + "!" * 78
        )
        if os.environ.get("CI"):
            pytest.fail("CI is set but no Docker Engine is reachable" + message)
        warnings.warn(message, stacklevel=1)
        pytest.skip("no Docker Engine reachable (set CI to make this a failure)")
    return image
