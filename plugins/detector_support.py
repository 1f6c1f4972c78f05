"""Pieces shared by the detectors other than ``burst``.

:class:`InstantWalker` is the loop every one of them runs: take the earliest
instant at which something may change (a window count, or a time of the
detector's own such as the end of a hold or of a warm-up), decide it, and
repeat until the instant reaches the watermark. Because a detector's
condition only changes at those instants, deciding them in order gives the
exact rising and falling edges.

:class:`TimedValues` keeps the ``(time, value)`` pairs of one group inside a
sliding window, for detectors that need the values and not only a count;
:class:`ValueWindowState` is the state of such a detector.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from engine.components import DetectorState, Signal
from engine.events import Event

#: Before any instant is decided.
NEVER = -(2**62)
#: The snapshot format of :class:`ValueWindowState`.
VALUE_SNAPSHOT_VERSION = 1


def _time(entry: tuple[int, int, Any]) -> int:
    return entry[0]


class Walkable(Protocol):
    """What :class:`InstantWalker` needs of a window: a count it can walk."""

    def next_change(self) -> int | None: ...

    def move_to(self, time_us: int) -> int: ...

    def expire(self, until_us: int) -> None: ...


class InstantWalker(DetectorState):
    """A detector state over some window states, decided instant by instant.

    Subclasses set :attr:`windows`, implement :meth:`decide` (the condition
    at one instant, given each window's count then) and, when they keep times
    of their own, :meth:`own_instant`.
    """

    windows: Sequence[Walkable]
    #: The latest instant decided.
    now_us: int = NEVER

    def own_instant(self) -> int | None:
        """A later instant the detector itself needs decided, or None."""
        return None

    def decide(self, instant_us: int, counts: list[int]) -> Signal | None:
        raise NotImplementedError

    def next_instant(self) -> int | None:
        best = self.own_instant()
        if best is not None and best <= self.now_us:
            best = None
        for window in self.windows:
            change = window.next_change()
            if change is not None and (best is None or change < best):
                best = change
        return best

    def advance(self, until_us: int) -> list[Signal]:
        signals: list[Signal] = []
        instant = self.next_instant()
        while instant is not None and instant < until_us:
            counts = [window.move_to(instant) for window in self.windows]
            self.now_us = instant
            signal = self.decide(instant, counts)
            if signal is not None:
                signals.append(signal)
            instant = self.next_instant()
        for window in self.windows:
            window.expire(until_us)
        return signals

    def next_wakeup(self) -> int | None:
        return self.next_instant()


class TimedValues:
    """The ``(time, value)`` pairs of one group inside a sliding window.

    A pair joins at its time and leaves ``size_us`` later (half-open window
    ``(t - size, t]``, as for the ``sliding`` window). Pairs not yet joined
    wait in a heap, so they may arrive in any order; :meth:`move_to` reports
    every join and leave through the callbacks, which keep whatever summary
    the detector needs (a sorted list of values, a counter...).
    """

    __slots__ = (
        "current_us",
        "inside",
        "on_join",
        "on_leave",
        "pending",
        "sequence",
        "size_us",
    )

    def __init__(
        self,
        size_us: int,
        on_join: Callable[[Any], None],
        on_leave: Callable[[Any], None],
    ) -> None:
        self.size_us = size_us
        self.on_join = on_join
        self.on_leave = on_leave
        self.current_us = NEVER
        self.pending: list[tuple[int, int, Any]] = []
        self.inside: deque[tuple[int, Any]] = deque()
        self.sequence = 0

    def add(self, time_us: int, value: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.pending, (time_us, self.sequence, value))

    def add_late(self, time_us: int, value: Any) -> None:
        if time_us + self.size_us <= self.current_us:
            return  # it has already left the window
        if time_us > self.current_us:
            self.add(time_us, value)
            return
        position = len(self.inside)
        while position and self.inside[position - 1][0] > time_us:
            position -= 1
        self.inside.insert(position, (time_us, value))
        self.on_join(value)

    def next_change(self) -> int | None:
        joins = self.pending[0][0] if self.pending else None
        if not self.inside:
            return joins
        leaves = self.inside[0][0] + self.size_us
        return leaves if joins is None or leaves < joins else joins

    def move_to(self, time_us: int) -> int:
        self._drop_before(time_us - self.size_us + 1)
        pending = self.pending
        while pending and pending[0][0] <= time_us:
            joined_us, _, value = heapq.heappop(pending)
            self.inside.append((joined_us, value))
            self.on_join(value)
        self.current_us = time_us
        return len(self.inside)

    def expire(self, until_us: int) -> None:
        self._drop_before(until_us - self.size_us)
        if until_us > self.current_us:
            self.current_us = until_us - 1

    def _drop_before(self, limit_us: int) -> None:
        inside = self.inside
        while inside and inside[0][0] < limit_us:
            self.on_leave(inside.popleft()[1])

    def is_empty(self) -> bool:
        return not self.pending and not self.inside

    def snapshot(self) -> dict[str, Any]:
        return {
            "current_us": self.current_us,
            "inside": [[t, v] for t, v in self.inside],
            "pending": [[t, v] for t, _, v in sorted(self.pending, key=_time)],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.current_us = data["current_us"]
        for time_us, value in data["inside"]:
            self.inside.append((time_us, value))
            self.on_join(value)
        for time_us, value in data["pending"]:
            self.add(time_us, value)


class ValueWindowState(InstantWalker):
    """A state whose condition is a function of the values in one sliding
    window (``threshold``, ``cardinality``): subclasses say which value an
    event brings, how the aggregate takes a value in and out, and what the
    condition is; the rest (storage, edges, snapshots) is shared."""

    #: The detector's name, for snapshot errors.
    kind: str = "value window"

    def __init__(self, size_us: int) -> None:
        self.store = TimedValues(size_us, self._join, self._leave)
        self.windows = (self.store,)
        self.now_us = NEVER
        self.active = False

    def _value(self, event: Event) -> Any:
        """The value ``event`` brings to the window, or None for none."""
        raise NotImplementedError

    def _join(self, value: Any) -> None:
        raise NotImplementedError

    def _leave(self, value: Any) -> None:
        raise NotImplementedError

    def _holds(self) -> bool:
        """Whether the condition holds over the values now in the window."""
        raise NotImplementedError

    def _signal(self, instant_us: int, active: bool) -> Signal:
        raise NotImplementedError

    def add(self, event: Event) -> None:
        value = self._value(event)
        if value is not None:
            self.store.add(event.time_us, value)

    def add_late(self, event: Event) -> None:
        value = self._value(event)
        if value is not None:
            self.store.add_late(event.time_us, value)

    def decide(self, instant_us: int, counts: list[int]) -> Signal | None:
        active = self._holds()
        if active == self.active:
            return None
        self.active = active
        return self._signal(instant_us, active)

    def is_idle(self) -> bool:
        return not self.active and self.store.is_empty()

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": VALUE_SNAPSHOT_VERSION,
            "active": self.active,
            "now_us": self.now_us,
            "values": self.store.snapshot(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        if data.get("version") != VALUE_SNAPSHOT_VERSION:
            raise ValueError(
                f"unknown {self.kind} snapshot version {data.get('version')!r}"
            )
        self.store.restore(dict(data["values"]))
        self.active = bool(data["active"])
        self.now_us = data["now_us"]
