"""Fixtures for tests against the real brokers on this machine.

NATS (JetStream) on 127.0.0.1:4222, Redis on 127.0.0.1:6379 and Mosquitto on
127.0.0.1:1883. When a broker or its client library is missing, its tests
are skipped with the reason, except when the environment variable ``CI`` is
set: there they fail, so that a broken CI machine cannot pass by skipping.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from engine.clock import SystemClock
from engine.components import RuntimeContext
from engine.plugin_manager import BUILTIN_MODULES

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
#: The longest any test waits for messages to arrive.
WAIT_S = 5.0

CONNECTOR_MODULES = (
    "engine.plugins.source_nats",
    "engine.plugins.source_redis",
    "engine.plugins.source_mqtt",
    "engine.plugins.sink_webhook",
    "engine.plugins.sink_alertmanager",
    "engine.plugins.sink_nats",
    "engine.plugins.sink_redis",
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so broker tests must not be skipped)")
    pytest.skip(reason)


def _require(host: str, port: int, what: str, library: str, extra: str) -> None:
    try:
        importlib.import_module(library)
    except ImportError:
        _unavailable(f"{library} is not installed: pip install 'burst-engine[{extra}]'")
    try:
        socket.create_connection((host, port), timeout=1.0).close()
    except OSError as error:
        _unavailable(f"{what} is not reachable at {host}:{port}: {error}")


@pytest.fixture
def nats_server() -> str:
    """The URL of a reachable NATS server with JetStream."""
    _require("127.0.0.1", 4222, "NATS", "nats", "nats")
    return NATS_URL


@pytest.fixture
def redis_server() -> str:
    """The URL of a reachable Redis server."""
    _require("127.0.0.1", 6379, "Redis", "redis", "redis")
    return REDIS_URL


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """Host and port of a reachable MQTT broker."""
    _require(MQTT_HOST, MQTT_PORT, "the MQTT broker", "paho.mqtt.client", "mqtt")
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def unique() -> str:
    """A name no other test (or earlier run) uses: for streams, topics, groups."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def context(tmp_path: Path) -> RuntimeContext:
    """What the engine gives a source or sink, with the real clock."""
    return RuntimeContext("test", SystemClock(), tmp_path)


@pytest.fixture
def read_lines() -> Callable[[Iterator[list[bytes]], int], list[bytes]]:
    """Collect lines from a source's batches until ``count`` arrived, or
    until the deadline (then fewer come back)."""

    def read(batches: Iterator[list[bytes]], count: int) -> list[bytes]:
        lines: list[bytes] = []
        deadline = time.monotonic() + WAIT_S
        while len(lines) < count and time.monotonic() < deadline:
            lines += next(batches)
        return lines

    return read


@pytest.fixture
def drain_lines() -> Callable[[Iterator[list[bytes]], float], list[bytes]]:
    """Collect every line a source yields within ``seconds`` (to show that
    nothing more comes)."""

    def drain(batches: Iterator[list[bytes]], seconds: float) -> list[bytes]:
        lines: list[bytes] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            lines += next(batches)
        return lines

    return drain


@pytest.fixture
def connector_module_names() -> tuple[str, ...]:
    """The modules of the broker and HTTP connectors."""
    return CONNECTOR_MODULES


@pytest.fixture
def connector_plugins() -> tuple[ModuleType, ...]:
    """The connector modules the engine does not already load as built-ins,
    to hand to ``parse_config(extra_plugins=...)``."""
    return tuple(
        importlib.import_module(name)
        for name in CONNECTOR_MODULES
        if name not in BUILTIN_MODULES
    )
