"""Running a rules file away from its brokers: over a test's events or a
recorded file, with its sources (and usually its sinks) replaced.

``engine test`` and ``engine replay`` judge rules, not connections: the
rules file's sources, sinks and dead letters are taken out of the document
before it is validated, so a file whose sources are brokers can be tested
on a machine without the brokers or their client libraries. ``engine
validate`` checks those parts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.alerts import RESOLVED, Alert
from engine.config import EngineConfig, build_config
from engine.plugin_manager import Registry
from engine.yamlfile import load_yaml


def load_rules_offline(
    path: Path,
    source: Mapping[str, Any],
    *,
    keep_sinks: bool = False,
    extra_plugins: tuple[object, ...] = (),
) -> tuple[EngineConfig, Registry]:
    """Load and validate a rules file whose sources are replaced by ``source``
    (a component as written, e.g. ``{"type": "jsonl", "path": ...}``), and
    whose sinks are removed unless ``keep_sinks``.

    Raises :class:`~engine.errors.UsageError` with every problem of what is
    left: plugins, time settings and rules.
    """
    loaded = load_yaml(path)
    if isinstance(loaded.data, dict):
        loaded.data["sources"] = [dict(source)]
        loaded.data.pop("dead_letter", None)
        # A replay or a test must neither read nor overwrite a live snapshot.
        loaded.data.pop("state", None)
        if not keep_sinks:
            loaded.data["sinks"] = []
    return build_config(loaded, path.parent, extra_plugins=extra_plugins)


def without_idle_timeout(config: EngineConfig) -> EngineConfig:
    """The configuration with the idle timeout off, so that results depend
    on the input alone and never on how fast the machine reads it."""
    return dataclasses.replace(
        config, time=dataclasses.replace(config.time, idle_timeout_us=None)
    )


def notified_at_us(alert: Alert) -> int:
    """When an alert was sent, in event time: the end of the incident for a
    resolution, its start otherwise."""
    if alert.status == RESOLVED and alert.ends_at_us is not None:
        return alert.ends_at_us
    return alert.starts_at_us
