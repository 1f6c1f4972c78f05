"""The pieces connectors share: the book of unacknowledged messages, runs of
numbers, one message per line, hidden passwords, retry waits, and the
asyncio loop thread."""

from __future__ import annotations

import asyncio
import random

import pytest

from engine.asyncloop import LoopThread
from engine.clock import SimulatedClock
from engine.connectors import (
    PendingAcks,
    delivered_of,
    from_ranges,
    one_line,
    redact_url,
    to_ranges,
)
from engine.retry import PermanentError, RetryPolicy


def test_pending_acks_hands_back_each_message_once_whatever_the_commit_order() -> None:
    """Committing a later position, then an earlier one, acknowledges each
    message exactly once, in delivery order."""
    pending: PendingAcks[str, str] = PendingAcks()
    for key in "abcd":
        pending.add(key, key.upper())

    later = pending.take_through(3)
    earlier = pending.take_through(1)
    rest = pending.take_through(4)

    assert (later, earlier, rest) == (["A", "B", "C"], [], ["D"])
    assert len(pending) == 0


def test_pending_acks_keeps_a_redelivered_message_in_its_first_place() -> None:
    """A key that arrives again while pending is refused, keeps its number and
    takes the newest handle."""
    pending: PendingAcks[int, str] = PendingAcks()
    pending.add(7, "first")
    pending.add(8, "other")

    again = pending.add(7, "second")

    assert again is False
    assert pending.delivered == 2
    assert pending.keys_through(1) == [7]
    assert pending.take_through(1) == ["second"]


def test_ranges_round_trip_and_merge_consecutive_numbers() -> None:
    """Sorted runs are merged; from_ranges gives the numbers back."""
    numbers = [9, 1, 2, 3, 7, 10]

    ranges = to_ranges(numbers)

    assert ranges == [[1, 3], [7, 7], [9, 10]]
    assert from_ranges(ranges) == set(numbers)


def test_one_line_keeps_one_message_on_one_line() -> None:
    """Line breaks become spaces; a message without any is returned as is."""
    assert one_line(b'{\n  "a": 1\r\n}') == b'{   "a": 1  }'
    assert one_line(b'{"a": 1}') == b'{"a": 1}'


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://user:secret@host:4222", "nats://user:***@host:4222"),
        ("redis://:secret@host/0", "redis://***@host/0"),
        ("http://host:8080/path", "http://host:8080/path"),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    """The password goes; user, host, port and path stay."""
    assert redact_url(url) == shown


def test_delivered_of_refuses_a_position_of_another_kind() -> None:
    """A position that is not one of ours is an error naming it."""
    with pytest.raises(ValueError, match="not a position of this source: 42"):
        delivered_of(42)


def test_retry_waits_double_within_their_jitter_and_stop_at_the_ceiling() -> None:
    """Wait n lies in [c/2, c] with c = min(max_backoff, backoff * 2**(n-1))."""
    policy = RetryPolicy(
        retries=6, backoff_us=100, max_backoff_us=1000, rng=random.Random(1)
    )

    for failures, ceiling in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000)]:
        waits = [policy.wait_us(failures) for _ in range(50)]
        assert ceiling // 2 <= min(waits) and max(waits) <= ceiling


def test_retry_gives_up_after_the_retries_and_never_retries_a_permanent_error() -> None:
    """1 + retries attempts, then the last error; a PermanentError at once."""
    policy = RetryPolicy(retries=2, backoff_us=10)
    clock = SimulatedClock()
    attempts: list[int] = []

    def failing() -> None:
        attempts.append(1)
        raise ConnectionError("down")

    def rejected() -> None:
        attempts.append(2)
        raise PermanentError("rejected")

    with pytest.raises(ConnectionError):
        policy.call(failing, clock)
    with pytest.raises(PermanentError):
        policy.call(rejected, clock)

    assert attempts == [1, 1, 1, 2]


def test_loop_thread_runs_coroutines_and_gives_up_at_the_deadline() -> None:
    """run returns a coroutine's result; one that takes too long is cancelled
    and raises TimeoutError."""
    loop = LoopThread("test")

    async def answer() -> int:
        return 42

    async def forever() -> None:
        await asyncio.Event().wait()

    try:
        result = loop.run(answer(), 5)
        with pytest.raises(TimeoutError):
            loop.run(forever(), 0.05)
    finally:
        loop.stop()

    assert result == 42
    assert loop.loop.is_closed()
