"""Shared fixtures: where the real DICOM test data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Fixture modules shared by many test files (the service, the browser).
pytest_plugins = ["server_fixtures", "browser_fixtures"]


def _testdata_root() -> Path | None:
    env = os.environ.get("SEGMAP_TESTDATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "testdata")
    for c in candidates:
        if (c / "SHA256SUMS.txt").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Root of ``../shared/testdata`` (or ``$SEGMAP_TESTDATA``); skips when absent."""
    root = _testdata_root()
    if root is None:
        message = (
            "real DICOM test data not found: set SEGMAP_TESTDATA or put shared/ beside the checkout"
        )
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has shared/ beside it: absence is a broken run
        pytest.skip(message)
    return root
