"""Shared fixtures: where the real event data lives, and a rules-file writer."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Real event files with expected alerts; licensed for research use, so they
#: are read from beside the repository and never copied into it.
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "expected" / "rules.json").exists():
        pytest.skip(f"real event data not found at {SHARED_DATA}")
    return SHARED_DATA
