"""Detector ``threshold``: an aggregate of ``value`` over the window against
a bound.

At instant ``t`` the window holds the events with ``t - size < ts <= t`` and
a ``value`` (events whose value is null are ignored). The aggregate is their
``count``, ``sum``, ``avg``, ``min``, ``max`` or a percentile (``p50``,
``p90``, ``p95``, ``p99``, or ``percentile: q`` for any ``0 <= q <= 1``),
the percentile being the nearest rank: the ``ceil(q * n)``-th smallest of
the ``n`` values (the smallest when ``q * n`` is 0). The group is active
while the window holds at least one value and ``aggregate op value`` holds;
an empty window is never active (``absence`` covers "fewer than N events",
zero included). Values and the bound are taken as the decimals they are
written as, and sums and averages are exact rationals, so ``==`` means what
it says (``0.1 + 0.2 == 0.3`` holds).

The state keeps every ``(time, value)`` pair in the window and the values in
a sorted list, so minimum, maximum and percentiles stay exact as events
leave; it needs the ``sliding`` window, whose ``size`` it uses.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, insort
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, ClassVar

from engine.components import Detector, Options, RuleInfo, Signal, Window
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.timeutil import format_duration

from .detector_support import ValueWindowState

PERCENTILES = {"p50": "0.5", "p90": "0.9", "p95": "0.95", "p99": "0.99"}
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}


def exact(number: Fraction | float | int) -> Fraction:
    """A number as the rational its shortest decimal text denotes: ``0.1``
    is one tenth, not the binary float nearest to it, so that sums of values
    written with decimals compare as written."""
    if isinstance(number, float):
        return Fraction(repr(number))
    return Fraction(number)


class ThresholdState(ValueWindowState):
    kind = "threshold"

    def __init__(self, detector: ThresholdDetector) -> None:
        self.detector = detector
        self.values: list[float | int] = []
        self.total = Fraction(0)
        super().__init__(detector.window.size_us)

    def _value(self, event: Event) -> float | int | None:
        return event.value

    def _join(self, value: float | int) -> None:
        insort(self.values, value)
        if self.detector.needs_sum:
            self.total += exact(value)

    def _leave(self, value: float | int) -> None:
        del self.values[bisect_left(self.values, value)]
        if self.detector.needs_sum:
            self.total -= exact(value)

    def _holds(self) -> bool:
        detector = self.detector
        measure = detector.aggregate(self.values, self.total)
        return measure is not None and detector.compare(
            exact(measure), detector.exact_bound
        )

    def _signal(self, instant_us: int, active: bool) -> Signal:
        detector = self.detector
        measure = detector.aggregate(self.values, self.total)
        return detector.signal(instant_us, active, measure, len(self.values))


class ThresholdDetector(Detector):
    type_name: ClassVar[str] = "threshold"
    description: ClassVar[str] = "an aggregate of value over the window against a bound"
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "aggregate",
        "value",
        "bound",
        "count",
        "window",
    )
    event_fields: ClassVar[frozenset[str]] = frozenset({"time_us", "value"})
    window_types: ClassVar[frozenset[str]] = frozenset({"sliding"})
    default_summary: ClassVar[str] = (
        "{aggregate} of value over {window} is {value} (bound {bound})"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["op", "value"],
        "additionalProperties": False,
        "properties": {
            "aggregate": {
                "enum": ["count", "sum", "avg", "min", "max", *PERCENTILES],
                "description": "what to compute over the values in the window",
            },
            "percentile": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "a percentile (nearest rank) instead of aggregate",
            },
            "op": {"enum": list(OPERATORS)},
            "value": {"type": "number", "description": "the bound"},
        },
    }

    def __init__(self, options: Options, rule: RuleInfo, window: Window) -> None:
        super().__init__(options, rule, window)
        self.bound: float | int = options["value"]
        self.exact_bound = exact(self.bound)
        self.compare = OPERATORS[options["op"]]
        name = options.get("aggregate")
        self.quantile: Fraction | None = None
        if "percentile" in options:
            self.quantile = Fraction(str(options["percentile"]))
            name = f"p{float(options['percentile']) * 100:g}"
        elif name in PERCENTILES:
            self.quantile = Fraction(PERCENTILES[name])
        self.aggregate_name: str = name or "count"
        self.needs_sum = self.aggregate_name in ("sum", "avg")
        self.window_text = format_duration(window.size_us)

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        if ("aggregate" in options) == ("percentile" in options):
            return [((), "give exactly one of 'aggregate' and 'percentile'")]
        return []

    def aggregate(
        self, values: list[float | int], total: Fraction
    ) -> Fraction | float | int | None:
        """The aggregate of the sorted ``values`` (whose sum is ``total``),
        or None when there are none."""
        count = len(values)
        if not count:
            return None
        if self.quantile is not None:
            rank = math.ceil(self.quantile * count)
            return values[max(rank, 1) - 1]
        name = self.aggregate_name
        if name == "count":
            return count
        if name == "sum":
            return total
        if name == "avg":
            return total / count
        return values[0] if name == "min" else values[-1]

    def signal(
        self,
        at_us: int,
        active: bool,
        measure: Fraction | float | int | None,
        count: int,
    ) -> Signal:
        if isinstance(measure, Fraction):
            measure = int(measure) if measure.denominator == 1 else float(measure)
        evidence = {
            "aggregate": self.aggregate_name,
            "value": measure,
            "bound": self.bound,
            "count": count,
            "window": self.window_text,
        }
        return Signal(at_us, active, evidence)

    def new_state(self) -> ThresholdState:
        return ThresholdState(self)

    def restore_state(self, data: Mapping[str, Any]) -> ThresholdState:
        state = ThresholdState(self)
        state.restore(data)
        return state


@hookimpl
def engine_register_detectors() -> list[type[Detector]]:
    return [ThresholdDetector]
