"""Window ``sliding``: the exact timestamps of every event in the window.

An event at time ``s`` counts at instants ``t`` with ``t - size < s <= t``:
it joins at ``s`` and leaves exactly ``size`` later. Timestamps are integer
microseconds, so boundaries are exact.

Per group, the timestamps sit in one sorted ``array('q')``: 8 bytes each,
where a deque of Python ints costs about 40. The array holds three runs,
marked by two indexes: events that already left (before ``head``, dropped
in bulk from time to time), decided events still in the window (``head`` to
``decided``), and pending events not yet moved to (from ``decided``), kept
sorted as they arrive so that events out of order (within the allowed
lateness) are placed correctly before any instant is decided.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping
from typing import Any, ClassVar

from engine.components import Window, WindowState
from engine.hookspecs import hookimpl

SNAPSHOT_VERSION = 1
#: The slots of events that left are reclaimed once there are this many and
#: they fill at least half the array: what remains is then no longer than
#: what goes, so moving it costs a constant per event, amortised.
_COMPACT_AFTER = 16


class SlidingWindowState(WindowState):
    __slots__ = ("current_us", "decided", "head", "size_us", "times")

    def __init__(self, size_us: int) -> None:
        self.size_us = size_us
        #: The latest instant moved to or expired to; nothing before it changes.
        self.current_us = -(2**62)
        #: Every timestamp still kept, sorted; see the module docstring.
        self.times = array("q")
        self.head = 0
        self.decided = 0

    def add(self, time_us: int) -> None:
        times = self.times
        if self.decided == len(times) or time_us >= times[-1]:
            times.append(time_us)
        else:
            insort(times, time_us, self.decided)

    def add_late(self, time_us: int) -> None:
        if time_us + self.size_us <= self.current_us:
            return  # it has already left the window
        position = bisect_right(self.times, time_us, self.head, self.decided)
        self.times.insert(position, time_us)
        self.decided += 1

    def next_instant(self) -> int | None:
        return self.times[self.decided] if self.decided < len(self.times) else None

    def move_to(self, time_us: int) -> int:
        times = self.times
        decided = self.decided
        self.head = bisect_right(times, time_us - self.size_us, self.head, decided)
        self.decided = bisect_right(times, time_us, decided)
        self.current_us = time_us
        self.compact()
        return self.decided - self.head

    def expire(self, until_us: int) -> None:
        # Keep events leaving exactly at `until_us`: that instant is not
        # decided yet, and `falls_below_at` must still see them.
        leaving_before = until_us - self.size_us
        head = self.head
        if head < self.decided and self.times[head] < leaving_before:
            self.head = bisect_left(self.times, leaving_before, head, self.decided)
            self.compact()
        if until_us > self.current_us:
            self.current_us = until_us - 1

    def compact(self) -> None:
        """Drop the slots of events that left, when enough have piled up."""
        head = self.head
        if head >= _COMPACT_AFTER and head * 2 >= len(self.times):
            del self.times[:head]
            self.decided -= head
            self.head = 0

    def falls_below_at(self, level: int) -> int | None:
        if self.decided - self.head < level:
            return None
        # Once the (count - level + 1) oldest have left, fewer than `level` remain.
        return self.times[self.decided - level] + self.size_us

    def empty_at(self) -> int | None:
        if self.decided == self.head:
            return None
        return self.times[self.decided - 1] + self.size_us

    def next_change(self) -> int | None:
        times = self.times
        joins = times[self.decided] if self.decided < len(times) else None
        if self.head == self.decided:
            return joins
        leaves = times[self.head] + self.size_us
        return leaves if joins is None or leaves < joins else joins

    def snapshot(self) -> dict[str, Any]:
        times = self.times
        return {
            "version": SNAPSHOT_VERSION,
            "current_us": self.current_us,
            "times": times[self.head : self.decided].tolist(),
            "pending": times[self.decided :].tolist(),
        }


class SlidingWindow(Window):
    type_name: ClassVar[str] = "sliding"
    description: ClassVar[str] = "exact sliding window over event timestamps"

    def new_state(self) -> SlidingWindowState:
        return SlidingWindowState(self.size_us)

    def restore_state(self, data: Mapping[str, Any]) -> SlidingWindowState:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"unknown sliding window snapshot version {data.get('version')!r}"
            )
        state = SlidingWindowState(self.size_us)
        state.current_us = data["current_us"]
        state.times.extend(data["times"])
        state.decided = len(state.times)
        state.times.extend(data["pending"])
        return state


@hookimpl
def engine_register_windows() -> list[type[Window]]:
    return [SlidingWindow]
