"""Window ``tumbling``: fixed, epoch-aligned windows of ``size``.

Window ``k`` holds the events with ``k*size <= ts < (k+1)*size``. Its count
becomes the group's count at the instant ``(k+1)*size``, where the window
ends, and stays until the next window ends: the count at instant ``t`` is
the count of the last window that ended at or before ``t``. So a detector
sees one value per window, decided once the watermark has passed the
window's end, and an alert's time is a window end.

This is the bucketed sliding window with one bucket per window, each event
moved to the end of its window (an event exactly on a boundary opens the
next window rather than closing the previous one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from engine.components import Window
from engine.hookspecs import hookimpl

from .window_bucketed import SNAPSHOT_VERSION, BucketedWindowState


class TumblingWindowState(BucketedWindowState):
    __slots__ = ()

    def __init__(self, size_us: int) -> None:
        super().__init__(size_us, size_us)

    def bucket_end(self, time_us: int) -> int:
        return (time_us // self.size_us + 1) * self.size_us


class TumblingWindow(Window):
    type_name: ClassVar[str] = "tumbling"
    description: ClassVar[str] = "fixed, epoch-aligned windows, one count each"

    def new_state(self) -> TumblingWindowState:
        return TumblingWindowState(self.size_us)

    def restore_state(self, data: Mapping[str, Any]) -> TumblingWindowState:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"unknown tumbling window snapshot version {data.get('version')!r}"
            )
        state = TumblingWindowState(self.size_us)
        state.current_us = data["current_us"]
        for end, count in data["buckets"]:
            state.decided.append([end, count])
            state.total += count
        state.pending = {end: count for end, count in data["pending"]}
        return state


@hookimpl
def engine_register_windows() -> list[type[Window]]:
    return [TumblingWindow]
