"""The absence detector: a group watched from its start ``s`` is active at
``t >= s + size`` while ``C(t) < min_count``; decided by event-time timers,
and expected groups are watched from the first watermark."""

from __future__ import annotations

from typing import Any

from detector_harness import (
    SECOND,
    changes_of,
    edges,
    per_source_edges,
    quantised,
    rules_file,
    source_arrivals,
    window_yaml,
    with_windows,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.components import RuleInfo
from engine.events import Event
from engine.plugins.detector_absence import AbsenceDetector
from engine.plugins.window_sliding import SlidingWindow
from engine.testing import event, run_rules

RULE = RuleInfo("R", 0, "<test>")
PLUGINS = with_windows("engine.plugins.detector_absence")


def rules(window: str, detector: str, lateness_ms: int = 0) -> str:
    """A rules file with one rule grouped by source."""
    return rules_file(PLUGINS, window, detector, lateness_ms)


def detector(**options: Any) -> AbsenceDetector:
    """An absence detector over a 5 s sliding window."""
    return AbsenceDetector(options, RULE, SlidingWindow({"size": "5s"}, RULE))


def test_silent_source_fires_when_its_last_event_leaves() -> None:
    """Events at 0, 1, 2 s and W=5s: the source is silent from 7 s."""
    alerts = run_rules(
        rules("{type: sliding, size: 5s}", "{type: absence}"),
        [[event(0), event(1), event(2)]],
    )

    assert edges(alerts) == [("web-1", "firing", 7 * SECOND)]
    assert alerts[0].evidence == {"count": 0, "min_count": 1, "window": "5s"}


def test_returning_source_resolves_at_its_first_event() -> None:
    """Silent from 3 s, the source comes back at 10 s and goes silent again."""
    alerts = run_rules(
        rules("{type: sliding, size: 2s}", "{type: absence}"),
        [[event(0), event(1)], [event(10)]],
    )

    assert edges(alerts) == [
        ("web-1", "firing", 3 * SECOND),
        ("web-1", "resolved", 10 * SECOND),
        ("web-1", "firing", 12 * SECOND),
    ]


def test_min_count_fires_when_the_count_falls_below_it() -> None:
    """Events each second from 0 to 3 s, W=5s, N=3: at 6 s only 2 and 3 s remain."""
    alerts = run_rules(
        rules("{type: sliding, size: 5s}", "{type: absence, min_count: 3}"),
        [[event(t) for t in range(4)]],
    )

    assert edges(alerts) == [("web-1", "firing", 6 * SECOND)]
    assert alerts[0].evidence["count"] == 2


def test_a_group_is_not_judged_before_one_window_after_its_start() -> None:
    """One event at 0 s with N=3: too few from the start, but fires at 5 s only."""
    state = detector(min_count=3).new_state()
    state.add(Event(0, "ERROR", "web-1"))

    assert state.advance(5 * SECOND) == []
    signals = state.advance(5 * SECOND + 1)

    assert [(s.at_us, s.active) for s in signals] == [(5 * SECOND, True)]


def test_silence_is_found_by_the_timer_not_by_a_later_event() -> None:
    """After its event, the state asks to wake up at the expiry instant."""
    state = detector().new_state()
    state.add(Event(SECOND, "ERROR", "web-1"))
    state.advance(2 * SECOND)

    assert state.next_wakeup() == 6 * SECOND
    signals = state.advance(6 * SECOND + 1)
    assert [(s.at_us, s.active) for s in signals] == [(6 * SECOND, True)]


def test_expected_group_never_seen_fires_one_window_after_the_first_watermark() -> None:
    """An expected state starts at its first advance and fires at start + W."""
    state = detector(expect=["web-9"]).new_expected_state()

    assert state.advance(100 * SECOND) == []
    assert state.next_wakeup() == 105 * SECOND
    signals = state.advance(106 * SECOND)
    assert [(s.at_us, s.active, s.evidence["count"]) for s in signals] == [
        (105 * SECOND, True, 0)
    ]


def test_expected_group_seen_in_time_does_not_fire() -> None:
    """An expected group with an event inside its first window stays quiet
    until that event leaves."""
    state = detector(expect=["web-1"]).new_expected_state()
    state.add(Event(100 * SECOND, "ERROR", "web-1"))
    state.advance(100 * SECOND)
    state.add(Event(103 * SECOND, "ERROR", "web-1"))

    signals = state.advance(120 * SECOND)

    assert [(s.at_us, s.active) for s in signals] == [(108 * SECOND, True)]


def test_expected_keys_follow_the_group_by_form() -> None:
    """Bare values for one path, tuples in group_by order for several."""
    assert detector(expect=["web-1", "web-2"]).expected_keys(["source"]) == [
        "web-1",
        "web-2",
    ]
    two = detector(expect=[{"source": "a", "event_type": "ERROR"}])
    assert two.expected_keys(["event_type", "source"]) == [("ERROR", "a")]


def test_expect_entries_must_name_the_group_by_paths() -> None:
    """check_rule reports an entry with other paths, and a bare value when the
    rule groups by two paths."""
    rule = {
        "window": {"type": "sliding", "size": "5s"},
        "group_by": ["source", "event_type"],
        "detector": {"type": "absence", "expect": [{"source": "a"}, "b"]},
    }

    problems = AbsenceDetector.check_rule(rule)

    assert [path for path, _ in problems] == [
        ("detector", "expect", 0),
        ("detector", "expect", 1),
    ]


def test_expected_source_that_never_sends_fires_in_a_whole_run() -> None:
    """web-2 is expected but silent: it fires at the first watermark + W."""
    text = rules("{type: sliding, size: 5s}", "{type: absence, expect: [web-1, web-2]}")
    alerts = run_rules(text, [[event(10)], [event(12)]])

    # The first watermark is 10 s (the first batch); web-1 goes silent at 17 s.
    assert edges(alerts) == [
        ("web-2", "firing", 15 * SECOND),
        ("web-1", "firing", 17 * SECOND),
    ]


def test_snapshot_restores_start_and_activity() -> None:
    """A restored state decides the same edges as the original."""
    det = detector(min_count=2)
    state = det.new_state()
    for seconds in (0, 1, 4):
        state.add(Event(seconds * SECOND, "ERROR", "web-1"))
    state.advance(2 * SECOND)

    restored = det.restore_state(state.snapshot())

    assert restored.advance(30 * SECOND) == state.advance(30 * SECOND)


# -- property: the engine against the definition, on a grid of milliseconds --


def reference(
    times: list[int], kind: str, size: int, resolution: int, min_count: int
) -> list[tuple[int, bool]]:
    """Edges of the documented condition, evaluated at every millisecond; the
    group's start is its first event."""
    counted = [quantised(ts, kind, size, resolution) for ts in times]
    start = min(times)

    def holds(t: int) -> bool:
        count = sum(1 for q in counted if t - size < q <= t)
        return t >= start + size and count < min_count

    return changes_of(holds, range(start, max(counted) + 2 * size + 2))


@settings(max_examples=60, deadline=None)
@given(
    data=source_arrivals(),
    kind=st.sampled_from(["sliding", "bucketed", "tumbling"]),
    resolution=st.integers(1, 10),
    buckets=st.integers(1, 5),
    min_count=st.integers(1, 4),
)
def test_alerts_match_the_reference_for_any_arrival_order(
    data: tuple[list[tuple[int, str]], int, list[list[Event]]],
    kind: str,
    resolution: int,
    buckets: int,
    min_count: int,
) -> None:
    """For every window type, the alerts are the edges of the definition."""
    stream, lateness, batches = data
    size = buckets * resolution
    alerts = run_rules(
        rules(
            window_yaml(kind, size, resolution),
            f"{{type: absence, min_count: {min_count}}}",
            lateness,
        ),
        batches,
    )

    expected = per_source_edges(
        stream, lambda times: reference(times, kind, size, resolution, min_count)
    )
    assert sorted(edges(alerts)) == sorted(expected)
