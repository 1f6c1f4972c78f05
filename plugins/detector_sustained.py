"""Detector ``sustained``: at least ``threshold`` events in the window, held
for ``for_duration`` without a break.

With ``C(t)`` the window count at instant ``t`` and ``H(t) = C(t) >=
threshold``, let ``h0`` be the instant the current run of ``H`` began. The
group is active at ``t`` when ``H`` has held over all of ``[h0, t]`` and
``t - h0 >= for_duration``: it becomes active at ``h0 + for_duration`` (if
the count has not fallen below the threshold by then) and resolves at the
first instant where ``C(t) < threshold``, which also re-arms it. A spike
shorter than ``for_duration`` therefore never fires; with ``for_duration:
0`` the detector behaves like ``burst``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from engine.components import Detector, Options, RuleInfo, Signal, Window, WindowState
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.timeutil import format_duration, parse_duration

from .detector_support import InstantWalker

SNAPSHOT_VERSION = 1


class SustainedState(InstantWalker):
    def __init__(self, detector: SustainedDetector, window: WindowState) -> None:
        self.detector = detector
        self.window = window
        self.windows = (window,)
        self.active = False
        #: The instant the count last reached the threshold, while it holds.
        self.holding_since: int | None = None

    def add(self, event: Event) -> None:
        self.window.add(event.time_us)

    def add_late(self, event: Event) -> None:
        self.window.add_late(event.time_us)

    def own_instant(self) -> int | None:
        if self.holding_since is None or self.active:
            return None
        return self.holding_since + self.detector.for_us

    def decide(self, instant_us: int, counts: list[int]) -> Signal | None:
        count = counts[0]
        detector = self.detector
        if count < detector.threshold:
            since, self.holding_since = self.holding_since, None
            if not self.active:
                return None
            self.active = False
            held_us = instant_us - since if since is not None else 0
            return detector.signal(instant_us, False, count, held_us)
        if self.holding_since is None:
            self.holding_since = instant_us
        held_us = instant_us - self.holding_since
        if self.active or held_us < detector.for_us:
            return None
        self.active = True
        return detector.signal(instant_us, True, count, held_us)

    def is_idle(self) -> bool:
        return not self.active and self.window.next_change() is None

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "active": self.active,
            "holding_since": self.holding_since,
            "now_us": self.now_us,
            "window": self.window.snapshot(),
        }


class SustainedDetector(Detector):
    type_name: ClassVar[str] = "sustained"
    description: ClassVar[str] = (
        "at least N events in the window, continuously for a duration"
    )
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "count",
        "threshold",
        "window",
        "held_for",
    )
    event_fields: ClassVar[frozenset[str]] = frozenset({"time_us"})
    default_summary: ClassVar[str] = (
        "at least {threshold} events per {window} for {held_for} (now {count})"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["threshold", "for_duration"],
        "additionalProperties": False,
        "properties": {
            "threshold": {
                "type": "integer",
                "minimum": 1,
                "description": "events in the window that make the condition hold",
            },
            "for_duration": {
                "$ref": "#/$defs/duration",
                "description": "how long the condition must hold without a "
                "break before the group is active",
            },
        },
    }

    def __init__(self, options: Options, rule: RuleInfo, window: Window) -> None:
        super().__init__(options, rule, window)
        self.threshold: int = options["threshold"]
        self.for_us = parse_duration(options["for_duration"])
        self.window_text = format_duration(window.size_us)

    def signal(self, at_us: int, active: bool, count: int, held_us: int) -> Signal:
        evidence = {
            "count": count,
            "threshold": self.threshold,
            "window": self.window_text,
            "held_for": format_duration(held_us),
        }
        return Signal(at_us, active, evidence)

    def new_state(self) -> SustainedState:
        return SustainedState(self, self.window.new_state())

    def restore_state(self, data: Mapping[str, Any]) -> SustainedState:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"unknown sustained snapshot version {data.get('version')!r}"
            )
        state = SustainedState(self, self.window.restore_state(data["window"]))
        state.active = bool(data["active"])
        state.holding_since = data["holding_since"]
        state.now_us = data["now_us"]
        return state


@hookimpl
def engine_register_detectors() -> list[type[Detector]]:
    return [SustainedDetector]
