"""Connectors load their client library only when used: the engine starts and
lists its plugins without the extras, and a rules file that needs a missing
library says which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.clock import SystemClock
from engine.components import RuntimeContext
from engine.errors import UsageError


def test_connector_modules_import_and_register_without_client_libraries(
    connector_module_names: tuple[str, ...],
) -> None:
    """With nats, redis and paho made unimportable, every connector module
    still imports and registers its component."""
    script = f"""
import importlib, sys
for name in ("nats", "redis", "paho", "paho.mqtt", "paho.mqtt.client"):
    sys.modules[name] = None
names = []
for module_name in {connector_module_names!r}:
    module = importlib.import_module(module_name)
    hook = getattr(module, "engine_register_sources", None) or getattr(
        module, "engine_register_sinks"
    )
    names += [cls.type_name for cls in hook()]
print(" ".join(names))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "nats",
        "redis",
        "mqtt",
        "webhook",
        "alertmanager",
        "nats",
        "redis",
    ]


@pytest.mark.parametrize(
    ("module_name", "class_name", "blocked", "extra", "options"),
    [
        ("source_nats", "NatsSource", "nats", "nats", {"subject": "a"}),
        (
            "source_redis",
            "RedisSource",
            "redis",
            "redis",
            {"stream": "s", "group": "g", "consumer": "c"},
        ),
        (
            "source_mqtt",
            "MqttSource",
            "paho.mqtt.client",
            "mqtt",
            {"topics": ["a"], "client_id": "c"},
        ),
        ("sink_nats", "NatsSink", "nats", "nats", {"subject": "a"}),
        ("sink_redis", "RedisSink", "redis", "redis", {"stream": "s"}),
    ],
)
def test_a_connector_without_its_library_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    module_name: str,
    class_name: str,
    blocked: str,
    extra: str,
    options: dict[str, Any],
) -> None:
    """Building a connector whose library is missing is a usage error with the
    pip command that installs it."""
    import importlib

    module = importlib.import_module(f"engine.plugins.{module_name}")
    monkeypatch.setitem(sys.modules, blocked, None)
    context = RuntimeContext("sources[0] (x)", SystemClock(), tmp_path)

    with pytest.raises(UsageError) as error:
        getattr(module, class_name)(options, context)

    assert f"pip install 'burst-engine[{extra}]'" in str(error.value)
    assert str(error.value).startswith("sources[0] (x): ")
