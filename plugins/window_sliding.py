"""Window ``sliding``: the exact timestamps of every event in the window.

An event at time ``s`` counts at instants ``t`` with ``t - size < s <= t``:
it joins at ``s`` and leaves exactly ``size`` later. Timestamps are integer
microseconds, so boundaries are exact.

Per group, decided timestamps sit in a sorted deque; timestamps not yet
moved to sit in a small sorted list, so events arriving out of order (within
the allowed lateness) are placed correctly before any instant is decided.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from engine.components import Options, RuleInfo, Window, WindowState
from engine.hookspecs import hookimpl
from engine.timeutil import parse_duration

SNAPSHOT_VERSION = 1


class SlidingWindowState(WindowState):
    __slots__ = ("current_us", "pending", "size_us", "times")

    def __init__(self, size_us: int) -> None:
        self.size_us = size_us
        #: The latest instant moved to or expired to; nothing before it changes.
        self.current_us = -(2**62)
        self.times: deque[int] = deque()
        self.pending: list[int] = []

    def add(self, time_us: int) -> None:
        pending = self.pending
        if not pending or time_us >= pending[-1]:
            pending.append(time_us)
        else:
            insort(pending, time_us)

    def add_late(self, time_us: int) -> None:
        if time_us + self.size_us <= self.current_us:
            return  # it has already left the window
        times = self.times
        if not times or time_us >= times[-1]:
            times.append(time_us)
        else:
            times.insert(bisect_right(times, time_us), time_us)

    def next_instant(self) -> int | None:
        return self.pending[0] if self.pending else None

    def move_to(self, time_us: int) -> int:
        times = self.times
        oldest_kept = time_us - self.size_us
        while times and times[0] <= oldest_kept:
            times.popleft()
        pending = self.pending
        joining = bisect_right(pending, time_us)
        times.extend(pending[:joining])
        del pending[:joining]
        self.current_us = time_us
        return len(times)

    def expire(self, until_us: int) -> None:
        # Keep events leaving exactly at `until_us`: that instant is not
        # decided yet, and `falls_below_at` must still see them.
        times = self.times
        leaving_before = until_us - self.size_us
        while times and times[0] < leaving_before:
            times.popleft()
        self.current_us = max(self.current_us, until_us - 1)

    def falls_below_at(self, level: int) -> int | None:
        times = self.times
        if len(times) < level:
            return None
        # Once the (len - level + 1) oldest have left, fewer than `level` remain.
        return times[len(times) - level] + self.size_us

    def empty_at(self) -> int | None:
        return self.times[-1] + self.size_us if self.times else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "current_us": self.current_us,
            "times": list(self.times),
            "pending": list(self.pending),
        }


class SlidingWindow(Window):
    type_name: ClassVar[str] = "sliding"
    description: ClassVar[str] = "exact sliding window over event timestamps"
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["size"],
        "additionalProperties": False,
        "properties": {"size": {"$ref": "#/$defs/duration"}},
    }

    def __init__(self, options: Options, rule: RuleInfo) -> None:
        super().__init__(options, rule)
        self.size_us = parse_duration(options["size"])

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        if parse_duration(options["size"]) <= 0:
            return [
                (("size",), f"found {options['size']!r}, expected a positive duration")
            ]
        return []

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
        state.pending.extend(data["pending"])
        return state


@hookimpl
def engine_register_windows() -> list[type[Window]]:
    return [SlidingWindow]
