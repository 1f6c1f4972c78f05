"""The threshold detector: an aggregate of ``value`` over the sliding window
against a bound; null values are ignored and an empty window is inactive."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from detector_harness import (
    MS,
    SECOND,
    changes_of,
    config_problems,
    edges,
    field_arrivals,
    rules_file,
    source_edges,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import UsageError
from engine.events import Event
from engine.testing import event, run_rules


def rules(
    detector: str, window: str = "{type: sliding, size: 10s}", **more: Any
) -> str:
    """A rules file with one rule over ERROR events, by source."""
    return rules_file(
        "[engine.plugins.detector_threshold, engine.plugins.window_tumbling]",
        window,
        detector,
        more.get("lateness_ms", 0),
    )


def test_average_above_bound_fires_and_resolves_as_values_leave() -> None:
    """Values 10, 50, 30 at 0, 1, 2 s: avg 30 > 25 from 1 s; at 10 s the 10
    leaves (avg 40), at 11 s the 50 leaves (avg 30), at 12 s the window is
    empty."""
    alerts = run_rules(
        rules("{type: threshold, aggregate: avg, op: '>', value: 25}"),
        [[event(0, value=10), event(1, value=50), event(2, value=30)]],
    )

    assert edges(alerts) == [
        ("web-1", "firing", SECOND),
        ("web-1", "resolved", 12 * SECOND),
    ]
    assert alerts[0].evidence == {
        "aggregate": "avg",
        "value": 30,
        "bound": 25,
        "count": 2,
        "window": "10s",
    }


def test_max_falls_when_the_largest_value_leaves() -> None:
    """max >= 100: the 100 at 1 s leaves at 11 s, with 5 still in the window."""
    alerts = run_rules(
        rules("{type: threshold, aggregate: max, op: '>=', value: 100}"),
        [[event(0, value=5), event(1, value=100), event(5, value=7)]],
    )

    assert edges(alerts) == [
        ("web-1", "firing", SECOND),
        ("web-1", "resolved", 11 * SECOND),
    ]
    assert alerts[1].evidence["value"] == 7


def test_min_below_bound() -> None:
    """min < 2: fires when the 1 arrives at 3 s, resolves when it leaves."""
    alerts = run_rules(
        rules("{type: threshold, aggregate: min, op: '<', value: 2}"),
        [[event(0, value=5), event(3, value=1), event(4, value=8)]],
    )

    assert edges(alerts) == [
        ("web-1", "firing", 3 * SECOND),
        ("web-1", "resolved", 13 * SECOND),
    ]


def test_percentile_is_the_nearest_rank() -> None:
    """Values 1..10: p90 is the 9th smallest (9); percentile 0.95 the 10th."""
    batch = [event(0.1 * i, value=i + 1) for i in range(10)]
    p90 = run_rules(
        rules("{type: threshold, aggregate: p90, op: '>=', value: 9}"), [batch]
    )
    p95 = run_rules(
        rules("{type: threshold, percentile: 0.95, op: '==', value: 10}"), [batch]
    )

    # p90 of 1..9 is the ceil(8.1) = 9th smallest, 9: it fires at the 9th event.
    assert p90[0].starts_at_us == 800 * MS
    assert p90[0].evidence["aggregate"] == "p90"
    assert p95[0].starts_at_us == 900 * MS
    assert p95[0].evidence["aggregate"] == "p95"


def test_sum_is_exact_for_decimal_values() -> None:
    """0.1 + 0.2 == 0.3 holds exactly (the sum is rational, not binary)."""
    alerts = run_rules(
        rules("{type: threshold, aggregate: sum, op: '==', value: 0.3}"),
        [[event(0, value=0.1), event(1, value=0.2)]],
    )

    assert edges(alerts)[0] == ("web-1", "firing", SECOND)


def test_null_values_are_ignored() -> None:
    """count >= 2 counts only the events that carry a value."""
    alerts = run_rules(
        rules("{type: threshold, aggregate: count, op: '>=', value: 2}"),
        [[event(0, value=1), event(1), event(2), event(3, value=4)]],
    )

    assert edges(alerts)[0] == ("web-1", "firing", 3 * SECOND)


def test_aggregate_and_percentile_are_exclusive() -> None:
    """Giving both, or neither, is refused."""
    both = config_problems(
        rules("{type: threshold, aggregate: max, percentile: 0.5, op: '>', value: 1}")
    )
    neither = config_problems(rules("{type: threshold, op: '>', value: 1}"))

    assert both and "exactly one" in both[0][1]
    assert neither and "exactly one" in neither[0][1]


def test_check_rule_refuses_a_window_other_than_sliding() -> None:
    """The detector's rule check names window.type for a tumbling window."""
    from engine.plugins.detector_threshold import ThresholdDetector

    rule = {
        "window": {"type": "tumbling", "size": "1m"},
        "detector": {"type": "threshold", "aggregate": "max", "op": ">", "value": 1},
    }

    found = ThresholdDetector.check_rule(rule)

    assert [path for path, _ in found] == [("window", "type")]
    assert "sliding" in found[0][1]


