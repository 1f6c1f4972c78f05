"""The sustained detector: ``C(t) >= threshold`` must hold without a break for
``for_duration`` before the group is active; it resolves when the count falls
below the threshold."""

from __future__ import annotations

from detector_harness import (
    SECOND,
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
from engine.config import parse_config
from engine.errors import UsageError
from engine.events import Event
from engine.plugins.detector_sustained import SustainedDetector
from engine.plugins.window_sliding import SlidingWindow
from engine.testing import event, run_rules

RULE = RuleInfo("R", 0, "<test>")
PLUGINS = with_windows("engine.plugins.detector_sustained")


def rules(window: str, detector: str, lateness_ms: int = 0) -> str:
    """A rules file with one rule grouped by source."""
    return rules_file(PLUGINS, window, detector, lateness_ms)


def test_a_short_spike_does_not_fire() -> None:
    """Five events in one second reach the threshold but not for 10 s."""
    alerts = run_rules(
        rules(
            "{type: sliding, size: 5s}",
            "{type: sustained, threshold: 3, for_duration: 10s}",
        ),
        [[event(0.1 * i) for i in range(5)]],
    )

    assert alerts == []


def test_steady_errors_fire_after_the_duration_and_resolve_when_they_stop() -> None:
    """One event a second with W=2s, N=2 holds from 1 s; with D=5s it fires at
    6 s; the last event at 9 s leaves the count below 2 at 10 s."""
    alerts = run_rules(
        rules(
            "{type: sliding, size: 2s}",
            "{type: sustained, threshold: 2, for_duration: 5s}",
        ),
        [[event(i) for i in range(10)]],
    )

    assert edges(alerts) == [
        ("web-1", "firing", 6 * SECOND),
        ("web-1", "resolved", 10 * SECOND),
    ]
    assert alerts[0].evidence == {
        "count": 2,
        "threshold": 2,
        "window": "2s",
        "held_for": "5s",
    }
    assert alerts[1].evidence["held_for"] == "9s"


def test_a_dip_restarts_the_hold() -> None:
    """A gap that lets the count fall below the threshold starts a new hold."""
    times = [0, 1, 2, 3, 6, 7, 8, 9, 10, 11]  # the count is 0 or 1 from 4 s to 7 s
    alerts = run_rules(
        rules(
            "{type: sliding, size: 2s}",
            "{type: sustained, threshold: 2, for_duration: 3s}",
        ),
        [[event(t) for t in times]],
    )

    # Hold from 1 s dips at 4 s (only 3 s held); the hold from 7 s fires at
    # 10 s, and at 12 s only the event at 11 s is left in (10 s, 12 s].
    assert edges(alerts) == [
        ("web-1", "firing", 10 * SECOND),
        ("web-1", "resolved", 12 * SECOND),
    ]


def test_hold_ending_exactly_at_the_duration_does_not_fire() -> None:
    """The count holds on [1 s, 4 s) only: D=3s would need it at 4 s too."""
    alerts = run_rules(
        rules(
            "{type: sliding, size: 2s}",
            "{type: sustained, threshold: 2, for_duration: 3s}",
        ),
        [[event(t) for t in (0, 1, 2, 3)]],
    )

    assert alerts == []


def test_activation_is_decided_by_the_watermark_without_a_later_event() -> None:
    """The state fires at h0 + D from a wake-up, with no event at that time."""
    window = SlidingWindow({"size": "10s"}, RULE)
    detector = SustainedDetector({"threshold": 2, "for_duration": "4s"}, RULE, window)
    state = detector.new_state()
    state.add(Event(0, "ERROR", "web-1"))
    state.add(Event(SECOND, "ERROR", "web-1"))

    assert state.advance(2 * SECOND) == []
    assert state.next_wakeup() == 5 * SECOND
    assert state.advance(5 * SECOND) == []
    signals = state.advance(5 * SECOND + 1)
    assert [(s.at_us, s.active) for s in signals] == [(5 * SECOND, True)]


def test_snapshot_restores_a_hold_in_progress() -> None:
    """A restored state fires at the same instant as the original."""
    window = SlidingWindow({"size": "10s"}, RULE)
    detector = SustainedDetector({"threshold": 2, "for_duration": "4s"}, RULE, window)
    state = detector.new_state()
    for seconds in (0, 1, 3):
        state.add(Event(seconds * SECOND, "ERROR", "web-1"))
    state.advance(2 * SECOND)

    restored = detector.restore_state(state.snapshot())

    assert restored.advance(20 * SECOND) == state.advance(20 * SECOND)


def test_for_duration_is_required() -> None:
    """A sustained detector without for_duration is refused."""
    try:
        parse_config(
            rules("{type: sliding, size: 2s}", "{type: sustained, threshold: 2}"),
            "<rules>",
        )
    except UsageError as error:
        assert any("for_duration" in p.message for p in error.problems)
    else:
        raise AssertionError("expected a UsageError")


# -- property: the engine against the definition, on a grid of milliseconds --


def reference(
    times: list[int], kind: str, size: int, resolution: int, threshold: int, hold: int
) -> list[tuple[int, bool]]:
    """Edges of the documented condition, evaluated at every millisecond."""
    counted = [quantised(ts, kind, size, resolution) for ts in times]
    found: list[tuple[int, bool]] = []
    active, run_start = False, None
    for t in range(min(counted) - 1, max(counted) + size + hold + 2):
        holds = sum(1 for q in counted if t - size < q <= t) >= threshold
        run_start = (t if run_start is None else run_start) if holds else None
        now = run_start is not None and t - run_start >= hold
        if now != active:
            found.append((t, now))
            active = now
    return found


@settings(max_examples=60, deadline=None)
@given(
    data=source_arrivals(),
    kind=st.sampled_from(["sliding", "bucketed", "tumbling"]),
    resolution=st.integers(1, 10),
    buckets=st.integers(1, 5),
    threshold=st.integers(1, 4),
    hold=st.integers(0, 40),
)
def test_alerts_match_the_reference_for_any_arrival_order(
    data: tuple[list[tuple[int, str]], int, list[list[Event]]],
    kind: str,
    resolution: int,
    buckets: int,
    threshold: int,
    hold: int,
) -> None:
    """For every window type, the alerts are the edges of the definition."""
    stream, lateness, batches = data
    size = buckets * resolution
    alerts = run_rules(
        rules(
            window_yaml(kind, size, resolution),
            f"{{type: sustained, threshold: {threshold}, for_duration: {hold}ms}}",
            lateness,
        ),
        batches,
    )

    expected = per_source_edges(
        stream, lambda times: reference(times, kind, size, resolution, threshold, hold)
    )
    assert sorted(edges(alerts)) == sorted(expected)
