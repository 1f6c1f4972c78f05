"""Detector ``cardinality``: at least ``threshold`` distinct values of a
field within the window.

At instant ``t`` the window holds the group's events with ``t - size < ts <=
t``; ``D(t)`` is the number of distinct non-null values of ``field`` among
them (lists and objects from metadata compare by their JSON text). The group
is active while ``D(t) >= threshold``: it fires at the instant a new value
brings ``D`` to the threshold and resolves at the instant ``D`` falls below
it, when the last event of some value leaves. Typical use: one group (no
``group_by``) and ``field: source``, for "many sources failing at once".

The state keeps each event's value in the window and a count per distinct
value; it needs the ``sliding`` window, whose ``size`` it uses.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from engine.components import Detector, Options, RuleInfo, Signal, Window
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.matching import field_getter
from engine.timeutil import format_duration

from .detector_support import ValueWindowState

#: How many of the distinct values the evidence shows.
EXAMPLES = 5


class CardinalityState(ValueWindowState):
    kind = "cardinality"

    def __init__(self, detector: CardinalityDetector) -> None:
        self.detector = detector
        #: distinct value -> how many events in the window carry it.
        self.seen: dict[Hashable, int] = {}
        super().__init__(detector.window.size_us)

    def _value(self, event: Event) -> Hashable:
        return self.detector.read(event)

    def _join(self, value: Hashable) -> None:
        self.seen[value] = self.seen.get(value, 0) + 1

    def _leave(self, value: Hashable) -> None:
        left = self.seen[value] - 1
        if left:
            self.seen[value] = left
        else:
            del self.seen[value]

    def _holds(self) -> bool:
        return len(self.seen) >= self.detector.threshold

    def _signal(self, instant_us: int, active: bool) -> Signal:
        return self.detector.signal(instant_us, active, self.seen)


class CardinalityDetector(Detector):
    type_name: ClassVar[str] = "cardinality"
    description: ClassVar[str] = "at least N distinct values of a field in the window"
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "distinct",
        "bound",
        "window",
        "examples",
    )
    #: ``field`` may be any field, metadata included.
    event_fields: ClassVar[frozenset[str] | None] = None
    window_types: ClassVar[frozenset[str]] = frozenset({"sliding"})
    default_summary: ClassVar[str] = (
        "{distinct} distinct values in {window} (bound {bound}): {examples}"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["field", "threshold"],
        "additionalProperties": False,
        "properties": {
            "field": {
                "type": "string",
                "pattern": r"^(event_type|source|value|metadata(\.[^.]+)+)$",
                "description": "event_type, source, value or metadata.<key>",
            },
            "threshold": {
                "type": "integer",
                "minimum": 1,
                "description": "distinct values in the window that fire",
            },
        },
    }

    def __init__(self, options: Options, rule: RuleInfo, window: Window) -> None:
        super().__init__(options, rule, window)
        self.threshold: int = options["threshold"]
        self.field: str = options["field"]
        self._get = field_getter(self.field)
        self.window_text = format_duration(window.size_us)

    def read(self, event: Event) -> Hashable:
        value = self._get(event)
        if isinstance(value, (dict, list)):
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        return value  # type: ignore[no-any-return]

    def signal(self, at_us: int, active: bool, seen: Mapping[Hashable, int]) -> Signal:
        examples = sorted(seen, key=str)[:EXAMPLES]
        evidence = {
            "distinct": len(seen),
            "bound": self.threshold,
            "window": self.window_text,
            "examples": ", ".join(str(value) for value in examples),
        }
        return Signal(at_us, active, evidence)

    def new_state(self) -> CardinalityState:
        return CardinalityState(self)

    def restore_state(self, data: Mapping[str, Any]) -> CardinalityState:
        state = CardinalityState(self)
        state.restore(data)
        return state


@hookimpl
def engine_register_detectors() -> list[type[Detector]]:
    return [CardinalityDetector]
