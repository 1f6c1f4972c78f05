"""One rule at run time: groups per key, eviction, timers, alert order."""

from __future__ import annotations

from engine.alerts import Alert
from engine.config import parse_config
from engine.events import Event
from engine.rule_runner import RuleRunner

SECOND = 1_000_000
W = 10 * SECOND

RULES = """
version: 1
sources: [{type: jsonl, path: events.jsonl}]
rules:
  - name: BURST
    match: {event_type: ERROR}
    group_by: [source]
    window: {type: sliding, size: 10s}
    detector: {type: burst, threshold: 3}
"""


def runner() -> RuleRunner:
    """A runner for a 10 s, N=3 burst rule grouped by source."""
    config, registry = parse_config(RULES)
    return RuleRunner(config.rules[0], registry)


def feed(rule: RuleRunner, source: str, *times_us: int) -> None:
    """Feed ERROR events from ``source`` at ``times_us``."""
    for time_us in times_us:
        rule.feed(Event(time_us, "ERROR", source))


def summary(alerts: list[tuple[int, int, int, Alert]]) -> list[tuple[str, str, int]]:
    """Each alert as (status, source, instant)."""
    return [(a.status, a.group["source"], at) for at, _, _, a in alerts]


def test_each_group_key_gets_its_own_state() -> None:
    """Events from three sources create three groups."""
    rule = runner()

    feed(rule, "a", 0)
    feed(rule, "b", 0, SECOND)
    feed(rule, "c", 2 * SECOND)

    assert set(rule.groups) == {"a", "b", "c"}


def test_non_matching_events_create_no_group() -> None:
    """An event the rule's ``match`` rejects leaves no state behind."""
    rule = runner()

    rule.feed(Event(0, "INFO", "a"))

    assert rule.groups == {}


def test_groups_are_counted_separately() -> None:
    """Three events split over two groups raise nothing; three in one do."""
    rule = runner()
    feed(rule, "a", 0, SECOND)
    feed(rule, "b", 0, SECOND, 2 * SECOND)

    alerts = rule.advance(3 * SECOND)

    assert summary(alerts) == [("firing", "b", 2 * SECOND)]


def test_idle_group_is_evicted_once_its_window_empties() -> None:
    """A quiet group is dropped once its newest event has left, not before."""
    rule = runner()
    feed(rule, "a", 0)
    feed(rule, "b", 5 * SECOND)
    rule.advance(6 * SECOND)

    rule.advance(W + 1)
    assert set(rule.groups) == {"b"}

    rule.advance(5 * SECOND + W)
    assert set(rule.groups) == {"b"}

    rule.advance(5 * SECOND + W + 1)
    assert rule.groups == {}
    assert rule.exemplars == {}


def test_memory_follows_live_keys_over_many_short_lived_groups() -> None:
    """A thousand keys that each appear once leave no state once they expire."""
    rule = runner()
    for i in range(1000):
        feed(rule, f"host-{i}", i * SECOND)
        rule.advance(i * SECOND)

    rule.advance(999 * SECOND + W + 1)

    assert rule.groups == {}


def test_evicted_group_starts_afresh_when_its_key_returns() -> None:
    """A key seen again after eviction counts only its new events."""
    rule = runner()
    feed(rule, "a", 0, SECOND)
    rule.advance(SECOND + W + 1)
    assert rule.groups == {}

    feed(rule, "a", 3 * W)
    assert rule.advance(3 * W + 1) == []
    feed(rule, "a", 3 * W + 1, 3 * W + 2)
    assert summary(rule.advance(3 * W + 3)) == [("firing", "a", 3 * W + 2)]


def test_firing_group_resolves_through_its_timer() -> None:
    """With no further event, the group's timer resolves it at the expiry instant."""
    rule = runner()
    feed(rule, "a", 0, SECOND, 2 * SECOND)
    assert summary(rule.advance(2 * SECOND + 1)) == [("firing", "a", 2 * SECOND)]

    assert rule.advance(W) == []
    alerts = rule.advance(W + 7 * SECOND)

    assert summary(alerts) == [("resolved", "a", W)]
    resolved = alerts[0][3]
    assert resolved.ends_at_us == W
    assert resolved.starts_at_us == 2 * SECOND
    assert resolved.evidence["count"] == 2


def test_timer_of_a_quiet_group_is_kept_while_another_group_is_fed() -> None:
    """Feeding one group does not lose another group's pending resolution."""
    rule = runner()
    feed(rule, "a", 0, SECOND, 2 * SECOND)
    rule.advance(2 * SECOND + 1)
    feed(rule, "b", 5 * SECOND)
    rule.advance(6 * SECOND)

    feed(rule, "b", W + 5 * SECOND)
    alerts = rule.advance(W + 5 * SECOND + 1)

    assert summary(alerts) == [("resolved", "a", W)]


def test_alerts_of_one_advance_sort_into_time_order_across_groups() -> None:
    """Sorted by their order keys, alerts of one advance are in instant order,
    whichever group was fed first."""
    rule = runner()
    feed(rule, "early", 0, SECOND, 2 * SECOND)
    rule.advance(2 * SECOND + 1)
    # "late" is fed first, but its rising edge (at W + 4 s) comes after
    # "early"'s resolution (at W, by timer) and "mid"'s rising edge (W + 2 s).
    feed(rule, "late", W + 2 * SECOND, W + 3 * SECOND, W + 4 * SECOND)
    feed(rule, "mid", W, W + SECOND, W + 2 * SECOND)

    alerts = sorted(rule.advance(W + 5 * SECOND), key=lambda entry: entry[:3])

    assert summary(alerts) == [
        ("resolved", "early", W),
        ("firing", "mid", W + 2 * SECOND),
        ("firing", "late", W + 4 * SECOND),
    ]


def test_alert_order_keys_sort_by_instant_then_sequence() -> None:
    """Each alert carries (instant, rule index, growing sequence) for merging."""
    rule = runner()
    feed(rule, "b", SECOND, SECOND, SECOND)
    feed(rule, "a", SECOND, SECOND, SECOND)

    alerts = rule.advance(2 * SECOND)

    assert [(at, index) for at, index, _, _ in alerts] == [(SECOND, 0), (SECOND, 0)]
    assert alerts[0][2] < alerts[1][2]
    assert {a.group["source"] for *_, a in alerts} == {"a", "b"}
