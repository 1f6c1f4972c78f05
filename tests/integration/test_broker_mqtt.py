"""Source ``mqtt`` against the real Mosquitto broker: QoS 1, persistent
sessions, wildcards, and PUBACK only on commit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from engine.components import RuntimeContext
from engine.config import parse_config
from engine.errors import UsageError
from engine.events import NOT_JSON, NOT_OBJECT, EventDecoder

Reader = Callable[[Iterator[list[bytes]], int], list[bytes]]
Drainer = Callable[[Iterator[list[bytes]], float], list[bytes]]


def event_line(seconds: int, source: str = "web-1") -> bytes:
    event = {"timestamp": seconds, "event_type": "ERROR", "source": source}
    return json.dumps(event).encode()


def mqtt_client(client_id: str, clean: bool) -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
    )
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    return client


def publish(messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    """Publish and wait until the broker has each message."""
    client = mqtt_client("", clean=True)
    for topic, payload in messages:
        client.publish(topic, payload, qos=qos).wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def client_id(mqtt_broker: tuple[str, int], unique: str) -> Iterator[str]:
    """A client id whose persistent session is wiped after the test."""
    yield unique
    client = mqtt_client(unique, clean=True)
    time.sleep(0.1)
    client.disconnect()
    client.loop_stop()


def mqtt_source(
    client_id: str, topics: list[str], context: RuntimeContext, **extra: Any
) -> Any:
    from engine.plugins.source_mqtt import MqttSource

    options = {"topics": topics, "client_id": client_id, "poll": "100ms", **extra}
    return MqttSource(options, context)


def test_mqtt_source_yields_events_from_wildcard_topics(
    client_id: str, context: RuntimeContext, read_lines: Reader, drain_lines: Drainer
) -> None:
    """Messages on topics matching the filters come out as decodable lines;
    others do not."""
    source = mqtt_source(
        client_id, [f"{client_id}/+/events", f"{client_id}/all/#"], context
    )
    publish(
        [
            (f"{client_id}/web-1/events", event_line(1)),
            (f"{client_id}/all/deep/er", event_line(2)),
            (f"{client_id}/web-1/other", event_line(3)),
        ]
    )

    batches = source.batches()
    lines = read_lines(batches, 2) + drain_lines(batches, 0.3)
    source.close()
    events, bad = EventDecoder().decode_lines(lines)

    assert sorted(e.time_us for e in events) == [1_000_000, 2_000_000]
    assert bad == []


def test_mqtt_bad_messages_are_lines_the_decoder_reports_as_bad(
    client_id: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """Broken payloads reach the decoder whole and are reported as bad."""
    topic = f"{client_id}/events"
    source = mqtt_source(client_id, [topic], context)
    publish([(topic, b"\xff\xfe binary"), (topic, b"[1, 2]"), (topic, event_line(4))])

    lines = read_lines(source.batches(), 3)
    source.close()
    events, bad = EventDecoder().decode_lines(lines)

    assert [e.time_us for e in events] == [4_000_000]
    assert sorted(b.reason for b in bad) == sorted([NOT_JSON, NOT_OBJECT])


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_mqtt_uncommitted_messages_come_back_after_restart_and_committed_do_not(
    client_id: str,
    context: RuntimeContext,
    read_lines: Reader,
    drain_lines: Drainer,
    protocol: str,
) -> None:
    """Nothing is acknowledged before commit: a source restarted with the same
    client id gets exactly the messages read after the committed position."""
    topic = f"{client_id}/events"
    source = mqtt_source(client_id, [topic], context, protocol=protocol)
    batches = source.batches()
    publish([(topic, event_line(1)), (topic, event_line(2))])
    assert read_lines(batches, 2) == [event_line(1), event_line(2)]
    committed = source.position()
    publish([(topic, event_line(3))])
    assert read_lines(batches, 1) == [event_line(3)]
    source.commit(committed)
    source.close()

    again = mqtt_source(client_id, [topic], context, protocol=protocol)
    lines = drain_lines(again.batches(), 0.5)
    again.commit(again.position())
    again.close()
    third = mqtt_source(client_id, [topic], context, protocol=protocol)
    after_commit = drain_lines(third.batches(), 0.5)
    third.close()

    assert lines == [event_line(3)]
    assert after_commit == []


def test_mqtt_session_keeps_messages_published_while_the_engine_was_down(
    client_id: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """With the persistent session, messages published between two runs are
    delivered to the next run."""
    topic = f"{client_id}/events"
    mqtt_source(client_id, [topic], context).close()
    publish([(topic, event_line(7))])

    source = mqtt_source(client_id, [topic], context)
    lines = read_lines(source.batches(), 1)
    source.commit(source.position())
    source.close()

    assert lines == [event_line(7)]


def test_mqtt_qos0_messages_are_read_but_need_no_commit(
    client_id: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """A message published at QoS 0 is handed over and never counted as
    waiting for an acknowledgement."""
    topic = f"{client_id}/events"
    source = mqtt_source(client_id, [topic], context)
    publish([(topic, event_line(1))], qos=0)

    lines = read_lines(source.batches(), 1)
    position = source.position()
    source.close()

    assert lines == [event_line(1)]
    assert position == {"delivered": 0}


def test_mqtt_source_reports_an_unreachable_broker(
    mqtt_broker: tuple[str, int], context: RuntimeContext
) -> None:
    """A broker that refuses connections is a clear start-up error naming it."""
    from engine.plugins.source_mqtt import MqttSource

    options = {"topics": ["a"], "client_id": "x", "host": "127.0.0.1", "port": 1}
    with pytest.raises(
        UsageError, match=r"cannot connect to MQTT broker 127\.0\.0\.1:1"
    ):
        MqttSource(options, context)


def test_mqtt_source_options_reject_bad_topic_filters(
    connector_plugins: tuple[ModuleType, ...],
) -> None:
    """A wildcard that does not fill a level, or a '#' before the end, is an
    error at validation, as is session_expiry on MQTT 3.1.1."""
    rules = """
version: 1
sources:
  - type: mqtt
    client_id: engine
    topics: [ok/+/fine/#, bad+/x, a/#/b]
    session_expiry: 1h
rules:
  - name: R
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
sinks: []
"""
    with pytest.raises(UsageError) as error:
        parse_config(rules, "rules.yaml", extra_plugins=connector_plugins)

    rule = "a wildcard must fill a whole level, and '#' must come last"
    found = sorted((p.path, p.message) for p in error.value.problems)
    assert found == [
        ("sources[0].session_expiry", "only for protocol: '5'"),
        ("sources[0].topics", f"bad topic filter 'a/#/b' (item 2): {rule}"),
        ("sources[0].topics", f"bad topic filter 'bad+/x' (item 1): {rule}"),
    ]