def test_validation_refuses_threshold_over_a_tumbling_window() -> None:
    """parse_config reports rules[0].window.type for threshold over tumbling."""
    found = config_problems(
        rules(
            "{type: threshold, aggregate: max, op: '>', value: 1}",
            "{type: tumbling, size: 1m}",
        )
    )

    assert [path for path, _ in found] == ["rules[0].window.type"]


# -- property: the engine against the definition, on a grid of milliseconds --

AGGREGATES = ["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99"]
COMPARE = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
}


def aggregate(name: str, values: list[Fraction]) -> Fraction:
    """The documented aggregate of a non-empty list."""
    ordered = sorted(values)
    if name == "count":
        return Fraction(len(values))
    if name == "sum":
        return sum(values, Fraction(0))
    if name == "avg":
        return sum(values, Fraction(0)) / len(values)
    if name == "min":
        return ordered[0]
    if name == "max":
        return ordered[-1]
    rank = math.ceil(Fraction(int(name[1:]), 100) * len(values))
    return ordered[max(rank, 1) - 1]


def reference(
    stream: list[tuple[int, float | None]], size: int, name: str, op: str, bound: float
) -> list[tuple[int, bool]]:
    """Edges of the documented condition at every millisecond."""
    times = [ts for ts, _ in stream]

    def holds(t: int) -> bool:
        values = [
            Fraction(str(v)) for ts, v in stream if v is not None and t - size < ts <= t
        ]
        return bool(values) and COMPARE[op](
            aggregate(name, values), Fraction(str(bound))
        )

    return changes_of(holds, range(min(times), max(times) + size + 2))


@settings(max_examples=80, deadline=None)
@given(
    data=field_arrivals(
        st.one_of(st.none(), st.integers(-3, 6), st.sampled_from([0.5, 2.5, 0.1])),
        "value",
    ),
    size=st.integers(1, 40),
    name=st.sampled_from(AGGREGATES),
    op=st.sampled_from(list(COMPARE)),
    bound=st.sampled_from([-1, 0, 1, 2, 2.5, 3, 5, 8]),
)
def test_alerts_match_the_reference_for_any_arrival_order(
    data: tuple[list[tuple[int, float | None]], int, list[list[Event]]],
    size: int,
    name: str,
    op: str,
    bound: float,
) -> None:
    """For every aggregate and operator, the alerts are the edges of the
    definition."""
    stream, lateness, batches = data
    text = rules(
        f"{{type: threshold, aggregate: {name}, op: '{op}', value: {bound}}}",
        f"{{type: sliding, size: {size}ms}}",
        lateness_ms=lateness,
    )

    alerts = run_rules(text, batches)

    expected = source_edges("web-1", reference(stream, size, name, op, bound))
    assert sorted(edges(alerts)) == sorted(expected)


def test_snapshot_survives_json_and_restores_the_values() -> None:
    """A state saved as JSON and restored decides the same edges."""
    import json

    from engine.components import RuleInfo
    from engine.plugins.detector_threshold import ThresholdDetector
    from engine.plugins.window_sliding import SlidingWindow

    rule = RuleInfo("R", 0, "<test>")
    detector = ThresholdDetector(
        {"aggregate": "avg", "op": ">", "value": 2.5},
        rule,
        SlidingWindow({"size": "10s"}, rule),
    )
    state = detector.new_state()
    for seconds, value in ((0, 1), (1, 4.5), (2, 3), (12, 9)):
        state.add(event(seconds, value=value))
    state.advance(1_500 * MS)

    restored = detector.restore_state(json.loads(json.dumps(state.snapshot())))

    assert restored.advance(60 * SECOND) == state.advance(60 * SECOND)


def test_building_threshold_over_a_tumbling_window_is_a_usage_error() -> None:
    """The detector refuses a window it cannot serve when it is built."""
    from engine.components import RuleInfo
    from engine.plugins.detector_threshold import ThresholdDetector
    from engine.plugins.window_tumbling import TumblingWindow

    rule = RuleInfo("R", 0, "rules.yaml:3:5")
    window = TumblingWindow({"size": "1m"}, rule)

    with pytest.raises(UsageError, match="works with window type sliding only"):
        ThresholdDetector({"aggregate": "max", "op": ">", "value": 1}, rule, window)


def test_snapshot_of_an_unknown_version_is_refused_naming_the_detector() -> None:
    """A snapshot from another format is not half-read: it is refused."""
    from engine.components import RuleInfo
    from engine.plugins.detector_threshold import ThresholdDetector
    from engine.plugins.window_sliding import SlidingWindow

    rule = RuleInfo("R", 0, "<test>")
    detector = ThresholdDetector(
        {"aggregate": "max", "op": ">", "value": 1},
        rule,
        SlidingWindow({"size": "10s"}, rule),
    )
    data = {**detector.new_state().snapshot(), "version": 99}

    with pytest.raises(ValueError, match="unknown threshold snapshot version 99"):
        detector.restore_state(data)
