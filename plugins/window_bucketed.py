"""Window ``bucketed``: a sliding window over counts per bucket of time.

Time is cut into buckets of ``resolution`` (``((j-1)*r, j*r]``), and an event
counts as if it had happened at the end of its bucket, ``ceil(ts / r) * r``:
the window then slides exactly over those rounded times, so the count at
instant ``t`` is the number of events whose rounded time ``q`` has
``t - size < q <= t``. This is an approximation of the ``sliding`` window:
an event is counted up to one resolution late and leaves up to one
resolution late, and every instant is a bucket boundary. In exchange a group
keeps one counter per bucket, at most ``size / resolution`` of them plus the
buckets still open for late events, whatever the event rate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from engine.components import Options, RuleInfo, Window, WindowState
from engine.hookspecs import hookimpl
from engine.timeutil import parse_duration

SNAPSHOT_VERSION = 1


class BucketedWindowState(WindowState):
    __slots__ = (
        "current_us",
        "decided",
        "pending",
        "resolution_us",
        "size_us",
        "total",
    )

    def __init__(self, size_us: int, resolution_us: int) -> None:
        self.size_us = size_us
        self.resolution_us = resolution_us
        self.current_us = -(2**62)
        #: [bucket end, count] of buckets already moved to, oldest first.
        self.decided: deque[list[int]] = deque()
        #: The sum of the counts in ``decided``.
        self.total = 0
        #: bucket end -> count, for buckets not yet moved to.
        self.pending: dict[int, int] = {}

    def bucket_end(self, time_us: int) -> int:
        return -(-time_us // self.resolution_us) * self.resolution_us

    def add(self, time_us: int) -> None:
        end = self.bucket_end(time_us)
        self.pending[end] = self.pending.get(end, 0) + 1

    def add_late(self, time_us: int) -> None:
        end = self.bucket_end(time_us)
        if end + self.size_us <= self.current_us:
            return  # it has already left the window
        if end > self.current_us:
            self.add(time_us)
            return
        self.total += 1
        for bucket in reversed(self.decided):
            if bucket[0] == end:
                bucket[1] += 1
                return
            if bucket[0] < end:
                break
        # A bucket that held nothing yet: rare, so a sorted insert is fine.
        position = sum(1 for bucket in self.decided if bucket[0] < end)
        self.decided.insert(position, [end, 1])

    def next_instant(self) -> int | None:
        return min(self.pending) if self.pending else None

    def move_to(self, time_us: int) -> int:
        self._drop_before(time_us - self.size_us + 1)
        due = sorted(end for end in self.pending if end <= time_us)
        for end in due:
            count = self.pending.pop(end)
            self.decided.append([end, count])
            self.total += count
        self.current_us = time_us
        return self.total

    def expire(self, until_us: int) -> None:
        self._drop_before(until_us - self.size_us)
        if until_us > self.current_us:
            self.current_us = until_us - 1

    def _drop_before(self, limit_us: int) -> None:
        """Forget the buckets that end strictly before ``limit_us``."""
        decided = self.decided
        while decided and decided[0][0] < limit_us:
            self.total -= decided.popleft()[1]

    def falls_below_at(self, level: int) -> int | None:
        if self.total < level:
            return None
        leaving = self.total - level + 1
        for end, count in self.decided:
            leaving -= count
            if leaving <= 0:
                return end + self.size_us
        return None  # pragma: no cover - the counts add up to the total

    def empty_at(self) -> int | None:
        return self.decided[-1][0] + self.size_us if self.decided else None

    def next_change(self) -> int | None:
        joins = self.next_instant()
        if not self.decided:
            return joins
        leaves = self.decided[0][0] + self.size_us
        return leaves if joins is None or leaves < joins else joins

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "current_us": self.current_us,
            "buckets": [list(bucket) for bucket in self.decided],
            "pending": sorted([end, count] for end, count in self.pending.items()),
        }


class BucketedWindow(Window):
    type_name: ClassVar[str] = "bucketed"
    description: ClassVar[str] = (
        "sliding window over counts per bucket of `resolution` (constant memory)"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["size", "resolution"],
        "additionalProperties": False,
        "properties": {
            "size": {"$ref": "#/$defs/duration"},
            "resolution": {
                "$ref": "#/$defs/duration",
                "description": "bucket length: events count as if at the end of "
                "their bucket; size must be a multiple of it",
            },
        },
    }

    def __init__(self, options: Options, rule: RuleInfo) -> None:
        super().__init__(options, rule)
        self.resolution_us = parse_duration(options["resolution"])

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        size = parse_duration(options["size"])
        resolution = parse_duration(options["resolution"])
        if resolution <= 0:
            return [
                (
                    ("resolution",),
                    f"found {options['resolution']!r}, expected a positive duration",
                )
            ]
        if size <= 0 or size % resolution:
            return [
                (
                    ("size",),
                    (
                        f"found {options['size']!r}, expected a positive multiple of "
                        f"the resolution ({options['resolution']!r})"
                    ),
                )
            ]
        return []

    def new_state(self) -> BucketedWindowState:
        return BucketedWindowState(self.size_us, self.resolution_us)

    def restore_state(self, data: Mapping[str, Any]) -> BucketedWindowState:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"unknown bucketed window snapshot version {data.get('version')!r}"
            )
        state = BucketedWindowState(self.size_us, self.resolution_us)
        state.current_us = data["current_us"]
        for end, count in data["buckets"]:
            state.decided.append([end, count])
            state.total += count
        state.pending = {end: count for end, count in data["pending"]}
        return state


@hookimpl
def engine_register_windows() -> list[type[Window]]:
    return [BucketedWindow]
