"""The example rules files in rules/examples are valid, and together they show
every connector."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from engine.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "rules" / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_example_rules_file_is_valid(
    path: Path, connector_plugins: tuple[ModuleType, ...]
) -> None:
    """Each example passes validation as written."""
    config, _ = load_config(path, entry_points=False, extra_plugins=connector_plugins)

    assert config.rules


def test_examples_show_every_connector(
    connector_plugins: tuple[ModuleType, ...],
) -> None:
    """Each broker source and each connector sink appears in some example."""
    used: set[tuple[str, str]] = set()
    for path in FILES:
        config, _ = load_config(
            path, entry_points=False, extra_plugins=connector_plugins
        )
        used |= {("source", c.type) for c in config.sources}
        used |= {("sink", c.type) for c in config.sinks}

    expected = {("source", name) for name in ("nats", "redis", "mqtt")} | {
        ("sink", name) for name in ("webhook", "alertmanager", "nats", "redis")
    }
    assert expected <= used
