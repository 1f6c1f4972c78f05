"""The type check is part of the test run."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_mypy_finds_no_type_errors_in_engine_and_plugins() -> None:
    """mypy --strict (configured in pyproject.toml) passes on engine/ and plugins/."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
