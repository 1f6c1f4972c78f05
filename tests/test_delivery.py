"""Delivery queues: a sink that fails or blocks never holds the engine up;
what cannot be delivered is counted and dead-lettered with the reason."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from engine.alerts import Alert
from engine.clock import SimulatedClock
from engine.components import Sink
from engine.delivery import (
    QUEUE_FULL,
    SEND_FAILED,
    SHUTDOWN,
    DeliveryCounts,
    DeliveryQueue,
)

#: Long enough for a worker thread to finish a few in-memory calls.
CLOSE_S = 5.0


def make_alert(sequence: int) -> Alert:
    return Alert(
        rule="BURST",
        severity="high",
        status="firing",
        labels={"source": "web-1"},
        group={"source": "web-1"},
        starts_at_us=sequence * 1_000_000,
        ends_at_us=None,
        incident_id=f"incident-{sequence}",
        sequence=sequence,
        evidence={"count": 3},
        summary=f"alert {sequence}",
    )


class RecordingSink(Sink):
    """Keeps what it receives; fails for sequences in ``failing``; with
    ``gate`` set, each send waits until the gate opens."""

    type_name: ClassVar[str] = "recording"

    def __init__(
        self, failing: set[int] | None = None, gate: threading.Event | None = None
    ) -> None:
        self.received: list[int] = []
        self.failing = failing or set()
        self.gate = gate
        self.started = threading.Event()
        self.calls: list[str] = []

    def send(self, alert: Alert) -> None:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        if alert.sequence in self.failing:
            raise ConnectionError(f"receiver refused alert {alert.sequence}")
        self.received.append(alert.sequence)

    def flush(self) -> None:
        self.calls.append("flush")

    def close(self) -> None:
        self.calls.append("close")


def dead_letters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_alerts_are_delivered_in_order_and_the_sink_closed_by_close() -> None:
    """Every queued alert reaches the sink, in order, before close returns;
    the sink is flushed and closed."""
    sink = RecordingSink()
    queue = DeliveryQueue(sink, "recording")

    for sequence in range(1, 6):
        queue.send(make_alert(sequence))
    queue.close(CLOSE_S)

    assert sink.received == [1, 2, 3, 4, 5]
    assert sink.calls[-2:] == ["flush", "close"]
    assert queue.counts() == DeliveryCounts(delivered=5)


def test_a_failing_alert_is_dead_lettered_with_the_reason_and_others_go_on(
    tmp_path: Path,
) -> None:
    """An alert whose send raises is counted as failed and written to the dead
    letters with the error; the alerts after it are still delivered."""
    path = tmp_path / "dead" / "alerts.jsonl"
    sink = RecordingSink(failing={2})
    clock = SimulatedClock(1_700_000_000_000_000)
    queue = DeliveryQueue(sink, "hook", dead_letter_path=path, clock=clock)

    for sequence in (1, 2, 3):
        queue.send(make_alert(sequence))
    queue.close(CLOSE_S)

    (record,) = dead_letters(path)
    assert sink.received == [1, 3]
    assert queue.counts() == DeliveryCounts(delivered=2, failed=1, dead_lettered=1)
    assert record["reason"] == SEND_FAILED
    assert record["detail"] == "ConnectionError: receiver refused alert 2"
    assert record["sink"] == "hook"
    assert record["failed_at"] == "2023-11-14T22:13:20.000Z"
    assert record["alert"] == make_alert(2).to_dict()


def test_send_never_waits_for_a_blocked_sink_and_overflow_is_dead_lettered(
    tmp_path: Path,
) -> None:
    """With the sink stuck on the first alert, max_pending more wait and the
    rest are set aside as queue_full; send returns every time."""
    path = tmp_path / "alerts.dead.jsonl"
    gate = threading.Event()
    sink = RecordingSink(gate=gate)
    queue = DeliveryQueue(sink, "slow", max_pending=3, dead_letter_path=path)

    queue.send(make_alert(1))
    assert sink.started.wait(CLOSE_S)
    for sequence in range(2, 9):
        queue.send(make_alert(sequence))
    while_blocked = queue.counts()
    waiting = [alert.sequence for alert in queue.pending_alerts()]
    gate.set()
    queue.close(CLOSE_S)

    assert while_blocked == DeliveryCounts(overflowed=4, dead_lettered=4)
    assert waiting == [1, 2, 3, 4]
    assert sink.received == [1, 2, 3, 4]
    assert [r["alert"]["sequence"] for r in dead_letters(path)] == [5, 6, 7, 8]
    assert {r["reason"] for r in dead_letters(path)} == {QUEUE_FULL}
    assert queue.counts().delivered == 4


def test_close_gives_up_on_a_stuck_sink_and_dead_letters_what_is_left(
    tmp_path: Path,
) -> None:
    """close returns after its timeout even though the sink never answers,
    without closing it; the alert in flight and those waiting are counted as
    abandoned."""
    path = tmp_path / "alerts.dead.jsonl"
    gate = threading.Event()
    sink = RecordingSink(gate=gate)
    queue = DeliveryQueue(sink, "stuck", dead_letter_path=path)
    queue.send(make_alert(1))
    assert sink.started.wait(CLOSE_S)
    queue.send(make_alert(2))

    queue.close(timeout_s=0.1)
    counts = queue.counts()
    calls_at_close = list(sink.calls)
    gate.set()  # let the worker thread end

    assert counts == DeliveryCounts(abandoned=2, dead_lettered=2)
    assert [r["reason"] for r in dead_letters(path)] == [SHUTDOWN, SHUTDOWN]
    assert "close" not in calls_at_close


def test_an_answer_arriving_after_close_gave_up_changes_no_count() -> None:
    """Once close has abandoned an alert, its late delivery is not counted
    a second time."""
    gate = threading.Event()
    sink = RecordingSink(gate=gate)
    queue = DeliveryQueue(sink, "late")
    queue.send(make_alert(1))
    assert sink.started.wait(CLOSE_S)
    queue.close(timeout_s=0.05)

    gate.set()
    queue._worker.join(CLOSE_S)

    assert sink.received == [1]
    assert queue.counts() == DeliveryCounts(abandoned=1)


def test_alerts_sent_after_close_are_counted_as_abandoned() -> None:
    """A queue that is closed accepts nothing more, and says so in its counts."""
    queue = DeliveryQueue(RecordingSink(), "closed")
    queue.close(CLOSE_S)

    queue.send(make_alert(1))

    assert queue.counts() == DeliveryCounts(abandoned=1)


def test_without_a_dead_letter_file_undelivered_alerts_are_still_counted() -> None:
    """Counts do not depend on having a dead-letter file; none is dead-lettered."""
    queue = DeliveryQueue(RecordingSink(failing={1, 2}), "no-file")

    for sequence in (1, 2, 3):
        queue.send(make_alert(sequence))
    queue.close(CLOSE_S)

    counts = queue.counts()
    assert counts == DeliveryCounts(delivered=1, failed=2)
    assert counts.undelivered == 2


def test_wait_idle_reports_whether_everything_queued_was_handled() -> None:
    """wait_idle is False while the sink is stuck and True once it is done."""
    gate = threading.Event()
    queue = DeliveryQueue(RecordingSink(gate=gate), "idle")
    queue.send(make_alert(1))

    stuck = queue.wait_idle(0.05)
    gate.set()
    done = queue.wait_idle(CLOSE_S)
    queue.close(CLOSE_S)

    assert (stuck, done) == (False, True)


def test_a_sink_whose_close_raises_does_not_break_close() -> None:
    """Errors from the sink's flush or close are logged, not raised."""

    class BrokenClose(RecordingSink):
        def close(self) -> None:
            raise OSError("disk gone")

    sink = BrokenClose()
    queue = DeliveryQueue(sink, "broken")
    queue.send(make_alert(1))

    queue.close(CLOSE_S)

    assert sink.received == [1]
    assert queue.counts() == DeliveryCounts(delivered=1)


def test_max_pending_must_be_positive() -> None:
    """A queue that could hold nothing is refused with the value named."""
    with pytest.raises(ValueError, match="max_pending must be at least 1, got 0"):
        DeliveryQueue(RecordingSink(), "zero", max_pending=0)
