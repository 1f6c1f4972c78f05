"""Detector ``rate_ratio``: a short window's rate against a long baseline's.

Two windows of the rule's window type (sliding, bucketed or tumbling) and of
lengths ``short`` and ``long`` count the group's events; the rule's own
window ``size`` is not used. A group may fire only once its long window has
held events without a break for ``warmup`` (default ``long``, so that the
baseline covers a whole window): with ``r`` the instant the current run of
``L(t) > 0`` began, only at instants ``t >= r + warmup``. A group whose
long window empties starts its warm-up again with its next event.

``mode: ratio`` (default): with ``S(t)`` and ``L(t)`` the counts, the rates
are ``S/short`` and ``L/long`` events per second, and the group is active
when ``S >= min_count``, ``L > 0`` and ``(S/short) / (L/long) >= ratio``.

``mode: burn_rate``: the multi-window burn-rate alert of SLO practice.
Among the rule's matching events, those that also match ``errors:`` are
errors; the error ratio of a window is errors over all its events, and its
burn rate that ratio over the error budget ``1 - slo``. The group is active
when both windows hold at least one event, the short window at least
``min_count`` errors, and both burn rates are at least ``burn_rate``.

Both conditions are compared in exact rational arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

from engine.components import (
    Detector,
    Options,
    RuleInfo,
    Signal,
    Window,
    WindowState,
)
from engine.events import Event
from engine.hookspecs import hookimpl
from engine.matching import compile_match
from engine.timeutil import US_PER_SECOND, format_duration, parse_duration

from .detector_support import NEVER, InstantWalker

SNAPSHOT_VERSION = 1


class RateRatioState(InstantWalker):
    def __init__(self, detector: RateRatioDetector, windows: list[WindowState]) -> None:
        self.detector = detector
        #: short, long; then, in burn-rate mode, errors in short and in long.
        self.counters = windows
        self.windows = windows
        self.now_us = NEVER
        self.active = False
        #: The instant the long window last became non-empty, while it is.
        self.nonempty_since: int | None = None

    def add(self, event: Event) -> None:
        windows = self.counters
        windows[0].add(event.time_us)
        windows[1].add(event.time_us)
        errors = self.detector.errors
        if errors is not None and errors(event):
            windows[2].add(event.time_us)
            windows[3].add(event.time_us)

    def add_late(self, event: Event) -> None:
        windows = self.counters
        windows[0].add_late(event.time_us)
        windows[1].add_late(event.time_us)
        errors = self.detector.errors
        if errors is not None and errors(event):
            windows[2].add_late(event.time_us)
            windows[3].add_late(event.time_us)

    def own_instant(self) -> int | None:
        if self.nonempty_since is None:
            return None
        return self.nonempty_since + self.detector.warmup_us

    def decide(self, instant_us: int, counts: list[int]) -> Signal | None:
        detector = self.detector
        if counts[1] == 0:
            self.nonempty_since = None
        elif self.nonempty_since is None:
            self.nonempty_since = instant_us
        warm = (
            self.nonempty_since is not None
            and instant_us - self.nonempty_since >= detector.warmup_us
        )
        active = warm and detector.holds(counts)
        if active == self.active:
            return None
        self.active = active
        return detector.signal(instant_us, active, counts)

    def is_idle(self) -> bool:
        return not self.active and all(w.next_change() is None for w in self.windows)

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "active": self.active,
            "nonempty_since": self.nonempty_since,
            "now_us": self.now_us,
            "windows": [window.snapshot() for window in self.counters],
        }


class RateRatioDetector(Detector):
    type_name: ClassVar[str] = "rate_ratio"
    description: ClassVar[str] = (
        "short-window rate against a long baseline, or an SLO burn rate"
    )
    evidence_fields: ClassVar[tuple[str, ...]] = (
        "ratio",
        "short_rate",
        "long_rate",
        "short_count",
        "long_count",
        "short_errors",
        "long_errors",
        "short_burn_rate",
        "long_burn_rate",
        "burn_rate",
        "short",
        "long",
    )
    #: ``errors:`` may test any field, metadata included.
    event_fields: ClassVar[frozenset[str] | None] = None
    default_summary: ClassVar[str] = (
        "{short_count} events in {short}: {ratio}x the rate over {long}"
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["short", "long"],
        "additionalProperties": False,
        "properties": {
            "mode": {"enum": ["ratio", "burn_rate"], "default": "ratio"},
            "short": {"$ref": "#/$defs/duration"},
            "long": {"$ref": "#/$defs/duration"},
            "ratio": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "mode ratio: short rate / long rate that fires",
            },
            "min_count": {
                "type": "integer",
                "minimum": 1,
                "default": 1,
                "description": "events (mode burn_rate: errors) the short window "
                "must hold",
            },
            "warmup": {
                "$ref": "#/$defs/duration",
                "description": "how long a group's long window must have held "
                "events without a break before it may fire; defaults to long",
            },
            "errors": {
                "type": "object",
                "description": "mode burn_rate: the match that makes an event "
                "an error (same form as the rule's match)",
            },
            "slo": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "burn_rate": {"type": "number", "exclusiveMinimum": 0},
        },
    }

    def __init__(self, options: Options, rule: RuleInfo, window: Window) -> None:
        super().__init__(options, rule, window)
        self.mode: str = options.get("mode", "ratio")
        self.short_us = parse_duration(options["short"])
        self.long_us = parse_duration(options["long"])
        self.min_count: int = options.get("min_count", 1)
        warmup = options.get("warmup")
        self.warmup_us = self.long_us if warmup is None else parse_duration(warmup)
        self.short_window = window.resized(self.short_us)
        self.long_window = window.resized(self.long_us)
        self.errors = None
        if self.mode == "burn_rate":
            self.errors = compile_match(options["errors"]) or (lambda event: True)
            self.budget = 1 - Fraction(str(options["slo"]))
            self.burn_rate = Fraction(str(options["burn_rate"]))
        else:
            self.ratio = Fraction(str(options["ratio"]))

    @classmethod
    def check_options(cls, options: Options) -> list[tuple[tuple[str, ...], str]]:
        problems: list[tuple[tuple[str, ...], str]] = []
        short, long = parse_duration(options["short"]), parse_duration(options["long"])
        if short <= 0 or short >= long:
            problems.append(
                (
                    ("short",),
                    (
                        f"found {options['short']!r}, expected a positive duration "
                        f"shorter than long ({options['long']!r})"
                    ),
                )
            )
        if options.get("mode", "ratio") == "burn_rate":
            for name in ("errors", "slo", "burn_rate"):
                if name not in options:
                    problems.append(((), f"mode burn_rate needs {name!r}"))
            if "ratio" in options:
                problems.append((("ratio",), "ratio applies to mode ratio only"))
        else:
            if "ratio" not in options:
                problems.append(((), "mode ratio needs 'ratio'"))
            for name in ("errors", "slo", "burn_rate"):
                if name in options:
                    problems.append(((name,), f"{name} applies to mode burn_rate only"))
        return problems

    def holds(self, counts: list[int]) -> bool:
        if self.mode == "ratio":
            short, long = counts[0], counts[1]
            # (short / short_us) / (long / long_us) >= ratio, without division.
            return (
                short >= self.min_count
                and long > 0
                and short * self.long_us >= self.ratio * long * self.short_us
            )
        total_short, total_long, errors_short, errors_long = counts
        level = self.burn_rate * self.budget
        return (
            errors_short >= self.min_count
            and total_long > 0
            and errors_short >= level * total_short
            and errors_long >= level * total_long
        )

    def signal(self, at_us: int, active: bool, counts: list[int]) -> Signal:
        short, long = counts[0], counts[1]
        evidence: dict[str, Any] = {
            "short": format_duration(self.short_us),
            "long": format_duration(self.long_us),
            "short_count": short,
            "long_count": long,
        }
        if self.mode == "ratio":
            evidence["short_rate"] = _rounded(
                Fraction(short * US_PER_SECOND, self.short_us)
            )
            evidence["long_rate"] = _rounded(
                Fraction(long * US_PER_SECOND, self.long_us)
            )
            evidence["ratio"] = (
                _rounded(Fraction(short * self.long_us, long * self.short_us))
                if long
                else None
            )
            return Signal(at_us, active, evidence)
        errors_short, errors_long = counts[2], counts[3]
        evidence["short_errors"] = errors_short
        evidence["long_errors"] = errors_long
        evidence["burn_rate"] = _rounded(self.burn_rate)
        for name, errors, total in (
            ("short_burn_rate", errors_short, short),
            ("long_burn_rate", errors_long, long),
        ):
            burn = Fraction(errors, total) / self.budget if total else None
            evidence[name] = None if burn is None else _rounded(burn)
        return Signal(at_us, active, evidence)

    def _windows(self) -> list[WindowState]:
        windows = [self.short_window.new_state(), self.long_window.new_state()]
        if self.mode == "burn_rate":
            windows += [self.short_window.new_state(), self.long_window.new_state()]
        return windows

    def new_state(self) -> RateRatioState:
        return RateRatioState(self, self._windows())

    def restore_state(self, data: Mapping[str, Any]) -> RateRatioState:
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"unknown rate_ratio snapshot version {data.get('version')!r}"
            )
        made = [self.short_window, self.long_window] * 2
        windows = [
            made[i].restore_state(saved) for i, saved in enumerate(data["windows"])
        ]
        state = RateRatioState(self, windows)
        state.active = bool(data["active"])
        state.nonempty_since = data["nonempty_since"]
        state.now_us = data["now_us"]
        return state


def _rounded(value: Fraction) -> float:
    """A rational for evidence: a float to six decimals."""
    return round(float(value), 6)


@hookimpl
def engine_register_detectors() -> list[type[Detector]]:
    return [RateRatioDetector]
