"""Source ``redis`` against the real Redis server: consumer groups, XACK on
commit, and this consumer's pending entries read again after a restart."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.components import RuntimeContext
from engine.errors import UsageError
from engine.events import MISSING_FIELD, NOT_JSON, EventDecoder

Reader = Callable[[Iterator[list[bytes]], int], list[bytes]]
Drainer = Callable[[Iterator[list[bytes]], float], list[bytes]]


def event_line(seconds: int, source: str = "web-1") -> bytes:
    event = {"timestamp": seconds, "event_type": "ERROR", "source": source}
    return json.dumps(event).encode()


@pytest.fixture
def client(redis_server: str) -> Any:
    import redis

    connection = redis.Redis.from_url(redis_server)
    yield connection
    connection.close()


@pytest.fixture
def stream(client: Any, unique: str) -> Iterator[str]:
    """A stream key, deleted after the test."""
    yield unique
    client.delete(unique)


def add(client: Any, stream: str, *lines: bytes, field: str = "event") -> list[bytes]:
    return [client.xadd(stream, {field: line}) for line in lines]


def pending_count(client: Any, stream: str, group: str = "engine") -> int:
    return int(client.xpending(stream, group)["pending"])


def redis_source(stream: str, context: RuntimeContext, **extra: Any) -> Any:
    from engine.plugins.source_redis import RedisSource

    options = {
        "stream": stream,
        "group": "engine",
        "consumer": "engine-1",
        "block": "100ms",
        **extra,
    }
    return RedisSource(options, context)


def test_redis_source_yields_entries_as_decodable_lines(
    client: Any, stream: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """Events added to the stream come out as lines the engine decodes; the
    stream and group are created when missing."""
    source = redis_source(stream, context)
    add(client, stream, event_line(1), event_line(2, "web-2"))

    lines = read_lines(source.batches(), 2)
    source.close()
    events, bad = EventDecoder().decode_lines(lines)

    assert [(e.time_us, e.source) for e in events] == [
        (1_000_000, "web-1"),
        (2_000_000, "web-2"),
    ]
    assert bad == []


def test_redis_bad_entries_are_lines_the_decoder_reports_as_bad(
    client: Any, stream: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """A broken event, and an entry without the event field, reach the decoder
    as bad lines; the second shows the entry's fields."""
    source = redis_source(stream, context, field="payload")
    add(client, stream, b"{oops", field="payload")
    add(client, stream, b"value", field="something_else")
    add(client, stream, event_line(3), field="payload")

    lines = read_lines(source.batches(), 3)
    source.close()
    events, bad = EventDecoder().decode_lines(lines)

    assert [e.time_us for e in events] == [3_000_000]
    assert [b.reason for b in bad] == [NOT_JSON, MISSING_FIELD]
    assert json.loads(bad[1].raw) == {"something_else": "value"}


def test_redis_nothing_is_acknowledged_until_commit(
    client: Any, stream: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """Read entries stay pending in the group until commit; commit acknowledges
    exactly up to the position (sent before the next read, or at close)."""
    source = redis_source(stream, context)
    add(client, stream, event_line(1), event_line(2), event_line(3))
    batches = source.batches()
    assert len(read_lines(batches, 3)) == 3

    before = pending_count(client, stream)
    source.commit({"delivered": 2})
    next(batches)
    after_first_two = pending_count(client, stream)
    source.commit(source.position())
    source.close()
    after_close = pending_count(client, stream)

    assert (before, after_first_two, after_close) == (3, 1, 0)


def test_redis_committed_entries_are_not_read_again_after_restart(
    client: Any,
    stream: str,
    context: RuntimeContext,
    read_lines: Reader,
    drain_lines: Drainer,
) -> None:
    """A new source with the same group and consumer gets nothing committed."""
    source = redis_source(stream, context)
    add(client, stream, event_line(1), event_line(2))
    assert len(read_lines(source.batches(), 2)) == 2
    source.commit(source.position())
    source.close()

    again = redis_source(stream, context)
    lines = drain_lines(again.batches(), 0.3)
    again.close()

    assert lines == []


def test_redis_uncommitted_entries_are_read_again_after_restart_before_new_ones(
    client: Any,
    stream: str,
    context: RuntimeContext,
    read_lines: Reader,
    drain_lines: Drainer,
) -> None:
    """A restarted consumer first gets its pending entries (read but not
    committed), in order, then entries added since."""
    source = redis_source(stream, context, batch_size=1)
    batches = source.batches()
    add(client, stream, event_line(1), event_line(2), event_line(3))
    assert len(read_lines(batches, 1)) == 1
    committed = source.position()
    assert len(read_lines(batches, 2)) == 2
    source.commit(committed)
    source.close()
    add(client, stream, event_line(4))

    again = redis_source(stream, context, batch_size=1)
    lines = drain_lines(again.batches(), 0.3)
    again.close()

    assert lines == [event_line(2), event_line(3), event_line(4)]


def test_redis_checkpoint_spans_the_unacknowledged_entries(
    client: Any, stream: str, context: RuntimeContext, read_lines: Reader
) -> None:
    """A checkpoint gives the first and last ids of the entries up to the
    position that are not acknowledged yet."""
    source = redis_source(stream, context)
    ids = add(client, stream, *(event_line(n) for n in range(5)))
    assert len(read_lines(source.batches(), 5)) == 5

    source.commit({"delivered": 1})
    checkpoint = source.checkpoint({"delivered": 4})
    source.close()

    assert checkpoint == {"unacknowledged": [ids[1].decode(), ids[3].decode()]}


def test_redis_resume_after_skips_entries_a_restored_state_holds(
    client: Any,
    stream: str,
    context: RuntimeContext,
    read_lines: Reader,
    drain_lines: Drainer,
) -> None:
    """After resume_after(checkpoint) the pending entries it covers are not
    handed over again, later ones are, and all are acknowledged on commit."""
    source = redis_source(stream, context)
    batches = source.batches()
    add(client, stream, event_line(1), event_line(2))
    assert len(read_lines(batches, 2)) == 2
    saved = source.checkpoint(source.position())
    add(client, stream, event_line(3))
    assert len(read_lines(batches, 1)) == 1
    source.close()  # died before committing anything

    again = redis_source(stream, context)
    again.resume_after(saved)
    lines = drain_lines(again.batches(), 0.3)
    again.commit(again.position())
    again.close()

    assert lines == [event_line(3)]
    assert pending_count(client, stream) == 0


def test_redis_group_created_at_latest_ignores_earlier_entries(
    client: Any,
    stream: str,
    context: RuntimeContext,
    read_lines: Reader,
    drain_lines: Drainer,
) -> None:
    """start: latest makes a new group begin after the entries already there."""
    add(client, stream, event_line(1))
    source = redis_source(stream, context, start="latest")
    add(client, stream, event_line(2))

    lines = drain_lines(source.batches(), 0.3)
    source.close()

    assert lines == [event_line(2)]


def test_redis_source_reports_an_unreachable_server_without_its_password(
    redis_server: str, context: RuntimeContext
) -> None:
    """A server that does not answer is a clear start-up error; the password
    in the URL is not shown."""
    from engine.plugins.source_redis import RedisSource

    options = {
        "url": "redis://:hunter2@127.0.0.1:1/0",
        "stream": "s",
        "group": "g",
        "consumer": "c",
        "connect_timeout": "1s",
    }
    with pytest.raises(UsageError) as error:
        RedisSource(options, context)

    assert "cannot connect to Redis at redis://***@127.0.0.1:1/0" in str(error.value)
    assert "hunter2" not in str(error.value)
