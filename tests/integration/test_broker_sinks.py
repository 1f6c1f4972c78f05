"""Sinks ``nats`` and ``redis`` against the real servers: what they publish is
what a downstream consumer reads."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.alerts import Alert
from engine.asyncloop import LoopThread
from engine.clock import SimulatedClock
from engine.components import RuntimeContext


@pytest.fixture
def sim_context(tmp_path: Path) -> RuntimeContext:
    return RuntimeContext("sinks[0] (test)", SimulatedClock(), tmp_path)


def make_alert(sequence: int = 1) -> Alert:
    return Alert(
        rule="ERROR_BURST",
        severity="high",
        status="firing",
        labels={"source": "web-3"},
        group={"source": "web-3"},
        starts_at_us=1_700_000_000_000_000,
        ends_at_us=None,
        incident_id="1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        sequence=sequence,
        evidence={"count": 7, "threshold": 7, "window": "10s"},
        summary="7 ERROR events from web-3 in 10s window",
    )


# -- redis -----------------------------------------------------------------------


@pytest.fixture
def redis_client(redis_server: str, unique: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_server)
    yield client
    client.delete(unique)
    client.close()


def test_redis_sink_appends_the_alert_json_to_the_stream(
    redis_client: Any, unique: str, sim_context: RuntimeContext
) -> None:
    """A reader of the stream finds one entry per alert, field ``alert``."""
    from engine.plugins.sink_redis import RedisSink

    sink = RedisSink({"stream": unique}, sim_context)
    sink.send(make_alert(1))
    sink.send(make_alert(2))
    sink.close()

    entries = redis_client.xrange(unique)
    assert [json.loads(fields[b"alert"]) for _, fields in entries] == [
        make_alert(1).to_dict(),
        make_alert(2).to_dict(),
    ]


def test_redis_sink_maxlen_trims_the_stream(
    redis_client: Any, unique: str, sim_context: RuntimeContext
) -> None:
    """With maxlen the stream is trimmed as it grows (approximately, in
    whole nodes of entries, as MAXLEN ~ does)."""
    from engine.plugins.sink_redis import RedisSink

    sink = RedisSink({"stream": unique, "maxlen": 10}, sim_context)
    for sequence in range(1, 301):
        sink.send(make_alert(sequence))
    sink.close()

    length = redis_client.xlen(unique)
    assert 10 <= length < 300


# -- nats ------------------------------------------------------------------------


@pytest.fixture
def subscriber_loop(nats_server: str) -> Iterator[LoopThread]:
    loop = LoopThread("test-subscriber")
    yield loop
    loop.stop()


def test_nats_sink_publishes_the_alert_json_to_the_subject(
    subscriber_loop: LoopThread, unique: str, sim_context: RuntimeContext
) -> None:
    """A subscriber on the subject receives the alert's JSON form."""
    import nats

    from engine.plugins.sink_nats import NatsSink

    async def subscribe() -> Any:
        nc = await nats.connect("nats://127.0.0.1:4222")
        return nc, await nc.subscribe(f"{unique}.alerts")

    nc, subscription = subscriber_loop.run(subscribe(), 5)
    sink = NatsSink({"subject": f"{unique}.alerts"}, sim_context)
    sink.send(make_alert())
    sink.close()
    message = subscriber_loop.run(subscription.next_msg(timeout=5), 6)
    subscriber_loop.run(nc.close(), 5)

    assert json.loads(message.data) == make_alert().to_dict()


def test_nats_sink_on_jetstream_stores_a_repeated_notification_once(
    subscriber_loop: LoopThread, unique: str, sim_context: RuntimeContext
) -> None:
    """JetStream publishes carry the incident id and sequence as the message
    id, so the same notification sent twice is stored once."""
    import nats
    import nats.js.errors

    from engine.plugins.sink_nats import NatsSink

    async def create() -> Any:
        nc = await nats.connect("nats://127.0.0.1:4222")
        await nc.jetstream().add_stream(name=unique, subjects=[f"{unique}.alerts"])
        return nc

    async def stored_and_delete(nc: Any) -> int:
        info = await nc.jetstream().stream_info(unique)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(unique)
        await nc.close()
        return int(info.state.messages)

    nc = subscriber_loop.run(create(), 5)
    sink = NatsSink({"subject": f"{unique}.alerts", "jetstream": True}, sim_context)
    sink.send(make_alert(1))
    sink.send(make_alert(1))
    sink.send(make_alert(2))
    sink.close()

    assert subscriber_loop.run(stored_and_delete(nc), 5) == 2


def test_nats_sink_on_jetstream_fails_when_no_stream_takes_the_subject(
    nats_server: str, unique: str, sim_context: RuntimeContext
) -> None:
    """Without a stream on the subject the publish raises after its retries,
    so the delivery queue can dead-letter the alert."""
    import nats.js.errors

    from engine.plugins.sink_nats import NatsSink

    sink = NatsSink(
        {"subject": f"{unique}.alerts", "jetstream": True, "retries": 1},
        sim_context,
    )
    try:
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            sink.send(make_alert())
    finally:
        sink.close()
