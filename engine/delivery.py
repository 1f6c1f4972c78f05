"""Delivery queues: a failing or slow sink never blocks the engine.

:class:`DeliveryQueue` wraps one sink with a bounded queue and a worker
thread of its own. The engine's :meth:`~DeliveryQueue.send` only enqueues;
the worker calls the sink, whose own retries and timeouts then cost the
engine nothing. An alert that cannot be delivered is set aside in a
dead-letter file (when one is configured) with the reason, and counted:

- ``queue_full``: ``max_pending`` alerts were already waiting;
- ``send_failed``: the sink raised, after its own retries;
- ``shutdown``: still waiting when :meth:`~DeliveryQueue.close` gave up, or
  sent after it.

The counts feed the run summary and the metrics. :meth:`pending_alerts`
lists what is not delivered yet, so that a state snapshot can keep it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.alerts import Alert
from engine.clock import Clock, SystemClock
from engine.components import Sink
from engine.connectors import RateLimitedLog
from engine.errors import UsageError
from engine.timeutil import format_timestamp

log = logging.getLogger(__name__)

QUEUE_FULL = "queue_full"
SEND_FAILED = "send_failed"
SHUTDOWN = "shutdown"

DEFAULT_MAX_PENDING = 1000
DEFAULT_CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DeliveryCounts:
    """What became of the alerts given to one queue so far.

    ``failed``, ``overflowed`` and ``abandoned`` are the undelivered ones by
    reason; ``dead_lettered`` is how many of those reached the dead-letter
    file (none without one).
    """

    delivered: int = 0
    failed: int = 0
    overflowed: int = 0
    abandoned: int = 0
    dead_lettered: int = 0

    @property
    def undelivered(self) -> int:
        return self.failed + self.overflowed + self.abandoned


class AlertDeadLetters:
    """Appends one JSON object per undelivered alert: why, which sink, when,
    and the alert itself, so that it can be replayed by hand."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: IO[str] = path.open("a", encoding="utf-8")
        except OSError as error:
            raise UsageError(
                f"alert dead letters: cannot open {path}: {error.strerror or error}"
            ) from error

    def write(self, alert: Alert, sink: str, reason: str, detail: str) -> None:
        record = {
            "reason": reason,
            "detail": detail,
            "sink": sink,
            "failed_at": format_timestamp(self.clock.now_us()),
            "alert": alert.to_dict(),
        }
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class DeliveryQueue:
    """One sink behind a bounded queue and a worker thread.

    Only the worker calls the sink's ``send``, ``flush`` and ``close``, so a
    sink never sees two threads at once. ``send`` on this object never
    blocks; ``close`` waits at most its timeout.
    """

    def __init__(
        self,
        sink: Sink,
        name: str,
        max_pending: int = DEFAULT_MAX_PENDING,
        dead_letter_path: Path | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.sink = sink
        self.name = name
        self.max_pending = max_pending
        self.clock = clock or SystemClock()
        self.dead_letters = (
            AlertDeadLetters(dead_letter_path, self.clock) if dead_letter_path else None
        )
        self._waiting: deque[Alert] = deque()
        self._in_flight: Alert | None = None
        self._changed = threading.Condition()
        self._closing = False
        self._final = False
        self._counts = {field: 0 for field in DeliveryCounts.__dataclass_fields__}
        self._report_failure = RateLimitedLog(log, logging.ERROR)
        self._worker = threading.Thread(
            target=self._work, name=f"sink-{name}", daemon=True
        )
        self._worker.start()

    # -- the engine's side -------------------------------------------------------

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery; never blocks on the sink."""
        with self._changed:
            accepted = not self._closing and len(self._waiting) < self.max_pending
            if accepted:
                self._waiting.append(alert)
                self._changed.notify_all()
        if accepted:
            return
        if self._closing:
            detail = "sent after the queue was closed"
            self._set_aside(alert, "abandoned", SHUTDOWN, detail, by_worker=False)
        else:
            detail = f"{self.max_pending} alerts were already waiting (max_pending)"
            self._set_aside(alert, "overflowed", QUEUE_FULL, detail, by_worker=False)

    def counts(self) -> DeliveryCounts:
        with self._changed:
            return DeliveryCounts(**self._counts)

    def pending_alerts(self) -> list[Alert]:
        """Alerts not delivered yet: the one being sent, then those waiting."""
        with self._changed:
            in_flight = [self._in_flight] if self._in_flight is not None else []
            return in_flight + list(self._waiting)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every queued alert was handled; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._waiting or self._in_flight is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def flush(self) -> None:
        """Nothing to do here: the worker flushes the sink whenever its queue
        runs empty. Use :meth:`wait_idle` to wait for delivery."""

    def close(self, timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        """Deliver what is queued, within ``timeout_s``; then close the sink.

        Alerts still waiting at the deadline are dead-lettered as
        ``shutdown``. The sink, stuck in a call, is left to the worker, which
        closes it if that call ever returns.
        """
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._worker.join(timeout_s)
        if self._worker.is_alive():
            self._abandon(timeout_s)
        if self.dead_letters is not None:
            self.dead_letters.close()

    def _abandon(self, timeout_s: float) -> None:
        left = self.pending_alerts()
        with self._changed:
            self._waiting.clear()
            self._final = True  # a late answer of the stuck call changes nothing
        log.warning(
            "sink %s: %d alerts not delivered within %gs of shutdown",
            self.name,
            len(left),
            timeout_s,
        )
        for alert in left:
            self._set_aside(
                alert,
                "abandoned",
                SHUTDOWN,
                f"not delivered within {timeout_s:g}s of shutdown",
                by_worker=False,
            )

    # -- the worker's side -------------------------------------------------------

    def _work(self) -> None:
        while True:
            alert = self._next()
            if alert is None:
                break
            try:
                self.sink.send(alert)
            except Exception as error:
                detail = f"{type(error).__name__}: {error}"
                self._report_failure(
                    "sink %s failed to deliver an alert: %s", self.name, detail
                )
                self._set_aside(alert, "failed", SEND_FAILED, detail, by_worker=True)
            else:
                self._count("delivered")
            self._done()
        self._close_sink()

    def _next(self) -> Alert | None:
        """The next alert to send, or None once closing and drained."""
        with self._changed:
            while not self._waiting and not self._closing:
                self._changed.wait()
            if not self._waiting:
                return None
            self._in_flight = self._waiting.popleft()
            return self._in_flight

    def _done(self) -> None:
        with self._changed:
            self._in_flight = None
            idle = not self._waiting
            self._changed.notify_all()
        if idle:
            self._call_sink("flush")

    def _close_sink(self) -> None:
        self._call_sink("flush")
        self._call_sink("close")

    def _call_sink(self, method: str) -> None:
        try:
            getattr(self.sink, method)()
        except Exception:
            log.exception("sink %s: %s failed", self.name, method)

    # -- counting and setting aside ---------------------------------------------

    def _count(self, field: str) -> None:
        with self._changed:
            if not self._final:  # a late answer of a call given up on
                self._counts[field] += 1

    def _set_aside(
        self, alert: Alert, field: str, reason: str, detail: str, by_worker: bool
    ) -> None:
        with self._changed:
            if by_worker and self._final:
                return  # already set aside as abandoned
            self._counts[field] += 1
            if self.dead_letters is not None:
                self._counts["dead_lettered"] += 1
        if self.dead_letters is not None:
            self.dead_letters.write(alert, self.name, reason, detail)
