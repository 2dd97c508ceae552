"""Shared test fixtures: paths to the bundled recordings and the shared real data."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

# GUI tests draw into an offscreen buffer: no display needed. Set before Qt is first loaded.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
RECORDINGS = REPO_ROOT / "recordings"
# CI clones the repo next to a read-only copy of shared/, as in development.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def unique_name() -> str:
    """A stream name no other test (or concurrent test run) uses on this host."""
    return f"biosig-test-{uuid.uuid4().hex[:10]}"
