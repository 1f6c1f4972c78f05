"""The exact sliding window: an event at ``s`` counts at ``t`` iff
``t - W < s <= t``, with integer-microsecond boundaries."""

from __future__ import annotations

import pytest

from engine.components import RuleInfo
from engine.plugins.window_sliding import SlidingWindow, SlidingWindowState

W = 10_000_000  # 10 s in µs
RULE = RuleInfo("R", 0, "<test>")


def filled(*times_us: int) -> SlidingWindowState:
    """A window of size W holding ``times_us``, none of them moved to yet."""
    state = SlidingWindowState(W)
    for time_us in times_us:
        state.add(time_us)
    return state


def walk(state: SlidingWindowState) -> list[tuple[int, int]]:
    """Every pending instant in order, with the count the window gives there."""
    counts = []
    instant = state.next_instant()
    while instant is not None:
        counts.append((instant, state.move_to(instant)))
        instant = state.next_instant()
    return counts


def test_in_order_adds_are_moved_to_one_instant_at_a_time() -> None:
    """Instants come back in time order, each counting everything up to it."""
    state = filled(1, 2, 3)

    assert walk(state) == [(1, 1), (2, 2), (3, 3)]
    assert state.next_instant() is None


def test_out_of_order_adds_are_placed_before_any_instant_is_decided() -> None:
    """Events added out of order are walked in time order all the same."""
    state = filled(30, 10, 20, 5)

    assert state.next_instant() == 5
    assert walk(state) == [(5, 1), (10, 2), (20, 3), (30, 4)]


def test_event_still_counts_one_microsecond_before_it_leaves() -> None:
    """At ``s + W - 1`` the event at ``s`` is still inside ``(t - W, t]``."""
    state = filled(0)
    state.move_to(0)

    assert state.move_to(W - 1) == 1


def test_event_leaves_exactly_one_window_after_its_timestamp() -> None:
    """At ``s + W`` the event at ``s`` is outside ``(t - W, t]``."""
    state = filled(0, 5)
    walk(state)

    assert state.move_to(W) == 1
    assert state.move_to(W + 5) == 0


def test_event_joining_as_another_leaves_keeps_the_count() -> None:
    """At an instant where one event leaves and one arrives, both happen."""
    state = filled(0, 2, 4, 6, 8, W)

    counts = dict(walk(state))

    assert counts[8] == 5
    assert counts[W] == 5


def test_ties_join_together_at_their_instant() -> None:
    """All events sharing a timestamp join at the same instant."""
    state = filled(7, 7, 7, 3)

    assert walk(state) == [(3, 1), (7, 4)]


def test_ties_leave_together() -> None:
    """Events sharing a timestamp also leave at the same instant."""
    state = filled(7, 7, 7)
    walk(state)

    assert state.move_to(7 + W - 1) == 3
    assert state.move_to(7 + W) == 0


def test_move_to_leaves_later_events_pending() -> None:
    """Moving to an instant only takes in events at or before it."""
    state = filled(5, 15)

    assert state.move_to(10) == 1
    assert state.next_instant() == 15


def test_expire_keeps_events_leaving_exactly_at_the_limit() -> None:
    """``expire(u)`` keeps events leaving at ``u``: that instant is undecided."""
    state = filled(0, 3)
    walk(state)

    state.expire(W)

    assert state.falls_below_at(2) == W
    assert state.empty_at() == 3 + W


def test_expire_forgets_events_that_left_before_the_limit() -> None:
    """One microsecond later the event that left at the limit is gone."""
    state = filled(0, 3)
    walk(state)

    state.expire(W + 1)

    assert state.falls_below_at(1) == 3 + W
    assert state.falls_below_at(2) is None
    assert state.snapshot()["times"] == [3]


def test_expire_past_every_event_empties_the_window() -> None:
    """Expiring past the last leaving instant leaves nothing to wait for."""
    state = filled(0, 3)
    walk(state)

    state.expire(3 + W + 1)

    assert state.empty_at() is None
    assert state.falls_below_at(1) is None


