"""The sustained detector: ``C(t) >= threshold`` must hold without a break for
``for_duration`` before the group is active; it resolves when the count falls
below the threshold."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alerts import Alert
from engine.components import RuleInfo
from engine.config import parse_config
from engine.errors import UsageError
from engine.events import Event
from engine.plugins.detector_sustained import SustainedDetector
from engine.plugins.window_sliding import SlidingWindow
from engine.testing import event, run_rules

SECOND = 1_000_000
MS = 1_000
RULE = RuleInfo("R", 0, "<test>")
PLUGINS = (
    "[engine.plugins.detector_sustained, engine.plugins.window_bucketed, "
    "engine.plugins.window_tumbling]"
)


def rules(window: str, detector: str, lateness_ms: int = 0) -> str:
    """A rules file with one rule grouped by source."""
    return f"""
version: 1
plugins: {PLUGINS}
sources: [{{type: memory}}]
time: {{allowed_lateness: {lateness_ms}ms}}
rules:
  - name: R
    match: {{event_type: ERROR}}
    group_by: [source]
    window: {window}
    detector: {detector}
"""


def edges(alerts: list[Alert]) -> list[tuple[str, str, int | None]]:
    """Each alert as (source, status, instant of the edge)."""
    return [
        (
            a.labels["source"],
            a.status,
            a.starts_at_us if a.status == "firing" else a.ends_at_us,
        )
        for a in alerts
    ]


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


def quantised(ts: int, kind: str, size: int, resolution: int) -> int:
    """The time at which an event counts, for each window type (ms)."""
    if kind == "bucketed":
        return -(-ts // resolution) * resolution
    if kind == "tumbling":
        return (ts // size + 1) * size
    return ts


def window_yaml(kind: str, size: int, resolution: int) -> str:
    if kind == "bucketed":
        return f"{{type: bucketed, size: {size}ms, resolution: {resolution}ms}}"
    return f"{{type: {kind}, size: {size}ms}}"


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


@st.composite
def arrivals(draw: Any) -> tuple[list[tuple[int, str]], int, list[list[Event]]]:
    """Events (ms, source), a lateness, and batches in an arrival order whose
    disorder stays within that lateness."""
    stream = draw(
        st.lists(
            st.tuples(st.integers(0, 150), st.sampled_from(["web-1", "web-2"])),
            min_size=1,
            max_size=25,
        )
    )
    lateness = draw(st.integers(0, 20))
    delays = draw(
        st.lists(st.integers(0, lateness), min_size=len(stream), max_size=len(stream))
    )
    order = sorted(range(len(stream)), key=lambda i: (stream[i][0] + delays[i], i))
    cuts = sorted(draw(st.sets(st.integers(1, len(stream)), max_size=4)))
    batches, start = [], 0
    for cut in [*cuts, len(stream)]:
        batches.append(
            [
                event(stream[i][0] / 1000, "ERROR", stream[i][1])
                for i in order[start:cut]
            ]
        )
        start = cut
    return stream, lateness, [b for b in batches if b]


@settings(max_examples=60, deadline=None)
@given(
    data=arrivals(),
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

    expected = []
    for source in sorted({s for _, s in stream}):
        times = [ts for ts, s in stream if s == source]
        for t, active in reference(times, kind, size, resolution, threshold, hold):
            expected.append((source, "firing" if active else "resolved", t * MS))
    assert sorted(edges(alerts)) == sorted(expected)
