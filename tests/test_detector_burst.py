"""The burst detector's state machine: rising edges of ``C(t) >= N`` with
exact boundaries, resolution at the expiry instant, hysteresis, wake-ups and
snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from engine.components import RuleInfo, Signal
from engine.events import Event
from engine.plugins.detector_burst import BurstDetector, BurstState
from engine.plugins.window_sliding import SlidingWindow

SECOND = 1_000_000
MS = 1_000
W = 10 * SECOND
RULE = RuleInfo("R", 0, "<test>")


def detector(threshold: int = 5, **options: Any) -> BurstDetector:
    """A burst detector over a 10 s sliding window."""
    window = SlidingWindow({"size": "10s"}, RULE)
    return BurstDetector({"threshold": threshold, **options}, RULE, window)


def fed(state: BurstState, *times_us: int) -> BurstState:
    """Feed events at ``times_us`` (not yet decided) to ``state``."""
    for time_us in times_us:
        state.add(Event(time_us, "ERROR", "web-1"))
    return state


def edges(signals: list[Signal]) -> list[tuple[int, bool, int]]:
    """Each signal as (instant, active, count)."""
    return [(s.at_us, s.active, s.evidence["count"]) for s in signals]


def test_rising_edge_is_at_the_nth_event() -> None:
    """With N=5 the alert is raised at the fifth event's timestamp, count 5."""
    state = fed(detector(5).new_state(), *(i * SECOND for i in range(5)))

    signals = state.advance(5 * SECOND)

    assert edges(signals) == [(4 * SECOND, True, 5)]
    assert signals[0].evidence == {"count": 5, "threshold": 5, "window": "10s"}


def test_fewer_than_n_events_raise_nothing() -> None:
    """Four events in the window do not reach N=5."""
    state = fed(detector(5).new_state(), *(i * SECOND for i in range(4)))

    assert state.advance(W * 10) == []


def test_instant_is_not_decided_until_advance_passes_it() -> None:
    """``advance(t)`` decides instants strictly before ``t`` only."""
    state = fed(detector(5).new_state(), *(i * SECOND for i in range(5)))

    assert state.advance(4 * SECOND) == []
    assert edges(state.advance(4 * SECOND + 1)) == [(4 * SECOND, True, 5)]


def test_tied_events_raise_one_alert_counting_all_of_them() -> None:
    """Seven events at one instant give one alert with count 7."""
    state = fed(detector(5).new_state(), *([3 * SECOND] * 7))

    assert edges(state.advance(3 * SECOND + 1)) == [(3 * SECOND, True, 7)]


def test_five_gaps_of_exactly_w_over_n_never_dip_and_never_re_alert() -> None:
    """Gaps of exactly W/N: one leaves as the next arrives, so no re-alert."""
    # The hadoop_2k ERROR storm: W=10 s, N=5, events every 2.000 s.
    times = [i * 2 * SECOND for i in range(20)]
    state = fed(detector(5).new_state(), *times)

    signals = state.advance(times[-1] + 1)

    assert edges(signals) == [(8 * SECOND, True, 5)]


def test_gap_sum_just_over_w_dips_and_re_alerts() -> None:
    """Five gaps adding up to W + 1 ms: the count dips to 4, resolves, re-fires."""
    times = [0, 2 * SECOND, 4 * SECOND, 6 * SECOND, 8 * SECOND, W + MS]
    state = fed(detector(5).new_state(), *times)

    signals = state.advance(W + MS + 1)

    assert edges(signals) == [
        (8 * SECOND, True, 5),
        (W, False, 4),
        (W + MS, True, 5),
    ]


def test_resolution_is_decided_by_advance_without_a_new_event() -> None:
    """``advance`` alone resolves at the exact instant the count drops below N."""
    state = fed(detector(3).new_state(), 0, SECOND, 2 * SECOND)
    assert edges(state.advance(2 * SECOND + 1)) == [(2 * SECOND, True, 3)]

    assert state.advance(W) == []
    assert edges(state.advance(W + 1)) == [(W, False, 2)]


def test_event_at_the_expiry_instant_keeps_the_group_firing() -> None:
    """An event arriving exactly as the oldest leaves keeps the count at N."""
    state = fed(detector(3).new_state(), 0, SECOND, 2 * SECOND)
    state.advance(2 * SECOND + 1)
    fed(state, W)

    assert state.advance(W + 1) == []
    assert edges(state.advance(SECOND + W + 1)) == [(SECOND + W, False, 2)]


def test_resolution_before_a_later_event_comes_first() -> None:
    """A drop before the next event resolves at the expiry instant, in order."""
    state = fed(detector(2).new_state(), 0, SECOND, W + 5 * SECOND)
    fed(state, W + 6 * SECOND)

    signals = state.advance(W + 6 * SECOND + 1)

    assert edges(signals) == [
        (SECOND, True, 2),
        (W, False, 1),
        (W + 6 * SECOND, True, 2),
    ]


def test_rearm_below_holds_the_alert_until_the_count_falls_below_m() -> None:
    """With N=4, M=2 a dip to 3 neither resolves nor re-fires; below 2 does."""
    state = fed(detector(4, rearm_below=2).new_state(), 0, 100, 200, 300)
    # The count dips to 3 at W (0 leaves) and is back to 4 at W + 50.
    fed(state, W + 50)

    assert edges(state.advance(W + 51)) == [(300, True, 4)]
    # Then 3 at W + 100, 2 at W + 200, 1 at W + 300 (below M=2).
    assert edges(state.advance(W + 300)) == []
    assert edges(state.advance(W + 301)) == [(W + 300, False, 1)]
    # W + 50 is still inside at 2W + 2: 4 events, a new rising edge.
    fed(state, 2 * W, 2 * W + 1, 2 * W + 2)
    assert edges(state.advance(2 * W + 3)) == [(2 * W + 2, True, 4)]


