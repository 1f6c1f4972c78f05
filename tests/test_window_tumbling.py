"""The tumbling window: window ``k`` holds ``[k*size, (k+1)*size)``; its count
is the group's count from ``(k+1)*size`` until the next window ends."""

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
from engine.plugins.window_tumbling import TumblingWindow, TumblingWindowState
from engine.testing import event, run_rules

RULE = RuleInfo("R", 0, "<test>")


def test_count_of_a_window_appears_at_its_end_for_one_window() -> None:
    """Two events in [10 s, 20 s) give count 2 from 20 s to 30 s."""
    state = TumblingWindow({"size": "10s"}, RULE).new_state()
    state.add(10 * SECOND)
    state.add(19_999_999)

    assert walk(state) == [(20 * SECOND, 2), (30 * SECOND, 0)]


def test_event_on_a_boundary_opens_the_next_window() -> None:
    """An event at exactly 20 s belongs to [20 s, 30 s), counted from 30 s."""
    state = TumblingWindow({"size": "10s"}, RULE).new_state()
    state.add(20 * SECOND)

    assert walk(state) == [(30 * SECOND, 1), (40 * SECOND, 0)]


def test_consecutive_windows_replace_each_other() -> None:
    """Counts 1, then 3: the walk shows 1 at 10 s and 3 at 20 s."""
    state = TumblingWindow({"size": "10s"}, RULE).new_state()
    for seconds in (5, 12, 13, 19):
        state.add(seconds * SECOND)

    assert walk(state) == [(10 * SECOND, 1), (20 * SECOND, 3), (30 * SECOND, 0)]


def test_windows_are_aligned_to_the_epoch() -> None:
    """With size 1m, an event at 90 s falls in [60 s, 120 s)."""
    state = TumblingWindow({"size": "1m"}, RULE).new_state()
    state.add(90 * SECOND)

    assert walk(state)[0] == (120 * SECOND, 1)


def test_burst_over_tumbling_window_fires_at_window_end() -> None:
    """Three events in [0 s, 10 s) with N=3 fire at 10 s and resolve at 20 s."""
    rules = """
version: 1
plugins: [engine.plugins.window_tumbling]
sources: [{type: memory}]
rules:
  - name: R
    window: {type: tumbling, size: 10s}
    detector: {type: burst, threshold: 3}
"""
    alerts = run_rules(rules, [[event(1), event(4), event(9.5), event(12)]])

    assert [(a.status, a.starts_at_us, a.ends_at_us) for a in alerts] == [
        ("firing", 10 * SECOND, None),
        ("resolved", 10 * SECOND, 20 * SECOND),
    ]


def test_burst_over_tumbling_window_ignores_a_burst_split_by_a_boundary() -> None:
    """Two events each side of 10 s never make three in one window."""
    rules = """
version: 1
plugins: [engine.plugins.window_tumbling]
sources: [{type: memory}]
rules:
  - name: R
    window: {type: tumbling, size: 10s}
    detector: {type: burst, threshold: 3}
"""
    assert run_rules(rules, [[event(8), event(9), event(10), event(11)]]) == []


def test_snapshot_round_trip_keeps_windows() -> None:
    """A restored state walks the same instants as the original."""
    win = TumblingWindow({"size": "10s"}, RULE)
    state = win.new_state()
    for seconds in (5, 12, 13, 31):
        state.add(seconds * SECOND)
    state.move_to(20 * SECOND)

    restored = win.restore_state(state.snapshot())

    assert walk(restored) == walk(state)


def reference_count(times: list[int], size: int, t: int) -> int:
    """The documented count: events of the last window ending at or before t."""
    last_end = (t // size) * size
    return sum(1 for ts in times if last_end - size <= ts < last_end)


@settings(max_examples=150, deadline=None)
@given(
    times=st.lists(st.integers(0, 40), max_size=25),
    size=st.integers(1, 8),
    order=st.randoms(use_true_random=False),
)
def test_walk_matches_the_window_reference(
    times: list[int], size: int, order: Random
) -> None:
    """Walked counts equal the reference at every instant, and the count never
    changes between two walked instants."""
    state = TumblingWindowState(size)
    add_shuffled(state, times, order)

    walked = walk(state)

    for instant, count in walked:
        assert count == reference_count(times, size, instant)
    changes = [
        t
        for t in range(-1, 60)
        if reference_count(times, size, t) != reference_count(times, size, t - 1)
    ]
    assert set(changes) <= {instant for instant, _ in walked}


@settings(max_examples=60, deadline=None)
@given(
    times=st.lists(st.integers(0, 100), min_size=1, max_size=25),
    size=st.integers(1, 30),
    threshold=st.integers(1, 4),
    cut=st.integers(0, 25),
)
def test_burst_over_tumbling_matches_the_reference(
    times: list[int], size: int, threshold: int, cut: int
) -> None:
    """burst over tumbling windows fires at the end of every window holding
    at least N events and resolves at the end of the next one that does not."""
    rules = f"""
version: 1
plugins: [engine.plugins.window_tumbling]
sources: [{{type: memory}}]
rules:
  - name: R
    window: {{type: tumbling, size: {size}ms}}
    detector: {{type: burst, threshold: {threshold}}}
"""
    alerts = run_in_two_batches(rules, times, cut)

    changes = changes_of(
        lambda t: reference_count(times, size, t) >= threshold,
        range(0, max(times) + 2 * size + 2),
    )
    expected = [("firing" if now else "resolved", t * MS) for t, now in changes]
    assert status_edges(alerts) == expected
