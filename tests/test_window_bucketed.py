"""The bucketed window: events count as if at the end of their bucket
(``ceil(ts / r) * r``), and the window slides exactly over those times."""

from __future__ import annotations

from random import Random

from detector_harness import (
    MS,
    SECOND,
    add_shuffled,
    changes_of,
    run_in_two_batches,
    status_edges,
    walk,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.components import RuleInfo
from engine.config import parse_config
from engine.errors import UsageError
from engine.plugins.window_bucketed import BucketedWindow, BucketedWindowState
from engine.testing import event, run_rules

RULE = RuleInfo("R", 0, "<test>")


def window(size: str = "10s", resolution: str = "1s") -> BucketedWindow:
    """A bucketed window with the given options."""
    return BucketedWindow({"size": size, "resolution": resolution}, RULE)


def test_event_counts_from_the_end_of_its_bucket() -> None:
    """An event at 2.3 s counts from 3 s and leaves at 13 s (size 10 s, r 1 s)."""
    state = window().new_state()
    state.add(2_300 * MS)

    assert walk(state) == [(3 * SECOND, 1), (13 * SECOND, 0)]


def test_event_on_a_boundary_is_not_moved() -> None:
    """An event at exactly 3 s counts from 3 s: its bucket is (2 s, 3 s]."""
    state = window().new_state()
    state.add(3 * SECOND)

    assert walk(state) == [(3 * SECOND, 1), (13 * SECOND, 0)]


def test_memory_is_one_counter_per_bucket() -> None:
    """A thousand events in one bucket keep a single counter."""
    state = window().new_state()
    for i in range(1000):
        state.add(4 * SECOND + 1 + i)
    state.move_to(6 * SECOND)

    assert state.total == 1000
    assert len(state.decided) == 1


def test_falls_below_at_is_when_enough_buckets_left() -> None:
    """Counts 2 at 1 s and 3 at 2 s: below 4 once the 1 s bucket leaves (11 s),
    below 3 only once the 2 s bucket leaves too (12 s)."""
    state = window().new_state()
    for time_us in (500 * MS, SECOND, 1_500 * MS, 2 * SECOND, 2 * SECOND):
        state.add(time_us)
    state.move_to(2 * SECOND)

    assert state.falls_below_at(4) == 11 * SECOND
    assert state.falls_below_at(3) == 12 * SECOND
    assert state.falls_below_at(1) == 12 * SECOND
    assert state.falls_below_at(6) is None
    assert state.empty_at() == 12 * SECOND


def test_late_event_joins_its_bucket_if_still_in_window() -> None:
    """A late event in a decided bucket adds to it; one that already left is
    ignored."""
    state = window().new_state()
    state.add(5 * SECOND)
    state.move_to(14 * SECOND)

    state.add_late(4_500 * MS)
    state.add_late(3 * SECOND)

    assert state.move_to(14 * SECOND) == 2
    assert state.falls_below_at(1) == 15 * SECOND


def test_snapshot_round_trip_keeps_counts_and_pending() -> None:
    """A restored state walks the same instants as the original."""
    win = window()
    state = win.new_state()
    for time_us in (SECOND, 2 * SECOND, 7 * SECOND):
        state.add(time_us)
    state.move_to(2 * SECOND)

    restored = win.restore_state(state.snapshot())

    assert walk(restored) == walk(state)


def test_size_must_be_a_multiple_of_the_resolution() -> None:
    """size 10s with resolution 3s is refused at validation time."""
    rules = """
version: 1
plugins: [engine.plugins.window_bucketed]
sources: [{type: generator}]
rules:
  - name: R
    window: {type: bucketed, size: 10s, resolution: 3s}
    detector: {type: burst, threshold: 2}
"""
    try:
        parse_config(rules, "<rules>")
    except UsageError as error:
        assert [p.path for p in error.problems] == ["rules[0].window.size"]
        assert "multiple of the resolution" in error.problems[0].message
    else:
        raise AssertionError("expected a UsageError")


def test_burst_over_bucketed_window_fires_at_bucket_end() -> None:
    """Three events at 0.2, 0.4 and 0.6 s reach N=3 at the 1 s boundary."""
    rules = """
version: 1
plugins: [engine.plugins.window_bucketed]
sources: [{type: memory}]
rules:
  - name: R
    window: {type: bucketed, size: 5s, resolution: 1s}
    detector: {type: burst, threshold: 3}
"""
    alerts = run_rules(rules, [[event(0.2), event(0.4), event(0.6)]])

    assert [(a.status, a.starts_at_us, a.ends_at_us) for a in alerts] == [
        ("firing", SECOND, None),
        ("resolved", SECOND, 6 * SECOND),
    ]


def reference_count(times: list[int], size: int, resolution: int, t: int) -> int:
    """The documented count: rounded-up times q with t - size < q <= t."""
    rounded = [-(-ts // resolution) * resolution for ts in times]
    return sum(1 for q in rounded if t - size < q <= t)


@settings(max_examples=150, deadline=None)
@given(
    times=st.lists(st.integers(0, 40), max_size=25),
    size_buckets=st.integers(1, 6),
    resolution=st.integers(1, 4),
    order=st.randoms(use_true_random=False),
)
def test_walk_matches_the_rounded_reference(
    times: list[int], size_buckets: int, resolution: int, order: Random
) -> None:
    """Walked counts equal the reference at every instant, and the count never
    changes between two walked instants."""
    size = size_buckets * resolution
    state = BucketedWindowState(size, resolution)
    add_shuffled(state, times, order)

    walked = walk(state)

    for instant, count in walked:
        assert count == reference_count(times, size, resolution, instant)
    changes = [
        t
        for t in range(-1, 60)
        if reference_count(times, size, resolution, t)
        != reference_count(times, size, resolution, t - 1)
    ]
    assert set(changes) <= {instant for instant, _ in walked}


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(0, 100), min_size=1, max_size=25),
    size_buckets=st.integers(1, 6),
    resolution=st.integers(1, 6),
    threshold=st.integers(1, 4),
    cut=st.integers(0, 25),
)
def test_burst_over_bucketed_matches_the_reference(
    times: list[int], size_buckets: int, resolution: int, threshold: int, cut: int
) -> None:
    """burst over a bucketed window fires at the rising edges of the rounded
    count reaching N, and resolves when it falls below."""
    size = size_buckets * resolution
    rules = f"""
version: 1
plugins: [engine.plugins.window_bucketed]
sources: [{{type: memory}}]
rules:
  - name: R
    window: {{type: bucketed, size: {size}ms, resolution: {resolution}ms}}
    detector: {{type: burst, threshold: {threshold}}}
"""
    alerts = run_in_two_batches(rules, times, cut)

    changes = changes_of(
        lambda t: reference_count(times, size, resolution, t) >= threshold,
        range(0, max(times) + 2 * size + 2),
    )
    expected = [("firing" if now else "resolved", t * MS) for t, now in changes]
    assert status_edges(alerts) == expected