@pytest.mark.parametrize(
    ("level", "expected"),
    [(1, 5 + W), (2, 3 + W), (3, 0 + W), (4, None)],
)
def test_falls_below_at_is_when_enough_of_the_oldest_have_left(
    level: int, expected: int | None
) -> None:
    """With events at 0, 3, 5 the count drops below 3, 2, 1 at 0+W, 3+W, 5+W."""
    state = filled(0, 3, 5)
    walk(state)

    assert state.falls_below_at(level) == expected


def test_falls_below_at_waits_for_every_tied_event_to_leave() -> None:
    """Tied events leave together, so the count drops at their shared instant."""
    state = filled(2, 2, 2, 4)
    walk(state)

    assert state.falls_below_at(3) == 2 + W
    assert state.falls_below_at(1) == 4 + W


def test_empty_at_is_when_the_newest_event_leaves() -> None:
    """The window empties one window after its newest decided event."""
    state = filled(1, 9, 4)
    walk(state)

    assert state.empty_at() == 9 + W


def test_empty_window_has_no_falling_or_empty_instant() -> None:
    """A window with nothing decided has nothing to wait for."""
    state = SlidingWindowState(W)

    assert state.empty_at() is None
    assert state.falls_below_at(1) is None
    assert state.next_instant() is None


def test_add_late_ignores_an_event_that_already_left_the_window() -> None:
    """A late event that left at or before the current instant changes nothing."""
    state = filled(20)
    walk(state)

    state.add_late(20 - W)

    assert state.snapshot()["times"] == [20]
    assert state.move_to(20) == 1


def test_add_late_counts_an_event_still_inside_the_window() -> None:
    """A late event one microsecond younger than the window's edge is counted."""
    state = filled(20)
    walk(state)

    state.add_late(21 - W)

    assert state.snapshot()["times"] == [21 - W, 20]
    assert state.falls_below_at(2) == 21
    assert state.move_to(20) == 2


def test_add_late_is_placed_in_time_order() -> None:
    """Late events land among decided ones in time order."""
    state = filled(10, 30)
    walk(state)

    state.add_late(20)
    state.add_late(25)
    state.add_late(15)

    assert state.snapshot()["times"] == [10, 15, 20, 25, 30]
    assert state.empty_at() == 30 + W


def test_add_late_after_expire_uses_the_expired_limit() -> None:
    """After ``expire(u)`` a late event leaving before ``u`` is out, at ``u`` in."""
    state = filled(0)
    walk(state)
    state.expire(W + 100)

    state.add_late(99)
    state.add_late(100)

    assert state.snapshot()["times"] == [100]


def test_snapshot_restore_round_trip_keeps_every_field() -> None:
    """A restored window snapshots to the same data as the original."""
    window = SlidingWindow({"size": "10s"}, RULE)
    state = window.new_state()
    for time_us in (1, 5, 5, 9, 12):
        state.add(time_us)
    state.move_to(9)
    original = state.snapshot()

    restored = window.restore_state(original)

    assert restored.snapshot() == original
    assert original["times"] == [1, 5, 5, 9]
    assert original["pending"] == [12]
    assert original["current_us"] == 9


def test_restored_window_continues_like_the_original() -> None:
    """After restore the same moves give the same counts and instants."""
    window = SlidingWindow({"size": "10s"}, RULE)
    state = window.new_state()
    for time_us in (0, 2, 2, 7, W + 1, W + 3):
        state.add(time_us)
    state.move_to(7)

    restored = window.restore_state(state.snapshot())

    assert walk(restored) == walk(state) == [(W + 1, 4), (W + 3, 3)]
    assert restored.falls_below_at(1) == state.falls_below_at(1) == W + 3 + W


def test_restore_rejects_an_unknown_snapshot_version() -> None:
    """A snapshot from another format version is refused, naming the version."""
    window = SlidingWindow({"size": "10s"}, RULE)
    data = {**window.new_state().snapshot(), "version": 99}

    with pytest.raises(ValueError, match="99"):
        window.restore_state(data)