def test_rearm_below_equal_to_threshold_is_the_default() -> None:
    """``rearm_below: N`` gives exactly the same signals as no ``rearm_below``."""
    times = [0, 1, 2, W + 1, W + 2, W + 3, 3 * W]
    default = fed(detector(3).new_state(), *times).advance(4 * W)
    explicit = fed(detector(3, rearm_below=3).new_state(), *times).advance(4 * W)

    assert edges(explicit) == edges(default)
    assert edges(default) == [
        (2, True, 3),
        (W, False, 2),
        (W + 3, True, 3),
        (2 * W + 1, False, 2),
    ]


def test_advance_again_to_the_same_time_does_nothing() -> None:
    """A duplicate wake-up raises nothing and leaves the state unchanged."""
    state = fed(detector(3).new_state(), 0, 1, 2, 5 * SECOND)
    state.advance(3 * SECOND)
    before = state.snapshot()

    assert state.advance(3 * SECOND) == []
    assert state.snapshot() == before


def test_advance_to_an_earlier_time_does_nothing() -> None:
    """A wake-up that arrives late (for a time already passed) changes nothing."""
    state = fed(detector(3).new_state(), 0, 1, 2, 5 * SECOND)
    state.advance(3 * SECOND)
    before = state.snapshot()

    assert state.advance(2) == []
    assert state.advance(SECOND) == []
    assert state.snapshot() == before


def test_one_big_advance_equals_many_small_ones() -> None:
    """Advancing step by step gives the same signals as one jump."""
    times = [0, 1, 2, W + 1, W + 2, W + 3, 3 * W]
    stepped_state = fed(detector(3).new_state(), *times)
    stepped: list[Signal] = []
    for until in range(0, 4 * W, SECOND // 2):
        stepped += stepped_state.advance(until)
    stepped += stepped_state.advance(4 * W)

    jumped = fed(detector(3).new_state(), *times).advance(4 * W)

    assert edges(stepped) == edges(jumped)


def test_next_wakeup_is_the_earliest_pending_event() -> None:
    """A quiet group with undecided events wants to wake at the earliest."""
    state = fed(detector(3).new_state(), 7 * SECOND, 4 * SECOND)

    assert state.next_wakeup() == 4 * SECOND


def test_next_wakeup_of_a_firing_group_is_when_its_count_drops() -> None:
    """A firing group with nothing pending wakes when it falls below N."""
    state = fed(detector(3).new_state(), 0, SECOND, 2 * SECOND, 3 * SECOND)
    state.advance(3 * SECOND + 1)

    # Count 4; below 3 once the two oldest have left, at SECOND + W.
    assert state.next_wakeup() == SECOND + W


def test_next_wakeup_of_a_firing_group_uses_the_rearm_level() -> None:
    """With ``rearm_below: 2`` the firing group wakes when fewer than 2 remain."""
    state = fed(detector(3, rearm_below=2).new_state(), 0, SECOND, 2 * SECOND)
    state.advance(2 * SECOND + 1)

    assert state.next_wakeup() == SECOND + W


def test_next_wakeup_of_a_firing_group_is_a_pending_event_if_sooner() -> None:
    """A pending event before the expiry instant is the earlier wake-up."""
    state = fed(detector(3).new_state(), 0, SECOND, 2 * SECOND)
    state.advance(2 * SECOND + 1)
    fed(state, 5 * SECOND)

    assert state.next_wakeup() == 5 * SECOND


def test_next_wakeup_of_a_quiet_group_is_when_its_window_empties() -> None:
    """A group that is not firing and has nothing pending wakes to be evicted."""
    state = fed(detector(3).new_state(), 0, 4 * SECOND)
    state.advance(5 * SECOND)

    assert state.next_wakeup() == 4 * SECOND + W


def test_group_is_idle_only_after_its_window_empties() -> None:
    """``is_idle`` turns true once the newest event has left the window."""
    state = fed(detector(3).new_state(), 0, 4 * SECOND)
    assert not state.is_idle()

    state.advance(4 * SECOND + W)
    assert not state.is_idle()

    state.advance(4 * SECOND + W + 1)
    assert state.is_idle()
    assert state.next_wakeup() is None


def test_firing_group_is_not_idle_until_resolved() -> None:
    """A firing group holds its state until its alert resolves."""
    state = fed(detector(2).new_state(), 0, 0)
    state.advance(1)
    assert not state.is_idle()

    assert edges(state.advance(W + 1)) == [(W, False, 0)]
    assert state.is_idle()


@pytest.mark.parametrize("cut_us", [0, 2, 3, W, W + 2, W + 3, 2 * W])
def test_restored_state_continues_identically(cut_us: int) -> None:
    """Snapshot at any point, restore, and the rest of the signals are the same."""
    det = detector(3, rearm_below=2)
    times = [0, 1, 2, 3, W + 2, W + 3, W + 4, 2 * W + 10]
    original = fed(det.new_state(), *times)
    first = original.advance(cut_us)

    restored = det.restore_state(original.snapshot())

    assert restored.snapshot() == original.snapshot()
    rest_original = original.advance(4 * W)
    rest_restored = restored.advance(4 * W)
    assert edges(rest_restored) == edges(rest_original)
    whole = fed(det.new_state(), *times).advance(4 * W)
    assert edges(first + rest_original) == edges(whole)


def test_restore_rejects_an_unknown_snapshot_version() -> None:
    """A detector snapshot from another format version is refused."""
    det = detector(3)
    data = {**det.new_state().snapshot(), "version": 7}

    with pytest.raises(ValueError, match="7"):
        det.restore_state(data)
