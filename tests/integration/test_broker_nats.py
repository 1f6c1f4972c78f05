"""Source ``nats`` against the real NATS server: JetStream durable consumers
acknowledged on commit, re-delivery after a restart, and core subjects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from engine.components import RuntimeContext
from engine.config import parse_config
from engine.errors import UsageError
from engine.events import MISSING_FIELD, NOT_JSON, EventDecoder

Reader = Callable[[Iterator[list[bytes]], int], list[bytes]]
Drainer = Callable[[Iterator[list[bytes]], float], list[bytes]]


def event_line(seconds: int, source: str = "web-1") -> bytes:
    event = {"timestamp": seconds, "event_type": "ERROR", "source": source}
    return json.dumps(event).encode()


def publish(subject: str, payloads: list[bytes], jetstream: bool = True) -> None:
    import nats

    async def run() -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        for payload in payloads:
            if jetstream:
                await nc.jetstream().publish(subject, payload)
            else:
                await nc.publish(subject, payload)
        await nc.flush()
        await nc.close()

    asyncio.run(run())


def ack_pending(stream: str, durable: str) -> int:
    """How many delivered messages the server still waits acknowledgements for."""
    import nats

    async def run() -> int:
        nc = await nats.connect("nats://127.0.0.1:4222")
        info = await nc.jetstream().consumer_info(stream, durable)
        await nc.close()
        return int(info.num_ack_pending)

    return asyncio.run(run())


def wait_for_ack_pending(stream: str, durable: str, expected: int) -> int:
    deadline = time.monotonic() + 5
    while (found := ack_pending(stream, durable)) != expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return found


@pytest.fixture
def stream(nats_server: str, unique: str) -> Iterator[str]:
    """A JetStream stream name, deleted after the test."""
    yield unique
    import nats
    import nats.js.errors

    async def delete() -> None:
        nc = await nats.connect(nats_server)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(unique)
        await nc.close()

    asyncio.run(delete())


def jetstream_source(stream: str, context: RuntimeContext, **extra: Any) -> Any:
    from engine.plugins.source_nats import NatsSource

    options = {
        "subject": f"{stream}.events",
        "stream": stream,
        "durable": "engine",
        "create_stream": True,
        "fetch_timeout": "100ms",
        **extra,
    }
    return NatsSource(options, context)


def test_jetstream_source_yields_published_events_as_decodable_lines(
    stream: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """Events published to the stream come out as lines the engine decodes."""
    source = jetstream_source(stream, context)
    publish(f"{stream}.events", [event_line(1), event_line(2, "web-2")])

    lines = read_lines(source.batches(), 2)
    source.close()
    events, bad = EventDecoder().decode_lines(lines)

    assert [(e.time_us, e.source) for e in events] == [
        (1_000_000, "web-1"),
        (2_000_000, "web-2"),
    ]
    assert bad == []


def test_jetstream_bad_messages_are_lines_the_decoder_reports_as_bad(
    stream: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """Broken messages reach the decoder whole, one message per line, and are
    reported with their reason; a pretty-printed event is still an event."""
    pretty = json.dumps(
        {"timestamp": 5, "event_type": "ERROR", "source": "web-1"}, indent=2
    ).encode()
    two_in_one = event_line(1) + b"\n" + event_line(2)
    source = jetstream_source(stream, context)
    publish(
        f"{stream}.events",
        [b"not json", b'{"event_type": "ERROR"}', pretty, two_in_one],
    )

    lines = read_lines(source.batches(), 4)
    source.close()
    events, bad = EventDecoder().decode_lines(lines)

    assert [e.time_us for e in events] == [5_000_000]
    assert [b.reason for b in bad] == [NOT_JSON, MISSING_FIELD, NOT_JSON]
    assert bad[0].raw == b"not json"


def test_jetstream_nothing_is_acknowledged_until_commit(
    stream: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """Read messages stay unacknowledged on the server until commit is called,
    and commit from another thread acknowledges exactly up to the position."""
    source = jetstream_source(stream, context)
    publish(f"{stream}.events", [event_line(n) for n in range(3)])
    batches = source.batches()
    assert len(read_lines(batches, 3)) == 3
    first_two = {"delivered": 2}

    before = ack_pending(stream, "engine")
    source.commit(first_two)
    after_first_two = wait_for_ack_pending(stream, "engine", 1)
    source.commit(source.position())
    after_all = wait_for_ack_pending(stream, "engine", 0)
    source.close()

    assert (before, after_first_two, after_all) == (3, 1, 0)


def test_jetstream_committed_messages_are_not_delivered_again_after_restart(
    stream: str, context: RuntimeContext, read_lines: Reader, drain_lines: Drainer
) -> None:
    """A new source on the same durable consumer gets nothing already committed."""
    source = jetstream_source(stream, context)
    publish(f"{stream}.events", [event_line(n) for n in range(3)])
    assert len(read_lines(source.batches(), 3)) == 3
    source.commit(source.position())
    source.close()

    again = jetstream_source(stream, context)
    lines = drain_lines(again.batches(), 0.5)
    again.close()

    assert lines == []


def test_jetstream_uncommitted_messages_come_back_after_restart(
    stream: str, context: RuntimeContext, read_lines: Reader, drain_lines: Drainer
) -> None:
    """Messages read after the committed position are delivered again to the
    next source with the same durable name, and only those."""
    source = jetstream_source(stream, context)
    batches = source.batches()
    publish(f"{stream}.events", [event_line(1), event_line(2)])
    assert len(read_lines(batches, 2)) == 2
    committed = source.position()
    publish(f"{stream}.events", [event_line(3), event_line(4)])
    assert len(read_lines(batches, 2)) == 2
    source.commit(committed)
    source.close()

    again = jetstream_source(stream, context)
    lines = drain_lines(again.batches(), 0.5)
    again.close()

    assert lines == [event_line(3), event_line(4)]


def test_jetstream_checkpoint_lists_the_unacknowledged_stream_sequences(
    stream: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """A checkpoint names, as runs of stream sequences, the messages up to the
    position that are not acknowledged yet."""
    source = jetstream_source(stream, context)
    publish(f"{stream}.events", [event_line(n) for n in range(5)])
    assert len(read_lines(source.batches(), 5)) == 5

    source.commit({"delivered": 1})
    checkpoint = source.checkpoint({"delivered": 4})
    source.close()

    assert checkpoint == {"unacknowledged": [[2, 4]]}


def test_jetstream_resume_after_skips_messages_a_restored_state_holds(
    stream: str, context: RuntimeContext, read_lines: Reader, drain_lines: Drainer
) -> None:
    """After resume_after(checkpoint), re-delivered messages the checkpoint
    covers are not handed over again, later ones are, and all are
    acknowledged on commit."""
    source = jetstream_source(stream, context)
    batches = source.batches()
    publish(f"{stream}.events", [event_line(1), event_line(2)])
    assert len(read_lines(batches, 2)) == 2
    saved = source.checkpoint(source.position())
    publish(f"{stream}.events", [event_line(3)])
    assert len(read_lines(batches, 1)) == 1
    source.close()  # died before committing anything

    again = jetstream_source(stream, context)
    again.resume_after(saved)
    lines = drain_lines(again.batches(), 0.5)
    again.commit(again.position())
    pending = wait_for_ack_pending(stream, "engine", 0)
    again.close()

    assert lines == [event_line(3)]
    assert pending == 0


def test_core_nats_source_reads_wildcard_subjects(
    nats_server: str, unique: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """With jetstream: false the source reads plain subjects matching a wildcard."""
    from engine.plugins.source_nats import NatsSource

    source = NatsSource(
        {"subject": f"{unique}.*", "jetstream": False, "fetch_timeout": "100ms"},
        context,
    )
    publish(f"{unique}.a", [event_line(1)], jetstream=False)
    publish(f"{unique}.b", [event_line(2)], jetstream=False)
    publish(f"other{unique}.a", [event_line(3)], jetstream=False)

    lines = read_lines(source.batches(), 2)
    source.commit(source.position())
    source.close()

    assert sorted(lines) == [event_line(1), event_line(2)]


def test_nats_source_reports_an_unreachable_server_as_a_usage_error(
    nats_server: str, context: RuntimeContext
) -> None:
    """A server that does not answer is a clear start-up error naming it."""
    from engine.plugins.source_nats import NatsSource

    options = {
        "servers": "nats://user:hunter2@127.0.0.1:1",
        "subject": "x",
        "jetstream": False,
        "connect_timeout": "1s",
    }
    with pytest.raises(UsageError) as error:
        NatsSource(options, context)

    assert "cannot connect to NATS at nats://user:***@127.0.0.1:1" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_nats_source_options_need_stream_and_durable_with_jetstream(
    connector_plugins: tuple[ModuleType, ...],
) -> None:
    """Validation names the missing JetStream keys and options that do not apply."""
    rules = """
version: 1
sources:
  - {type: nats, subject: a.b, queue: workers}
  - {type: nats, subject: a.b, jetstream: false, durable: x}
rules:
  - name: R
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
sinks: []
"""
    with pytest.raises(UsageError) as error:
        parse_config(rules, "rules.yaml", extra_plugins=connector_plugins)

    messages = sorted((p.path, p.message) for p in error.value.problems)
    assert messages == [
        ("sources[0]", "missing key: 'durable' (required with jetstream)"),
        ("sources[0]", "missing key: 'stream' (required with jetstream)"),
        ("sources[0].queue", "only for core NATS (jetstream: false)"),
        ("sources[1].durable", "only for jetstream: true"),
    ]
