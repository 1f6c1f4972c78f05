"""The cardinality detector: at least ``threshold`` distinct non-null values
of a field among the events in the sliding window."""

from __future__ import annotations

from detector_harness import (
    MS,
    SECOND,
    changes_of,
    field_arrivals,
    rules_file,
    status_edges,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.components import RuleInfo
from engine.events import Event
from engine.plugins.detector_cardinality import CardinalityDetector
from engine.plugins.window_sliding import SlidingWindow
from engine.testing import event, run_rules

RULE = RuleInfo("R", 0, "<test>")


def rules(detector: str, size: str = "10s", lateness_ms: int = 0) -> str:
    """A rules file with one ungrouped rule over ERROR events."""
    return rules_file(
        "[engine.plugins.detector_cardinality]",
        f"{{type: sliding, size: {size}}}",
        detector,
        lateness_ms,
        group_by=None,
        name="MANY_SOURCES_FAILING",
    )


def test_many_sources_failing_at_once_fire() -> None:
    """Three distinct sources within 10 s fire at the third; the first source
    leaves at 10 s, but it sent again at 4 s, so the count holds until 12 s,
    when web-2 leaves."""
    batch = [
        event(0, source="web-1"),
        event(2, source="web-2"),
        event(3, source="web-3"),
        event(4, source="web-1"),
    ]
    alerts = run_rules(
        rules("{type: cardinality, field: source, threshold: 3}"), [batch]
    )

    assert status_edges(alerts) == [("firing", 3 * SECOND), ("resolved", 12 * SECOND)]
    assert alerts[0].evidence == {
        "distinct": 3,
        "bound": 3,
        "window": "10s",
        "examples": "web-1, web-2, web-3",
    }


def test_repeats_of_one_value_count_once() -> None:
    """Ten events from one source are one distinct value."""
    alerts = run_rules(
        rules("{type: cardinality, field: source, threshold: 2}"),
        [[event(i * 0.1, source="web-1") for i in range(10)]],
    )

    assert alerts == []


def test_metadata_field_with_nulls_ignored() -> None:
    """metadata.user: events without the key do not add a value."""
    batch = [event(0, user="a"), event(1), event(2, user="b"), event(3, user=None)]
    alerts = run_rules(
        rules("{type: cardinality, field: metadata.user, threshold: 3}"), [batch]
    )

    assert alerts == []


def test_examples_show_at_most_five_values() -> None:
    """Seven distinct values: the evidence lists the first five in order."""
    state = CardinalityDetector(
        {"field": "source", "threshold": 7},
        RULE,
        SlidingWindow({"size": "10s"}, RULE),
    ).new_state()
    for i in range(7):
        state.add(Event(i * SECOND, "ERROR", f"s{i}"))

    signals = state.advance(7 * SECOND)

    assert signals[0].evidence["examples"] == "s0, s1, s2, s3, s4"
    assert signals[0].evidence["distinct"] == 7


def test_snapshot_restores_values_in_the_window() -> None:
    """A restored state resolves at the same instant as the original."""
    detector = CardinalityDetector(
        {"field": "source", "threshold": 2},
        RULE,
        SlidingWindow({"size": "10s"}, RULE),
    )
    state = detector.new_state()
    for i, source in enumerate(("a", "b", "a")):
        state.add(Event(i * SECOND, "ERROR", source))
    state.advance(2 * SECOND)

    restored = detector.restore_state(state.snapshot())

    assert restored.advance(30 * SECOND) == state.advance(30 * SECOND)


# -- property: the engine against the definition, on a grid of milliseconds --


def reference(
    stream: list[tuple[int, str | None]], size: int, threshold: int
) -> list[tuple[int, bool]]:
    """Edges of the documented condition at every millisecond."""
    times = [ts for ts, _ in stream]

    def holds(t: int) -> bool:
        distinct = {v for ts, v in stream if v is not None and t - size < ts <= t}
        return len(distinct) >= threshold

    return changes_of(holds, range(min(times), max(times) + size + 2))


@settings(max_examples=80, deadline=None)
@given(
    data=field_arrivals(
        st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"])), "user"
    ),
    size=st.integers(1, 40),
    threshold=st.integers(1, 4),
)
def test_alerts_match_the_reference_for_any_arrival_order(
    data: tuple[list[tuple[int, str | None]], int, list[list[Event]]],
    size: int,
    threshold: int,
) -> None:
    """The alerts are the edges of the definition."""
    stream, lateness, batches = data
    text = rules(
        f"{{type: cardinality, field: metadata.user, threshold: {threshold}}}",
        f"{size}ms",
        lateness,
    )

    alerts = run_rules(text, batches)

    assert sorted(status_edges(alerts)) == sorted(
        ("firing" if active else "resolved", t * MS)
        for t, active in reference(stream, size, threshold)
    )
