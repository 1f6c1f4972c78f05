"""Detector ``burst``: at least ``threshold`` matching events in the window.

With ``C(t)`` the window count at instant ``t`` (events with
``t - size < ts <= t``), the group becomes active at every instant where
``C(t) >= threshold`` while it is armed, and it is armed again (and the
alert resolves) at the first instant where ``C(t) < rearm_below``. Without
``rearm_below`` the two levels are the same, so an alert fires exactly at
the rising edges of ``C(t) >= threshold``. Instants are event times (counts
rise) and expiry times (counts fall); ties count together, because an
instant is decided only once the watermark has passed it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import Any, ClassVar

from engine.components import (
    Detector,
    DetectorState,
    Options,
    RuleInfo,
    Signal,
    Window,
    WindowState,
)
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.timeutil import format_duration

from .window_sliding import SlidingWindowState

SNAPSHOT_VERSION = 1


class BurstState(DetectorState):
    __slots__ = ("active", "detector", "window")

    def __init__(self, detector: BurstDetector, window: WindowState) -> None:
        self.detector = detector
        self.window = window
        self.active = False

    def add(self, event: Event) -> None:
        self.window.add(event.time_us)

    def add_late(self, event: Event) -> None:
        self.window.add_late(event.time_us)

    def advance(self, until_us: int) -> list[Signal]:
        if type(self.window) is SlidingWindowState:
            return self._advance_sliding(self.window, until_us)
        signals: list[Signal] = []
        window = self.window
        threshold = self.detector.threshold
        instant = window.next_instant()
        while instant is not None and instant < until_us:
            self._resolve_before(instant, signals)
            count = window.move_to(instant)
            if self.active:
                if count < self.detector.rearm_below:
                    self.active = False
                    signals.append(self.detector.signal(instant, False, count))
            elif count >= threshold:
                self.active = True
                signals.append(self.detector.signal(instant, True, count))
            instant = window.next_instant()
        self._resolve_before(until_us, signals)
        window.expire(until_us)
        return signals

    def _advance_sliding(
        self, window: SlidingWindowState, until_us: int
    ) -> list[Signal]:
        """:meth:`advance` over the built-in sliding window's array itself.

        The same steps as the general loop, instant by instant, but with the
        window's indexes in local variables and no method call per instant:
        this loop runs once per distinct timestamp of every matching event.
        """
        signals: list[Signal] = []
        detector = self.detector
        threshold, rearm = detector.threshold, detector.rearm_below
        size = window.size_us
        times = window.times
        head, decided, end = window.head, window.decided, len(window.times)
        active = self.active
        while decided < end:
            instant = times[decided]
            if instant >= until_us:
                break
            if active and decided - head >= rearm:
                # The count fell below the re-arm level between two instants
                # when the rearm-th newest event left before this one.
                falls_at = times[decided - rearm] + size
                if falls_at < instant:
                    head = bisect_right(times, falls_at - size, head, decided)
                    active = False
                    signals.append(detector.signal(falls_at, False, decided - head))
            # Each event joins and leaves once: stepping beats bisecting here.
            oldest_kept = instant - size
            while head < decided and times[head] <= oldest_kept:
                head += 1
            decided += 1
            while decided < end and times[decided] == instant:
                decided += 1
            count = decided - head
            if active:
                if count < rearm:
                    active = False
                    signals.append(detector.signal(instant, False, count))
            elif count >= threshold:
                active = True
                signals.append(detector.signal(instant, True, count))
        window.head, window.decided = head, decided
        self.active = active
        if active:
            self._resolve_before(until_us, signals)
        window.expire(until_us)
        return signals

    def _resolve_before(self, limit_us: int, signals: list[Signal]) -> None:
        """Resolve at the instant the count fell below the re-arm level, if
        that happened strictly before ``limit_us`` with no event in between."""
        if not self.active:
            return
        level = self.detector.rearm_below
        falls_at = self.window.falls_below_at(level)
        if falls_at is not None and falls_at < limit_us:
            count = self.window.move_to(falls_at)
            self.active = False
            signals.append(self.detector.signal(falls_at, False, count))

    def next_wakeup(self) -> int | None:
        window = self.window
        if type(window) is SlidingWindowState and not self.active:
            # The common case, read off the array without method calls.
            times, decided = window.times, window.decided
            if decided < len(times):
                return times[decided]
            return (
                times[decided - 1] + window.size_us if decided > window.head else None
            )
        if self.active:
            falls_at = window.falls_below_at(self.detector.rearm_below)
            instant = window.next_instant()
            candidates = [t for t in (falls_at, instant) if t is not None]
            return min(candidates) if candidates else None
        instant = window.next_instant()
        return instant if instant is not None else window.empty_at()

    def is_idle(self) -> bool:
        window = self.window
        if type(window) is SlidingWindowState:
            return not self.active and window.head == window.decided == len(
                window.times
            )
        return (
            not self.active
            and self.window.next_instant() is None
            and self.window.empty_at() is None
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "active": self.active,
            "window": self.window.snapshot(),
        }


class BurstDetector(Detector):
    type_name: ClassVar[str] = "burst"
    description: ClassVar[str] = "at least N matching events within the window"
    evidence_fields: ClassVar[tuple[str, ...]] = ("count", "threshold", "window")
    #: The event fields the states read: only the timestamp, so the engine
    #: need not decode metadata for this detector's sake.
    event_fields: ClassVar[frozenset[str]] = frozenset({"time_us"})
    default_summary: ClassVar[str] = (
        "{count} matching events in {window} window (threshold {threshold})"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["threshold"],
        "additionalProperties": False,
        "properties": {
            "threshold": {
                "type": "integer",
                "minimum": 1,
                "description": "events in the window that make a burst",
            },
            "rearm_below": {
                "type": "integer",
                "minimum": 1,
                "description": "the count must fall below this before the group "
                "can fire again (hysteresis); defaults to the threshold",
            },
        },
    }

    def __init__(self, options: Options, rule: RuleInfo, window: Window) -> None:
        super().__init__(options, rule, window)
        self.threshold: int = options["threshold"]
        self.rearm_below: int = options.get("rearm_below", self.threshold)
        self.window_text = format_duration(window.size_us)

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        rearm = options.get("rearm_below")
        if rearm is not None and rearm > options["threshold"]:
            return [
                (
                    ("rearm_below",),
                    (
                        f"found {rearm}, expected at most the threshold "
                        f"({options['threshold']})"
                    ),
                )
            ]
        return []

    def signal(self, at_us: int, active: bool, count: int) -> Signal:
        evidence = {
            "count": count,
            "threshold": self.threshold,
            "window": self.window_text,
        }
        return Signal(at_us, active, evidence)

    def new_state(self) -> BurstState:
        return BurstState(self, self.window.new_state())

    def restore_state(self, data: Mapping[str, Any]) -> BurstState:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown burst snapshot version {data.get('version')!r}")
        state = BurstState(self, self.window.restore_state(data["window"]))
        state.active = bool(data["active"])
        return state


@hookimpl
def engine_register_detectors() -> list[type[Detector]]:
    return [BurstDetector]
