"""Detector ``absence``: fewer than ``min_count`` events of a group in the
window (a source that went silent).

Each group is watched from a start instant ``s``: its earliest event
(whatever the arrival order) for a group the rule discovers, and the first
watermark of the run (the first time the engine decides anything, once the
first batch is in) for a group listed in ``expect:``. With ``C(t)`` the
window count at instant ``t``, the group is active at ``t`` when ``t >= s +
size`` and ``C(t) < min_count``:
it fires at the instant its count falls below ``min_count`` (an event
leaving the window, found by an event-time timer, not by the next event),
or at ``s + size`` when the window was never full enough; it resolves at the
first instant its count reaches ``min_count`` again. The warm-up of one
window length keeps a group from firing before a whole window has been
observed.

A watched group stays in memory for the rest of the run, since forgetting it
would forget that it went silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from engine.components import Detector, Options, RuleInfo, Signal, Window, WindowState
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.timeutil import format_duration

from .detector_support import NEVER, InstantWalker

SNAPSHOT_VERSION = 1


class AbsenceState(InstantWalker):
    def __init__(
        self, detector: AbsenceDetector, window: WindowState, expected: bool
    ) -> None:
        self.detector = detector
        self.window = window
        self.windows = (window,)
        self.now_us = NEVER
        self.active = False
        #: Listed in ``expect:``: watched from the first watermark.
        self.expected = expected
        self.start_us: int | None = None

    def add(self, event: Event) -> None:
        if not self.expected and (
            self.start_us is None or event.time_us < self.start_us
        ):
            # The earliest event, whatever the arrival order: an event that is
            # not late comes after every decided instant, so moving the start
            # back to it changes nothing already decided.
            self.start_us = event.time_us
        self.window.add(event.time_us)

    def add_late(self, event: Event) -> None:
        self.window.add_late(event.time_us)

    def advance(self, until_us: int) -> list[Signal]:
        if self.start_us is None:
            self.start_us = until_us
        return super().advance(until_us)

    def own_instant(self) -> int | None:
        if self.start_us is None:
            return None
        return self.start_us + self.detector.window.size_us

    def decide(self, instant_us: int, counts: list[int]) -> Signal | None:
        count = counts[0]
        start = self.start_us
        silent = (
            start is not None
            and instant_us >= start + self.detector.window.size_us
            and count < self.detector.min_count
        )
        if silent == self.active:
            return None
        self.active = silent
        return self.detector.signal(instant_us, silent, count)

    def is_idle(self) -> bool:
        return False

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "active": self.active,
            "expected": self.expected,
            "start_us": self.start_us,
            "now_us": self.now_us,
            "window": self.window.snapshot(),
        }


class AbsenceDetector(Detector):
    type_name: ClassVar[str] = "absence"
    description: ClassVar[str] = "fewer than N events of a group within the window"
    evidence_fields: ClassVar[tuple[str, ...]] = ("count", "min_count", "window")
    event_fields: ClassVar[frozenset[str]] = frozenset({"time_us"})
    default_summary: ClassVar[str] = (
        "{count} events in the last {window} (expected at least {min_count})"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "min_count": {
                "type": "integer",
                "minimum": 1,
                "default": 1,
                "description": "the group is silent below this many events "
                "in the window",
            },
            "expect": {
                "type": "array",
                "description": "groups watched from the start even if never "
                "seen: label mappings ({source: web-1}) or bare values when "
                "the rule groups by one path",
                "items": {
                    "anyOf": [
                        {"type": "object", "minProperties": 1},
                        {"type": ["string", "number", "boolean"]},
                    ]
                },
            },
        },
    }

    def __init__(self, options: Options, rule: RuleInfo, window: Window) -> None:
        super().__init__(options, rule, window)
        self.min_count: int = options.get("min_count", 1)
        self.window_text = format_duration(window.size_us)

    @classmethod
    def check_rule(
        cls, rule: Mapping[str, Any]
    ) -> list[tuple[tuple[str | int, ...], str]]:
        problems = super().check_rule(rule)
        group_by = list(rule.get("group_by") or [])
        for index, entry in enumerate(rule["detector"].get("expect") or []):
            message = _expected_entry_problem(group_by, entry)
            if message:
                problems.append((("detector", "expect", index), message))
        return problems

    def expected_groups(self) -> list[Any]:
        return list(self.options.get("expect") or [])

    def signal(self, at_us: int, active: bool, count: int) -> Signal:
        evidence = {
            "count": count,
            "min_count": self.min_count,
            "window": self.window_text,
        }
        return Signal(at_us, active, evidence)

    def new_state(self) -> AbsenceState:
        return AbsenceState(self, self.window.new_state(), expected=False)

    def new_expected_state(self) -> AbsenceState:
        return AbsenceState(self, self.window.new_state(), expected=True)

    def restore_state(self, data: Mapping[str, Any]) -> AbsenceState:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"unknown absence snapshot version {data.get('version')!r}"
            )
        window = self.window.restore_state(data["window"])
        state = AbsenceState(self, window, expected=bool(data["expected"]))
        state.active = bool(data["active"])
        state.start_us = data["start_us"]
        state.now_us = data["now_us"]
        return state


def _expected_entry_problem(group_by: list[str], entry: Any) -> str | None:
    """Why an ``expect:`` entry does not name one group of the rule, or None."""
    if not group_by:
        return "found an expected group, but the rule has no group_by"
    if isinstance(entry, Mapping):
        if sorted(entry) != sorted(group_by):
            return (
                f"found paths {sorted(entry)}, expected exactly the group_by "
                f"paths {group_by}"
            )
        return None
    if len(group_by) != 1:
        return (
            f"found {entry!r}, expected a mapping of the group_by paths "
            f"{group_by} (a bare value needs a single group_by path)"
        )
    return None


@hookimpl
def engine_register_detectors() -> list[type[Detector]]:
    return [AbsenceDetector]
